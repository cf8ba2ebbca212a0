//! Pull replies written straight from stored text.
//!
//! A pulled document is stored as JSON text and goes out as JSON text: parsing it into a
//! `serde_json::Value` only to serialize it again was most of the cost of a pull. These types
//! serialize exactly like `ferrosync_core::protocol::{Change, PullResponse}` (the tests parse every
//! reply back into the core types, and `same_json_as_core_types` below checks it field by field).

use serde::Serialize;
use serde_json::value::RawValue;

/// A stored version, as [`ferrosync_core::protocol::Change`] serializes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredChange {
    pub collection: String,
    pub id: String,
    pub hlc: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Box<RawValue>>,
}

/// `GET /v1/pull` reply, as [`ferrosync_core::protocol::PullResponse`] serializes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReply {
    pub changes: Vec<StoredChange>,
    pub cursor: String,
    pub has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    pub server_time: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosync_core::protocol::{Change, PullResponse};
    use serde_json::json;

    #[test]
    fn same_json_as_core_types() {
        let core: Vec<Change> = serde_json::from_value(json!([
            {"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1",
             "doc": {"id": "a", "n": 1.5, "s": "x\"y\u{1}", "nested": {"z": [1, null, true]}},
             "fields": {"n": "018bcfe56800-000000-c1"}},
            {"collection": "t", "id": "b", "hlc": "018bcfe56800-000001-c1", "deleted": true}
        ]))
        .unwrap();
        let stored: Vec<StoredChange> = core
            .iter()
            .map(|c| StoredChange {
                collection: c.collection.clone(),
                id: c.id.clone(),
                hlc: c.hlc.encode(),
                deleted: c.deleted,
                doc: c
                    .doc
                    .as_ref()
                    .map(|d| RawValue::from_string(d.to_string()).unwrap()),
                fields: c
                    .fields
                    .as_ref()
                    .map(|f| RawValue::from_string(serde_json::to_string(f).unwrap()).unwrap()),
            })
            .collect();
        let reply = PullReply {
            changes: stored,
            cursor: "0123456789abcdef:2".into(),
            has_more: false,
            remaining: Some(0),
            server_time: 5,
        };
        let text = serde_json::to_string(&reply).unwrap();
        let parsed: PullResponse = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.changes, core);
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        );
    }
}
