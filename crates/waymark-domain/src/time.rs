//! Instants in UTC with millisecond precision, and the one wire format for them.
//!
//! Waymark emits `yyyy-MM-ddTHH:mm:ss.mmmZ` (what the Genesys SDKs document) and accepts any RFC 3339 form,
//! including `+00:00` offsets, microseconds, and the naive (offset-less) strings the Python SDK sends.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset, format_description::well_known::Rfc3339};

/// Milliseconds since the Unix epoch, UTC. Ordered, cheap to copy and to store as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_unix_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    pub fn plus_secs(self, s: i64) -> Self {
        self.plus_millis(s.saturating_mul(1000))
    }

    pub fn minus_secs(self, s: i64) -> Self {
        self.plus_millis(-s.saturating_mul(1000))
    }

    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    pub fn from_offset_datetime(dt: OffsetDateTime) -> Self {
        Timestamp((dt.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Parse an ISO-8601 date-time. Offsets are converted to UTC; a string with no offset is taken as UTC.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.len() > 64 {
            return None;
        }
        if let Ok(dt) = OffsetDateTime::parse(s, &Rfc3339) {
            return Some(Self::from_offset_datetime(dt));
        }
        // RFC 3339 requires 'T' and an offset; accept a lowercase 'z', a space separator and naive strings.
        let normalized = s.replacen(' ', "T", 1).replace('z', "Z");
        if let Ok(dt) = OffsetDateTime::parse(&normalized, &Rfc3339) {
            return Some(Self::from_offset_datetime(dt));
        }
        let naive = format!("{normalized}Z");
        if let Ok(dt) = OffsetDateTime::parse(&naive, &Rfc3339) {
            return Some(Self::from_offset_datetime(dt));
        }
        let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        PrimitiveDateTime::parse(&normalized, &fmt)
            .ok()
            .map(|p| Self::from_offset_datetime(p.assume_offset(UtcOffset::UTC)))
    }

    /// `yyyy-MM-ddTHH:mm:ss.mmmZ`.
    pub fn to_iso(self) -> String {
        let dt =
            OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            dt.month() as u8,
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        )
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_iso())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_iso())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("not an ISO-8601 date-time: {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_clients_send() {
        let expect = Timestamp::parse("2026-11-24T10:00:00.000Z").unwrap();
        for s in [
            "2026-11-24T10:00:00Z",
            "2026-11-24T10:00:00.000000+00:00",
            "2026-11-24T11:00:00+01:00",
            "2026-11-24T10:00:00",
            "2026-11-24 10:00:00z",
        ] {
            assert_eq!(Timestamp::parse(s), Some(expect), "{s}");
        }
        assert_eq!(expect.to_iso(), "2026-11-24T10:00:00.000Z");
        assert!(Timestamp::parse("yesterday").is_none());
        assert!(Timestamp::parse("2026-13-01T00:00:00Z").is_none());
    }

    #[test]
    fn round_trips_millis() {
        let t = Timestamp::from_unix_millis(1_790_000_000_123);
        assert_eq!(Timestamp::parse(&t.to_iso()), Some(t));
    }
}
