//! Pull replies written straight from stored text.
//!
//! A pulled document is stored as JSON text and goes out as JSON text: parsing it into a
//! `serde_json::Value` only to serialize it again was most of the cost of a pull. These types
//! serialize exactly like `ferrosync_core::protocol::{Change, PullResponse}` (the tests parse every
//! reply back into the core types, and `same_json_as_core_types` below checks it field by field).

/// One stored version, borrowed from a database row.
pub struct StoredRef<'a> {
    pub collection: &'a str,
    pub id: &'a str,
    pub hlc: &'a str,
    pub deleted: bool,
    /// JSON text, as bytes: it is copied out as is, so it is not checked for UTF-8 again.
    pub doc: Option<&'a [u8]>,
    pub fields: Option<&'a [u8]>,
}

/// What a pull reply holds before its changes.
const REPLY_START: &[u8] = b"{\"changes\":[";
/// Room for the reply around the changes (start, cursor, flags, counts).
const REPLY_OVERHEAD: usize = 192;

/// The `changes` array of a pull reply, written as [`ferrosync_core::protocol::Change`]s
/// serialize, straight from the stored text.
///
/// The stored `doc` and `fields` were written by serde_json when the push was applied, so they go
/// out as they are, without being parsed again (each pulled change is read by every device of its
/// namespace, so this is the hottest path of the server). A value that is not even shaped like a
/// JSON object (`{...}`) is refused as corrupt instead of being sent.
#[derive(Debug)]
pub struct ChangesJson {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ChangesJson {
    fn default() -> Self {
        ChangesJson::with_capacity(0)
    }
}

impl ChangesJson {
    /// An empty array, with room for about `bytes` of changes.
    pub fn with_capacity(bytes: usize) -> ChangesJson {
        // The reply's opening is written first, so that the reply is finished in this same buffer
        // (a page can be hundreds of kilobytes: no copy of it).
        let mut buf = Vec::with_capacity(bytes + REPLY_OVERHEAD);
        buf.extend_from_slice(REPLY_START);
        ChangesJson { buf, count: 0 }
    }

    /// Appends one change. Fails (changing nothing) when `doc` or `fields` is not a JSON object.
    pub fn push(&mut self, c: &StoredRef<'_>) -> Result<(), String> {
        for (name, v) in [("doc", c.doc), ("fields", c.fields)] {
            if let Some(v) = v {
                if !(v.starts_with(b"{") && v.ends_with(b"}")) {
                    return Err(format!("stored {name} is not a JSON object"));
                }
            }
        }
        if self.count > 0 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(b"{\"collection\":");
        write_str(&mut self.buf, c.collection);
        self.buf.extend_from_slice(b",\"id\":");
        write_str(&mut self.buf, c.id);
        self.buf.extend_from_slice(b",\"hlc\":");
        write_str(&mut self.buf, c.hlc);
        if c.deleted {
            self.buf.extend_from_slice(b",\"deleted\":true");
        }
        if let Some(doc) = c.doc {
            self.buf.extend_from_slice(b",\"doc\":");
            self.buf.extend_from_slice(doc);
        }
        if let Some(fields) = c.fields {
            self.buf.extend_from_slice(b",\"fields\":");
            self.buf.extend_from_slice(fields);
        }
        self.buf.push(b'}');
        self.count += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Bytes written so far (the page's size, give or take the reply's envelope).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A JSON string, escaped as serde_json escapes it.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The `GET /v1/pull` reply, as [`ferrosync_core::protocol::PullResponse`] serializes it.
pub fn pull_reply(
    changes: ChangesJson,
    cursor: &str,
    has_more: bool,
    remaining: Option<u64>,
    server_time: u64,
    max_drift_ms: Option<u64>,
) -> Vec<u8> {
    let mut out = changes.buf;
    out.push(b']');
    out.extend_from_slice(b",\"cursor\":");
    write_str(&mut out, cursor);
    out.extend_from_slice(if has_more {
        b",\"hasMore\":true"
    } else {
        b",\"hasMore\":false"
    });
    if let Some(n) = remaining {
        out.extend_from_slice(format!(",\"remaining\":{n}").as_bytes());
    }
    out.extend_from_slice(format!(",\"serverTime\":{server_time}").as_bytes());
    if let Some(bound) = max_drift_ms {
        out.extend_from_slice(format!(",\"maxDriftMs\":{bound}").as_bytes());
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosync_core::protocol::{Change, PullResponse};
    use serde_json::json;

    #[test]
    fn same_json_as_core_types() {
        let core: Vec<Change> = serde_json::from_value(json!([
            {"collection": "t", "id": "a\"\u{1}é", "hlc": "018bcfe56800-000000-c1",
             "doc": {"id": "a\"\u{1}é", "n": 1.5, "s": "x\"y\u{1}", "nested": {"z": [1, null, true]}},
             "fields": {"n": "018bcfe56800-000000-c1"}},
            {"collection": "t", "id": "b", "hlc": "018bcfe56800-000001-c1", "deleted": true}
        ]))
        .unwrap();
        let docs: Vec<_> = core
            .iter()
            .map(|c| {
                (
                    c.hlc.encode(),
                    c.doc.as_ref().map(|d| d.json().to_string()),
                    c.fields.as_ref().map(|f| serde_json::to_string(f).unwrap()),
                )
            })
            .collect();
        let mut changes = ChangesJson::with_capacity(0);
        for (c, (hlc, doc, fields)) in core.iter().zip(&docs) {
            changes
                .push(&StoredRef {
                    collection: &c.collection,
                    id: &c.id,
                    hlc,
                    deleted: c.deleted,
                    doc: doc.as_deref().map(str::as_bytes),
                    fields: fields.as_deref().map(str::as_bytes),
                })
                .unwrap();
        }
        assert_eq!(changes.len(), 2);
        let text = pull_reply(
            changes,
            "0123456789abcdef:2",
            true,
            Some(7),
            5,
            Some(60_000),
        );
        let parsed: PullResponse = serde_json::from_slice(&text).unwrap();
        assert_eq!(parsed.changes, core);
        assert!(parsed.has_more);
        assert_eq!(parsed.remaining, Some(7));
        assert_eq!(parsed.max_drift_ms, Some(60_000));
        // Byte for byte what serde writes for the core type.
        assert_eq!(
            String::from_utf8(text).unwrap(),
            serde_json::to_string(&parsed).unwrap()
        );

        let empty = pull_reply(ChangesJson::default(), "e:0", false, None, 9, None);
        let parsed: PullResponse = serde_json::from_slice(&empty).unwrap();
        assert_eq!(
            String::from_utf8(empty).unwrap(),
            serde_json::to_string(&parsed).unwrap()
        );
    }

    #[test]
    fn refuses_stored_values_that_are_not_objects() {
        let mut changes = ChangesJson::default();
        let bad = StoredRef {
            collection: "t",
            id: "a",
            hlc: "018bcfe56800-000000-c1",
            deleted: false,
            doc: Some(b"{\"id\":\"a\""),
            fields: None,
        };
        assert!(changes.push(&bad).is_err());
        assert!(changes.is_empty());
    }
}
