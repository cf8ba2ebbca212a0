//! Checks on server replies before anything in them is applied: a reply that breaks the protocol is
//! a [`TransportError::Malformed`], and the local store is left untouched.

use serde_json::Value;

use crate::limits::{validate_collection_name, validate_id};
use crate::merge::made_without;
use crate::protocol::{Change, PullResponse, PushRequest, PushResponse, PushStatus};

use super::transport::TransportError;

fn bad(msg: String) -> TransportError {
    TransportError::Malformed(msg)
}

/// A change as the server may send it: valid names, and a document object carrying its own id
/// unless it is a tombstone.
pub fn validate_change(c: &Change) -> Result<(), TransportError> {
    let at = || format!("{}/{}", c.collection, c.id);
    validate_collection_name(&c.collection).map_err(|e| bad(format!("change {}: {e}", at())))?;
    validate_id(&c.id).map_err(|e| bad(format!("change {}: {e}", at())))?;
    match (&c.doc, c.deleted) {
        (Some(_), true) => Err(bad(format!("change {}: a delete carries a document", at()))),
        (None, false) => Err(bad(format!(
            "change {}: no document and not a delete",
            at()
        ))),
        (Some(Value::Object(m)), false) => match m.get("id") {
            Some(Value::String(id)) if *id == c.id => Ok(()),
            _ => Err(bad(format!("change {}: document id does not match", at()))),
        },
        (Some(other), false) => Err(bad(format!(
            "change {}: document is {}, not an object",
            at(),
            json_kind(other)
        ))),
        (None, true) => Ok(()),
    }
}

/// One result per pushed change; a stale one carries the same document's current version, newer
/// than what we pushed (the server only calls a change stale when it holds a higher HLC).
pub fn validate_push(req: &PushRequest, resp: &PushResponse) -> Result<(), TransportError> {
    if resp.results.len() != req.changes.len() {
        return Err(bad(format!(
            "push of {} changes answered with {} results",
            req.changes.len(),
            resp.results.len()
        )));
    }
    for (i, (sent, r)) in req.changes.iter().zip(&resp.results).enumerate() {
        if r.status == PushStatus::Stale {
            let cur = r
                .current
                .as_ref()
                .ok_or_else(|| bad(format!("stale result {i} without the current version")))?;
            if cur.collection != sent.collection || cur.id != sent.id {
                return Err(bad(format!(
                    "stale result {i} carries {}/{} for {}/{}",
                    cur.collection, cur.id, sent.collection, sent.id
                )));
            }
            // Stale means newer, or (for a change that said what it was made on) another
            // device's version it was not made on.
            if cur.hlc <= sent.hlc && !made_without(sent, &cur.hlc) {
                return Err(bad(format!(
                    "stale result {i}: current version {} is neither newer than the pushed {} nor \
                     another device's version it was not made on",
                    cur.hlc, sent.hlc
                )));
            }
            validate_change(cur)?;
        }
    }
    Ok(())
}

/// At most `limit` valid changes; a page that says more follow must move the cursor and hold
/// something, or the client would loop forever.
pub fn validate_pull(
    resp: &PullResponse,
    limit: usize,
    sent_cursor: Option<&str>,
) -> Result<(), TransportError> {
    if resp.changes.len() > limit {
        return Err(bad(format!(
            "pull with limit {limit} returned {} changes",
            resp.changes.len()
        )));
    }
    if resp.cursor.is_empty() {
        return Err(bad("pull reply without a cursor".into()));
    }
    if resp.has_more && (resp.changes.is_empty() || Some(resp.cursor.as_str()) == sent_cursor) {
        return Err(bad(
            "pull reply says more changes follow but did not advance".into(),
        ));
    }
    for c in &resp.changes {
        validate_change(c)?;
    }
    Ok(())
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
