//! Outcome definitions: goals a visit can achieve (e.g. an order page viewed), in the Genesys `Outcome` wire
//! shape, written in the same pattern language as segments ([`crate::segment`]). This module owns parsing
//! (`OutcomeRequest`, `PatchOutcome`) and the limits; achievement detection lives in [`crate::rules`].
//! Outcomes are achieved once per session.

use crate::segment::{
    Context, Journey, display_name, invalid, merge_patch, object, opt_bool, opt_text, parse_context, parse_journey,
    req_str,
};
use crate::{ErrorCode, Rejection, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// At most this many outcomes per organisation (SPEC §6).
pub const MAX_OUTCOMES: usize = 100;

/// `AssociatedValueField.dataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValueType {
    Number,
    Integer,
}

/// `AssociatedValueField`: which event field carries the outcome's value (e.g. the order total), named
/// `attributes.<name>.value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociatedValueField {
    pub data_type: ValueType,
    pub name: String,
}

impl AssociatedValueField {
    /// The custom attribute the value is read from.
    pub fn attribute(&self) -> &str {
        self.name.strip_prefix("attributes.").and_then(|n| n.strip_suffix(".value")).unwrap_or(&self.name)
    }

    /// The value in `text`, if it is one of the declared type.
    pub fn value_of(&self, text: &str) -> Option<f64> {
        let n: f64 = text.trim().parse().ok().filter(|n: &f64| n.is_finite())?;
        match self.data_type {
            ValueType::Number => Some(n),
            ValueType::Integer => (n.fract() == 0.0).then_some(n),
        }
    }
}

/// An outcome, in the Genesys `Outcome` wire shape (also how it is stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeDefinition {
    pub id: String,
    pub is_active: bool,
    pub display_name: String,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub is_positive: bool,
    pub context: Context,
    pub journey: Journey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub associated_value_field: Option<AssociatedValueField>,
    pub self_uri: String,
    pub created_date: Timestamp,
    pub modified_date: Timestamp,
}

impl OutcomeDefinition {
    /// Give a freshly parsed definition its identity: id, version 1, dates.
    pub fn created(mut self, id: impl Into<String>, now: Timestamp) -> Self {
        self.id = id.into();
        self.self_uri = format!("/api/v2/journey/outcomes/{}", self.id);
        self.version = 1;
        self.created_date = now;
        self.modified_date = now;
        self
    }
}

/// Parse an `OutcomeRequest`. An outcome needs at least one journey pattern: it is something a visitor does.
pub fn parse_outcome_request(v: &Value) -> Result<OutcomeDefinition, Rejection> {
    let o = object(v, "")?;
    let display_name = display_name(o)?;
    let description = opt_text(o, "description", 1024)?;
    let is_active = opt_bool(o, "isActive", "isActive")?.unwrap_or(true);
    let is_positive = opt_bool(o, "isPositive", "isPositive")?.unwrap_or(true);
    let context = parse_context(o.get("context"), "context")?;
    let journey = parse_journey(o.get("journey"), "journey")?;
    if journey.patterns.is_empty() {
        return Err(Rejection::at(
            ErrorCode::MissingField,
            "journey.patterns",
            "an outcome needs at least one journey pattern (e.g. page.pathname startsWith /order/complete)",
        ));
    }
    let associated_value_field = match o.get("associatedValueField") {
        None | Some(Value::Null) => None,
        Some(a) => {
            let ao = object(a, "associatedValueField")?;
            let data_type = match req_str(ao, "dataType", "associatedValueField.dataType")? {
                s if s.eq_ignore_ascii_case("number") => ValueType::Number,
                s if s.eq_ignore_ascii_case("integer") => ValueType::Integer,
                _ => {
                    return Err(invalid(
                        "associatedValueField.dataType",
                        "associatedValueField.dataType must be Number or Integer",
                    ));
                }
            };
            let name = req_str(ao, "name", "associatedValueField.name")?;
            let attr = name.strip_prefix("attributes.").and_then(|n| n.strip_suffix(".value"));
            if !attr.is_some_and(|a| !a.is_empty() && a.len() <= 128 && !a.contains('.')) {
                return Err(invalid(
                    "associatedValueField.name",
                    format!(
                        "associatedValueField.name must name a custom attribute as attributes.<name>.value, got {:?}",
                        name.chars().take(64).collect::<String>()
                    ),
                ));
            }
            Some(AssociatedValueField { data_type, name: name.to_string() })
        }
    };
    Ok(OutcomeDefinition {
        id: String::new(),
        is_active,
        display_name,
        version: 0,
        description,
        is_positive,
        context,
        journey,
        associated_value_field,
        self_uri: String::new(),
        created_date: Timestamp::default(),
        modified_date: Timestamp::default(),
    })
}

