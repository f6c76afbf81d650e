//! The incremental segment and outcome matcher.
//!
//! [`RuleSet::new`] compiles an organisation's active definitions once per configuration: journey patterns
//! are indexed by event name, and every literal of every criterion goes into one Aho-Corasick automaton per
//! (field, case-sensitivity), so one pass over a field answers all criteria on it at once.
//! [`RuleSet::on_event`] then runs on every web event against the [`RuleState`] of the event's session and of
//! its customer: it counts the patterns the event matches (never rescanning history) and assigns the segments
//! / achieves the outcomes whose patterns reached their counts and whose context holds, in definition order.
//!
//! Only definitions that can have changed are evaluated: those whose counters moved. All are evaluated when
//! the visit context (device, geolocation, …) or the rule set changed, or a customer assignment expired. That
//! is exactly equivalent to evaluating every definition on every event (property-tested below against a
//! from-scratch evaluator).
//!
//! Counters are keyed by a stable hash of (definition id, scope, pattern content): editing a pattern starts
//! its count afresh ("a changed definition applies from then on"), editing a colour or a count keeps it.
//! Counters of patterns no longer in the rule set are dropped, so state stays bounded.

use crate::Timestamp;
use crate::event::{AchievedOutcomeRef, Event, EventType, OutcomeAchievedEventBody, SegmentAssignmentEventBody};
use crate::journey::{Assigned, RuleState};
use crate::outcome::{AssociatedValueField, OutcomeDefinition};
use crate::segment::{
    Criterion, EVENT_KEYS, FieldKey, Operator, Scope, SegmentDefinition, VISIT_KEYS, event_field, visit_field,
};
use crate::session::{OutcomeAchievement, SegmentAssignment, Session, SessionType};
use crate::wire::EntityRef;
use aho_corasick::AhoCorasick;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// Something the matcher derived from an event: a segment assigned or an outcome achieved.
#[derive(Debug, Clone, PartialEq)]
pub enum Derived {
    SegmentAssigned(SegmentAssigned),
    OutcomeAchieved(OutcomeAchieved),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentAssigned {
    pub segment_id: String,
    pub display_name: String,
    pub color: String,
    pub scope: Scope,
    pub version: i64,
    pub at: Timestamp,
    pub expires: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeAchieved {
    pub outcome_id: String,
    pub display_name: String,
    pub version: i64,
    pub is_positive: bool,
    /// The associated value read from the achieving event, when the outcome defines one.
    pub value: Option<f64>,
    pub at: Timestamp,
}

impl Derived {
    pub fn at(&self) -> Timestamp {
        match self {
            Derived::SegmentAssigned(s) => s.at,
            Derived::OutcomeAchieved(o) => o.at,
        }
    }

    /// The journey event (`SegmentAssignmentEvent` / `OutcomeAchievedEvent`) in `session`.
    /// `correlation_id` is the id of the event that caused it.
    pub fn to_event(&self, session: &Session, id: String, correlation_id: String) -> Event {
        match self {
            Derived::SegmentAssigned(s) => {
                let mut e = Event::envelope(id, correlation_id, session, EventType::SegmentAssignment, s.at);
                e.segment_assignment_event = Some(Box::new(SegmentAssignmentEventBody {
                    segment: EntityRef::new(&s.segment_id, "/api/v2/journey/segments"),
                    display_name: Some(s.display_name.clone()),
                    color: Some(s.color.clone()),
                    scope: Some(s.scope.as_str().to_string()),
                }));
                e
            }
            Derived::OutcomeAchieved(o) => {
                let mut e = Event::envelope(id, correlation_id, session, EventType::OutcomeAchieved, o.at);
                e.outcome_achieved_event = Some(Box::new(OutcomeAchievedEventBody {
                    outcome: AchievedOutcomeRef {
                        id: o.outcome_id.clone(),
                        self_uri: Some(format!("/api/v2/journey/outcomes/{}", o.outcome_id)),
                        display_name: o.display_name.clone(),
                        version: o.version,
                    },
                    value: o.value,
                    is_positive: Some(o.is_positive),
                }));
                e
            }
        }
    }

    /// Record it on the wire session (`segmentAssignments` / `outcomeAchievements`, in order).
    pub fn apply_to(&self, session: &mut Session) {
        match self {
            Derived::SegmentAssigned(s) => session.segment_assignments.push(SegmentAssignment {
                segment: EntityRef::new(&s.segment_id, "/api/v2/journey/segments"),
                assigned_date: s.at,
            }),
            Derived::OutcomeAchieved(o) => session.outcome_achievements.push(OutcomeAchievement {
                outcome: EntityRef::new(&o.outcome_id, "/api/v2/journey/outcomes"),
                achieved_date: o.at,
            }),
        }
    }
}

/// Why a rule set could not be compiled (only on inputs far beyond the parser's limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rule set cannot be compiled: {0}")]
pub struct CompileError(String);

/// A number or a dotted version, for the ordering operators.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderValue {
    number: Option<f64>,
    version: Option<Vec<u64>>,
}

impl OrderValue {
    pub fn parse(s: &str) -> Option<OrderValue> {
        let t = s.trim();
        let number = t.parse::<f64>().ok().filter(|n| n.is_finite());
        let parts: Vec<&str> = t.split('.').collect();
        let version = (parts.len() <= 8
            && parts.iter().all(|p| !p.is_empty() && p.len() <= 18 && p.bytes().all(|b| b.is_ascii_digit())))
        .then(|| parts.iter().filter_map(|p| p.parse::<u64>().ok()).collect::<Vec<_>>());
        (number.is_some() || version.is_some()).then_some(OrderValue { number, version })
    }

