//! A document carried as its JSON text.
//!
//! Sync moves documents it never looks into: a pulled page goes from the reply to IndexedDB, a
//! pending edit from IndexedDB to the push, a pushed document from the request to the server's
//! database. Parsing each into a `serde_json::Value` tree only to serialize it again was most of a
//! first sync's WASM time (docs/BENCHMARKS.md), so a [`Doc`] keeps the text as it came and is
//! parsed only where a rule reads fields (field merge, a resolver, the server's push checks).
//!
//! A document can also be *held* elsewhere ([`Doc::held`]): the browser parses a pulled page with
//! its own `JSON.parse` and keeps the documents as the objects it made, so their text never enters
//! WASM on the way to IndexedDB. Such a document knows its id; its text is asked of its
//! [`DocSource`] the first time a rule reads it, so every rule reads held and textual documents
//! alike.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::document::ID_FIELD;

/// A document as JSON text: valid JSON (checked when it was read or made), whitespace and key
/// order as written. Equal when the texts are, or else when they parse to the same value.
#[derive(Clone)]
pub struct Doc(Repr);

#[derive(Clone)]
enum Repr {
    Text(Box<RawValue>),
    Held(Arc<Held>),
}

/// Where held documents live (see [`Doc::held`]): one source per pulled page in the browser,
/// dropped (and the page let go) with the last document that refers to it.
pub trait DocSource: Send + Sync {
    /// The JSON text of the object held at `slot`; `None` if it is not held (never for a slot
    /// a live [`Doc`] names).
    fn text(&self, slot: u32) -> Option<String>;
}

struct Held {
    slot: u32,
    id: Option<String>,
    source: Arc<dyn DocSource>,
    text: OnceLock<Box<RawValue>>,
}

impl Doc {
    /// The document of a parsed value.
    pub fn from_value(v: &Value) -> Doc {
        // Serializing a `Value` cannot fail: its keys are strings and its numbers finite.
        Doc(Repr::Text(
            serde_json::value::to_raw_value(v).unwrap_or_else(|_| RawValue::NULL.to_owned()),
        ))
    }

    /// An object held by `source` at `slot`, whose `id` member is `id` (`None`: absent or not a
    /// string). Its text is read from `source` once, when a rule first needs it.
    pub fn held(slot: u32, id: Option<String>, source: Arc<dyn DocSource>) -> Doc {
        Doc(Repr::Held(Arc::new(Held {
            slot,
            id,
            source,
            text: OnceLock::new(),
        })))
    }

    /// The slot of a held document (see [`Doc::held`]).
    pub fn held_slot(&self) -> Option<u32> {
        match &self.0 {
            Repr::Held(h) => Some(h.slot),
            Repr::Text(_) => None,
        }
    }

    fn raw(&self) -> &RawValue {
        match &self.0 {
            Repr::Text(t) => t,
            Repr::Held(h) => h.text.get_or_init(|| {
                // A source holds what its documents name for as long as they live.
                h.source
                    .text(h.slot)
                    .and_then(|t| RawValue::from_string(t).ok())
                    .unwrap_or_else(|| RawValue::NULL.to_owned())
            }),
        }
    }

    /// `Some` document of `v` (for building changes from `json!` literals).
    pub fn some(v: Value) -> Option<Doc> {
        Some(Doc::from_value(&v))
    }

    /// Reads JSON text; fails when it is not one valid JSON value.
    pub fn from_json(text: &str) -> Result<Doc, serde_json::Error> {
        RawValue::from_string(text.to_string()).map(|t| Doc(Repr::Text(t)))
    }

    /// The JSON text (a held document's is asked of its source, once).
    pub fn json(&self) -> &str {
        self.raw().get()
    }

    /// The parsed document. Fails only on text a JSON parser accepts but serde_json's value cannot
    /// hold (a number beyond `f64`, such as `1e400`).
    pub fn parse(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.json())
    }

    /// Whether the text is an object (the one shape a live document has).
    pub fn is_object(&self) -> bool {
        match &self.0 {
            Repr::Text(t) => t.get().starts_with('{'),
            Repr::Held(_) => true,
        }
    }

    /// The object's `id` member when it is a string, read without building the document (`None`
    /// for anything else, and for text that is not an object).
    pub fn id(&self) -> Option<String> {
        if let Repr::Held(h) = &self.0 {
            return h.id.clone();
        }
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
        self.raw().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
        Box::<RawValue>::deserialize(d).map(|t| Doc(Repr::Text(t)))
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

    /// A source that counts how often it is read and whether it is still held.
    struct Page {
        reads: std::sync::atomic::AtomicU32,
        dropped: Arc<std::sync::atomic::AtomicBool>,
    }

    impl DocSource for Page {
        fn text(&self, slot: u32) -> Option<String> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (slot == 7).then(|| r#"{"id":"a","n":1,"s":"x"}"#.to_string())
        }
    }

    impl Drop for Page {
        fn drop(&mut self) {
            self.dropped
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_held_document_is_read_once_when_a_rule_needs_it_and_let_go_with_its_last_copy() {
        use std::sync::atomic::Ordering::SeqCst;
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let page = Arc::new(Page {
            reads: Default::default(),
            dropped: dropped.clone(),
        });
        let d = Doc::held(7, Some("a".into()), page.clone());
        // What the pull check and the store need is known without the text.
        assert_eq!(d.id().as_deref(), Some("a"));
        assert!(d.is_object());
        assert_eq!(d.held_slot(), Some(7));
        assert_eq!(page.reads.load(SeqCst), 0);
        // Rules that read fields get the text, asked for once.
        let copy = d.clone();
        assert_eq!(copy.pick(&["n"]).unwrap(), json!({"n": 1}));
        assert_eq!(d.parse().unwrap(), json!({"id": "a", "n": 1, "s": "x"}));
        assert_eq!(d, Doc::from_value(&json!({"s": "x", "n": 1, "id": "a"})));
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"id":"a","n":1,"s":"x"}"#
        );
        assert_eq!(page.reads.load(SeqCst), 1);
        assert_eq!(Doc::from_json("{}").unwrap().held_slot(), None);
        drop(page);
        drop(d);
        assert!(!dropped.load(SeqCst), "a copy still refers to the page");
        drop(copy);
        assert!(dropped.load(SeqCst));
    }

    #[test]
    fn bad_text_is_refused_and_out_of_range_numbers_fail_to_parse() {
        assert!(Doc::from_json(r#"{"id":"a""#).is_err());
        assert!(Doc::from_json(r#"{"id":"a"} x"#).is_err());
        let big = Doc::from_json(r#"{"id":"a","n":1e400}"#).unwrap();
        assert!(big.parse().is_err());
    }
}
