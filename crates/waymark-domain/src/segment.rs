//! Segment definitions and the rule language they share with outcomes.
//!
//! This module owns the Genesys `JourneySegment` JSON (`displayName`, `scope`, `context.patterns[].criteria[]`,
//! `journey.patterns[]`, …), the twelve criteria operators, the criteria keys Waymark can match, and the one
//! gate that turns request JSON into a valid [`SegmentDefinition`] ([`parse_segment_request`], and
//! [`apply_patch`] for `PATCH`). Every refusal names the JSON path of the bad field, e.g.
//! `journey.patterns[0].criteria[1].operator`. Matching itself lives in [`crate::rules`].

use crate::{ErrorCode, Rejection, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// At most this many segments per organisation (SPEC §5).
pub const MAX_SEGMENTS: usize = 500;
/// Patterns per `context` or `journey` list.
pub const MAX_PATTERNS: usize = 20;
/// Criteria per pattern.
pub const MAX_CRITERIA: usize = 20;
/// Values per criterion.
pub const MAX_VALUES: usize = 50;
/// Bytes per criterion value.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Largest `count` of a journey pattern.
pub const MAX_COUNT: u32 = 1000;
/// Largest `assignmentExpirationDays`.
pub const MAX_EXPIRATION_DAYS: u32 = 3650;
/// The colour a segment gets when the request has none.
pub const DEFAULT_COLOR: &str = "#1E88E5";

/// The twelve comparison operators of Genesys criteria.
///
/// A criterion's field is matched against its `values`: `equal`, `startsWith`, `endsWith` and `containsAny`
/// hold when **any** value matches, `containsAll` when **every** value is contained; `notEqual`,
/// `notContainsAny` and `notContainsAll` are the negations of `equal`, `containsAny` and `containsAll`. The
/// four ordering operators take one value, a number or a dotted version (`17.2`). A field the visitor does
/// not have is matched as the empty string (so `notEqual` holds and `equal` does not); ordering operators
/// never hold on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operator {
    ContainsAll,
    ContainsAny,
    NotContainsAll,
    NotContainsAny,
    Equal,
    NotEqual,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
    StartsWith,
    EndsWith,
}

impl Operator {
    pub const ALL: [Operator; 12] = [
        Operator::ContainsAll,
        Operator::ContainsAny,
        Operator::NotContainsAll,
        Operator::NotContainsAny,
        Operator::Equal,
        Operator::NotEqual,
        Operator::GreaterThan,
        Operator::GreaterThanOrEqual,
        Operator::LessThan,
        Operator::LessThanOrEqual,
        Operator::StartsWith,
        Operator::EndsWith,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::ContainsAll => "containsAll",
            Operator::ContainsAny => "containsAny",
            Operator::NotContainsAll => "notContainsAll",
            Operator::NotContainsAny => "notContainsAny",
            Operator::Equal => "equal",
            Operator::NotEqual => "notEqual",
            Operator::GreaterThan => "greaterThan",
            Operator::GreaterThanOrEqual => "greaterThanOrEqual",
            Operator::LessThan => "lessThan",
            Operator::LessThanOrEqual => "lessThanOrEqual",
            Operator::StartsWith => "startsWith",
            Operator::EndsWith => "endsWith",
        }
    }

    /// Case-insensitive, so `EQUAL` and `equal` are the same operator.
    pub fn parse(s: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|o| o.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The ordering operators, which compare numbers or versions.
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            Operator::GreaterThan | Operator::GreaterThanOrEqual | Operator::LessThan | Operator::LessThanOrEqual
        )
    }
}