    /// Compare `self` (the visitor's value) with `other` (the criterion's): as numbers when both are numbers,
    /// else as versions (`124.0.6367` > `100`).
    fn compare(&self, other: &OrderValue) -> Option<Ordering> {
        if let (Some(a), Some(b)) = (self.number, other.number) {
            return a.partial_cmp(&b);
        }
        let (a, b) = (self.version.as_ref()?, other.version.as_ref()?);
        let n = a.len().max(b.len());
        Some(
            (0..n)
                .map(|i| a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal),
        )
    }
}

/// Whether `text` (the visitor's value, absent = empty) satisfies `op` against `value` for ordering operators.
fn ordering_holds(op: Operator, text: Option<&str>, value: &OrderValue) -> bool {
    let Some(ord) = text.and_then(OrderValue::parse).and_then(|t| t.compare(value)) else { return false };
    match op {
        Operator::GreaterThan => ord == Ordering::Greater,
        Operator::GreaterThanOrEqual => ord != Ordering::Less,
        Operator::LessThan => ord == Ordering::Less,
        Operator::LessThanOrEqual => ord != Ordering::Greater,
        _ => false,
    }
}

/// FNV-1a: a small hash that stays the same across builds and platforms (keys are persisted).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn str(&mut self, s: &str) {
        self.bytes(&(s.len() as u64).to_le_bytes());
        self.bytes(s.as_bytes());
    }
    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.bytes(&[1]);
                self.str(s);
            }
            None => self.bytes(&[0]),
        }
    }
    /// Never 0, which [`RuleState`] uses for "never evaluated".
    fn finish(&self) -> u64 {
        self.0.max(1)
    }
}

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        self.bytes(bytes);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

/// Hash maps keyed by short strings on the per-event path: FNV is several times cheaper than SipHash there,
/// and the keys come from the organisation's own definitions.
type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;
type FastSet<K> = HashSet<K, std::hash::BuildHasherDefault<Fnv>>;

// Literal match flags.
const ANY: u8 = 1;
const PREFIX: u8 = 2;
const SUFFIX: u8 = 4;
const EXACT: u8 = 8;

/// All literals of one side (event or visit), grouped per (field slot, ignore-case) into automata.
#[derive(Debug, Default)]
struct Scanner {
    groups: Vec<Group>,
    literals: usize,
}

