//! Live outcome predictions: what a web session looks like to a model ([`SessionFeatures`]), the online
//! model that turns it into a calibrated probability per outcome ([`OutcomeModel`]), the distribution of
//! session scores behind `quantile`/`sessionMaxQuantile` ([`QuantileTracker`]) and the replay of a finished
//! session into training examples ([`SessionReplay`]).
//!
//! Features are hashed tokens, all binary, all *monotone*: a session only ever gains tokens. Counts and dwell
//! times become thresholds ("events≥5", "pages in /products≥3", "duration≥2m") that switch on as the
//! session crosses them. That makes [`SessionFeatures::observe`] incremental (no rescans) and bounded
//! ([`MAX_TOKENS`]), and it lets a linear model learn non-linear effects of counts.
//!
//! The model is an online logistic regression over the hashed tokens (AdaGrad steps, L2 shrinkage on the
//! weights a step touches) followed by Platt scaling, whose two parameters learn from each example's score
//! *before* the model learns from that example (progressive validation, so calibration is fitted on unseen
//! data). A finished session contributes up to [`SNAPSHOTS_PER_SESSION`] snapshots of its features taken
//! before the outcome was achieved, at fixed positions (after 1, 2, 3, … events), so the model learns to
//! predict from any point of a session, calibrated for each stage, and never from the achievement itself.
//!
//! Pure: nothing here does I/O; the server persists models as JSON records.

use crate::event::Event;
use crate::session::Session;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Upper bound of tokens a session holds; later tokens are dropped.
pub const MAX_TOKENS: usize = 256;
/// Upper bound of tokens from free-form input (paths, searches, attributes) so derived tokens always fit.
const MAX_FREE_TOKENS: usize = 200;
/// Sections whose page counts are tracked.
const MAX_SECTIONS: usize = 32;
/// Default hash space: 2^18 weights at most.
pub const DEFAULT_BITS: u8 = 18;
/// A model is "learning" until it has seen this many finished sessions…
pub const MIN_SESSIONS: u64 = 200;
/// …of which at least this many achieved the outcome.
pub const MIN_POSITIVES: u64 = 20;
/// Training snapshots taken from one finished session, at most.
pub const SNAPSHOTS_PER_SESSION: usize = SNAPSHOT_POINTS.len();
/// Events of a session replayed for training or rebuilding its features.
pub const MAX_REPLAY_EVENTS: usize = 1_000;

/// 32-bit FNV-1a: stable across builds and platforms (persisted models depend on it).
pub const fn token_hash(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
}

/// One active feature: its hash and its readable name (for explanations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub hash: u32,
    pub name: String,
}

const EVENT_STEPS: [u32; 7] = [2, 3, 5, 8, 13, 21, 34];
const PAGEVIEW_STEPS: [u32; 6] = [2, 3, 5, 8, 13, 21];
const SEARCH_STEPS: [u32; 3] = [1, 2, 4];
const SECTION_STEPS: [u32; 4] = [2, 3, 5, 8];
const CUSTOM_EVENT_STEPS: [u32; 2] = [2, 3];
const DURATION_STEPS_SECS: [i64; 7] = [15, 30, 60, 120, 300, 600, 1200];
const DWELL_STEPS_SECS: [i64; 5] = [10, 20, 45, 90, 180];

/// A web session as the models see it, built event by event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionFeatures {
    tokens: Vec<Token>,
    free_tokens: usize,
    events: u32,
    pageviews: u32,
    searches: u32,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    sections: BTreeMap<String, u32>,
    #[serde(default)]
    event_counts: BTreeMap<String, u32>,
    context_seen: bool,
    landed: bool,
    /// Outcomes achieved so far in the session (their probability is 1 from then on).
    achieved: Vec<String>,
}

impl SessionFeatures {
    pub fn new() -> Self {
        Self::default()
    }

    /// The active tokens.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Events observed.
    pub fn events(&self) -> u32 {
        self.events
    }

