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
        match self.iso_bytes() {
            Some(b) => String::from_utf8_lossy(&b).into_owned(),
            None => self.to_iso_slow(),
        }
    }

    /// The ISO text of a time in years 0–9999, written without the formatting machinery: timestamps are
    /// serialized for every stored and served event and session.
    fn iso_bytes(self) -> Option<[u8; 24]> {
        let ms = self.0;
        let days = ms.div_euclid(86_400_000);
        let in_day = ms.rem_euclid(86_400_000);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let (h, m, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (0..width).rev() {
                b[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, h);
        put(14, 2, m);
        put(17, 2, s);
        put(20, 3, milli);
        Some(b)
    }

    fn to_iso_slow(self) -> String {
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
    /// ISO 8601 text; milliseconds since the Unix epoch in formats that are not human-readable.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return s.serialize_i64(self.0);
        }
        if let Some(b) = self.iso_bytes()
            && let Ok(text) = std::str::from_utf8(&b)
        {
            return s.serialize_str(text);
        }
        s.serialize_str(&self.to_iso_slow())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return i64::deserialize(d).map(Timestamp);
        }
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

    proptest::proptest! {
        /// The hand-written ISO formatter agrees with the `time` crate for every millisecond of years 0–9999.
        #[test]
        fn fast_iso_text_equals_the_time_crate(ms in -62_167_219_200_000i64..253_402_300_799_999i64) {
            let t = Timestamp::from_unix_millis(ms);
            proptest::prop_assert_eq!(t.to_iso(), t.to_iso_slow());
            proptest::prop_assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{}\"", t.to_iso_slow()));
        }
    }

    #[test]
    fn iso_text_at_the_edges() {
        for ms in [0, -1, 951_782_400_000, 4_107_542_399_999, -62_167_219_200_000, 253_402_300_799_999] {
            let t = Timestamp::from_unix_millis(ms);
            assert_eq!(t.to_iso(), t.to_iso_slow(), "{ms}");
        }
    }
}
