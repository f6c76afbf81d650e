//! The one table of stable wire error codes.
//!
//! Every error Waymark answers with — from the HTTP edge, the domain rules or the store — carries one of these
//! codes. Codes are part of the public contract: never rename one, only add. The HTTP status lives here too so
//! that a code always means the same status everywhere.

use serde::Serialize;

macro_rules! error_codes {
    ($( $variant:ident = ($code:literal, $status:literal) ),* $(,)?) => {
        /// A stable, machine-readable error code (`code` in `{status, code, message}`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $variant ),* }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant ),* ];

            /// The wire spelling of the code.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code ),* }
            }

            /// The HTTP status that goes with the code.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status ),* }
            }
        }
    };
}

error_codes! {
    // Request shape.
    MalformedJson = ("malformed_json", 400),
    InvalidUtf8 = ("invalid_utf8", 400),
    UnsupportedMediaType = ("unsupported_media_type", 415),
    BodyTooLarge = ("body_too_large", 413),
    InvalidField = ("invalid_field", 400),
    MissingField = ("missing_field", 400),
    InvalidQueryParameter = ("invalid_query_parameter", 400),
    InvalidCursor = ("invalid_cursor", 400),
    TooManyEvents = ("too_many_events", 400),
    EmptyBatch = ("empty_batch", 400),
    // Events.
    InvalidEventName = ("invalid_event_name", 400),
    EventTooOld = ("event_too_old", 400),
    EventInFuture = ("event_in_future", 400),
    TooManyAttributes = ("too_many_attributes", 400),
    AttributeTooLong = ("attribute_too_long", 400),
    InvalidUrl = ("invalid_url", 400),
    InvalidCustomerId = ("invalid_customer_id", 400),
    InvalidDate = ("invalid_date", 400),
    ChannelNotInJourney = ("channel_not_in_journey", 400),
    InvalidTransition = ("invalid_transition", 409),
    // Tracking access.
    UnknownDeployment = ("unknown_deployment", 404),
    OriginNotAllowed = ("origin_not_allowed", 403),
    IpExcluded = ("ip_excluded", 403),
    // Auth.
    Unauthenticated = ("unauthenticated", 401),
    InvalidToken = ("invalid_token", 401),
    InvalidCredentials = ("invalid_credentials", 401),
    MissingPermission = ("missing_permission", 403),
    CsrfRejected = ("csrf_rejected", 403),
    // Resources.
    NotFound = ("not_found", 404),
    RouteNotFound = ("route_not_found", 404),
    MethodNotAllowed = ("method_not_allowed", 405),
    Conflict = ("conflict", 409),
    LimitReached = ("limit_reached", 409),
    // Load and availability.
    RateLimited = ("rate_limited", 429),
    TooManyConnections = ("too_many_connections", 429),
    StoreUnavailable = ("store_unavailable", 503),
    Overloaded = ("overloaded", 503),
    Timeout = ("request_timeout", 408),
    Internal = ("internal", 500),
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one piece of input was refused: a code, a human message that says what to do, and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
    /// JSON path of the offending field, e.g. `page.url` or `attributes.cart.value`.
    pub field: Option<String>,
}

impl Rejection {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection { code, message: message.into(), field: None }
    }

    pub fn at(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection { code, message: message.into(), field: Some(field.into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_map_to_error_statuses() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert!(code.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            assert!((400..600).contains(&code.http_status()));
        }
    }
}
