//! The demo organisation's segment and outcome definitions, as Genesys `JourneySegmentRequest` and
//! `OutcomeRequest` JSON bodies (what `POST /api/v2/journey/segments` and `/outcomes` take). They describe the
//! simulated shop: the outcomes are exactly the funnels the simulator's visitors complete.

use crate::DemoOutcome;
use serde_json::{Value, json};

fn web_pattern(criteria: Value, event_name: Option<&str>, count: u32) -> Value {
    let mut p = json!({"criteria": criteria, "count": count, "streamType": "Web", "sessionType": "web"});
    if let Some(n) = event_name {
        p["eventName"] = json!(n);
    }
    p
}

/// The `OutcomeRequest` of a demo outcome.
pub fn outcome_request(o: DemoOutcome) -> Value {
    match o {
        DemoOutcome::Purchase => json!({
            "displayName": o.display_name(),
            "description": "The visitor completed an order (reached /order/complete).",
            "isActive": true,
            "isPositive": true,
            "journey": {"patterns": [web_pattern(
                json!([{"key": "page.url", "values": ["/order/complete"], "operator": "containsAll", "shouldIgnoreCase": true}]),
                Some("page_viewed"), 1)]},
            "associatedValueField": {"dataType": "Number", "name": "attributes.orderTotal.value"},
        }),
        DemoOutcome::SupportContact => json!({
            "displayName": o.display_name(),
            "description": "The visitor submitted the support contact form.",
            "isActive": true,
            "isPositive": false,
            "journey": {"patterns": [web_pattern(
                json!([{"key": "page.pathname", "values": ["/support/contact"], "operator": "equal"}]),
                Some("form_submitted"), 1)]},
        }),
        DemoOutcome::NewsletterSignup => json!({
            "displayName": o.display_name(),
            "description": "The visitor signed up for the weekly newsletter.",
            "isActive": true,
            "isPositive": true,
            "journey": {"patterns": [web_pattern(
                json!([{"key": "attributes.list.value", "values": ["weekly"], "operator": "equal"}]),
                Some("newsletter_signup"), 1)]},
        }),
    }
}

/// Every demo outcome's `OutcomeRequest`.
pub fn demo_outcomes() -> Vec<Value> {
    DemoOutcome::ALL.iter().map(|&o| outcome_request(o)).collect()
}

/// The demo segments' `JourneySegmentRequest`s.
pub fn demo_segments() -> Vec<Value> {
    vec![
        json!({
            "displayName": "Mobile visitor",
            "description": "Browsing from a phone.",
            "color": "#2f80ed",
            "isActive": true,
            "shouldDisplayToAgent": true,
            "context": {"patterns": [{"criteria": [
                {"key": "device.category", "values": ["mobile"], "operator": "equal", "shouldIgnoreCase": true, "entityType": "visit"}]}]},
        }),
        json!({
            "displayName": "Email campaign",
            "description": "Arrived from one of our newsletters.",
            "color": "#9b51e0",
            "isActive": true,
            "shouldDisplayToAgent": true,
            "context": {"patterns": [{"criteria": [
                {"key": "mktCampaign.medium", "values": ["email"], "operator": "equal", "shouldIgnoreCase": true, "entityType": "visit"}]}]},
        }),
        json!({
            "displayName": "Tent shopper",
            "description": "Looked at tents at least twice.",
            "color": "#27ae60",
            "isActive": true,
            "shouldDisplayToAgent": true,
            "journey": {"patterns": [web_pattern(
                json!([{"key": "page.url", "values": ["tent"], "operator": "containsAll", "shouldIgnoreCase": true}]),
                Some("page_viewed"), 2)]},
        }),
        json!({
            "displayName": "Cart builder",
            "description": "Added something to the cart.",
            "color": "#f2994a",
            "isActive": true,
            "shouldDisplayToAgent": true,
            "journey": {"patterns": [web_pattern(
                json!([{"key": "page.pathname", "values": ["/p/"], "operator": "startsWith"}]),
                Some("add_to_cart"), 1)]},
        }),
        json!({
            "displayName": "Needs help",
            "description": "Read at least two help pages.",
            "color": "#eb5757",
            "isActive": true,
            "shouldDisplayToAgent": true,
            "journey": {"patterns": [web_pattern(
                json!([{"key": "page.pathname", "values": ["/help"], "operator": "startsWith"}]),
                Some("page_viewed"), 2)]},
        }),
        json!({
            "displayName": "Loyal customer",
            "description": "Came back from the loyalty e-mail (kept for 30 days).",
            "color": "#f2c94c",
            "isActive": true,
            "shouldDisplayToAgent": true,
            "assignmentExpirationDays": 30,
            "context": {"patterns": [{"criteria": [
                {"key": "mktCampaign.name", "values": ["loyalty"], "operator": "equal", "shouldIgnoreCase": true, "entityType": "visit"}]}]},
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_have_the_genesys_request_shape() {
        for o in demo_outcomes() {
            assert!(o["displayName"].is_string());
            for p in o["journey"]["patterns"].as_array().unwrap() {
                assert!(p["count"].as_u64().unwrap() >= 1);
                assert_eq!(p["streamType"], "Web");
                assert!(!p["criteria"].as_array().unwrap().is_empty());
            }
        }
        let segments = demo_segments();
        let names: Vec<&str> = segments.iter().map(|s| s["displayName"].as_str().unwrap()).collect();
        let mut dedup = names.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(names.len(), dedup.len());
    }
}