#[derive(Debug)]
struct Group {
    slot: usize,
    ignore_case: bool,
    ac: AhoCorasick,
    base: usize,
}

#[derive(Default)]
struct ScannerBuilder {
    groups: Vec<(usize, bool, Vec<String>, HashMap<String, usize>)>,
}

impl ScannerBuilder {
    /// The (group, local) id of a literal.
    fn literal(&mut self, slot: usize, ignore_case: bool, value: &str) -> (usize, usize) {
        let v = if ignore_case { value.to_lowercase() } else { value.to_string() };
        let g = match self.groups.iter().position(|(s, ic, _, _)| *s == slot && *ic == ignore_case) {
            Some(g) => g,
            None => {
                self.groups.push((slot, ignore_case, Vec::new(), HashMap::new()));
                self.groups.len() - 1
            }
        };
        let (_, _, list, index) = &mut self.groups[g];
        let local = *index.entry(v.clone()).or_insert_with(|| {
            list.push(v);
            list.len() - 1
        });
        (g, local)
    }

    fn build(self) -> Result<(Scanner, Vec<usize>), CompileError> {
        let mut groups = Vec::with_capacity(self.groups.len());
        let mut bases = Vec::with_capacity(self.groups.len());
        let mut base = 0;
        for (slot, ignore_case, list, _) in self.groups {
            let ac = AhoCorasick::new(&list).map_err(|e| CompileError(e.to_string()))?;
            bases.push(base);
            groups.push(Group { slot, ignore_case, ac, base });
            base += list.len();
        }
        Ok((Scanner { groups, literals: base }, bases))
    }
}

impl Scanner {
    /// One pass over each field: which literals occur, at the start, at the end, or as the whole field.
    /// Returns the flags per literal and the literals that occur at all.
    fn scan(&self, texts: &[Option<&str>]) -> (Vec<u8>, Vec<usize>) {
        let mut flags = vec![0u8; self.literals];
        let mut hits = Vec::new();
        for g in &self.groups {
            let Some(text) = texts.get(g.slot).copied().flatten() else { continue };
            let lowered;
            let hay = if g.ignore_case {
                lowered = text.to_lowercase();
                lowered.as_str()
            } else {
                text
            };
            for m in g.ac.find_overlapping_iter(hay) {
                let mut f = ANY;
                if m.start() == 0 {
                    f |= PREFIX;
                }
                if m.end() == hay.len() {
                    f |= SUFFIX;
                }
                if m.start() == 0 && m.end() == hay.len() {
                    f |= EXACT;
                }
                let l = g.base + m.pattern().as_usize();
                if flags[l] == 0 {
                    hits.push(l);
                }
                flags[l] |= f;
            }
        }
        (flags, hits)
    }
}

/// A compiled criterion: a field slot, an operator, and its literals (global ids in its side's scanner).
#[derive(Debug)]
struct Crit {
    slot: usize,
    op: Operator,
    literals: Vec<usize>,
    order: Option<OrderValue>,
}

impl Crit {
    fn holds(&self, flags: &[u8], texts: &[Option<&str>]) -> bool {
        let any = |f: u8| self.literals.iter().any(|&l| flags[l] & f != 0);
        let all = |f: u8| self.literals.iter().all(|&l| flags[l] & f != 0);
        match self.op {
            Operator::ContainsAny => any(ANY),
            Operator::ContainsAll => all(ANY),
            Operator::NotContainsAny => !any(ANY),
            Operator::NotContainsAll => !all(ANY),
            Operator::Equal => any(EXACT),
            Operator::NotEqual => !any(EXACT),
            Operator::StartsWith => any(PREFIX),
            Operator::EndsWith => any(SUFFIX),
            op => self.order.as_ref().is_some_and(|v| ordering_holds(op, texts.get(self.slot).copied().flatten(), v)),
        }
    }
}

#[derive(Debug)]
struct Counter {
    key: u64,
    scope: Scope,
    event_name: Option<String>,
    criteria: Vec<usize>,
    /// Rules that use this counter.
    owners: Vec<usize>,
}