    /// Whether the session already achieved an outcome.
    pub fn has_achieved(&self, outcome_id: &str) -> bool {
        self.achieved.iter().any(|a| a == outcome_id)
    }

    fn push(&mut self, name: String, free: bool) {
        if self.tokens.len() >= MAX_TOKENS || (free && self.free_tokens >= MAX_FREE_TOKENS) {
            return;
        }
        let hash = token_hash(&name);
        if self.tokens.iter().any(|t| t.hash == hash) {
            return;
        }
        if free {
            self.free_tokens += 1;
        }
        self.tokens.push(Token { hash, name });
    }

    fn thresholds<T: PartialOrd + Copy + std::fmt::Display>(&mut self, label: &str, before: T, now: T, steps: &[T]) {
        self.thresholds_of(label, before, now, steps, false);
    }

    fn thresholds_of<T: PartialOrd + Copy + std::fmt::Display>(
        &mut self,
        label: &str,
        before: T,
        now: T,
        steps: &[T],
        free: bool,
    ) {
        for &s in steps {
            if before < s && now >= s {
                self.push(format!("{label}>={s}"), free);
            }
        }
    }

    /// Take one journey event of the session into account. `session` supplies the session-wide context
    /// (device, geolocation, referrer, campaign) that stored events leave out.
    pub fn observe(&mut self, event: &Event, session: &Session) {
        let at = event.created_date.unix_millis();
        let (events_before, duration_before) = (self.events, self.duration_secs());
        self.events += 1;
        self.first_ms = Some(self.first_ms.map_or(at, |f| f.min(at)));
        self.last_ms = Some(self.last_ms.map_or(at, |l| l.max(at)));
        if !self.context_seen {
            self.context_seen = true;
            self.context(session);
        }
        if let Some(w) = &event.web_event {
            self.push(format!("event:{}", clip(&w.event_name, 48)), true);
            if w.event_name != "page_viewed" {
                let name = clip(&w.event_name, 48);
                let known = self.event_counts.contains_key(name);
                if known || self.event_counts.len() < MAX_SECTIONS {
                    let n = self.event_counts.entry(name.to_string()).or_insert(0);
                    *n += 1;
                    let n = *n;
                    self.thresholds_of(&format!("event:{name}"), n - 1, n, &CUSTOM_EVENT_STEPS, true);
                }
            }
            let path = normalize_path(&w.page.pathname);
            let section = section_of(&path);
            self.push(format!("path:{path}"), true);
            if !self.landed {
                self.landed = true;
                self.push(format!("landing:{section}"), false);
            }
            if w.event_name == "page_viewed" {
                let pv_before = self.pageviews;
                self.pageviews += 1;
                self.thresholds("pageviews", pv_before, self.pageviews, &PAGEVIEW_STEPS);
                let known = self.sections.contains_key(&section);
                if known || self.sections.len() < MAX_SECTIONS {
                    let n = self.sections.entry(section.clone()).or_insert(0);
                    *n += 1;
                    let n = *n;
                    self.thresholds_of(&format!("section:{section}"), n - 1, n, &SECTION_STEPS, true);
                }
            }
            self.push(format!("section:{section}"), true);
            if let Some(q) = &w.search_query {
                let before = self.searches;
                self.searches += 1;
                self.thresholds("searches", before, self.searches, &SEARCH_STEPS);
                for term in q.split_whitespace().take(8) {
                    self.push(format!("search:{}", clip(&term.to_lowercase(), 32)), true);
                }
            }
            for (name, a) in w.attributes.iter().take(16) {
                if a.value.len() <= 24 && a.data_type != "number" {
                    self.push(format!("attr:{}={}", clip(name, 32), a.value.to_lowercase()), true);
                } else {
                    self.push(format!("attr:{}", clip(name, 32)), true);
                }
            }
            if w.authenticated {
                self.push("authenticated".into(), false);
            }
        }
        if let Some(s) = &event.segment_assignment_event {
            self.push(format!("segment:{}", clip(&s.segment.id, 64)), true);
        }
        if let Some(o) = &event.outcome_achieved_event
            && !self.has_achieved(&o.outcome.id)
            && self.achieved.len() < 128
        {
            self.achieved.push(o.outcome.id.clone());
        }
        self.thresholds("events", events_before, self.events, &EVENT_STEPS);
        let duration = self.duration_secs();
        self.thresholds("duration_s", duration_before, duration, &DURATION_STEPS_SECS);
        if self.pageviews > 0 {
            let dwell = duration / i64::from(self.pageviews);
            for &s in &DWELL_STEPS_SECS {
                if dwell >= s {
                    self.push(format!("dwell_s>={s}"), false);
                }
            }
        }
    }