/// What a criterion looks at. Journey criteria read the event; context criteria read the visit (session).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldKey {
    /// A fixed event field (`page.url`, `searchQuery`, …), by its key.
    Event(&'static str),
    /// `attributes.<name>.value`: a custom attribute of the event.
    Attribute(String),
    /// A fixed visit field (`device.category`, `geolocation.country`, …), by its key.
    Visit(&'static str),
}

/// Keys a journey criterion may use (besides `attributes.<name>.value`).
pub const EVENT_KEYS: &[&str] = &[
    "page.url",
    "page.title",
    "page.domain",
    "page.hostname",
    "page.pathname",
    "page.queryString",
    "page.fragment",
    "page.keywords",
    "page.lang",
    "searchQuery",
];

/// Keys a context criterion may use.
pub const VISIT_KEYS: &[&str] = &[
    "device.category",
    "device.type",
    "device.osFamily",
    "device.osVersion",
    "browser.family",
    "browser.version",
    "browser.lang",
    "mktCampaign.source",
    "mktCampaign.medium",
    "mktCampaign.name",
    "mktCampaign.term",
    "mktCampaign.content",
    "mktCampaign.clickId",
    "mktCampaign.network",
    "geolocation.country",
    "geolocation.countryName",
    "geolocation.region",
    "geolocation.regionName",
    "geolocation.locality",
    "geolocation.postalCode",
    "geolocation.timezone",
    "ipOrganization",
    "referrer.url",
    "referrer.medium",
    "referrer.hostname",
    "authenticated",
];

/// The field a journey criterion key names, if it is one Waymark can match.
pub fn event_field(key: &str) -> Option<FieldKey> {
    if let Some(k) = EVENT_KEYS.iter().find(|k| **k == key) {
        return Some(FieldKey::Event(k));
    }
    let name = key.strip_prefix("attributes.")?.strip_suffix(".value")?;
    let ok = !name.is_empty() && name.len() <= 128 && !name.contains(['.', ' ']);
    ok.then(|| FieldKey::Attribute(name.to_string()))
}

/// The field a context criterion key names, if it is one Waymark can match.
pub fn visit_field(key: &str) -> Option<FieldKey> {
    VISIT_KEYS.iter().find(|k| **k == key).map(|k| FieldKey::Visit(k))
}

/// `Criteria` (journey) or `EntityTypeCriteria` (context, with `entityType: visit`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Criterion {
    pub key: String,
    pub values: Vec<String>,
    pub should_ignore_case: bool,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
}

/// `ContextPattern`: every criterion must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextPattern {
    pub criteria: Vec<Criterion>,
}

/// `Context`: every pattern must hold for the visit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    pub patterns: Vec<ContextPattern>,
}

/// `JourneyPattern.streamType`. Waymark matches web events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamType {
    Web,
}

/// `JourneyPattern`: events of `eventName` (any name when absent) whose criteria all hold, at least `count`
/// times in the definition's scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JourneyPattern {
    pub criteria: Vec<Criterion>,
    pub count: u32,
    pub stream_type: StreamType,
    pub session_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
}

/// `Journey`: every pattern must have matched its count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journey {
    pub patterns: Vec<JourneyPattern>,
}

/// Where a segment assignment lives: the session (ends with it) or the customer (until it expires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    Session,
    Customer,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Session => "Session",
            Scope::Customer => "Customer",
        }
    }
}

/// `ExternalSegment`: the segment's counterpart in another system (kept, not interpreted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSegment {
    pub id: String,
    pub name: String,
    pub source: String,
}

/// A segment, in the Genesys `JourneySegment` wire shape (also how it is stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentDefinition {
    pub id: String,
    pub is_active: bool,
    pub display_name: String,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub color: String,
    pub scope: Scope,
    pub should_display_to_agent: bool,
    pub context: Context,
    pub journey: Journey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_segment: Option<ExternalSegment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_expiration_days: Option<u32>,
    pub self_uri: String,
    pub created_date: Timestamp,
    pub modified_date: Timestamp,
}

impl SegmentDefinition {
    /// Give a freshly parsed definition its identity: id, version 1, dates.
    pub fn created(mut self, id: impl Into<String>, now: Timestamp) -> Self {
        self.id = id.into();
        self.self_uri = format!("/api/v2/journey/segments/{}", self.id);
        self.version = 1;
        self.created_date = now;
        self.modified_date = now;
        self
    }
}

