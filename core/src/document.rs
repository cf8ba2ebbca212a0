//! Documents: what a stored value may look like, and how new ids are made.
//!
//! A document is a JSON object with a string `id`. The browser library checks the JavaScript-only
//! problems (functions, symbols, cycles, `undefined`, `Date`s, non-finite numbers: things JSON cannot
//! carry and `JSON.stringify` would silently drop or rewrite) before a document crosses into Rust;
//! everything that can be decided on JSON is decided here, once, for the client and the server alike.
//!
//! Reserved names: field names starting with `$` are refused at every depth, because `$` introduces a
//! query operator (`{ price: { $gt: 3 } }`) and a document field of that name could never be matched
//! unambiguously. Metadata (HLC, tombstone flag, index projection) is kept *beside* the document in the
//! store's record, never inside it, so no other name is taken from applications.

use serde_json::Value;

use crate::limits::{validate_id, LimitError};

/// The one field every document has.
pub const ID_FIELD: &str = "id";
/// Deepest nesting accepted (the JSON parsers on both ends refuse deeper input anyway).
pub const MAX_DEPTH: usize = 100;

/// Why a document was refused. The message names the field path when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("a document must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("field \"id\" must be a string, got {0}")]
    IdNotString(&'static str),
    #[error("{0}")]
    InvalidId(#[from] LimitError),
    #[error(
        "field name {name:?} at {path} is reserved: names starting with '$' are query operators"
    )]
    ReservedName { path: String, name: String },
    #[error("document nests deeper than {MAX_DEPTH} levels at {path}")]
    TooDeep { path: String },
}

/// JSON type name for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks a document and returns its id, if it has one (a missing id is the caller's to generate).
/// One walk over the value.
pub fn validate(doc: &Value) -> Result<Option<&str>, DocumentError> {
    let obj = match doc {
        Value::Object(o) => o,
        other => return Err(DocumentError::NotAnObject(type_name(other))),
    };
    let id = match obj.get(ID_FIELD) {
        None => None,
        Some(Value::String(s)) => {
            validate_id(s)?;
            Some(s.as_str())
        }
        Some(other) => return Err(DocumentError::IdNotString(type_name(other))),
    };
    let mut path = Vec::new();
    walk(doc, &mut path)?;
    Ok(id)
}

/// One step of a path: an object member or an array position.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn walk<'a>(v: &'a Value, path: &mut Vec<Seg<'a>>) -> Result<(), DocumentError> {
    if path.len() >= MAX_DEPTH {
        return Err(DocumentError::TooDeep {
            path: display_path(path),
        });
    }
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                if k.starts_with('$') {
                    return Err(DocumentError::ReservedName {
                        path: display_path(path),
                        name: k.clone(),
                    });
                }
                path.push(Seg::Key(k));
                walk(child, path)?;
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                walk(child, path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// `"a.b.0"` (the dotted path a query would use), or "the top level".
fn display_path(path: &[Seg]) -> String {
    if path.is_empty() {
        return "the top level".to_string();
    }
    let parts: Vec<String> = path
        .iter()
        .map(|s| match s {
            Seg::Key(k) => (*k).to_string(),
            Seg::Index(i) => i.to_string(),
        })
        .collect();
    format!("\"{}\"", parts.join("."))
}

/// Makes UUIDv7 ids (RFC 9562): 48-bit Unix milliseconds, then a 12-bit counter seeded randomly each
/// millisecond (method 1 of the RFC), then 62 random bits. Ids from one generator sort in creation
/// order, which keeps IndexedDB's B-tree appends local and makes id order a useful default order.
#[derive(Debug, Default, Clone)]
pub struct IdGenerator {
    last_ms: u64,
    counter: u16,
}

impl IdGenerator {
    pub fn new() -> Self {
        Self::default()
    }

    /// `now_ms` is the wall clock; `random` supplies 10 fresh random bytes.
    pub fn next(&mut self, now_ms: u64, random: [u8; 10]) -> String {
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            // Top bit clear so there is room to count up within this millisecond.
            self.counter = u16::from_be_bytes([random[0], random[1]]) & 0x07FF;
        } else if self.counter < 0x0FFF {
            self.counter += 1;
        } else {
            // Counter exhausted (or the clock went back): borrow the next millisecond.
            self.last_ms += 1;
            self.counter = 0;
        }
        let ms = self.last_ms & 0xFFFF_FFFF_FFFF;
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        b[6] = 0x70 | ((self.counter >> 8) as u8 & 0x0F);
        b[7] = self.counter as u8;
        b[8..].copy_from_slice(&random[2..]);
        b[8] = (b[8] & 0x3F) | 0x80;
        format_uuid(&b)
    }
}