    fn context(&mut self, s: &Session) {
        if let Some(d) = &s.device {
            self.push(format!("device:{}", d.category.as_str()), false);
            self.push(format!("os:{}", clip(&d.os_family.to_lowercase(), 24)), false);
        }
        if let Some(b) = &s.browser {
            self.push(format!("browser:{}", clip(&b.family.to_lowercase(), 24)), false);
        }
        if let Some(c) = s.geolocation.as_ref().and_then(|g| g.country.as_deref()) {
            self.push(format!("country:{}", clip(&c.to_lowercase(), 8)), false);
        }
        match &s.referrer {
            Some(r) => {
                let medium = serde_json::to_value(r.medium).ok().and_then(|v| v.as_str().map(str::to_string));
                self.push(format!("referrer:{}", medium.unwrap_or_default()), false);
                self.push(format!("referrer_host:{}", clip(&r.hostname.to_lowercase(), 48)), false);
            }
            None => self.push("referrer:none".into(), false),
        }
        if let Some(c) = &s.mkt_campaign {
            if let Some(v) = &c.source {
                self.push(format!("utm_source:{}", clip(&v.to_lowercase(), 32)), false);
            }
            if let Some(v) = &c.medium {
                self.push(format!("utm_medium:{}", clip(&v.to_lowercase(), 32)), false);
            }
            if let Some(v) = &c.name {
                self.push(format!("utm_campaign:{}", clip(&v.to_lowercase(), 32)), false);
            }
        }
    }

    fn duration_secs(&self) -> i64 {
        match (self.first_ms, self.last_ms) {
            (Some(f), Some(l)) => (l - f) / 1000,
            _ => 0,
        }
    }
}

fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Lower-case, numbers collapsed to `#`, at most three segments: `/Products/1234/reviews/` → `/products/#/reviews`.
pub fn normalize_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len().min(64));
    for seg in path.split('/').filter(|s| !s.is_empty()).take(3) {
        out.push('/');
        let mut in_digits = false;
        for c in clip(seg, 40).chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    out.push('#');
                }
                in_digits = true;
            } else {
                in_digits = false;
                out.extend(c.to_lowercase());
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn section_of(normalized: &str) -> String {
    match normalized[1..].split('/').next() {
        Some(s) if !s.is_empty() => format!("/{s}"),
        _ => "/".into(),
    }
}

/// An AdaGrad-trained weight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Weight {
    w: f32,
    /// Sum of squared gradients.
    g2: f32,
}

/// Hyper-parameters of a model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelParams {
    /// Hash space bits (at most 2^bits weights).
    pub bits: u8,
    /// AdaGrad learning rate.
    pub learning_rate: f64,
    /// L2 shrinkage per touched weight.
    pub l2: f64,
    /// Learning rate of the Platt calibration.
    pub calibration_rate: f64,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams { bits: DEFAULT_BITS, learning_rate: 0.1, l2: 1e-4, calibration_rate: 0.02 }
    }
}

/// A feature's share in a score (its weight; every active feature has value 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    pub feature: String,
    pub weight: f64,
}

