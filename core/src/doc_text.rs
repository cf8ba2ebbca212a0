//! A document carried as its JSON text.
//!
//! Sync moves documents it never looks into: a pulled page goes from the reply to IndexedDB, a
//! pending edit from IndexedDB to the push, a pushed document from the request to the server's
//! database. Parsing each into a `serde_json::Value` tree only to serialize it again was most of a
//! first sync's WASM time (docs/BENCHMARKS.md), so a [`Doc`] keeps the text as it came and is
//! parsed only where a rule reads fields (field merge, a resolver, the server's push checks).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::document::ID_FIELD;

/// A document as JSON text: valid JSON (checked when it was read or made), whitespace and key
/// order as written. Equal when the texts are, or else when they parse to the same value.
#[derive(Clone)]
pub struct Doc(Box<RawValue>);

impl Doc {
    /// The document of a parsed value.
    pub fn from_value(v: &Value) -> Doc {
        // Serializing a `Value` cannot fail: its keys are strings and its numbers finite.
        Doc(serde_json::value::to_raw_value(v).unwrap_or_else(|_| RawValue::NULL.to_owned()))
    }

    /// `Some` document of `v` (for building changes from `json!` literals).
    pub fn some(v: Value) -> Option<Doc> {
        Some(Doc::from_value(&v))
    }

    /// Reads JSON text; fails when it is not one valid JSON value.
    pub fn from_json(text: &str) -> Result<Doc, serde_json::Error> {
        RawValue::from_string(text.to_string()).map(Doc)
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The parsed document. Fails only on text a JSON parser accepts but serde_json's value cannot
    /// hold (a number beyond `f64`, such as `1e400`).
    pub fn parse(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.json())
    }

    /// Whether the text is an object (the one shape a live document has).
    pub fn is_object(&self) -> bool {
        self.json().starts_with('{')
    }

    /// The object's `id` member when it is a string, read without building the document (`None`
    /// for anything else, and for text that is not an object).
    pub fn id(&self) -> Option<String> {
        // `get`, not `remove`: a B-tree removal links a kilobyte of rebalancing code.
        Some(
            self.pick(&[ID_FIELD])
                .ok()?
                .get(ID_FIELD)?
                .as_str()?
                .to_string(),
        )
    }

    /// The object with only its members named in `names` (the top-level names a query reads),
    /// every other member skipped unread: what a rule needs of a document without building all
    /// of it. Fails when the text is not an object (or a picked member does not parse).
    pub fn pick(&self, names: &[&str]) -> Result<Value, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(self.json());
        let v = de.deserialize_map(Pick(names))?;
        de.end()?;
        Ok(v)
    }
}

impl From<Value> for Doc {
    fn from(v: Value) -> Doc {
        Doc::from_value(&v)
    }
}

impl PartialEq for Doc {
    fn eq(&self, other: &Doc) -> bool {
        self.json() == other.json()
            || matches!((self.parse(), other.parse()), (Ok(a), Ok(b)) if a == b)
    }
}

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
        Box::<RawValue>::deserialize(d).map(Doc)
    }
}

/// Builds an object of the members named in `.0`; the last of a repeated name counts, as in
/// every JSON parser that keeps one.
struct Pick<'n>(&'n [&'n str]);

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(name) = m.next_key_seed(Picked(self.0))? {
            match name {
                Some(name) => {
                    out.insert(name, m.next_value()?);
                }
                None => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// A member name, kept only when it is one of `.0` (no copy of the others).
struct Picked<'n>(&'n [&'n str]);

impl<'de> DeserializeSeed<'de> for Picked<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Picked<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<String>, E> {
        Ok(self.0.contains(&s).then(|| s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_kept_as_written() {
        let d: Doc = serde_json::from_str(r#"{"z":1, "id":"a","n":1.50}"#).unwrap();
        assert_eq!(d.json(), r#"{"z":1, "id":"a","n":1.50}"#);
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"z":1, "id":"a","n":1.50}"#
        );
        assert_eq!(d, Doc::from_value(&json!({"id": "a", "n": 1.5, "z": 1})));
        assert_ne!(d, Doc::from_value(&json!({"id": "a", "n": 1.5})));
    }

    #[test]
    fn the_id_is_read_from_objects_only() {
        let id = |t: &str| Doc::from_json(t).unwrap().id();
        assert_eq!(id(r#"{"x":[{"id":"no"}],"id":"a"}"#).as_deref(), Some("a"));
        assert_eq!(id(r#"{"id":"a","id":"b"}"#).as_deref(), Some("b"));
        assert_eq!(id(r#"{"id":"a\u0062"}"#).as_deref(), Some("ab"));
        assert_eq!(id(r#"{"id":1}"#), None);
        assert_eq!(id(r#"{"x":1}"#), None);
        assert_eq!(id(r#"["a"]"#), None);
        assert_eq!(id(r#""a""#), None);
        assert!(!Doc::from_json("[1]").unwrap().is_object());
    }

    #[test]
    fn pick_keeps_the_named_members_only() {
        let d =
            Doc::from_json(r#"{"a":{"b":[1,{"c":2}]},"skip":{"deep":[[[]]]},"id":"x","n":1.5}"#)
                .unwrap();
        assert_eq!(
            d.pick(&["a", "n", "missing"]).unwrap(),
            json!({"a": {"b": [1, {"c": 2}]}, "n": 1.5})
        );
        assert_eq!(d.pick(&[]).unwrap(), json!({}));
        assert!(Doc::from_json("[1]").unwrap().pick(&["a"]).is_err());
        let big = Doc::from_json(r#"{"id":"a","n":1e400}"#).unwrap();
        assert_eq!(big.pick(&["id"]).unwrap(), json!({"id": "a"}));
        assert!(big.pick(&["n"]).is_err());
    }

    #[test]
    fn bad_text_is_refused_and_out_of_range_numbers_fail_to_parse() {
        assert!(Doc::from_json(r#"{"id":"a""#).is_err());
        assert!(Doc::from_json(r#"{"id":"a"} x"#).is_err());
        let big = Doc::from_json(r#"{"id":"a","n":1e400}"#).unwrap();
        assert!(big.parse().is_err());
    }
}