fn format_uuid(b: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[(byte >> 4) as usize] as char);
        s.push(HEX[(byte & 0xF) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn accepts_plain_documents() {
        assert_eq!(
            validate(&json!({"id": "a", "x": [1, {"y": null}]})).unwrap(),
            Some("a")
        );
        assert_eq!(validate(&json!({"title": "no id yet"})).unwrap(), None);
        // Dots and underscores are ordinary characters in names.
        assert!(validate(&json!({"id": "a", "a.b": 1, "_x": 2, "": 3})).is_ok());
    }

    #[test]
    fn refuses_non_objects() {
        for (v, want) in [
            (json!(null), "null"),
            (json!([1]), "an array"),
            (json!("s"), "a string"),
            (json!(3), "a number"),
            (json!(true), "a boolean"),
        ] {
            let e = validate(&v).unwrap_err();
            assert_eq!(e, DocumentError::NotAnObject(want));
            assert!(e.to_string().contains("must be a JSON object"));
        }
    }

    #[test]
    fn refuses_bad_ids() {
        let e = validate(&json!({"id": 7})).unwrap_err();
        assert_eq!(e.to_string(), "field \"id\" must be a string, got a number");
        assert!(validate(&json!({"id": ""}))
            .unwrap_err()
            .to_string()
            .contains("must not be empty"));
        assert!(validate(&json!({"id": "a\u{0}b"})).is_err());
        assert!(validate(&json!({"id": "x".repeat(300)})).is_err());
        assert!(validate(&json!({"id": null})).is_err());
    }

    #[test]
    fn refuses_reserved_names_at_any_depth() {
        let e = validate(&json!({"id": "a", "$set": 1})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field name \"$set\" at the top level is reserved: names starting with '$' are query operators"
        );
        let e = validate(&json!({"id": "a", "meta": {"tags": [{"$gt": 1}]}})).unwrap_err();
        assert!(e.to_string().contains("at \"meta.tags.0\""), "{e}");
    }

    #[test]
    fn refuses_deep_nesting() {
        let mut v = json!(1);
        for _ in 0..MAX_DEPTH {
            v = json!({ "a": v });
        }
        assert!(matches!(validate(&v), Err(DocumentError::TooDeep { .. })));
        let mut ok = json!(1);
        for _ in 0..MAX_DEPTH - 1 {
            ok = json!({ "a": ok });
        }
        assert!(validate(&ok).is_ok());
    }

    #[test]
    fn uuid_v7_shape() {
        let mut g = IdGenerator::new();
        let id = g.next(0x0189_0000_0000, [0xFF; 10]);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[..14], "01890000-0000-");
        assert_eq!(&id[14..15], "7", "version nibble");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "variant bits");
    }

    proptest! {
        #[test]
        fn uuid_v7_monotonic(steps in proptest::collection::vec((0u64..3, any::<[u8; 10]>()), 1..500)) {
            let mut g = IdGenerator::new();
            let mut now = 1_700_000_000_000u64;
            let mut prev = String::new();
            for (advance, rnd) in steps {
                now += advance;
                let id = g.next(now, rnd);
                prop_assert!(id > prev, "{} !> {}", id, prev);
                prev = id;
            }
        }

        #[test]
        fn dollar_names_always_refused(name in "\\$[a-z]{0,5}", depth in 0usize..4) {
            let mut v = json!({ name.clone(): 1 });
            for _ in 0..depth { v = json!({ "n": [v] }); }
            let top = json!({ "id": "x", "f": v });
            let refused = matches!(validate(&top), Err(DocumentError::ReservedName { .. }));
            prop_assert!(refused);
        }
    }
}
