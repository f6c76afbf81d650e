//! Action maps: when to offer a visitor a web chat, a web messaging conversation or a content offer, in the
//! Genesys `ActionMap` wire shape. [`parse_action_map`] is the one gate from an administrator's JSON to a
//! validated [`ActionMap`]; the matching helpers here ([`Operator`], [`EventCondition::matches`],
//! [`ActionMap::page_allows`]) are what the offer engine ([`crate::offer`]) evaluates.

use crate::event::WebEventBody;
use crate::{ErrorCode, Rejection, Timestamp};
use serde::{Deserialize, Serialize};

/// Most action maps an organisation may define.
pub const MAX_ACTION_MAPS: usize = 500;

/// The comparison operators of conditions: the same twelve (Genesys spelling) as segments and outcomes.
pub use crate::segment::Operator;

impl Operator {
    /// Whether `actual` satisfies the operator against `values`. Numeric operators compare as numbers (with
    /// the first value); a value that is not a number never satisfies them.
    pub fn matches(self, actual: &str, values: &[String]) -> bool {
        let num = |s: &str| s.trim().parse::<f64>().ok().filter(|n| n.is_finite());
        let cmp = |f: fn(f64, f64) -> bool| match (num(actual), values.first().and_then(|v| num(v))) {
            (Some(a), Some(b)) => f(a, b),
            _ => false,
        };
        match self {
            Operator::ContainsAll => values.iter().all(|v| actual.contains(v.as_str())),
            Operator::ContainsAny => values.iter().any(|v| actual.contains(v.as_str())),
            Operator::NotContainsAll => !values.iter().all(|v| actual.contains(v.as_str())),
            Operator::NotContainsAny => !values.iter().any(|v| actual.contains(v.as_str())),
            Operator::Equal => values.iter().any(|v| v == actual),
            Operator::NotEqual => !values.iter().any(|v| v == actual),
            Operator::StartsWith => values.iter().any(|v| actual.starts_with(v.as_str())),
            Operator::EndsWith => values.iter().any(|v| actual.ends_with(v.as_str())),
            Operator::GreaterThan => cmp(|a, b| a > b),
            Operator::GreaterThanOrEqual => cmp(|a, b| a >= b),
            Operator::LessThan => cmp(|a, b| a < b),
            Operator::LessThanOrEqual => cmp(|a, b| a <= b),
        }
    }
}

/// `EventCondition`: a web event whose `key` satisfies the operator (and, when given, named `eventName`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCondition {
    pub key: String,
    pub values: Vec<String>,
    pub operator: Operator,
    pub stream_type: String,
    pub session_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
}

/// The event keys a condition may read.
const EVENT_KEYS: [&str; 9] = [
    "eventName",
    "page.url",
    "page.title",
    "page.hostname",
    "page.pathname",
    "page.queryString",
    "page.fragment",
    "page.keywords",
    "searchQuery",
];

fn valid_event_key(key: &str) -> bool {
    EVENT_KEYS.contains(&key)
        || key.strip_prefix("attributes.").and_then(|r| r.strip_suffix(".value")).is_some_and(|n| !n.is_empty())
}

impl EventCondition {
    /// Whether the web event satisfies this condition.
    pub fn matches(&self, ev: &WebEventBody) -> bool {
        if let Some(n) = &self.event_name
            && *n != ev.event_name
        {
            return false;
        }
        let p = &ev.page;
        let actual: Option<&str> = match self.key.as_str() {
            "eventName" => Some(&ev.event_name),
            "page.url" => Some(&p.url),
            "page.title" => Some(&p.title),
            "page.hostname" => Some(&p.hostname),
            "page.pathname" => Some(&p.pathname),
            "page.queryString" => p.query_string.as_deref(),
            "page.fragment" => p.fragment.as_deref(),
            "page.keywords" => p.keywords.as_deref(),
            "searchQuery" => ev.search_query.as_deref(),
            k => k
                .strip_prefix("attributes.")
                .and_then(|r| r.strip_suffix(".value"))
                .and_then(|name| ev.attributes.get(name))
                .map(|a| a.value.as_str()),
        };
        match actual {
            Some(a) => self.operator.matches(a, &self.values),
            // An absent field only satisfies the negative operators.
            None => matches!(self.operator, Operator::NotEqual | Operator::NotContainsAll | Operator::NotContainsAny),
        }
    }
}