#[derive(Debug)]
enum RuleKind {
    Segment { color: String, expiry_days: Option<u32> },
    Outcome { is_positive: bool, value: Option<AssociatedValueField> },
}

#[derive(Debug)]
struct Rule {
    id: String,
    display_name: String,
    version: i64,
    scope: Scope,
    kind: RuleKind,
    /// (counter, required count).
    journey: Vec<(usize, u32)>,
    /// Context patterns, each a list of visit criteria.
    context: Vec<Vec<usize>>,
}

/// An organisation's compiled segments and outcomes.
#[derive(Debug, Default)]
pub struct RuleSet {
    fingerprint: u64,
    rules: Vec<Rule>,
    counters: Vec<Counter>,
    event_crits: Vec<Crit>,
    visit_crits: Vec<Crit>,
    event_scan: Scanner,
    visit_scan: Scanner,
    /// Custom attribute names read by journey criteria; slot = `EVENT_KEYS.len() + index`.
    attributes: Vec<String>,
    /// Event names some counter waits for (counters without a name wait for every event).
    event_names: FastSet<String>,
    /// Counters that can only match when one of their literals occurs: by literal (their "anchor" criterion
    /// is a positive one, so a field without any of its values cannot satisfy it).
    by_literal: Vec<Vec<usize>>,
    /// Counters checked on every event of their name (only negative, ordering or no criteria).
    unanchored_by_event: FastMap<String, Vec<usize>>,
    unanchored_any: Vec<usize>,
    any_event: bool,
    /// Rule index by segment id / outcome id.
    segment_rules: FastMap<String, usize>,
    outcome_rules: FastMap<String, usize>,
    /// Visit slots any context criterion reads (the context fingerprint covers only these).
    visit_slots: Vec<usize>,
    session_keys: FastSet<u64>,
    customer_keys: FastSet<u64>,
    segment_ids: FastSet<String>,
}

struct Builder {
    event: ScannerBuilder,
    visit: ScannerBuilder,
    event_crits: Vec<(usize, Operator, Vec<(usize, usize)>, Option<OrderValue>)>,
    visit_crits: Vec<(usize, Operator, Vec<(usize, usize)>, Option<OrderValue>)>,
    attributes: Vec<String>,
}

impl Builder {
    fn criterion(&mut self, c: &Criterion, visit: bool) -> usize {
        let field = if visit { visit_field(&c.key) } else { event_field(&c.key) };
        let slot = match field {
            Some(FieldKey::Event(k)) => EVENT_KEYS.iter().position(|x| *x == k).unwrap_or(0),
            Some(FieldKey::Visit(k)) => VISIT_KEYS.iter().position(|x| *x == k).unwrap_or(0),
            Some(FieldKey::Attribute(name)) => {
                let i = match self.attributes.iter().position(|a| *a == name) {
                    Some(i) => i,
                    None => {
                        self.attributes.push(name);
                        self.attributes.len() - 1
                    }
                };
                EVENT_KEYS.len() + i
            }
            // Parsed definitions only hold known keys; an unknown one reads an absent field.
            None => usize::MAX,
        };
        let (scanner, list) =
            if visit { (&mut self.visit, &mut self.visit_crits) } else { (&mut self.event, &mut self.event_crits) };
        let (lits, order) = if c.operator.is_ordering() {
            (Vec::new(), c.values.first().and_then(|v| OrderValue::parse(v)))
        } else {
            (c.values.iter().map(|v| scanner.literal(slot, c.should_ignore_case, v)).collect(), None)
        };
        list.push((slot, c.operator, lits, order));
        list.len() - 1
    }
}

fn finish_crits(raw: Vec<(usize, Operator, Vec<(usize, usize)>, Option<OrderValue>)>, bases: &[usize]) -> Vec<Crit> {
    raw.into_iter()
        .map(|(slot, op, lits, order)| Crit {
            slot,
            op,
            literals: lits.into_iter().map(|(g, l)| bases[g] + l).collect(),
            order,
        })
        .collect()
}

