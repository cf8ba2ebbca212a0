//! What both databases store and give back: a stored row and a change's encoded columns, a
//! push's outcome and the record that answers its retry, a pull page, the database's epoch.

use ferrosync_core::protocol::{Change, PushResult};
use ferrosync_core::sync::lineage::{self, Lineage};
use ferrosync_core::Hlc;
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use crate::wire::ChangesJson;

/// What a client's last push is remembered by, to answer its retry: the feed head it got and which
/// changes were stale. No document copies: a retry gets the documents' current versions as they
/// are then (each still newer than what it pushed), so the record stays small whatever the reply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredReply {
    pub head: u64,
    /// Positions of the stale changes in the push.
    pub stale: Vec<u32>,
    /// Positions of the changes applied by an earlier push and replaced since by a version made
    /// on them (answered `applied` with that version: `ferrosync_core::sync::lineage`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<u32>,
}

/// What a push did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushOutcome {
    pub results: Vec<PushResult>,
    /// The namespace's feed head after the push.
    pub head: u64,
}

/// One page of a namespace's feed.
#[derive(Debug)]
pub struct PullPage {
    /// The changes, already written as the reply's JSON array.
    pub changes: ChangesJson,
    /// `seq` of the last change in `changes`.
    pub last_seq: Option<u64>,
    pub has_more: bool,
    pub remaining: Option<u64>,
    /// The namespace's feed head when the page was read.
    pub head: u64,
    /// [`position_check`] of the last change in `changes`.
    pub last_check: Option<String>,
    /// [`position_check`] of the change now at the position the page was read after, when a
    /// row is there (none at 0, nor when that change was since rewritten or compacted away).
    pub check_at_after: Option<String>,
}

/// Length of a position check: 8 lower-case hex digits.
pub const CHECK_LEN: usize = 8;

/// What a cursor says was at its position: 8 hex digits of SHA-256 of the change there. A
/// database restored from an older copy that kept its epoch reuses positions for other changes;
/// a cursor whose check differs from the change now at its position is from the lost history.
pub fn position_check(collection: &str, id: &str, hlc: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [collection, id, hlc] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()[..CHECK_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Length of an epoch: 16 lower-case hex digits (64 random bits).
pub const EPOCH_LEN: usize = 16;

/// A fresh random epoch, for a new database or one given a new identity (restored).
pub fn new_epoch() -> String {
    format!("{:0width$x}", rand::random::<u64>(), width = EPOCH_LEN)
}

/// A stored row as both databases return it.
pub(crate) struct Row {
    pub collection: String,
    pub id: String,
    pub hlc: String,
    pub deleted: bool,
    pub doc: Option<String>,
    pub fields: Option<String>,
    /// `ferrosync_docs.lineage` (`ferrosync_core::sync::lineage`).
    pub lineage: Option<String>,
}

impl Row {
    /// The version, and its lineage (an unreadable one counts as none: it only costs a resolver
    /// call).
    pub fn into_change(self) -> Result<(Change, Option<Lineage>), StoreError> {
        let Row {
            collection,
            id,
            hlc,
            deleted,
            doc,
            fields,
            lineage,
        } = self;
        let lineage = lineage.as_deref().and_then(lineage::decode);
        let corrupt =
            |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{collection}/{id}: {e}"));
        let hlc: Hlc = hlc.parse().map_err(|e| corrupt(&e))?;
        let doc = doc
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| corrupt(&e))?;
        let fields = fields
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| corrupt(&e))?;
        let change = Change {
            collection,
            id,
            hlc,
            deleted,
            doc,
            fields,
            base: None,
        };
        Ok((change, lineage))
    }
}

/// A change's columns ready for binding.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub hlc: String,
    pub doc: Option<String>,
    pub fields: Option<String>,
}

pub fn encode(c: &Change) -> Encoded {
    Encoded {
        hlc: c.hlc.encode(),
        // Serializing a serde_json::Value cannot fail.
        doc: c.doc.as_ref().map(|d| d.json().to_string()),
        fields: c
            .fields
            .as_ref()
            .map(|f| serde_json::to_string(f).unwrap_or_default()),
    }
}

pub(crate) fn encode_reply(r: &StoredReply) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

/// Reads a replay record; records written before they were made small (a whole [`PushOutcome`],
/// document copies included) are read as what they stand for.
pub(crate) fn decode_reply(s: &str) -> Result<StoredReply, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("stored push reply: {e}"));
    if s.starts_with("{\"results\"") {
        let old: PushOutcome = serde_json::from_str(s).map_err(corrupt)?;
        let stale = old
            .results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.status == ferrosync_core::protocol::PushStatus::Stale)
            .map(|(i, _)| i as u32)
            .collect();
        return Ok(StoredReply {
            head: old.head,
            stale,
            superseded: Vec::new(),
        });
    }
    serde_json::from_str(s).map_err(corrupt)
}
