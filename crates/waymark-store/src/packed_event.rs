//! The packed body of a stored web event: the embedded store's row form of the compact body
//! ([`crate::ingest::encode_compact_web_event`]), a few bytes of header and the request's fields compressed
//! with LZ4 against a built-in dictionary of the fields' JSON shape.
//!
//! A web event's request-side fields (name, page, attributes, traits, search) are ~70 % of its compact JSON
//! body, and most of them are member names and values that repeat within the body (the page URL's host in
//! `domain` and `hostname`, its path in `pathname` and `breadcrumb`). Compressed against the dictionary, the
//! benchmark's 267-byte fields take 95 bytes. The request's thread compresses them ([`PackedFields::of`]), so
//! the single SQLite writer only adds the header: the smaller row shrinks what the writer and the checkpoint
//! thread copy per event (in batches, 80-byte bodies took the checkpoint thread from 2.5 to 0.9 µs and the
//! writer from 6.9 to 6.0 µs per event).
//!
//! Layout of a packed body (the first byte tells it apart from a JSON body, which starts with `{`):
//!
//! ```text
//! 0x01                          format 1 (and dictionary 1)
//! flags                         bit 0: authenticated; bit 1: customer id present; bit 2: customer id type present
//! varint totalEventCount        (LEB128, unsigned)
//! varint totalPageviewCount
//! [varint n, n bytes]           customerId, as its JSON string (quotes and escapes included), if present
//! [varint n, n bytes]           customerIdType, likewise, if present
//! varint m, LZ4 block           the fields' JSON (members without braces, m bytes) compressed against DICTIONARY_1
//! ```
//!
//! [`unpack_web_event`] gives back exactly the compact JSON body the row would otherwise hold. A dictionary
//! is never changed once released: a new one comes with a new format byte, and old rows keep theirs.

use crate::{StoreError, StoreResult};
use std::fmt::Write as _;

/// First byte of a packed body in format 1.
pub const FORMAT_1: u8 = 0x01;

/// The dictionary of format 1: the request-side fields' JSON as `WebFields` serializes them, each member in
/// its order, with common values. LZ4 finds matches in it at any offset; its last 64 KiB would count.
const DICTIONARY_1: &[u8] = br#""searchQuery":"","traits":{"email":{"dataType":"string","value":"@gmail.com"},"phone":{"dataType":"string","value":"+1"},"givenName":{"dataType":"string","value":""},"familyName":{"dataType":"string","value":""}},"attributes":{"":{"dataType":"boolean","value":"true"},"":{"dataType":"boolean","value":"false"},"":{"dataType":"integer","value":"1"},"":{"dataType":"string","value":""}},"eventName":"form_submitted","page":{"url":"http://www.","title":"","domain":".co.uk","fragment":"","hostname":"www.","keywords":"","lang":"en-US","pathname":"/index.html","queryString":"?","breadcrumb":[]},"referrer":{"url":"https://www.","domain":".com","hostname":"www.","pathname":"/","queryString":"","fragment":"","name":"","medium":"internal"},"attributes":{},"traits":{},"searchQuery":"","eventName":"page_viewed","page":{"url":"https://www.","title":"","domain":".com","hostname":"www.","pathname":"/products/","breadcrumb":["products",""]},"attributes":{"":{"dataType":"number","value":""},"":{"dataType":"string","value":""}},"traits":{}"#;

/// The largest fields a packed body may hold (a request body is at most a few hundred KiB): a corrupt length
/// cannot make a reader allocate more, and longer fields are not packed.
const MAX_FIELDS: usize = 4 << 20;

/// A web event's request-side fields, compressed (on the request's thread) for a packed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedFields(Box<[u8]>);

impl PackedFields {
    /// Compress `fields` (the members' JSON without braces).
    pub fn of(fields: &str) -> StoreResult<PackedFields> {
        let json = fields.as_bytes();
        if json.len() > MAX_FIELDS {
            // Readers refuse longer fields; such an event is stored as JSON.
            return Err(StoreError::Internal(format!(
                "a web event's fields of {} bytes are too long to pack",
                json.len()
            )));
        }
        let mut out = Vec::with_capacity(5 + lz4_flex::block::get_maximum_output_size(json.len()));
        push_varint(&mut out, json.len() as u64);
        let at = out.len();
        out.resize(at + lz4_flex::block::get_maximum_output_size(json.len()), 0);
        let n = lz4_flex::block::compress_into_with_dict(json, &mut out[at..], DICTIONARY_1)
            .map_err(|e| StoreError::Internal(format!("compress a web event's fields: {e}")))?;
        out.truncate(at + n);
        Ok(PackedFields(out.into_boxed_slice()))
    }