fn pattern_key(kind: &str, id: &str, scope: Scope, p: &crate::segment::JourneyPattern) -> u64 {
    let mut h = Fnv::new();
    h.str(kind);
    h.str(id);
    h.str(scope.as_str());
    h.opt(p.event_name.as_deref());
    for c in &p.criteria {
        h.str(&c.key);
        h.str(c.operator.as_str());
        h.bytes(&[u8::from(c.should_ignore_case)]);
        for v in &c.values {
            h.str(v);
        }
    }
    h.finish()
}

impl RuleSet {
    /// Compile the active definitions. Rules apply in creation order, segments before outcomes.
    pub fn new(segments: &[SegmentDefinition], outcomes: &[OutcomeDefinition]) -> Result<RuleSet, CompileError> {
        let mut fp = Fnv::new();
        let mut segs: Vec<&SegmentDefinition> = segments.iter().collect();
        segs.sort_by(|a, b| (a.created_date, &a.id).cmp(&(b.created_date, &b.id)));
        let mut outs: Vec<&OutcomeDefinition> = outcomes.iter().collect();
        outs.sort_by(|a, b| (a.created_date, &a.id).cmp(&(b.created_date, &b.id)));
        for s in &segs {
            fp.str(&serde_json::to_string(s).unwrap_or_default());
        }
        for o in &outs {
            fp.str(&serde_json::to_string(o).unwrap_or_default());
        }

        let mut b = Builder {
            event: ScannerBuilder::default(),
            visit: ScannerBuilder::default(),
            event_crits: Vec::new(),
            visit_crits: Vec::new(),
            attributes: Vec::new(),
        };
        let mut rs = RuleSet { fingerprint: fp.finish(), ..RuleSet::default() };
        let mut counter_index: HashMap<u64, usize> = HashMap::new();
        let mut counter_defs: Vec<(u64, Scope, Option<String>, Vec<usize>)> = Vec::new();

        let mut add = |b: &mut Builder,
                       rs: &mut RuleSet,
                       kind_tag: &str,
                       id: &str,
                       scope: Scope,
                       context: &crate::segment::Context,
                       journey: &crate::segment::Journey|
         -> (Vec<(usize, u32)>, Vec<Vec<usize>>) {
            let ctx: Vec<Vec<usize>> =
                context.patterns.iter().map(|p| p.criteria.iter().map(|c| b.criterion(c, true)).collect()).collect();
            let mut jr = Vec::new();
            for p in &journey.patterns {
                let key = pattern_key(kind_tag, id, scope, p);
                let ci = match counter_index.get(&key) {
                    Some(&ci) => ci,
                    None => {
                        let crits = p.criteria.iter().map(|c| b.criterion(c, false)).collect();
                        counter_defs.push((key, scope, p.event_name.clone(), crits));
                        counter_index.insert(key, counter_defs.len() - 1);
                        counter_defs.len() - 1
                    }
                };
                match scope {
                    Scope::Session => rs.session_keys.insert(key),
                    Scope::Customer => rs.customer_keys.insert(key),
                };
                jr.push((ci, p.count));
            }
            (jr, ctx)
        };

        for s in &segs {
            rs.segment_ids.insert(s.id.clone());
            if !s.is_active {
                continue;
            }
            let (journey, context) = add(&mut b, &mut rs, "segment", &s.id, s.scope, &s.context, &s.journey);
            rs.rules.push(Rule {
                id: s.id.clone(),
                display_name: s.display_name.clone(),
                version: s.version,
                scope: s.scope,
                kind: RuleKind::Segment { color: s.color.clone(), expiry_days: s.assignment_expiration_days },
                journey,
                context,
            });
        }
        for o in &outs {
            if !o.is_active {
                continue;
            }
            let (journey, context) = add(&mut b, &mut rs, "outcome", &o.id, Scope::Session, &o.context, &o.journey);
            rs.rules.push(Rule {
                id: o.id.clone(),
                display_name: o.display_name.clone(),
                version: o.version,
                scope: Scope::Session,
                kind: RuleKind::Outcome { is_positive: o.is_positive, value: o.associated_value_field.clone() },
                journey,
                context,
            });
        }

        for (key, scope, event_name, criteria) in counter_defs {
            match &event_name {
                Some(n) => {
                    rs.event_names.insert(n.clone());
                }
                None => rs.any_event = true,
            }
            rs.counters.push(Counter { key, scope, event_name, criteria, owners: Vec::new() });
        }
        for (ri, r) in rs.rules.iter().enumerate() {
            for (ci, _) in &r.journey {
                if !rs.counters[*ci].owners.contains(&ri) {
                    rs.counters[*ci].owners.push(ri);
                }
            }
        }
        let mut visit_slots: Vec<usize> = b.visit_crits.iter().map(|c| c.0).filter(|s| *s != usize::MAX).collect();
        visit_slots.sort_unstable();
        visit_slots.dedup();
        rs.visit_slots = visit_slots;
        let (event_scan, event_bases) = b.event.build()?;
        let (visit_scan, visit_bases) = b.visit.build()?;
        rs.event_crits = finish_crits(b.event_crits, &event_bases);
        rs.by_literal = vec![Vec::new(); event_scan.literals];
        for (ci, c) in rs.counters.iter().enumerate() {
            let anchor = c.criteria.iter().map(|&k| &rs.event_crits[k]).find(|k| {
                matches!(
                    k.op,
                    Operator::ContainsAny
                        | Operator::ContainsAll
                        | Operator::Equal
                        | Operator::StartsWith
                        | Operator::EndsWith
                ) && !k.literals.is_empty()
            });
            match (anchor, &c.event_name) {
                (Some(a), _) => a.literals.iter().for_each(|&l| rs.by_literal[l].push(ci)),
                (None, Some(n)) => rs.unanchored_by_event.entry(n.clone()).or_default().push(ci),
                (None, None) => rs.unanchored_any.push(ci),
            }
        }
        for (ri, r) in rs.rules.iter().enumerate() {
            match r.kind {
                RuleKind::Segment { .. } => rs.segment_rules.insert(r.id.clone(), ri),
                RuleKind::Outcome { .. } => rs.outcome_rules.insert(r.id.clone(), ri),
            };
        }
        rs.visit_crits = finish_crits(b.visit_crits, &visit_bases);
        rs.event_scan = event_scan;
        rs.visit_scan = visit_scan;
        rs.attributes = b.attributes;
        Ok(rs)
    }