/// Parse a `JourneySegmentRequest`. Identity fields (`id`, `version`, dates) in the request are ignored; the
/// result carries an empty id and version 0 until [`SegmentDefinition::created`] or [`apply_patch`] sets them.
pub fn parse_segment_request(v: &Value) -> Result<SegmentDefinition, Rejection> {
    let o = object(v, "")?;
    let display_name = display_name(o)?;
    let description = opt_text(o, "description", 1024)?;
    let color = match opt_str(o, "color", "color")? {
        None => DEFAULT_COLOR.to_string(),
        Some(c) => {
            let hex = c.strip_prefix('#').unwrap_or("");
            if !matches!(hex.len(), 3 | 6) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid("color", format!("color must be a hexadecimal colour such as #1E88E5, got {c:?}")));
            }
            c.to_string()
        }
    };
    let scope = match opt_str(o, "scope", "scope")? {
        None => Scope::Session,
        Some(s) if s.eq_ignore_ascii_case("session") => Scope::Session,
        Some(s) if s.eq_ignore_ascii_case("customer") => Scope::Customer,
        Some(s) => return Err(invalid("scope", format!("scope must be Session or Customer, got {:?}", clip(s)))),
    };
    let should_display_to_agent = opt_bool(o, "shouldDisplayToAgent", "shouldDisplayToAgent")?.unwrap_or(true);
    let is_active = opt_bool(o, "isActive", "isActive")?.unwrap_or(true);
    let context = parse_context(o.get("context"), "context")?;
    let journey = parse_journey(o.get("journey"), "journey")?;
    if context.patterns.is_empty() && journey.patterns.is_empty() {
        return Err(Rejection::at(
            ErrorCode::MissingField,
            "journey.patterns",
            "a segment needs at least one context criterion or journey pattern, otherwise it would match every visitor",
        ));
    }
    let assignment_expiration_days = match opt_int(o, "assignmentExpirationDays", "assignmentExpirationDays")? {
        None => None,
        Some(d) if (1..=MAX_EXPIRATION_DAYS as i64).contains(&d) => Some(d as u32),
        Some(d) => {
            return Err(invalid(
                "assignmentExpirationDays",
                format!("assignmentExpirationDays must be from 1 to {MAX_EXPIRATION_DAYS}, got {d}"),
            ));
        }
    };
    let external_segment = match o.get("externalSegment") {
        None | Some(Value::Null) => None,
        Some(e) => {
            let eo = object(e, "externalSegment")?;
            let id = req_str(eo, "id", "externalSegment.id")?;
            let name = req_str(eo, "name", "externalSegment.name")?;
            let source = opt_str(eo, "source", "externalSegment.source")?.unwrap_or("Custom");
            if !["AdobeExperiencePlatform", "Custom"].contains(&source) {
                return Err(invalid(
                    "externalSegment.source",
                    "externalSegment.source must be AdobeExperiencePlatform or Custom",
                ));
            }
            Some(ExternalSegment { id: clip_to(id, 256), name: clip_to(name, 256), source: source.to_string() })
        }
    };
    Ok(SegmentDefinition {
        id: String::new(),
        is_active,
        display_name,
        version: 0,
        description,
        color,
        scope,
        should_display_to_agent,
        context,
        journey,
        external_segment,
        assignment_expiration_days,
        self_uri: String::new(),
        created_date: Timestamp::default(),
        modified_date: Timestamp::default(),
    })
}

/// Apply a `PatchSegment` to `current`: fields present in the patch replace the stored ones (`context` and
/// `journey` as a whole), `null` clears an optional field, and the result is validated like a new segment.
/// A `version` in the patch must equal the stored version (else `conflict`, 409). The result has the next
/// version and `modifiedDate = now`.
pub fn apply_patch(current: &SegmentDefinition, patch: &Value, now: Timestamp) -> Result<SegmentDefinition, Rejection> {
    let merged = merge_patch(current, current.version, patch)?;
    let mut next = parse_segment_request(&merged)?;
    next.id = current.id.clone();
    next.self_uri = current.self_uri.clone();
    next.created_date = current.created_date;
    next.version = current.version + 1;
    next.modified_date = now;
    Ok(next)
}