/// The online, calibrated logistic model of one outcome in one organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeModel {
    pub params: ModelParams,
    #[serde(with = "weights_serde")]
    weights: HashMap<u32, Weight>,
    bias: Weight,
    /// Platt scaling: `p = σ(a·z + b)`.
    calib_a: f64,
    calib_b: f64,
    calib_ga: f64,
    calib_gb: f64,
    /// Finished sessions learned from, and how many achieved the outcome.
    pub sessions: u64,
    pub positives: u64,
    /// Distribution of finished sessions' maximum probability.
    pub quantiles: QuantileTracker,
}

mod weights_serde {
    use super::Weight;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;

    /// `[[index, weight, squared gradients], …]`, sorted: compact and deterministic.
    pub fn serialize<S: Serializer>(m: &HashMap<u32, Weight>, s: S) -> Result<S::Ok, S::Error> {
        let mut v: Vec<(u32, f32, f32)> = m.iter().map(|(k, w)| (*k, w.w, w.g2)).collect();
        v.sort_by_key(|e| e.0);
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<u32, Weight>, D::Error> {
        let v = Vec::<(u32, f32, f32)>::deserialize(d)?;
        Ok(v.into_iter().map(|(k, w, g2)| (k, Weight { w, g2 })).collect())
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z.clamp(-35.0, 35.0)).exp())
}

impl Default for OutcomeModel {
    fn default() -> Self {
        OutcomeModel::new(ModelParams::default())
    }
}

impl OutcomeModel {
    pub fn new(params: ModelParams) -> Self {
        OutcomeModel {
            params: ModelParams { bits: params.bits.clamp(8, 24), ..params },
            weights: HashMap::new(),
            bias: Weight::default(),
            calib_a: 1.0,
            calib_b: 0.0,
            calib_ga: 0.0,
            calib_gb: 0.0,
            sessions: 0,
            positives: 0,
            quantiles: QuantileTracker::default(),
        }
    }

    fn index(&self, hash: u32) -> u32 {
        hash & ((1u32 << self.params.bits) - 1)
    }

    /// Weights held (at most 2^bits).
    pub fn weight_count(&self) -> usize {
        self.weights.len()
    }

    /// Whether the model has too little data to be trusted yet.
    pub fn learning(&self) -> bool {
        self.sessions < MIN_SESSIONS || self.positives < MIN_POSITIVES
    }

    /// The uncalibrated log-odds.
    pub fn logit(&self, f: &SessionFeatures) -> f64 {
        let mut z = f64::from(self.bias.w);
        for t in &f.tokens {
            if let Some(w) = self.weights.get(&self.index(t.hash)) {
                z += f64::from(w.w);
            }
        }
        z
    }

    /// The calibrated probability that the session achieves the outcome.
    pub fn score(&self, f: &SessionFeatures) -> f64 {
        sigmoid(self.calib_a * self.logit(f) + self.calib_b)
    }

    /// The `n` features that moved this score most, strongest first (positive weights push it up).
    pub fn explain(&self, f: &SessionFeatures, n: usize) -> Vec<Driver> {
        let mut d: Vec<Driver> = f
            .tokens
            .iter()
            .filter_map(|t| {
                let w = self.weights.get(&self.index(t.hash))?.w;
                (w.abs() > 1e-3).then(|| Driver { feature: t.name.clone(), weight: f64::from(w) * self.calib_a })
            })
            .collect();
        d.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
        d.truncate(n);
        d
    }

