//! A structural fingerprint of any serde value: a 64-bit hash of everything it serializes, field names and
//! the shape of options, sequences and enums included, so that two values hash alike only if they serialize
//! alike (up to the hash's collisions). Used by the embedded store to tell whether a customer row already holds
//! a state ([`crate::sqlite`]).
//!
//! It feeds the hasher directly, with no text or buffer in between: through serde_json a customer state's
//! fingerprint took 7 % of the store writer's time. Field names are hashed because serialization skips
//! fields (`skip_serializing_if`): without them, one field set and another skipped could hash like the
//! reverse. The serializer is not human-readable, so values with a compact form hash it (timestamps as numbers,
//! not formatted text). The seed is random per process; fingerprints are never stored.

use serde::ser::{self, Serialize};
use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;

static SEED: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);

/// The fingerprint of `value`, or `None` if its serialization fails.
pub fn fingerprint<T: Serialize + ?Sized>(value: &T) -> Option<u64> {
    let mut s = FingerprintSerializer(SEED.build_hasher());
    value.serialize(&mut s).ok()?;
    Some(s.0.finish())
}

/// Tags that keep values of different shapes apart.
#[repr(u8)]
enum Tag {
    Bool,
    Int,
    UInt,
    Float,
    Char,
    Str,
    Bytes,
    None,
    Some,
    Unit,
    Variant,
    Newtype,
    Seq,
    Map,
    Struct,
    Field,
    End,
}

