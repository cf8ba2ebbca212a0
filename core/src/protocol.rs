//! The wire types of the sync protocol (`/v1`), shared by the client and the server so both parse
//! and produce exactly the same JSON. `docs/PROTOCOL.md` describes them for other implementations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::doc_text::Doc;
use crate::hlc::Hlc;

/// One document change: a new version of the document, or its deletion (tombstone).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Change {
    pub collection: String,
    pub id: String,
    /// Timestamp of this version; orders it against every other version of the document.
    pub hlc: Hlc,
    /// True for a delete; then `doc` is absent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The whole document (a JSON object including `id`) unless deleted, as JSON text: sync
    /// carries it without parsing it (see [`crate::doc_text`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<Doc>,
    /// Per-field timestamps, kept by collections using the `merge` policy; opaque to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, Hlc>>,
    /// Pushes only: the version this edit was made on. The server then answers `stale` when it
    /// holds a version that is neither this base, nor this change, nor written by the same
    /// client, whatever the HLC order, so an app's own resolver sees every concurrent edit
    /// (collections with a custom policy send it). Never in pulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Hlc>,
}

/// `POST /v1/push` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushRequest {
    /// The pushing client's id (also the node of its HLCs).
    pub client_id: String,
    pub changes: Vec<Change>,
    /// The device's saved pull cursor, if it has one: where it has been syncing. A server refuses
    /// the push (403 `NAMESPACE_MISMATCH`, nothing stored) when it names another namespace's
    /// feed, so a device signed in as someone else never pushes the last account's edits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Outcome of one change of a push, in the same position as the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PushStatus {
    /// Stored (or already stored: a retried push is idempotent).
    Applied,
    /// The server holds a newer version; `current` carries it.
    Stale,
    /// The server refuses this change on its own (a rule it checks, a size limit), whatever else
    /// the push holds; `error` says why. The rest of the push is answered as usual. The client
    /// sets the change aside (kept locally, still pending) and lists it for the app.
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushResult {
    pub status: PushStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Change>,
    /// Why a `rejected` change was refused (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// `POST /v1/push` reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushResponse {
    pub results: Vec<PushResult>,
    /// Cursor position after this push (lets a client know how far the feed has moved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The server's wall clock (ms since epoch) when it replied; clients correct their HLC wall time by
    /// it, so a device whose clock is off still stamps sensible times and checks drift correctly.
    pub server_time: u64,
    /// The server's drift bound (`--max-drift-ms`): how far ahead of its clock it accepts an HLC.
    /// Clients apply the same bound to remote versions and to re-stamping. Optional (older
    /// servers omit it: clients then assume the default, 60 000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drift_ms: Option<u64>,
}

/// `GET /v1/pull` reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullResponse {
    pub changes: Vec<Change>,
    /// Opaque; pass it back as `cursor` to continue.
    pub cursor: String,
    pub has_more: bool,
    /// How many changes remain after this page, when the server can tell cheaply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// The server's wall clock (ms since epoch) when it replied; see [`PushResponse::server_time`].
    pub server_time: u64,
    /// See [`PushResponse::max_drift_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drift_ms: Option<u64>,
}

/// The body of every 4xx/5xx reply: `{ "error": { "code": "...", "message": "..." }, "serverTime" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// The server's wall clock when it replied (ms since epoch), as in every 2xx reply: a client
    /// learns its clock offset from refusals too (a `CLOCK_AHEAD` above all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Stable error codes of the protocol.