    /// The fields' JSON back.
    pub fn json(&self) -> StoreResult<String> {
        let mut at = 0;
        unpack_fields(&self.0, &mut at)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the packed body's header holds besides the fields (the writer's part of the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedHeader<'a> {
    pub total_event_count: i64,
    pub total_pageview_count: i64,
    pub authenticated: bool,
    /// `customerId` as a JSON string (quoted, escaped).
    pub customer_id_json: Option<&'a str>,
    /// `customerIdType` as a JSON string.
    pub customer_id_type_json: Option<&'a str>,
}

/// A packed body: `header`, then `fields`. `None` when a count is negative (it cannot be a varint); the caller
/// then stores the JSON body.
pub fn pack_web_event(header: &PackedHeader<'_>, fields: &PackedFields) -> Option<Vec<u8>> {
    let events = u64::try_from(header.total_event_count).ok()?;
    let views = u64::try_from(header.total_pageview_count).ok()?;
    let (id, id_type) = (header.customer_id_json, header.customer_id_type_json);
    let mut out = Vec::with_capacity(24 + id.map_or(0, str::len) + id_type.map_or(0, str::len) + fields.0.len());
    out.push(FORMAT_1);
    out.push(u8::from(header.authenticated) | u8::from(id.is_some()) << 1 | u8::from(id_type.is_some()) << 2);
    push_varint(&mut out, events);
    push_varint(&mut out, views);
    for text in [id, id_type].into_iter().flatten() {
        push_varint(&mut out, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(&fields.0);
    Some(out)
}

/// The compact JSON body (`{"customerId":…,"customerIdType":…,"webEvent":{…}}`) a packed body holds.
pub fn unpack_web_event(packed: &[u8]) -> StoreResult<String> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("packed web event: {what}"));
    let (&format, rest) = packed.split_first().ok_or_else(|| corrupt("empty"))?;
    if format != FORMAT_1 {
        return Err(corrupt(&format!("unknown format {format:#04x}")));
    }
    let (&flags, _) = rest.split_first().ok_or_else(|| corrupt("no flags"))?;
    if flags & !0b111 != 0 {
        return Err(corrupt(&format!("unknown flags {flags:#04x}")));
    }
    let mut at = 2;
    let events = read_varint(packed, &mut at).ok_or_else(|| corrupt("event count"))?;
    let views = read_varint(packed, &mut at).ok_or_else(|| corrupt("page view count"))?;
    let mut json = String::with_capacity(packed.len() * 3 + 128);
    json.push('{');
    for (bit, name) in [(1, "customerId"), (2, "customerIdType")] {
        if flags >> bit & 1 == 1 {
            let n = read_varint(packed, &mut at).ok_or_else(|| corrupt(name))?;
            let text = usize::try_from(n)
                .ok()
                .and_then(|n| packed.get(at..at.checked_add(n)?))
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| corrupt(name))?;
            at += text.len();
            let _ = write!(json, "\"{name}\":{text},");
        }
    }
    let _ = write!(
        json,
        r#""webEvent":{{"totalEventCount":{events},"totalPageviewCount":{views},"authenticated":{},"#,
        flags & 1 == 1
    );
    json.push_str(&unpack_fields(packed, &mut at)?);
    json.push_str("}}");
    Ok(json)
}