/// `UrlCondition`: the page URL an offer may be shown on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlCondition {
    pub values: Vec<String>,
    pub operator: Operator,
}

/// `OutcomeQuantileCondition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeQuantileCondition {
    pub outcome_id: String,
    /// Met when the session's maximum quantile is above this (0–1).
    pub max_quantile_threshold: f64,
    /// When set, the current quantile must also be below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_quantile_threshold: Option<f64>,
}

/// When a triggered action map acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivationType {
    #[serde(rename = "immediate")]
    Immediate,
    #[serde(rename = "delay")]
    Delay,
    #[serde(rename = "on-next-session")]
    OnNextSession,
}

impl ActivationType {
    fn parse(s: &str) -> Option<ActivationType> {
        match s {
            "immediate" => Some(ActivationType::Immediate),
            "delay" => Some(ActivationType::Delay),
            // Genesys also spells it on-next-visit.
            "on-next-session" | "on-next-visit" => Some(ActivationType::OnNextSession),
            _ => None,
        }
    }
}

/// `Activation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activation {
    #[serde(rename = "type")]
    pub activation_type: ActivationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_in_seconds: Option<i64>,
}

impl Activation {
    /// Milliseconds between trigger and offer.
    pub fn delay_ms(&self) -> i64 {
        match self.activation_type {
            ActivationType::Delay => self.delay_in_seconds.unwrap_or(0).max(0) * 1000,
            _ => 0,
        }
    }
}

/// What kind of offer an action map makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaType {
    #[serde(rename = "webchat")]
    Webchat,
    #[serde(rename = "webMessagingOffer")]
    WebMessagingOffer,
    #[serde(rename = "contentOffer")]
    ContentOffer,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Webchat => "webchat",
            MediaType::WebMessagingOffer => "webMessagingOffer",
            MediaType::ContentOffer => "contentOffer",
        }
    }

    /// Chat-like offers (an agent conversation follows) share the chat frequency caps.
    pub fn is_chat(self) -> bool {
        matches!(self, MediaType::Webchat | MediaType::WebMessagingOffer)
    }
}

/// `CallToAction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub url: String,
    /// `Blank` (new tab) or `Self`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `ContentOffer`: what a content offer shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentOffer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_alt_text: Option<String>,
    /// `Modal`, `Overlay` or `Toast`.
    pub display_mode: String,
    /// `TextOnly`, `ImageOnly`, `LeftText`, `RightText`, `TopText` or `BottomText`.
    pub layout_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_to_action: Option<CallToAction>,
}

/// `WebMessagingOfferFields` (used for web chat offers too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferTextFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_text: Option<String>,
}

/// `ActionMapAction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionMapAction {
    pub media_type: MediaType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_messaging_offer_fields: Option<OfferTextFields>,
    /// Waymark: the content of a content offer (Genesys keeps it in an action template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_offer: Option<ContentOffer>,
}

impl ActionMapAction {
    /// The text an agent sees for the action on the journey map.
    pub fn prompt(&self) -> String {
        match self.media_type {
            MediaType::ContentOffer => self
                .content_offer
                .as_ref()
                .and_then(|c| c.title.clone().or_else(|| c.headline.clone()))
                .unwrap_or_default(),
            _ => self.web_messaging_offer_fields.as_ref().and_then(|f| f.offer_text.clone()).unwrap_or_default(),
        }
    }
}

