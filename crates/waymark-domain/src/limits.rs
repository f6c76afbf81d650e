//! Limits on what the outside world may send. One struct, so a deployment can configure every number.

use serde::{Deserialize, Serialize};

/// Input limits (SPEC §12). All are configurable; the defaults are the product's documented numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case")]
pub struct InputLimits {
    /// Bytes per tracking request body.
    pub max_body_bytes: usize,
    /// Events in one batch request.
    pub max_events_per_batch: usize,
    /// Custom attributes (and traits) per event.
    pub max_attributes: usize,
    /// Characters in an attribute key.
    pub max_attribute_key_chars: usize,
    /// Bytes in an attribute value.
    pub max_attribute_value_bytes: usize,
    /// Bytes in a URL (page or referrer).
    pub max_url_bytes: usize,
    /// Bytes in a page title, search query or other free text.
    pub max_text_bytes: usize,
    /// Oldest accepted event, in seconds before now.
    pub max_event_age_secs: i64,
    /// Accepted clock skew into the future, in seconds.
    pub max_clock_skew_secs: i64,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            max_body_bytes: 64 * 1024,
            max_events_per_batch: 100,
            max_attributes: 50,
            max_attribute_key_chars: 128,
            max_attribute_value_bytes: 1024,
            max_url_bytes: 4096,
            max_text_bytes: 1024,
            max_event_age_secs: 3600,
            max_clock_skew_secs: 120,
        }
    }
}