    /// One weighted example.
    pub fn learn(&mut self, f: &SessionFeatures, label: bool, weight: f64) {
        let y = if label { 1.0 } else { 0.0 };
        let z = self.logit(f);
        // Calibration first, from the score the model gave before seeing this label.
        let p_cal = sigmoid(self.calib_a * z + self.calib_b);
        let (ga, gb) = ((p_cal - y) * z * weight, (p_cal - y) * weight);
        self.calib_ga += ga * ga;
        self.calib_gb += gb * gb;
        let cr = self.params.calibration_rate;
        self.calib_a = (self.calib_a - cr * ga / (self.calib_ga.sqrt() + 1e-6)).clamp(0.05, 5.0);
        self.calib_b = (self.calib_b - cr * gb / (self.calib_gb.sqrt() + 1e-6)).clamp(-10.0, 10.0);

        let g = (sigmoid(z) - y) * weight;
        let (lr, l2) = (self.params.learning_rate, self.params.l2);
        let step = |w: &mut Weight, reg: f64| {
            let gi = g + reg * f64::from(w.w);
            w.g2 += (gi * gi) as f32;
            w.w -= (lr * gi / (f64::from(w.g2).sqrt() + 1e-6)) as f32;
        };
        step(&mut self.bias, 0.0);
        for t in &f.tokens {
            let i = t.hash & ((1u32 << self.params.bits) - 1);
            step(self.weights.entry(i).or_default(), l2);
        }
    }

    /// Learn from a finished session: `snapshots` are its features at points before the outcome was achieved,
    /// `session_max` its highest probability under the model
    /// before this update.
    pub fn learn_session(&mut self, snapshots: &[&SessionFeatures], achieved: bool, session_max: Option<f64>) {
        if let Some(m) = session_max {
            self.quantiles.insert(m);
        }
        for s in snapshots {
            self.learn(s, achieved, 1.0);
        }
        self.sessions += 1;
        if achieved {
            self.positives += 1;
        }
    }
}

/// A histogram of finished sessions' maximum probability, for `quantile` (share of sessions whose maximum
/// probability is lower than a given probability). Old sessions fade: counts halve when the total passes
/// [`QuantileTracker::HALF_LIFE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantileTracker {
    bins: Vec<u32>,
    total: u64,
}

impl Default for QuantileTracker {
    fn default() -> Self {
        QuantileTracker { bins: vec![0; Self::BINS], total: 0 }
    }
}

impl QuantileTracker {
    pub const BINS: usize = 1000;
    pub const HALF_LIFE: u64 = 200_000;

    fn bin(p: f64) -> usize {
        ((p.clamp(0.0, 1.0) * Self::BINS as f64) as usize).min(Self::BINS - 1)
    }

    pub fn insert(&mut self, p: f64) {
        if self.bins.len() != Self::BINS {
            self.bins = vec![0; Self::BINS];
            self.total = 0;
        }
        self.bins[Self::bin(p)] += 1;
        self.total += 1;
        if self.total > Self::HALF_LIFE {
            self.total = 0;
            for b in &mut self.bins {
                *b /= 2;
                self.total += u64::from(*b);
            }
        }
    }

    /// Sessions counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Share (0–1) of sessions whose maximum probability is lower than `p`; 0 with no data.
    pub fn quantile(&self, p: f64) -> f64 {
        if self.total == 0 || self.bins.len() != Self::BINS {
            return 0.0;
        }
        let b = Self::bin(p);
        let below: u64 = self.bins[..b].iter().map(|&c| u64::from(c)).sum();
        // Inside the bin, assume an even spread.
        let within = p.clamp(0.0, 1.0) * Self::BINS as f64 - b as f64;
        ((below as f64 + f64::from(self.bins[b]) * within.clamp(0.0, 1.0)) / self.total as f64).clamp(0.0, 1.0)
    }
}

/// A finished session replayed for training: its features at chosen points and which outcomes it achieved
/// (from its `OutcomeAchievedEvent`s) at which event.
#[derive(Debug, Clone)]
pub struct SessionReplay {
    /// Features after `k` events, for the prefixes training needs.
    snapshots: BTreeMap<usize, SessionFeatures>,
    /// First event index of each achieved outcome.
    achieved_at: HashMap<String, usize>,
    events: usize,
}