/// Waymark: the hours an action map may fire, as weekly windows at a fixed UTC offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeeklySchedule {
    /// Offset of the schedule's local time from UTC, in minutes (e.g. 540 for Seoul).
    #[serde(default)]
    pub utc_offset_minutes: i32,
    pub windows: Vec<ScheduleWindow>,
}

/// One weekly window: days (1 = Monday … 7 = Sunday) and a time range `HH:MM`–`HH:MM` (end exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleWindow {
    pub days: Vec<u8>,
    pub start_time: String,
    pub end_time: String,
}

fn minutes_of(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

impl WeeklySchedule {
    /// Whether `at` falls in one of the windows.
    pub fn contains(&self, at: Timestamp) -> bool {
        let local_min = at.unix_millis().div_euclid(60_000) + i64::from(self.utc_offset_minutes);
        let day_index = local_min.div_euclid(24 * 60);
        // 1970-01-01 was a Thursday (ISO day 4).
        let weekday = ((day_index + 3).rem_euclid(7) + 1) as u8;
        let minute = local_min.rem_euclid(24 * 60) as u32;
        self.windows.iter().any(|w| {
            w.days.contains(&weekday)
                && match (minutes_of(&w.start_time), minutes_of(&w.end_time)) {
                    (Some(s), Some(e)) => s <= minute && minute < e,
                    _ => false,
                }
        })
    }
}

/// A validated action map, as stored and as answered on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionMap {
    pub id: String,
    pub version: i64,
    pub is_active: bool,
    pub display_name: String,
    #[serde(default)]
    pub trigger_with_segments: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trigger_with_event_conditions: Vec<EventCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trigger_with_outcome_quantile_conditions: Vec<OutcomeQuantileCondition>,
    #[serde(default)]
    pub page_url_conditions: Vec<UrlCondition>,
    pub activation: Activation,
    /// Low = 1, Medium = 2 (default), High = 3; higher wins when several maps qualify together.
    pub weight: i64,
    pub action: ActionMapAction,
    #[serde(default)]
    pub ignore_frequency_cap: bool,
    /// Waymark: weekly hours (in addition to `startDate`/`endDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<WeeklySchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<Timestamp>,
    pub self_uri: String,
    pub created_date: Timestamp,
    pub modified_date: Timestamp,
}

impl ActionMap {
    /// Whether the page URL satisfies every URL condition (no conditions: any page).
    pub fn page_allows(&self, url: Option<&str>) -> bool {
        if self.page_url_conditions.is_empty() {
            return true;
        }
        let Some(url) = url else { return false };
        self.page_url_conditions.iter().all(|c| c.operator.matches(url, &c.values))
    }

    /// Whether `at` is inside the start/end dates and the weekly schedule.
    pub fn in_schedule(&self, at: Timestamp) -> bool {
        self.start_date.is_none_or(|s| at >= s)
            && self.end_date.is_none_or(|e| at < e)
            && self.schedule.as_ref().is_none_or(|s| s.contains(at))
    }
}