    /// A fingerprint of the definitions (changes whenever any definition does).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Active segments and outcomes compiled.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn event_texts<'a>(&self, e: &'a crate::event::WebEventBody) -> Vec<Option<&'a str>> {
        let p = &e.page;
        let mut t: Vec<Option<&'a str>> = vec![
            Some(p.url.as_str()),
            Some(p.title.as_str()),
            Some(p.domain.as_str()),
            Some(p.hostname.as_str()),
            Some(p.pathname.as_str()),
            p.query_string.as_deref(),
            p.fragment.as_deref(),
            p.keywords.as_deref(),
            p.lang.as_deref(),
            e.search_query.as_deref(),
        ];
        debug_assert_eq!(t.len(), EVENT_KEYS.len());
        t.extend(self.attributes.iter().map(|a| e.attributes.get(a).map(|v| v.value.as_str())));
        t
    }

    fn visit_texts(s: &Session) -> Vec<Option<&str>> {
        let d = s.device.as_ref();
        let b = s.browser.as_ref();
        let c = s.mkt_campaign.as_ref();
        let g = s.geolocation.as_ref();
        let r = s.referrer.as_ref();
        let t = vec![
            d.map(|d| d.category.wire().as_str()),
            d.map(|d| d.device_type.as_str()),
            d.map(|d| d.os_family.as_str()),
            d.map(|d| d.os_version.as_str()),
            b.map(|b| b.family.as_str()),
            b.map(|b| b.version.as_str()),
            b.and_then(|b| b.lang.as_deref()),
            c.and_then(|c| c.source.as_deref()),
            c.and_then(|c| c.medium.as_deref()),
            c.and_then(|c| c.name.as_deref()),
            c.and_then(|c| c.term.as_deref()),
            c.and_then(|c| c.content.as_deref()),
            c.and_then(|c| c.click_id.as_deref()),
            c.and_then(|c| c.network.as_deref()),
            g.and_then(|g| g.country.as_deref()),
            g.and_then(|g| g.country_name.as_deref()),
            g.and_then(|g| g.region.as_deref()),
            g.and_then(|g| g.region_name.as_deref()),
            g.and_then(|g| g.locality.as_deref()),
            g.and_then(|g| g.postal_code.as_deref()),
            g.and_then(|g| g.timezone.as_deref()),
            s.ip_organization.as_deref(),
            r.map(|r| r.url.as_str()),
            r.map(|r| referrer_medium(r.medium)),
            r.map(|r| r.hostname.as_str()),
            Some(if s.authenticated { "true" } else { "false" }),
        ];
        debug_assert_eq!(t.len(), VISIT_KEYS.len());
        t
    }

    fn context_fingerprint(&self, visit: &[Option<&str>]) -> u64 {
        let mut h = Fnv::new();
        for &slot in &self.visit_slots {
            h.opt(visit.get(slot).copied().flatten());
        }
        h.finish()
    }

    /// Apply one event to the rule state of its session and customer; returns what it derived, in order.
    /// `now` is the evaluation time (the event's time): assignment dates and expiry count from it.
    pub fn on_event(
        &self,
        session_rules: &mut RuleState,
        customer_rules: &mut RuleState,
        session: &Session,
        event: &Event,
        now: Timestamp,
    ) -> Vec<Derived> {
        let Some(web) = event.web_event.as_ref() else { return Vec::new() };
        if session.session_type != SessionType::Web {
            return Vec::new();
        }
        let mut full = false;
        if session_rules.ruleset != self.fingerprint {
            session_rules.counters.retain(|k, _| self.session_keys.contains(k));
            session_rules.ruleset = self.fingerprint;
            self.rebuild_held(session_rules, Scope::Session);
            full = true;
        }
        if customer_rules.ruleset != self.fingerprint {
            customer_rules.counters.retain(|k, _| self.customer_keys.contains(k));
            customer_rules.assigned.retain(|a| self.segment_ids.contains(&a.segment_id));
            customer_rules.ruleset = self.fingerprint;
            self.rebuild_held(customer_rules, Scope::Customer);
            full = true;
        }
        let before = customer_rules.assigned.len();
        customer_rules.assigned.retain(|a| a.expires.is_none_or(|e| e > now));
        if customer_rules.assigned.len() != before {
            full = true;
            self.rebuild_held(customer_rules, Scope::Customer);
        }
        let words = self.rules.len().div_ceil(64);
        if session_rules.held.len() != words {
            self.rebuild_held(session_rules, Scope::Session);
        }
        if customer_rules.held.len() != words {
            self.rebuild_held(customer_rules, Scope::Customer);
        }
        if self.rules.is_empty() {
            return Vec::new();
        }
        let visit = Self::visit_texts(session);
        let ctx = self.context_fingerprint(&visit);
        if session_rules.context != ctx || customer_rules.context != ctx {
            session_rules.context = ctx;
            customer_rules.context = ctx;
            full = true;
        }

        // Count the patterns this event matches: counters anchored on a literal that occurs, and the few
        // that have no literal to wait for.
        let mut touched: Vec<usize> = Vec::new();
        let name = web.event_name.as_str();
        if self.any_event || self.event_names.contains(name) {
            let texts = self.event_texts(web);
            let (flags, hits) = self.event_scan.scan(&texts);
            let mut candidates: Vec<usize> = Vec::new();
            for &l in &hits {
                candidates.extend_from_slice(&self.by_literal[l]);
            }
            if let Some(u) = self.unanchored_by_event.get(name) {
                candidates.extend_from_slice(u);
            }
            candidates.extend_from_slice(&self.unanchored_any);
            candidates.sort_unstable();
            candidates.dedup();
            for ci in candidates {
                let c = &self.counters[ci];
                if c.event_name.as_deref().is_some_and(|n| n != name) {
                    continue;
                }
                if c.criteria.iter().all(|&k| self.event_crits[k].holds(&flags, &texts)) {
                    let st = match c.scope {
                        Scope::Session => &mut *session_rules,
                        Scope::Customer => &mut *customer_rules,
                    };
                    let n = st.counters.entry(c.key).or_insert(0);
                    *n = n.saturating_add(1);
                    touched.extend_from_slice(&c.owners);
                }
            }
        }
        if !full && touched.is_empty() {
            return Vec::new();
        }
        let candidates: Vec<usize> = if full {
            (0..self.rules.len()).collect()
        } else {
            touched.sort_unstable();
            touched.dedup();
            touched
        };

        let mut visit_flags: Option<Vec<u8>> = None;
        let mut out = Vec::new();
        for ri in candidates {
            let r = &self.rules[ri];
            let st = match r.scope {
                Scope::Session => &mut *session_rules,
                Scope::Customer => &mut *customer_rules,
            };
            if is_held(&st.held, ri) {
                continue;
            }
            let counts_reached = r
                .journey
                .iter()
                .all(|&(ci, need)| st.counters.get(&self.counters[ci].key).copied().unwrap_or(0) >= need);
            if !counts_reached {
                continue;
            }
            if !r.context.is_empty() {
                let vf = visit_flags.get_or_insert_with(|| self.visit_scan.scan(&visit).0);
                if !r.context.iter().all(|p| p.iter().all(|&k| self.visit_crits[k].holds(vf, &visit))) {
                    continue;
                }
            }
            match &r.kind {
                RuleKind::Segment { color, expiry_days } => {
                    set_held(&mut st.held, ri);
                    let expires = match (r.scope, expiry_days) {
                        (Scope::Customer, Some(d)) => Some(now.plus_secs(i64::from(*d) * 86_400)),
                        _ => None,
                    };
                    st.assigned.push(Assigned { segment_id: r.id.clone(), at: now, expires });
                    out.push(Derived::SegmentAssigned(SegmentAssigned {
                        segment_id: r.id.clone(),
                        display_name: r.display_name.clone(),
                        color: color.clone(),
                        scope: r.scope,
                        version: r.version,
                        at: now,
                        expires,
                    }));
                }
                RuleKind::Outcome { is_positive, value } => {
                    set_held(&mut st.held, ri);
                    st.achieved.push(r.id.clone());
                    let value = value
                        .as_ref()
                        .and_then(|f| web.attributes.get(f.attribute()).and_then(|a| f.value_of(&a.value)));
                    out.push(Derived::OutcomeAchieved(OutcomeAchieved {
                        outcome_id: r.id.clone(),
                        display_name: r.display_name.clone(),
                        version: r.version,
                        is_positive: *is_positive,
                        value,
                        at: now,
                    }));
                }
            }
        }
        out
    }
}

fn is_held(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn set_held(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w |= 1 << (i % 64);
    }
}

impl RuleSet {
    /// Recompute a scope's `held` bitset from its assignment and achievement lists.
    fn rebuild_held(&self, st: &mut RuleState, scope: Scope) {
        st.held = vec![0; self.rules.len().div_ceil(64)];
        let mut bits = std::mem::take(&mut st.held);
        for a in &st.assigned {
            if let Some(&ri) = self.segment_rules.get(&a.segment_id)
                && self.rules[ri].scope == scope
            {
                set_held(&mut bits, ri);
            }
        }
        if scope == Scope::Session {
            for id in &st.achieved {
                if let Some(&ri) = self.outcome_rules.get(id) {
                    set_held(&mut bits, ri);
                }
            }
        }
        st.held = bits;
    }
}

fn referrer_medium(m: crate::wire::ReferrerMedium) -> &'static str {
    use crate::wire::ReferrerMedium::*;
    match m {
        Internal => "internal",
        Search => "search",
        Social => "social",
        Email => "email",
        Paid => "paid",
        Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests;