pub mod codes {
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    pub const INVALID_CHANGE: &str = "INVALID_CHANGE";
    pub const TOO_MANY_CHANGES: &str = "TOO_MANY_CHANGES";
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    pub const CLOCK_AHEAD: &str = "CLOCK_AHEAD";
    pub const BAD_CURSOR: &str = "BAD_CURSOR";
    /// The cursor belongs to another server database (reset or restored): re-sync from scratch.
    pub const CURSOR_EPOCH_MISMATCH: &str = "CURSOR_EPOCH_MISMATCH";
    /// The cursor is older than the server's history horizon (deleted documents it has not seen
    /// were compacted away): forget it, pull from the start, keep pending edits.
    pub const CURSOR_EXPIRED: &str = "CURSOR_EXPIRED";
    /// The cursor (of a pull, or the one a push names) belongs to another namespace's feed: the
    /// token is another account's than the one this device synced with (403). Not retried.
    pub const NAMESPACE_MISMATCH: &str = "NAMESPACE_MISMATCH";
    /// The server's push hook (the app's own rules) refused a change, or could not be reached.
    pub const HOOK_UNAVAILABLE: &str = "HOOK_UNAVAILABLE";
    pub const INTERNAL: &str = "INTERNAL";
    /// No such endpoint (or method) under `/v1`.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    /// The server cannot reach its database right now, or is at a capacity limit; retry later.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    /// The request body did not arrive in time (408); retry.
    pub const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
    /// The namespace already has as many event streams open as the server allows (429).
    pub const TOO_MANY_STREAMS: &str = "TOO_MANY_STREAMS";

    /// Every code above, once: mappings look codes up here instead of listing them again.
    pub const ALL: &[&str] = &[
        UNAUTHORIZED,
        BAD_REQUEST,
        INVALID_CHANGE,
        TOO_MANY_CHANGES,
        PAYLOAD_TOO_LARGE,
        CLOCK_AHEAD,
        BAD_CURSOR,
        CURSOR_EPOCH_MISMATCH,
        CURSOR_EXPIRED,
        NAMESPACE_MISMATCH,
        HOOK_UNAVAILABLE,
        INTERNAL,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        UNAVAILABLE,
        REQUEST_TIMEOUT,
        TOO_MANY_STREAMS,
    ];

    /// `code` as one of [`ALL`] (a `&'static str` to keep), or none for a code this version does
    /// not know.
    pub fn known(code: &str) -> Option<&'static str> {
        ALL.iter().copied().find(|c| *c == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn change_json_shape() {
        let c: Change = serde_json::from_value(json!({
            "collection": "tasks", "id": "a", "hlc": "018bcfe56800-000000-c1",
            "doc": {"id": "a", "title": "x"}
        }))
        .unwrap();
        assert!(!c.deleted);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["hlc"], "018bcfe56800-000000-c1");
        assert!(back.get("deleted").is_none());
    }

    #[test]
    fn rejected_result_shape() {
        let r: PushResult = serde_json::from_value(json!({
            "status": "rejected", "error": {"code": "INVALID_CHANGE", "message": "too big"}
        }))
        .unwrap();
        assert_eq!(r.status, PushStatus::Rejected);
        assert_eq!(r.error.as_ref().unwrap().code, "INVALID_CHANGE");
        let applied = PushResult {
            status: PushStatus::Applied,
            current: None,
            error: None,
        };
        assert_eq!(
            serde_json::to_value(&applied).unwrap(),
            json!({"status": "applied"})
        );
        let b: ErrorBody = serde_json::from_value(json!({
            "error": {"code": "CLOCK_AHEAD", "message": "m"}, "serverTime": 5
        }))
        .unwrap();
        assert_eq!(b.server_time, Some(5));
    }

    #[test]
    fn codes_are_listed_once_and_found() {
        let mut seen = std::collections::HashSet::new();
        for c in codes::ALL {
            assert!(seen.insert(*c), "{c} listed twice");
            assert_eq!(codes::known(c), Some(*c));
        }
        assert_eq!(codes::known("SOMETHING_NEW"), None);
    }

    #[test]
    fn unknown_fields_rejected() {
        let r: Result<PushRequest, _> =
            serde_json::from_value(json!({"clientId": "c", "changes": [], "x": 1}));
        assert!(r.is_err());
    }
}