/// An action map as an administrator sends it (`POST`, or the merged result of a `PATCH`). Enumerations are
/// strings here so that a bad value gets a message naming its field.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionMapRequest {
    pub display_name: Option<String>,
    pub is_active: Option<bool>,
    pub trigger_with_segments: Option<Vec<String>>,
    pub trigger_with_event_conditions: Option<Vec<EventConditionRequest>>,
    pub trigger_with_outcome_quantile_conditions: Option<Vec<OutcomeQuantileCondition>>,
    pub trigger_with_outcome_probability_conditions: Option<serde_json::Value>,
    pub trigger_with_outcome_percentile_conditions: Option<serde_json::Value>,
    pub page_url_conditions: Option<Vec<UrlConditionRequest>>,
    pub activation: Option<ActivationRequest>,
    pub weight: Option<i64>,
    pub action: Option<ActionRequest>,
    pub action_map_schedule_groups: Option<serde_json::Value>,
    pub ignore_frequency_cap: Option<bool>,
    pub schedule: Option<WeeklySchedule>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventConditionRequest {
    pub key: Option<String>,
    pub values: Option<Vec<String>>,
    pub operator: Option<String>,
    pub stream_type: Option<String>,
    pub session_type: Option<String>,
    pub event_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlConditionRequest {
    pub values: Option<Vec<String>>,
    pub operator: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationRequest {
    #[serde(rename = "type")]
    pub activation_type: Option<String>,
    #[serde(alias = "delaySeconds")]
    pub delay_in_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRequest {
    pub media_type: Option<String>,
    pub web_messaging_offer_fields: Option<OfferTextFields>,
    pub content_offer: Option<ContentOffer>,
    pub action_template: Option<serde_json::Value>,
}

/// Identity and timestamps of the map being written (from the server, never from the client).
#[derive(Debug, Clone)]
pub struct ActionMapMeta {
    pub id: String,
    pub version: i64,
    pub created: Timestamp,
    pub modified: Timestamp,
}

fn missing(field: &str) -> Rejection {
    Rejection::at(ErrorCode::MissingField, field, format!("{field} is required"))
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection::at(ErrorCode::InvalidField, field, message)
}

fn check_text(field: &str, s: &str, max: usize) -> Result<(), Rejection> {
    if s.len() > max {
        return Err(Rejection::at(ErrorCode::AttributeTooLong, field, format!("{field} is longer than {max} bytes")));
    }
    Ok(())
}

fn parse_operator(field: &str, op: Option<&str>) -> Result<Operator, Rejection> {
    let op = op.ok_or_else(|| missing(field))?;
    Operator::parse(op).ok_or_else(|| {
        let all: Vec<&str> = Operator::ALL.iter().map(|o| o.as_str()).collect();
        invalid(field, format!("{field} {op:?} is not one of {}", all.join(", ")))
    })
}

fn parse_values(field: &str, values: Option<Vec<String>>) -> Result<Vec<String>, Rejection> {
    let values = values.ok_or_else(|| missing(field))?;
    if values.is_empty() || values.len() > 50 {
        return Err(invalid(field, format!("{field} must hold 1 to 50 values")));
    }
    for (i, v) in values.iter().enumerate() {
        check_text(&format!("{field}[{i}]"), v, 1024)?;
    }
    Ok(values)
}

fn web_url(field: &str, s: &str) -> Result<(), Rejection> {
    check_text(field, s, 2048)?;
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(invalid(field, format!("{field} must be an absolute http(s) URL"))),
    }
}

/// Validate an action map request.
pub fn parse_action_map(req: ActionMapRequest, meta: ActionMapMeta) -> Result<ActionMap, Rejection> {
    let display_name = req.display_name.as_deref().map(str::trim).ok_or_else(|| missing("displayName"))?;
    if display_name.is_empty() {
        return Err(missing("displayName"));
    }
    check_text("displayName", display_name, 255)?;
    if req.trigger_with_outcome_probability_conditions.as_ref().is_some_and(|v| !v.is_null())
        || req.trigger_with_outcome_percentile_conditions.as_ref().is_some_and(|v| !v.is_null())
    {
        return Err(invalid(
            "triggerWithOutcomeProbabilityConditions",
            "probability and percentile triggers are deprecated; use triggerWithOutcomeQuantileConditions",
        ));
    }
    if req.action_map_schedule_groups.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(invalid(
            "actionMapScheduleGroups",
            "schedule groups are not supported; use startDate/endDate and the weekly schedule",
        ));
    }

    let segments = req.trigger_with_segments.unwrap_or_default();
    if segments.len() > 100 {
        return Err(invalid("triggerWithSegments", "at most 100 segments"));
    }
    for (i, s) in segments.iter().enumerate() {
        let field = format!("triggerWithSegments[{i}]");
        if s.trim().is_empty() {
            return Err(invalid(field, "a segment id is empty"));
        }
        check_text(&field, s, 128)?;
    }

    let mut event_conditions = Vec::new();
    for (i, c) in req.trigger_with_event_conditions.unwrap_or_default().into_iter().enumerate() {
        let f = |n: &str| format!("triggerWithEventConditions[{i}].{n}");
        let key = c.key.ok_or_else(|| missing(&f("key")))?;
        if !valid_event_key(&key) {
            return Err(invalid(
                f("key"),
                format!("key {key:?} is not one of {} or attributes.<name>.value", EVENT_KEYS.join(", ")),
            ));
        }
        let values = parse_values(&f("values"), c.values)?;
        let operator = parse_operator(&f("operator"), c.operator.as_deref())?;
        let stream_type = c.stream_type.unwrap_or_else(|| "Web".into());
        if !matches!(stream_type.as_str(), "Web" | "Custom") {
            return Err(invalid(
                f("streamType"),
                "streamType must be Web or Custom (App and Conversation are not supported)",
            ));
        }
        let session_type = c.session_type.unwrap_or_else(|| "web".into());
        if session_type != "web" {
            return Err(invalid(f("sessionType"), "sessionType must be web"));
        }
        if let Some(n) = &c.event_name {
            crate::web_event::EventName::parse(n).map_err(|r| invalid(f("eventName"), r.message))?;
        }
        event_conditions.push(EventCondition {
            key,
            values,
            operator,
            stream_type,
            session_type,
            event_name: c.event_name,
        });
    }

    let quantile_conditions = req.trigger_with_outcome_quantile_conditions.unwrap_or_default();
    for (i, q) in quantile_conditions.iter().enumerate() {
        let f = |n: &str| format!("triggerWithOutcomeQuantileConditions[{i}].{n}");
        if q.outcome_id.trim().is_empty() {
            return Err(missing(&f("outcomeId")));
        }
        if !(0.0..=1.0).contains(&q.max_quantile_threshold) {
            return Err(invalid(f("maxQuantileThreshold"), "maxQuantileThreshold must be between 0 and 1"));
        }
        if let Some(fb) = q.fallback_quantile_threshold
            && !(0.0..=1.0).contains(&fb)
        {
            return Err(invalid(f("fallbackQuantileThreshold"), "fallbackQuantileThreshold must be between 0 and 1"));
        }
    }
    if segments.is_empty() && event_conditions.is_empty() && quantile_conditions.is_empty() {
        return Err(invalid(
            "triggerWithSegments",
            "an action map needs a trigger: triggerWithSegments, triggerWithEventConditions or triggerWithOutcomeQuantileConditions",
        ));
    }

    let mut page_url_conditions = Vec::new();
    for (i, c) in req.page_url_conditions.unwrap_or_default().into_iter().enumerate() {
        let values = parse_values(&format!("pageUrlConditions[{i}].values"), c.values)?;
        let operator = parse_operator(&format!("pageUrlConditions[{i}].operator"), c.operator.as_deref())?;
        page_url_conditions.push(UrlCondition { values, operator });
    }

    let activation = match req.activation {
        None => Activation { activation_type: ActivationType::Immediate, delay_in_seconds: None },
        Some(a) => {
            let t = a.activation_type.as_deref().ok_or_else(|| missing("activation.type"))?;
            let activation_type = ActivationType::parse(t).ok_or_else(|| {
                invalid("activation.type", format!("activation.type {t:?} is not immediate, delay or on-next-session"))
            })?;
            let delay = match activation_type {
                ActivationType::Delay => {
                    let d = a.delay_in_seconds.ok_or_else(|| missing("activation.delayInSeconds"))?;
                    if !(1..=86_400).contains(&d) {
                        return Err(invalid("activation.delayInSeconds", "delayInSeconds must be 1 to 86400"));
                    }
                    Some(d)
                }
                _ => None,
            };
            Activation { activation_type, delay_in_seconds: delay }
        }
    };

    let weight = req.weight.unwrap_or(2);
    if !(1..=3).contains(&weight) {
        return Err(invalid("weight", "weight must be 1 (low), 2 (medium) or 3 (high)"));
    }

    let a = req.action.ok_or_else(|| missing("action"))?;
    let mt = a.media_type.as_deref().ok_or_else(|| missing("action.mediaType"))?;
    let media_type = match mt {
        "webchat" => MediaType::Webchat,
        "webMessagingOffer" => MediaType::WebMessagingOffer,
        "contentOffer" => MediaType::ContentOffer,
        other => {
            return Err(invalid(
                "action.mediaType",
                format!("action.mediaType {other:?} is not supported; use webchat, webMessagingOffer or contentOffer"),
            ));
        }
    };
    let action = match media_type {
        MediaType::ContentOffer => {
            let c = a.content_offer.ok_or_else(|| missing("action.contentOffer"))?;
            for (name, v, max) in [
                ("title", &c.title, 255),
                ("headline", &c.headline, 255),
                ("body", &c.body, 4096),
                ("imageAltText", &c.image_alt_text, 255),
            ] {
                if let Some(v) = v {
                    check_text(&format!("action.contentOffer.{name}"), v, max)?;
                }
            }
            if c.title.is_none() && c.headline.is_none() && c.body.is_none() && c.image_url.is_none() {
                return Err(invalid("action.contentOffer", "a content offer needs a title, headline, body or image"));
            }
            if !matches!(c.display_mode.as_str(), "Modal" | "Overlay" | "Toast") {
                return Err(invalid("action.contentOffer.displayMode", "displayMode must be Modal, Overlay or Toast"));
            }
            if !matches!(
                c.layout_mode.as_str(),
                "TextOnly" | "ImageOnly" | "LeftText" | "RightText" | "TopText" | "BottomText"
            ) {
                return Err(invalid(
                    "action.contentOffer.layoutMode",
                    "layoutMode must be TextOnly, ImageOnly, LeftText, RightText, TopText or BottomText",
                ));
            }
            if let Some(u) = &c.image_url {
                web_url("action.contentOffer.imageUrl", u)?;
            }
            if let Some(cta) = &c.call_to_action {
                web_url("action.contentOffer.callToAction.url", &cta.url)?;
                if let Some(t) = &cta.text {
                    check_text("action.contentOffer.callToAction.text", t, 255)?;
                }
                if let Some(t) = &cta.target
                    && !matches!(t.as_str(), "Blank" | "Self")
                {
                    return Err(invalid("action.contentOffer.callToAction.target", "target must be Blank or Self"));
                }
            }
            ActionMapAction { media_type, web_messaging_offer_fields: None, content_offer: Some(c) }
        }
        _ => {
            if let Some(t) = a.web_messaging_offer_fields.as_ref().and_then(|f| f.offer_text.as_ref()) {
                check_text("action.webMessagingOfferFields.offerText", t, 1024)?;
            }
            ActionMapAction {
                media_type,
                web_messaging_offer_fields: a.web_messaging_offer_fields,
                content_offer: None,
            }
        }
    };

    let date = |field: &str, v: Option<String>| -> Result<Option<Timestamp>, Rejection> {
        match v {
            None => Ok(None),
            Some(s) => Timestamp::parse(&s).map(Some).ok_or_else(|| {
                Rejection::at(ErrorCode::InvalidDate, field, format!("{field} must be an ISO-8601 date-time"))
            }),
        }
    };
    let start_date = date("startDate", req.start_date)?;
    let end_date = date("endDate", req.end_date)?;
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e <= s
    {
        return Err(invalid("endDate", "endDate must be after startDate"));
    }
    if let Some(s) = &req.schedule {
        if s.windows.is_empty() || s.windows.len() > 50 {
            return Err(invalid("schedule.windows", "a schedule needs 1 to 50 windows"));
        }
        if !(-14 * 60..=14 * 60).contains(&s.utc_offset_minutes) {
            return Err(invalid("schedule.utcOffsetMinutes", "utcOffsetMinutes must be within ±840"));
        }
        for (i, w) in s.windows.iter().enumerate() {
            if w.days.is_empty() || w.days.iter().any(|d| !(1..=7).contains(d)) {
                return Err(invalid(format!("schedule.windows[{i}].days"), "days are 1 (Monday) to 7 (Sunday)"));
            }
            match (minutes_of(&w.start_time), minutes_of(&w.end_time)) {
                (Some(a), Some(b)) if a < b => {}
                _ => {
                    return Err(invalid(
                        format!("schedule.windows[{i}]"),
                        "startTime and endTime are HH:MM with startTime before endTime",
                    ));
                }
            }
        }
    }

    Ok(ActionMap {
        self_uri: format!("/api/v2/journey/actionmaps/{}", meta.id),
        id: meta.id,
        version: meta.version,
        is_active: req.is_active.unwrap_or(true),
        display_name: display_name.to_string(),
        trigger_with_segments: segments,
        trigger_with_event_conditions: event_conditions,
        trigger_with_outcome_quantile_conditions: quantile_conditions,
        page_url_conditions,
        activation,
        weight,
        action,
        ignore_frequency_cap: req.ignore_frequency_cap.unwrap_or(false),
        schedule: req.schedule,
        start_date,
        end_date,
        created_date: meta.created,
        modified_date: meta.modified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn meta() -> ActionMapMeta {
        let t = Timestamp::from_unix_millis(1_800_000_000_000);
        ActionMapMeta { id: "m1".into(), version: 1, created: t, modified: t }
    }

    fn parse(v: serde_json::Value) -> Result<ActionMap, Rejection> {
        parse_action_map(serde_json::from_value(v).unwrap(), meta())
    }

    fn chat_map() -> serde_json::Value {
        json!({
            "displayName": "Help with checkout",
            "triggerWithEventConditions": [{"key": "page.pathname", "values": ["/checkout"], "operator": "startsWith",
                "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"}],
            "pageUrlConditions": [{"values": ["/checkout"], "operator": "containsAny"}],
            "activation": {"type": "delay", "delaySeconds": 5},
            "weight": 3,
            "action": {"mediaType": "webchat", "webMessagingOfferFields": {"offerText": "Need help?"}},
            "startDate": "2026-01-01T00:00:00Z"
        })
    }

    #[test]
    fn a_genesys_action_map_parses_and_round_trips() {
        let m = parse(chat_map()).unwrap();
        assert_eq!(m.activation, Activation { activation_type: ActivationType::Delay, delay_in_seconds: Some(5) });
        assert_eq!(m.weight, 3);
        assert!(m.is_active);
        assert_eq!(m.action.prompt(), "Need help?");
        let wire = serde_json::to_value(&m).unwrap();
        assert_eq!(wire["activation"], json!({"type": "delay", "delayInSeconds": 5}));
        assert_eq!(wire["selfUri"], "/api/v2/journey/actionmaps/m1");
        assert_eq!(wire["startDate"], "2026-01-01T00:00:00.000Z");
        assert!(!wire.to_string().contains("null"));
        let back: ActionMap = serde_json::from_value(wire).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn bad_maps_name_the_field() {
        let cases = [
            (json!({"displayName": ""}), "displayName"),
            (json!({"displayName": "x", "action": {"mediaType": "webchat"}}), "triggerWithSegments"),
            (json!({"displayName": "x", "triggerWithSegments": ["s"]}), "action"),
            (
                json!({"displayName": "x", "triggerWithSegments": ["s"], "action": {"mediaType": "architectFlow"}}),
                "action.mediaType",
            ),
            (
                json!({"displayName": "x", "triggerWithSegments": ["s"], "weight": 9, "action": {"mediaType": "webchat"}}),
                "weight",
            ),
            (
                json!({"displayName": "x", "triggerWithSegments": ["s"], "action": {"mediaType": "webchat"},
                    "pageUrlConditions": [{"values": ["/a"], "operator": "like"}]}),
                "pageUrlConditions[0].operator",
            ),
            (
                json!({"displayName": "x", "triggerWithEventConditions": [{"key": "cookie", "values": ["a"], "operator": "equal"}],
                    "action": {"mediaType": "webchat"}}),
                "triggerWithEventConditions[0].key",
            ),
            (
                json!({"displayName": "x", "triggerWithSegments": ["s"], "action": {"mediaType": "contentOffer",
                    "contentOffer": {"title": "t", "displayMode": "Modal", "layoutMode": "TextOnly",
                    "callToAction": {"url": "javascript:alert(1)"}}}}),
                "action.contentOffer.callToAction.url",
            ),
            (
                json!({"displayName": "x", "triggerWithSegments": ["s"], "action": {"mediaType": "webchat"},
                    "activation": {"type": "delay"}}),
                "activation.delayInSeconds",
            ),
            (
                json!({"displayName": "x", "triggerWithSegments": ["s"], "action": {"mediaType": "webchat"},
                    "startDate": "2026-02-01T00:00:00Z", "endDate": "2026-01-01T00:00:00Z"}),
                "endDate",
            ),
        ];
        for (v, field) in cases {
            let r = parse(v.clone()).expect_err(&v.to_string());
            assert_eq!(r.field.as_deref(), Some(field), "{v}: {r:?}");
        }
    }

    #[test]
    fn operators_follow_genesys_semantics() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Operator::ContainsAll.matches("/shop/cart", &v(&["shop", "cart"])));
        assert!(!Operator::ContainsAll.matches("/shop", &v(&["shop", "cart"])));
        assert!(Operator::NotContainsAny.matches("/home", &v(&["shop", "cart"])));
        assert!(Operator::Equal.matches("b", &v(&["a", "b"])));
        assert!(Operator::NotEqual.matches("c", &v(&["a", "b"])));
        assert!(Operator::GreaterThan.matches("10", &v(&["9.5"])));
        assert!(!Operator::GreaterThan.matches("ten", &v(&["9"])));
        assert!(Operator::LessThanOrEqual.matches("3", &v(&["3"])));
        assert!(Operator::EndsWith.matches("/a/checkout", &v(&["/checkout"])));
    }

    #[test]
    fn weekly_schedule_uses_the_local_weekday_and_time() {
        let s = WeeklySchedule {
            utc_offset_minutes: 540,
            windows: vec![ScheduleWindow {
                days: vec![1, 2, 3, 4, 5],
                start_time: "09:00".into(),
                end_time: "18:00".into(),
            }],
        };
        // 2026-11-23 is a Monday. 01:00Z = 10:00 in UTC+9.
        let monday_10 = Timestamp::parse("2026-11-23T01:00:00Z").unwrap();
        assert!(s.contains(monday_10));
        let monday_19 = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        assert!(!s.contains(monday_19));
        let sunday_10 = Timestamp::parse("2026-11-22T01:00:00Z").unwrap();
        assert!(!s.contains(sunday_10));
    }

    proptest! {
        #[test]
        fn negated_operators_are_complements(actual in "[a-c/]{0,8}", values in proptest::collection::vec("[a-c/]{1,3}", 1..4)) {
            prop_assert_eq!(Operator::ContainsAll.matches(&actual, &values), !Operator::NotContainsAll.matches(&actual, &values));
            prop_assert_eq!(Operator::ContainsAny.matches(&actual, &values), !Operator::NotContainsAny.matches(&actual, &values));
            prop_assert_eq!(Operator::Equal.matches(&actual, &values), !Operator::NotEqual.matches(&actual, &values));
        }

        #[test]
        fn parsing_never_panics(v in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(req) = serde_json::from_slice::<ActionMapRequest>(&v) {
                let _ = parse_action_map(req, meta());
            }
        }
    }
}