/// Overlay `patch` on the wire form of `current` after checking its `version`.
pub(crate) fn merge_patch<T: Serialize>(current: &T, version: i64, patch: &Value) -> Result<Value, Rejection> {
    let p = object(patch, "")?;
    if let Some(v) = p.get("version").filter(|v| !v.is_null()) {
        let Some(n) = v.as_i64() else { return Err(invalid("version", "version must be a whole number")) };
        if n != version {
            return Err(Rejection::at(
                ErrorCode::Conflict,
                "version",
                format!(
                    "version {n} is stale: the definition is at version {version}; reload it and apply your change again"
                ),
            ));
        }
    }
    let mut merged = serde_json::to_value(current)
        .map_err(|e| Rejection::new(ErrorCode::Internal, format!("definition does not serialize: {e}")))?;
    let Some(m) = merged.as_object_mut() else {
        return Err(Rejection::new(ErrorCode::Internal, "definition is not an object"));
    };
    for (k, v) in p {
        if matches!(k.as_str(), "id" | "selfUri" | "createdDate" | "modifiedDate" | "version") {
            continue;
        }
        if v.is_null() {
            m.remove(k);
        } else {
            m.insert(k.clone(), v.clone());
        }
    }
    Ok(merged)
}

// ---------------------------------------------------------------------------------------------------------
// The rule language: context and journey patterns.

pub(crate) fn parse_context(v: Option<&Value>, path: &str) -> Result<Context, Rejection> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Context::default()) };
    let o = object(v, path)?;
    let pp = format!("{path}.patterns");
    let list = opt_array(o, "patterns", &pp)?.unwrap_or(&[]);
    if list.len() > MAX_PATTERNS {
        return Err(invalid(&pp, format!("{pp} has {} patterns; at most {MAX_PATTERNS} are allowed", list.len())));
    }
    let mut patterns = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let at = format!("{pp}[{i}]");
        let po = object(p, &at)?;
        let criteria = parse_criteria(po, &at, true)?;
        patterns.push(ContextPattern { criteria });
    }
    Ok(Context { patterns })
}

pub(crate) fn parse_journey(v: Option<&Value>, path: &str) -> Result<Journey, Rejection> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Journey::default()) };
    let o = object(v, path)?;
    let pp = format!("{path}.patterns");
    let list = opt_array(o, "patterns", &pp)?.unwrap_or(&[]);
    if list.len() > MAX_PATTERNS {
        return Err(invalid(&pp, format!("{pp} has {} patterns; at most {MAX_PATTERNS} are allowed", list.len())));
    }
    let mut patterns = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let at = format!("{pp}[{i}]");
        let po = object(p, &at)?;
        let criteria = parse_criteria(po, &at, false)?;
        let count = match opt_int(po, "count", &format!("{at}.count"))? {
            None => 1,
            Some(n) if (1..=MAX_COUNT as i64).contains(&n) => n as u32,
            Some(n) => {
                return Err(invalid(
                    format!("{at}.count"),
                    format!("{at}.count must be from 1 to {MAX_COUNT}, got {n}"),
                ));
            }
        };
        match opt_str(po, "streamType", &format!("{at}.streamType"))? {
            None => {}
            Some(s) if s.eq_ignore_ascii_case("web") => {}
            Some(s) => {
                return Err(invalid(
                    format!("{at}.streamType"),
                    format!(
                        "{at}.streamType {:?} is not supported: Waymark matches Web events (streamType Web)",
                        clip(s)
                    ),
                ));
            }
        }
        match opt_str(po, "sessionType", &format!("{at}.sessionType"))? {
            None => {}
            Some(s) if s.eq_ignore_ascii_case("web") => {}
            Some(s) => {
                return Err(invalid(
                    format!("{at}.sessionType"),
                    format!(
                        "{at}.sessionType {:?} is not supported: Waymark matches web sessions (sessionType web)",
                        clip(s)
                    ),
                ));
            }
        }
        let event_name = match opt_str(po, "eventName", &format!("{at}.eventName"))? {
            None => None,
            Some(n) => {
                if n.is_empty() || n.len() > 255 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(invalid(
                        format!("{at}.eventName"),
                        format!(
                            "{at}.eventName must be 1-255 letters, digits or underscores (e.g. page_viewed), got {:?}",
                            clip(n)
                        ),
                    ));
                }
                Some(n.to_string())
            }
        };
        patterns.push(JourneyPattern {
            criteria,
            count,
            stream_type: StreamType::Web,
            session_type: "web".into(),
            event_name,
        });
    }
    Ok(Journey { patterns })
}