struct FingerprintSerializer(foldhash::quality::FoldHasher<'static>);

#[derive(Debug)]
struct Unsupported(String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

impl FingerprintSerializer {
    fn tag(&mut self, t: Tag) {
        self.0.write_u8(t as u8);
    }

    fn text(&mut self, t: Tag, s: &[u8]) {
        self.tag(t);
        self.0.write_usize(s.len());
        self.0.write(s);
    }
}

type R = Result<(), Unsupported>;

/// Narrow numbers hash as their wide kind.
macro_rules! widening {
    ($($method:ident: $ty:ty),* => $wide:ident) => {$(
        fn $method(self, v: $ty) -> R {
            self.$wide(v.into())
        }
    )*};
}

impl ser::Serializer for &mut FingerprintSerializer {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    /// Values with a compact form use it (timestamps hash as numbers, not as formatted text).
    fn is_human_readable(&self) -> bool {
        false
    }

    widening!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32 => serialize_i64);
    widening!(serialize_u8: u8, serialize_u16: u16, serialize_u32: u32 => serialize_u64);
    widening!(serialize_f32: f32 => serialize_f64);

    fn serialize_bool(self, v: bool) -> R {
        self.tag(Tag::Bool);
        self.0.write_u8(v as u8);
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> R {
        self.tag(Tag::Int);
        self.0.write_i64(v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> R {
        self.tag(Tag::Int);
        self.0.write_i128(v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> R {
        self.tag(Tag::UInt);
        self.0.write_u64(v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> R {
        self.tag(Tag::UInt);
        self.0.write_u128(v);
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> R {
        self.tag(Tag::Float);
        self.0.write_u64(v.to_bits());
        Ok(())
    }
    fn serialize_char(self, v: char) -> R {
        self.tag(Tag::Char);
        self.0.write_u32(v.into());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> R {
        self.text(Tag::Str, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        self.text(Tag::Bytes, v);
        Ok(())
    }
    fn serialize_none(self) -> R {
        self.tag(Tag::None);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> R {
        self.tag(Tag::Some);
        value.serialize(self)
    }
    fn serialize_unit(self) -> R {
        self.tag(Tag::Unit);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> R {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _name: &'static str, index: u32, _variant: &'static str) -> R {
        self.tag(Tag::Variant);
        self.0.write_u32(index);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> R {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> R {
        self.tag(Tag::Newtype);
        self.0.write_u32(index);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Unsupported> {
        self.tag(Tag::Seq);
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Self, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Unsupported> {
        self.tag(Tag::Variant);
        self.0.write_u32(index);
        self.tag(Tag::Seq);
        Ok(self)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, Unsupported> {
        self.tag(Tag::Map);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Unsupported> {
        self.tag(Tag::Struct);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Unsupported> {
        self.tag(Tag::Variant);
        self.0.write_u32(index);
        self.tag(Tag::Struct);
        Ok(self)
    }
}

/// The sequence-like compounds: each element in order, then an end mark.
macro_rules! sequence_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for &mut FingerprintSerializer {
            type Ok = ();
            type Error = Unsupported;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
                value.serialize(&mut **self)
            }
            fn end(self) -> R {
                self.tag(Tag::End);
                Ok(())
            }
        }
    )*};
}

sequence_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for &mut FingerprintSerializer {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> R {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        value.serialize(&mut **self)
    }
    fn end(self) -> R {
        self.tag(Tag::End);
        Ok(())
    }
}

/// The struct-like compounds: each field's name and value, then an end mark.
macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl ser::$trait for &mut FingerprintSerializer {
            type Ok = ();
            type Error = Unsupported;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
                self.text(Tag::Field, key.as_bytes());
                value.serialize(&mut **self)
            }
            fn end(self) -> R {
                self.tag(Tag::End);
                Ok(())
            }
        }
    )*};
}

struct_like!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    #[derive(Serialize, Clone, Debug, PartialEq)]
    struct Scope {
        #[serde(skip_serializing_if = "Option::is_none")]
        first: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        second: Option<u64>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        counters: BTreeMap<u64, u32>,
        kind: Kind,
    }

    #[derive(Serialize, Clone, Debug, PartialEq)]
    enum Kind {
        Plain,
        Counted(u32),
        Named { name: String },
    }

    #[test]
    fn a_value_set_in_one_skipped_field_or_the_other_hashes_apart() {
        let a = Scope { first: Some(5), second: None, names: vec![], counters: BTreeMap::new(), kind: Kind::Plain };
        let b = Scope { first: None, second: Some(5), ..a.clone() };
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
    }

    #[test]
    fn sequence_boundaries_and_shapes_count() {
        assert_ne!(fingerprint(&(vec!["ab"], vec!["c"])), fingerprint(&(vec!["a"], vec!["bc"])));
        assert_ne!(fingerprint(&(vec![1u32], Vec::<u32>::new())), fingerprint(&(Vec::<u32>::new(), vec![1u32])));
        assert_ne!(fingerprint(&Some(())), fingerprint(&Option::<()>::None));
        assert_ne!(fingerprint(&Kind::Counted(0)), fingerprint(&Kind::Plain));
        assert_ne!(fingerprint(&1i64), fingerprint(&1u64));
        let at = waymark_domain::Timestamp::from_unix_millis(1_800_000_000_000);
        assert_eq!(fingerprint(&at), fingerprint(&1_800_000_000_000i64), "a timestamp hashes as its milliseconds");
        assert_ne!(fingerprint(&at), fingerprint(&at.plus_millis(1)));
    }

    fn scope() -> impl Strategy<Value = Scope> {
        (
            proptest::option::of(0u64..4),
            proptest::option::of(0u64..4),
            proptest::collection::vec("[ab]{0,2}", 0..3),
            proptest::collection::btree_map(0u64..3, 0u32..3, 0..3),
            prop_oneof![
                Just(Kind::Plain),
                (0u32..3).prop_map(Kind::Counted),
                "[ab]{0,2}".prop_map(|name| Kind::Named { name })
            ],
        )
            .prop_map(|(first, second, names, counters, kind)| Scope { first, second, names, counters, kind })
    }

    proptest! {
        /// Over small values, where accidental likeness is most likely: equal fingerprints exactly when the
        /// values are equal.
        #[test]
        fn fingerprints_are_equal_exactly_when_values_are(a in scope(), b in scope()) {
            prop_assert_eq!(fingerprint(&a) == fingerprint(&b), a == b);
        }
    }
}