/// Prefix lengths at which training snapshots are taken: every event early in a session, then sparser.
const SNAPSHOT_POINTS: [usize; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 19, 24, 30, 40, 55];

/// The snapshot points before `cut` (the number of events seen before the outcome, or the session's length).
/// Absolute positions, not shares of the session: at any position k the training data then holds every
/// session still undecided after k events — exactly the population that is scored live at that point — so
/// probabilities stay calibrated at every stage of a session.
fn snapshot_points(cut: usize) -> Vec<usize> {
    SNAPSHOT_POINTS.iter().copied().filter(|&k| k <= cut).collect()
}

impl SessionReplay {
    /// Replay `events` (time order, at most [`MAX_REPLAY_EVENTS`]) of `session`.
    pub fn new(events: &[Event], session: &Session) -> Self {
        let events = &events[..events.len().min(MAX_REPLAY_EVENTS)];
        let mut achieved_at = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if let Some(o) = &e.outcome_achieved_event {
                achieved_at.entry(o.outcome.id.clone()).or_insert(i);
            }
        }
        let mut wanted: Vec<usize> = snapshot_points(events.len());
        for &cut in achieved_at.values() {
            wanted.extend(snapshot_points(cut));
        }
        wanted.sort_unstable();
        wanted.dedup();
        let mut snapshots = BTreeMap::new();
        let mut f = SessionFeatures::new();
        let mut next = wanted.iter().peekable();
        for (i, e) in events.iter().enumerate() {
            f.observe(e, session);
            if next.peek().is_some_and(|&&w| w == i + 1) {
                next.next();
                snapshots.insert(i + 1, f.clone());
            }
        }
        SessionReplay { snapshots, achieved_at, events: events.len() }
    }

    /// Whether the session achieved the outcome.
    pub fn achieved(&self, outcome_id: &str) -> bool {
        self.achieved_at.contains_key(outcome_id)
    }

    /// The snapshots to learn `outcome_id` from: taken strictly before its achievement.
    pub fn snapshots_for(&self, outcome_id: &str) -> Vec<&SessionFeatures> {
        let cut = self.achieved_at.get(outcome_id).copied().unwrap_or(self.events);
        snapshot_points(cut).iter().filter_map(|k| self.snapshots.get(k)).collect()
    }

    /// Teach `model` this session for `outcome_id`.
    pub fn teach(&self, model: &mut OutcomeModel, outcome_id: &str) {
        let snaps = self.snapshots_for(outcome_id);
        let max = snaps.iter().map(|s| model.score(s)).reduce(f64::max);
        model.learn_session(&snaps, self.achieved(outcome_id), max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use crate::event::{
        AchievedOutcomeRef, EventType, OutcomeAchievedEventBody, SegmentAssignmentEventBody, WebEventBody,
    };
    use crate::session::SessionType;
    use crate::wire::{EntityRef, Page};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn session() -> Session {
        Session::new("s-1".into(), SessionType::Web, Timestamp::from_unix_millis(0))
    }

    fn page_event(at_s: i64, path: &str, name: &str, search: Option<&str>) -> Event {
        let s = session();
        let at = Timestamp::from_unix_millis(1_800_000_000_000 + at_s * 1000);
        let mut e = Event::envelope(format!("e{at_s}"), "c".into(), &s, EventType::Web, at);
        e.web_event = Some(Box::new(WebEventBody {
            event_name: name.into(),
            total_event_count: 1,
            total_pageview_count: 1,
            page: Arc::new(Page {
                url: format!("https://shop.example{path}"),
                title: "T".into(),
                domain: "shop.example".into(),
                fragment: None,
                hostname: "shop.example".into(),
                keywords: None,
                lang: None,
                pathname: path.into(),
                query_string: None,
                breadcrumb: vec![],
            }),
            user_agent_string: None,
            browser: None,
            device: None,
            geolocation: None,
            ip_address: None,
            ip_organization: None,
            mkt_campaign: None,
            referrer: None,
            attributes: Default::default(),
            traits: Default::default(),
            search_query: search.map(str::to_string),
            authenticated: false,
        }));
        e
    }

    fn achieved(at_s: i64, id: &str) -> Event {
        let at = Timestamp::from_unix_millis(1_800_000_000_000 + at_s * 1000);
        let mut e = Event::envelope(format!("o{at_s}"), "c".into(), &session(), EventType::OutcomeAchieved, at);
        e.outcome_achieved_event = Some(Box::new(OutcomeAchievedEventBody {
            outcome: AchievedOutcomeRef { id: id.into(), self_uri: None, display_name: id.into(), version: 1 },
            value: None,
            is_positive: Some(true),
        }));
        e
    }

    fn names(f: &SessionFeatures) -> Vec<&str> {
        f.tokens().iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn paths_are_normalized_and_bounded() {
        assert_eq!(normalize_path("/Products/1234/Reviews/"), "/products/#/reviews");
        assert_eq!(normalize_path("/a/b/c/d/e"), "/a/b/c");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/order-12a34"), "/order-#a#");
    }

    #[test]
    fn features_grow_with_the_session() {
        let s = session();
        let mut f = SessionFeatures::new();
        f.observe(&page_event(0, "/products/12", "page_viewed", None), &s);
        f.observe(&page_event(40, "/products/13", "page_viewed", None), &s);
        f.observe(&page_event(50, "/search", "search", Some("Red Shoes")), &s);
        let n = names(&f);
        for want in [
            "path:/products/#",
            "section:/products",
            "section:/products>=2",
            "pageviews>=2",
            "events>=3",
            "search:red",
            "search:shoes",
            "searches>=1",
            "duration_s>=30",
            "dwell_s>=20",
            "referrer:none",
        ] {
            assert!(n.contains(&want), "missing {want} in {n:?}");
        }
        let mut seg = Event::envelope(
            "g".into(),
            "c".into(),
            &s,
            EventType::SegmentAssignment,
            Timestamp::from_unix_millis(1_800_000_000_060_000),
        );
        seg.segment_assignment_event = Some(Box::new(SegmentAssignmentEventBody {
            segment: EntityRef { id: "vip".into(), self_uri: None },
            display_name: None,
            color: None,
            scope: None,
        }));
        f.observe(&seg, &s);
        assert!(names(&f).contains(&"segment:vip"));
    }

    #[test]
    fn features_are_bounded() {
        let s = session();
        let mut f = SessionFeatures::new();
        for i in 0..2_000 {
            f.observe(&page_event(i, &format!("/p{i}x/y{i}z"), &format!("e{i}"), Some(&format!("q{i}"))), &s);
        }
        assert!(f.tokens().len() <= MAX_TOKENS);
        // Derived thresholds still fit after free-form input filled its share.
        assert!(names(&f).contains(&"events>=34"));
    }

    fn buyer_or_not(buyer: bool, at: i64) -> Vec<Event> {
        if buyer {
            vec![page_event(at, "/products/1", "page_viewed", None), page_event(at + 30, "/cart", "page_viewed", None)]
        } else {
            vec![page_event(at, "/help/faq", "page_viewed", None), page_event(at + 30, "/blog/2", "page_viewed", None)]
        }
    }

    #[test]
    fn the_model_learns_separates_and_explains() {
        let mut m = OutcomeModel::default();
        assert!(m.learning());
        for i in 0..400 {
            let buyer = i % 3 == 0;
            let mut ev = buyer_or_not(buyer, 0);
            if buyer {
                ev.push(achieved(60, "buy"));
            }
            SessionReplay::new(&ev, &session()).teach(&mut m, "buy");
        }
        assert!(!m.learning());
        assert_eq!((m.sessions, m.positives), (400, 134));
        let mut yes = SessionFeatures::new();
        let mut no = SessionFeatures::new();
        for e in buyer_or_not(true, 0) {
            yes.observe(&e, &session());
        }
        for e in buyer_or_not(false, 0) {
            no.observe(&e, &session());
        }
        let (py, pn) = (m.score(&yes), m.score(&no));
        assert!(py > 0.8 && pn < 0.2, "buyer {py}, browser {pn}");
        let top = m.explain(&yes, 3);
        assert_eq!(top.len(), 3);
        assert!(top[0].weight > 0.0 && top[0].feature.contains("products") || top[0].feature.contains("cart"));
        // Quantiles come from learned sessions: a buyer's score beats most sessions.
        assert!(m.quantiles.quantile(py) > 0.6);
        // Persisted and restored, the model scores the same.
        let json = serde_json::to_string(&m).unwrap();
        let back: OutcomeModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back.score(&yes), py);
        assert_eq!(back, m);
    }

    #[test]
    fn training_never_sees_the_achievement() {
        let mut ev = buyer_or_not(true, 0);
        ev.push(achieved(60, "buy"));
        ev.push(page_event(61, "/thanks", "page_viewed", None));
        let r = SessionReplay::new(&ev, &session());
        assert!(r.achieved("buy"));
        let snaps = r.snapshots_for("buy");
        assert_eq!(snaps.len(), 2);
        assert!(snaps.iter().all(|s| !s.has_achieved("buy") && !names(s).contains(&"path:/thanks")));
        // Another outcome learns from the whole session.
        assert_eq!(r.snapshots_for("other").len(), 4);
        assert!(!r.achieved("other"));
    }

    #[test]
    fn quantiles_rank_against_learned_sessions() {
        let mut q = QuantileTracker::default();
        assert_eq!(q.quantile(0.5), 0.0);
        for i in 0..100 {
            q.insert(f64::from(i) / 100.0);
        }
        assert!((q.quantile(0.5) - 0.5).abs() < 0.02);
        assert!(q.quantile(1.0) > 0.98);
        assert_eq!(q.quantile(0.0), 0.0);
    }

    proptest! {
        #[test]
        fn scores_are_probabilities_and_learning_moves_them_toward_the_label(
            paths in proptest::collection::vec("/[a-z0-9]{1,6}(/[a-z0-9]{1,6})?", 1..12),
            label in any::<bool>(),
            rounds in 1usize..20,
        ) {
            let s = session();
            let mut f = SessionFeatures::new();
            for (i, p) in paths.iter().enumerate() {
                f.observe(&page_event(i as i64 * 7, p, "page_viewed", None), &s);
            }
            let mut m = OutcomeModel::default();
            let before = m.logit(&f);
            for _ in 0..rounds {
                m.learn(&f, label, 1.0);
            }
            let p = m.score(&f);
            prop_assert!((0.0..=1.0).contains(&p));
            let after = m.logit(&f);
            if label { prop_assert!(after > before) } else { prop_assert!(after < before) }
        }

        #[test]
        fn quantile_is_monotone(ps in proptest::collection::vec(0.0f64..1.0, 1..200), a in 0.0f64..1.0, b in 0.0f64..1.0) {
            let mut q = QuantileTracker::default();
            for p in ps { q.insert(p); }
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(q.quantile(lo) <= q.quantile(hi) + 1e-12);
            prop_assert!((0.0..=1.0).contains(&q.quantile(hi)));
        }

        #[test]
        fn observe_never_panics_and_stays_bounded(path in "\\PC{0,80}", name in "\\PC{0,80}", q in proptest::option::of("\\PC{0,80}")) {
            let mut f = SessionFeatures::new();
            for i in 0..3 {
                f.observe(&page_event(i, &path, &name, q.as_deref()), &session());
            }
            prop_assert!(f.tokens().len() <= MAX_TOKENS);
            prop_assert!(f.tokens().iter().all(|t| t.name.len() < 200));
        }
    }
}