fn parse_criteria(po: &Map<String, Value>, at: &str, context: bool) -> Result<Vec<Criterion>, Rejection> {
    let cp = format!("{at}.criteria");
    let list = match opt_array(po, "criteria", &cp)? {
        Some(l) => l,
        None if context => return Err(missing(&cp)),
        None => &[],
    };
    if context && list.is_empty() {
        return Err(invalid(&cp, format!("{cp} needs at least one criterion")));
    }
    if list.len() > MAX_CRITERIA {
        return Err(invalid(&cp, format!("{cp} has {} criteria; at most {MAX_CRITERIA} are allowed", list.len())));
    }
    let mut out = Vec::with_capacity(list.len());
    for (j, c) in list.iter().enumerate() {
        let cat = format!("{cp}[{j}]");
        let co = object(c, &cat)?;
        let key = req_str(co, "key", &format!("{cat}.key"))?;
        let known = if context { visit_field(key) } else { event_field(key) };
        if known.is_none() {
            let allowed = if context {
                VISIT_KEYS.join(", ")
            } else {
                format!("{}, attributes.<name>.value", EVENT_KEYS.join(", "))
            };
            return Err(invalid(
                format!("{cat}.key"),
                format!("{cat}.key {:?} is not a key Waymark can match; use one of {allowed}", clip(key)),
            ));
        }
        let operator = match opt_str(co, "operator", &format!("{cat}.operator"))? {
            None => Operator::Equal,
            Some(s) => Operator::parse(s).ok_or_else(|| {
                invalid(
                    format!("{cat}.operator"),
                    format!(
                        "{cat}.operator {:?} is not one of {}",
                        clip(s),
                        Operator::ALL.map(|o| o.as_str()).join(", ")
                    ),
                )
            })?,
        };
        let vp = format!("{cat}.values");
        let raw = opt_array(co, "values", &vp)?.ok_or_else(|| missing(&vp))?;
        if raw.is_empty() {
            return Err(invalid(&vp, format!("{vp} needs at least one value")));
        }
        if raw.len() > MAX_VALUES {
            return Err(invalid(&vp, format!("{vp} has {} values; at most {MAX_VALUES} are allowed", raw.len())));
        }
        let mut values = Vec::with_capacity(raw.len());
        for (k, v) in raw.iter().enumerate() {
            let at = format!("{vp}[{k}]");
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(invalid(&at, format!("{at} must be a string"))),
            };
            if s.is_empty() || s.len() > MAX_VALUE_BYTES {
                return Err(invalid(&at, format!("{at} must be 1 to {MAX_VALUE_BYTES} bytes long")));
            }
            if operator.is_ordering() && crate::rules::OrderValue::parse(&s).is_none() {
                return Err(invalid(
                    &at,
                    format!(
                        "{at} must be a number or a version such as 17.2 for the operator {}, got {:?}",
                        operator.as_str(),
                        clip(&s)
                    ),
                ));
            }
            values.push(s);
        }
        if operator.is_ordering() && values.len() != 1 {
            return Err(invalid(
                &vp,
                format!("{vp} must hold exactly one value for the operator {}", operator.as_str()),
            ));
        }
        let should_ignore_case = opt_bool(co, "shouldIgnoreCase", &format!("{cat}.shouldIgnoreCase"))?.unwrap_or(false);
        let entity_type = if context {
            match opt_str(co, "entityType", &format!("{cat}.entityType"))? {
                None => {}
                Some(e) if e.eq_ignore_ascii_case("visit") => {}
                Some(e) => {
                    return Err(invalid(
                        format!("{cat}.entityType"),
                        format!("{cat}.entityType must be visit, got {:?}", clip(e)),
                    ));
                }
            }
            Some("visit".to_string())
        } else {
            None
        };
        out.push(Criterion { key: key.to_string(), values, should_ignore_case, operator, entity_type });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// Reading request JSON with precise field paths.

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection::at(ErrorCode::InvalidField, field, message)
}