/// The fields' JSON at `at` (their length, then the LZ4 block to the end).
fn unpack_fields(packed: &[u8], at: &mut usize) -> StoreResult<String> {
    let corrupt = |what: String| StoreError::Corrupt(format!("packed web event fields: {what}"));
    let len = read_varint(packed, at)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= MAX_FIELDS)
        .ok_or_else(|| corrupt("bad length".into()))?;
    let block = packed.get(*at..).unwrap_or_default();
    let bytes = lz4_flex::block::decompress_with_dict(block, len, DICTIONARY_1).map_err(|e| corrupt(e.to_string()))?;
    // A block cut short can decode to fewer bytes without an error.
    if bytes.len() != len {
        return Err(corrupt(format!("{} of {len} bytes", bytes.len())));
    }
    *at = packed.len();
    String::from_utf8(bytes).map_err(|e| corrupt(e.to_string()))
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        n |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BENCH_FIELDS: &str = r#""eventName":"page_viewed","page":{"url":"https://shop.example/products/0","title":"Red shoes","domain":"shop.example","hostname":"shop.example","pathname":"/products/0","breadcrumb":["products","0"]},"attributes":{"cart":{"dataType":"number","value":"2"}},"traits":{}"#;

    fn header(id: Option<&str>) -> PackedHeader<'_> {
        PackedHeader {
            total_event_count: 7,
            total_pageview_count: 300,
            authenticated: true,
            customer_id_json: id,
            customer_id_type_json: Some("\"cookie\""),
        }
    }

    #[test]
    fn a_packed_body_gives_back_the_compact_json_body() {
        let fields = PackedFields::of(BENCH_FIELDS).unwrap();
        assert!(fields.len() < 110, "the benchmark's fields pack small: {} bytes", fields.len());
        let body = pack_web_event(&header(Some("\"be7f-11-0\"")), &fields).unwrap();
        assert_eq!(
            unpack_web_event(&body).unwrap(),
            format!(
                r#"{{"customerId":"be7f-11-0","customerIdType":"cookie","webEvent":{{"totalEventCount":7,"totalPageviewCount":300,"authenticated":true,{BENCH_FIELDS}}}}}"#
            )
        );
        assert!(body.len() < 130, "{} bytes", body.len());
    }

    #[test]
    fn fields_longer_than_a_reader_accepts_are_not_packed() {
        let long = format!("\"eventName\":\"{}\"", "x".repeat(MAX_FIELDS));
        assert!(PackedFields::of(&long).is_err());
        let longest = "x".repeat(MAX_FIELDS);
        assert_eq!(PackedFields::of(&longest).unwrap().json().unwrap(), longest);
    }

    #[test]
    fn negative_counts_are_not_packed() {
        let fields = PackedFields::of(BENCH_FIELDS).unwrap();
        let h = PackedHeader { total_event_count: -1, ..header(None) };
        assert_eq!(pack_web_event(&h, &fields), None);
    }

    #[test]
    fn damaged_bodies_are_errors_not_panics() {
        let fields = PackedFields::of(BENCH_FIELDS).unwrap();
        let body = pack_web_event(&header(Some("\"c\"")), &fields).unwrap();
        for cut in 0..body.len() {
            assert!(unpack_web_event(&body[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = body.clone();
        bad[0] = b'{';
        assert!(unpack_web_event(&bad).is_err());
        let mut bad = body.clone();
        bad[1] = 0xff;
        assert!(unpack_web_event(&bad).is_err());
        assert!(
            unpack_web_event(&[FORMAT_1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]).is_err()
        );
    }

    proptest! {
        #[test]
        fn any_fields_and_header_round_trip(
            fields in "\\PC{0,600}",
            events in 0i64..i64::MAX,
            views in 0i64..i64::MAX,
            authenticated in any::<bool>(),
            id in proptest::option::of("\\PC{0,40}"),
            id_type in proptest::option::of("[a-z]{0,12}"),
        ) {
            let packed = PackedFields::of(&fields).unwrap();
            prop_assert_eq!(packed.json().unwrap(), fields.clone());
            let id = id.map(|s| serde_json::to_string(&s).unwrap());
            let id_type = id_type.map(|s| serde_json::to_string(&s).unwrap());
            let h = PackedHeader {
                total_event_count: events,
                total_pageview_count: views,
                authenticated,
                customer_id_json: id.as_deref(),
                customer_id_type_json: id_type.as_deref(),
            };
            let body = pack_web_event(&h, &packed).unwrap();
            let mut expected = String::from("{");
            if let Some(id) = &id { expected += &format!("\"customerId\":{id},"); }
            if let Some(t) = &id_type { expected += &format!("\"customerIdType\":{t},"); }
            expected += &format!(
                r#""webEvent":{{"totalEventCount":{events},"totalPageviewCount":{views},"authenticated":{authenticated},{fields}}}}}"#
            );
            prop_assert_eq!(unpack_web_event(&body).unwrap(), expected);
        }

        #[test]
        fn any_bytes_unpack_to_an_answer_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut with_format = vec![FORMAT_1];
            with_format.extend_from_slice(&bytes);
            let _ = unpack_web_event(&bytes);
            let _ = unpack_web_event(&with_format);
        }
    }
}