/// Apply a `PatchOutcome` (same rules as [`crate::segment::apply_patch`]).
pub fn apply_patch(current: &OutcomeDefinition, patch: &Value, now: Timestamp) -> Result<OutcomeDefinition, Rejection> {
    let merged = merge_patch(current, current.version, patch)?;
    let mut next = parse_outcome_request(&merged)?;
    next.id = current.id.clone();
    next.self_uri = current.self_uri.clone();
    next.created_date = current.created_date;
    next.version = current.version + 1;
    next.modified_date = now;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "displayName": "Order placed",
            "isPositive": true,
            "journey": {"patterns": [{
                "criteria": [{"key": "page.pathname", "values": ["/order/complete"], "operator": "startsWith", "shouldIgnoreCase": false}],
                "count": 1, "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"
            }]},
            "associatedValueField": {"dataType": "Number", "name": "attributes.total.value"}
        })
    }

    #[test]
    fn parses_round_trips_and_reads_values() {
        let d = parse_outcome_request(&valid()).unwrap().created("o-1", Timestamp::from_unix_millis(5));
        let wire = serde_json::to_value(&d).unwrap();
        assert_eq!(wire["associatedValueField"], json!({"dataType": "Number", "name": "attributes.total.value"}));
        assert_eq!(wire["selfUri"], "/api/v2/journey/outcomes/o-1");
        assert_eq!(parse_outcome_request(&wire).unwrap().journey, d.journey);
        let f = d.associated_value_field.unwrap();
        assert_eq!(f.attribute(), "total");
        assert_eq!(f.value_of("12.5"), Some(12.5));
        let int = AssociatedValueField { data_type: ValueType::Integer, name: f.name.clone() };
        assert_eq!((int.value_of("12.5"), int.value_of("12")), (None, Some(12.0)));
        assert_eq!(f.value_of("lots"), None);
    }

    #[test]
    fn refusals_point_at_the_bad_field() {
        let mut v = valid();
        v["associatedValueField"]["name"] = json!("total");
        assert_eq!(parse_outcome_request(&v).unwrap_err().field.as_deref(), Some("associatedValueField.name"));
        let mut v = valid();
        v["associatedValueField"]["dataType"] = json!("Text");
        assert_eq!(parse_outcome_request(&v).unwrap_err().field.as_deref(), Some("associatedValueField.dataType"));
        let mut v = valid();
        v["journey"]["patterns"] = json!([]);
        assert_eq!(parse_outcome_request(&v).unwrap_err().field.as_deref(), Some("journey.patterns"));
        let mut v = valid();
        v["journey"]["patterns"][0]["criteria"][0]["operator"] = json!("near");
        assert_eq!(
            parse_outcome_request(&v).unwrap_err().field.as_deref(),
            Some("journey.patterns[0].criteria[0].operator")
        );
    }

    #[test]
    fn patch_checks_version() {
        let d = parse_outcome_request(&valid()).unwrap().created("o-1", Timestamp::from_unix_millis(5));
        let p = apply_patch(&d, &json!({"version": 1, "isPositive": false}), Timestamp::from_unix_millis(9)).unwrap();
        assert_eq!((p.version, p.is_positive), (2, false));
        let e = apply_patch(&p, &json!({"version": 1}), Timestamp::from_unix_millis(9)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
    }
}
