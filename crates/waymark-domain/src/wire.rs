//! Value types shared by the journey model and the Genesys wire format.
//!
//! These are the enrichment results a session and an event carry (browser, device, geolocation, page, campaign,
//! referrer, custom attributes). They serialize in Genesys camelCase, and absent values are **omitted**, never
//! `null`: the official SDK crashes on `null` in an enum field.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `Browser`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Browser {
    pub family: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_height: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_width: Option<i64>,
    pub features_flash: bool,
    pub features_java: bool,
    pub features_pdf: bool,
    pub features_webrtc: bool,
}

/// Device category (`Device.category`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceCategory {
    Desktop,
    Mobile,
    Tablet,
    /// Crawlers and bots. On the Genesys wire this is reported as `other` with `type = "Bot"`.
    #[serde(skip)]
    Bot,
    #[default]
    Other,
}

impl DeviceCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceCategory::Desktop => "desktop",
            DeviceCategory::Mobile => "mobile",
            DeviceCategory::Tablet => "tablet",
            DeviceCategory::Bot => "bot",
            DeviceCategory::Other => "other",
        }
    }

    /// The value on the Genesys wire, whose enum has no `bot`.
    pub fn wire(self) -> DeviceCategory {
        match self {
            DeviceCategory::Bot => DeviceCategory::Other,
            c => c,
        }
    }
}

/// `Device`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    #[serde(serialize_with = "ser_category")]
    pub category: DeviceCategory,
    /// e.g. `iPhone`, `iPad`, `Other`, `Bot`.
    #[serde(rename = "type")]
    pub device_type: String,
    pub is_mobile: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_height: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_density: Option<i64>,
    pub os_family: String,
    pub os_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
}

fn ser_category<S: serde::Serializer>(c: &DeviceCategory, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.wire().as_str())
}

/// `JourneyGeolocation`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Geolocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
    /// `maxmind`, `header` (trusted proxy headers) or `client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl Geolocation {
    pub fn is_empty(&self) -> bool {
        self.country.is_none() && self.locality.is_none() && self.latitude.is_none()
    }
}

/// `JourneyPage`: the page an event happened on, with its URL taken apart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub url: String,
    #[serde(default)]
    pub title: String,
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment: Option<String>,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    pub pathname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_string: Option<String>,
    #[serde(default)]
    pub breadcrumb: Vec<String>,
}

/// `JourneyCampaign`: UTM parameters (case-sensitive values).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl Campaign {
    pub fn is_empty(&self) -> bool {
        *self == Campaign::default()
    }
}

/// Referrer medium (`Referrer.medium`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferrerMedium {
    Internal,
    Search,
    Social,
    Email,
    Paid,
    /// A referrer we cannot classify (Genesys `unknown`); "direct" visits have no referrer at all.
    #[default]
    Unknown,
}

/// `Referrer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    pub url: String,
    pub domain: String,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    pub pathname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub medium: ReferrerMedium,
}

/// `CustomEventAttribute`: a typed custom value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub data_type: String,
    pub value: String,
}

/// Attributes by name, in a stable order.
pub type Attributes = BTreeMap<String, Attribute>;

/// `AddressableEntityRef`: `{id, selfUri}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

impl EntityRef {
    pub fn new(id: impl std::fmt::Display, self_uri_prefix: &str) -> Self {
        let id = id.to_string();
        EntityRef { self_uri: Some(format!("{self_uri_prefix}/{id}")), id }
    }
}

/// A reference with a display name (queues, users, wrap-up codes in Waymark's own extensions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}