pub(crate) fn missing(field: &str) -> Rejection {
    Rejection::at(ErrorCode::MissingField, field, format!("{field} is required"))
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn clip_to(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

pub(crate) fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Rejection> {
    v.as_object().ok_or_else(|| {
        if path.is_empty() {
            Rejection::new(ErrorCode::InvalidField, "the body must be a JSON object")
        } else {
            invalid(path, format!("{path} must be an object"))
        }
    })
}

pub(crate) fn opt_str<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>, Rejection> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(path, format!("{path} must be a string"))),
    }
}

pub(crate) fn req_str<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, Rejection> {
    match opt_str(o, key, path)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(invalid(path, format!("{path} must not be empty"))),
        None => Err(missing(path)),
    }
}

pub(crate) fn opt_bool(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, Rejection> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(path, format!("{path} must be true or false"))),
    }
}

pub(crate) fn opt_int(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, Rejection> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| invalid(path, format!("{path} must be a whole number")))
        }
        Some(_) => Err(invalid(path, format!("{path} must be a whole number"))),
    }
}

pub(crate) fn opt_array<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a [Value]>, Rejection> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.as_slice())),
        Some(_) => Err(invalid(path, format!("{path} must be a list"))),
    }
}

pub(crate) fn opt_text(o: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, Rejection> {
    match opt_str(o, key, key)? {
        None => Ok(None),
        Some(s) if s.len() > max => Err(invalid(key, format!("{key} is longer than {max} bytes"))),
        Some(s) => Ok(Some(s.to_string())),
    }
}

pub(crate) fn display_name(o: &Map<String, Value>) -> Result<String, Rejection> {
    let n = req_str(o, "displayName", "displayName")?.trim();
    if n.chars().count() > 255 {
        return Err(invalid("displayName", "displayName is longer than 255 characters"));
    }
    Ok(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "displayName": "Shoe lovers",
            "color": "#FF0000",
            "scope": "Customer",
            "shouldDisplayToAgent": true,
            "assignmentExpirationDays": 30,
            "context": {"patterns": [{"criteria": [
                {"key": "device.category", "values": ["desktop"], "operator": "equal", "shouldIgnoreCase": false, "entityType": "visit"}
            ]}]},
            "journey": {"patterns": [{
                "criteria": [{"key": "page.pathname", "values": ["/shoes"], "operator": "startsWith", "shouldIgnoreCase": true}],
                "count": 2, "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"
            }]}
        })
    }

    #[test]
    fn a_genesys_request_parses_and_serializes_back_in_the_same_shape() {
        let d = parse_segment_request(&valid()).unwrap().created("seg-1", Timestamp::from_unix_millis(1000));
        assert_eq!(d.scope, Scope::Customer);
        assert_eq!(d.journey.patterns[0].count, 2);
        assert_eq!(d.assignment_expiration_days, Some(30));
        let wire = serde_json::to_value(&d).unwrap();
        assert_eq!(wire["scope"], "Customer");
        assert_eq!(wire["selfUri"], "/api/v2/journey/segments/seg-1");
        assert_eq!(wire["context"]["patterns"][0]["criteria"][0]["entityType"], "visit");
        assert_eq!(wire["journey"]["patterns"][0]["streamType"], "Web");
        assert_eq!(wire["createdDate"], "1970-01-01T00:00:01.000Z");
        assert!(!wire.to_string().contains("null"));
        // The wire form is itself a valid request, and parses to the same rules.
        let again = parse_segment_request(&wire).unwrap();
        assert_eq!(again.journey, d.journey);
        assert_eq!(again.context, d.context);
    }

    #[test]
    fn refusals_point_at_the_bad_field() {
        let cases = [
            ("/journey/patterns/0/criteria/0/operator", json!("sortOf"), "journey.patterns[0].criteria[0].operator"),
            ("/journey/patterns/0/criteria/0/key", json!("page.colour"), "journey.patterns[0].criteria[0].key"),
            ("/journey/patterns/0/criteria/0/values", json!([]), "journey.patterns[0].criteria[0].values"),
            ("/journey/patterns/0/count", json!(0), "journey.patterns[0].count"),
            ("/journey/patterns/0/eventName", json!("bad name"), "journey.patterns[0].eventName"),
            ("/journey/patterns/0/streamType", json!("App"), "journey.patterns[0].streamType"),
            ("/context/patterns/0/criteria/0/key", json!("page.url"), "context.patterns[0].criteria[0].key"),
            (
                "/context/patterns/0/criteria/0/entityType",
                json!("person"),
                "context.patterns[0].criteria[0].entityType",
            ),
            ("/color", json!("red"), "color"),
            ("/scope", json!("Planet"), "scope"),
            ("/displayName", json!(""), "displayName"),
            ("/assignmentExpirationDays", json!(0), "assignmentExpirationDays"),
            ("/isActive", json!("yes"), "isActive"),
        ];
        for (ptr, value, field) in cases {
            let mut v = valid();
            let (parent, key) = ptr.rsplit_once('/').unwrap();
            v.pointer_mut(parent).unwrap().as_object_mut().unwrap().insert(key.to_string(), value);
            let err = parse_segment_request(&v).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{ptr}: {err:?}");
            assert!(err.message.contains(field) || err.message.contains(&field.replace("[0]", "")), "{err:?}");
        }
        let mut v = valid();
        v["journey"]["patterns"][0]["criteria"][0]["operator"] = json!("greaterThan");
        let err = parse_segment_request(&v).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("journey.patterns[0].criteria[0].values[0]"));
        let err = parse_segment_request(&json!({"displayName": "Nothing"})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("journey.patterns"));
        assert_eq!(parse_segment_request(&json!([1])).unwrap_err().code, ErrorCode::InvalidField);
    }

    #[test]
    fn all_twelve_operators_and_attribute_keys_are_accepted() {
        for op in Operator::ALL {
            let mut v = valid();
            v["journey"]["patterns"][0]["criteria"][0] =
                json!({"key": "attributes.cart.value", "values": ["3"], "operator": op.as_str()});
            let d = parse_segment_request(&v).unwrap();
            assert_eq!(d.journey.patterns[0].criteria[0].operator, op);
        }
    }

    #[test]
    fn patch_replaces_fields_checks_the_version_and_revalidates() {
        let t0 = Timestamp::from_unix_millis(1000);
        let d = parse_segment_request(&valid()).unwrap().created("seg-1", t0);
        let t1 = Timestamp::from_unix_millis(2000);
        let p = apply_patch(&d, &json!({"version": 1, "color": "#00FF00", "description": "x"}), t1).unwrap();
        assert_eq!((p.version, p.color.as_str(), p.modified_date, p.created_date), (2, "#00FF00", t1, t0));
        assert_eq!(p.journey, d.journey);
        assert_eq!(p.id, "seg-1");
        let cleared = apply_patch(&p, &json!({"description": null}), t1).unwrap();
        assert_eq!(cleared.description, None);
        let stale = apply_patch(&p, &json!({"version": 1, "color": "#000000"}), t1).unwrap_err();
        assert_eq!((stale.code, stale.field.as_deref()), (ErrorCode::Conflict, Some("version")));
        let bad = apply_patch(&p, &json!({"journey": {"patterns": [{"criteria": [], "count": -1}]}}), t1).unwrap_err();
        assert_eq!(bad.field.as_deref(), Some("journey.patterns[0].count"));
        let gone = apply_patch(&p, &json!({"displayName": null}), t1).unwrap_err();
        assert_eq!(gone.field.as_deref(), Some("displayName"));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-zA-Z.#_ ]{0,12}".prop_map(Value::String),
            prop_oneof![Just("page.url"), Just("equal"), Just("Web"), Just("containsAny")].prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("displayName".to_string()),
                        Just("journey".to_string()),
                        Just("context".to_string()),
                        Just("patterns".to_string()),
                        Just("criteria".to_string()),
                        Just("key".to_string()),
                        Just("values".to_string()),
                        Just("operator".to_string()),
                        Just("count".to_string()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON at all gets an answer, never a panic; refusals always carry a field or a clear message.
        #[test]
        fn never_panics_on_arbitrary_json(v in arb_json()) {
            match parse_segment_request(&v) {
                Ok(d) => {
                    let wire = serde_json::to_value(&d).unwrap();
                    prop_assert_eq!(parse_segment_request(&wire).unwrap().journey, d.journey);
                }
                Err(r) => prop_assert!(!r.message.is_empty()),
            }
        }
    }
}
