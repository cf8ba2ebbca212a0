//! The protocol's checks, written once. A client checks server replies before anything in them is
//! applied (a reply that breaks the protocol is a [`TransportError::Malformed`], and the local
//! store is left untouched); a server checks a push before storing anything ([`check_push`], used
//! by the reference server and the in-memory one alike: a refused push changes nothing).

use serde_json::Value;

use crate::document;
use crate::hlc::{check_drift, validate_node};
use crate::limits::{validate_collection_name, validate_id, MAX_PUSH_CHANGES};
use crate::merge::{made_without, DELETED_AT};
use crate::protocol::{codes, Change, PullResponse, PushRequest, PushResponse, PushStatus};

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
        // Read without building the document: only its id is checked here (the server checked
        // the rest when the version was pushed; the field rules read it where they need it).
        (Some(doc), false) if doc.is_object() => match doc.id() {
            Some(id) if id == c.id => Ok(()),
            _ => Err(bad(format!("change {}: document id does not match", at()))),
        },
        (Some(_), false) => Err(bad(format!("change {}: document is not an object", at()))),
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
    // A document's current version is sent once per reply: a later stale result for the same
    // document may leave `current` out.
    let mut carried: Vec<(&str, &str)> = Vec::new();
    for (i, (sent, r)) in req.changes.iter().zip(&resp.results).enumerate() {
        if r.status == PushStatus::Applied {
            // Applied before, and replaced since by a version made on it (its reply was lost).
            if let Some(cur) = r.current.as_ref() {
                if cur.collection != sent.collection || cur.id != sent.id || cur.hlc <= sent.hlc {
                    return Err(bad(format!(
                        "applied result {i} carries {}/{} {} for {}/{} {}: not a newer version of it",
                        cur.collection, cur.id, cur.hlc, sent.collection, sent.id, sent.hlc
                    )));
                }
                validate_change(cur)?;
            }
        }
        if r.status == PushStatus::Stale {
            let key = (sent.collection.as_str(), sent.id.as_str());
            let Some(cur) = r.current.as_ref() else {
                if carried.contains(&key) {
                    continue;
                }
                return Err(bad(format!("stale result {i} without the current version")));
            };
            carried.push(key);
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

/// Why a server refuses a push before storing anything: the same for the reference server (which
/// turns it into its JSON 4xx body) and the in-memory one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushRefusal {
    /// The `clientId` is not a valid HLC node.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooManyChanges(String),
    /// A change breaks the protocol's rules ([`check_pushed_change`], the re-sync offer rule).
    #[error("{0}")]
    Invalid(String),
    /// A change's clock is too far ahead of the server's ([`check_pushed_clock`]).
    #[error("{0}")]
    ClockAhead(String),
}

impl PushRefusal {
    /// The protocol's error code (docs/PROTOCOL.md).
    pub fn code(&self) -> &'static str {
        match self {
            PushRefusal::BadRequest(_) => codes::BAD_REQUEST,
            PushRefusal::TooManyChanges(_) => codes::TOO_MANY_CHANGES,
            PushRefusal::Invalid(_) => codes::INVALID_CHANGE,
            PushRefusal::ClockAhead(_) => codes::CLOCK_AHEAD,
        }
    }

    /// The HTTP status the protocol answers it with.
    pub fn status(&self) -> u16 {
        match self {
            PushRefusal::ClockAhead(_) => 422,
            _ => 400,
        }
    }
}

/// Checks a push as a whole, before anything is stored: the client id, the batch size, each change
/// by [`check_pushed_change`] and the re-sync offer rule, then every clock ([`check_pushed_clock`]:
/// a malformed change is reported as such even if its clock is also off). Messages name the change
/// (`changes[i] (collection/id)`).
pub fn check_push(req: &PushRequest, now_ms: u64, max_drift_ms: u64) -> Result<(), PushRefusal> {
    validate_node(&req.client_id).map_err(|e| PushRefusal::BadRequest(format!("clientId: {e}")))?;
    if req.changes.len() > MAX_PUSH_CHANGES {
        return Err(PushRefusal::TooManyChanges(format!(
            "{} changes in one push, limit is {MAX_PUSH_CHANGES}: split it",
            req.changes.len()
        )));
    }
    let at = |i: usize, c: &Change| {
        format!(
            "changes[{i}] ({}/{})",
            c.collection.chars().take(64).collect::<String>(),
            c.id.chars().take(80).collect::<String>()
        )
    };
    for (i, c) in req.changes.iter().enumerate() {
        check_pushed_change(c, &req.client_id)
            .and_then(|()| check_offer(c, &req.client_id, now_ms))
            .map_err(|e| PushRefusal::Invalid(format!("{}: {e}", at(i, c))))?;
    }
    for (i, c) in req.changes.iter().enumerate() {
        check_pushed_clock(c, now_ms, max_drift_ms).map_err(|e| {
            PushRefusal::ClockAhead(format!(
                "{}: {e}; correct the clock by the reply's serverTime and retry later",
                at(i, c)
            ))
        })?;
    }
    Ok(())
}

/// A change stamped with another node than the pushing client's is not an edit of this client's:
/// it is a re-sync offer of a version that node wrote (a device whose server lost its database
/// pushes every version it holds, with the stamps they were written with). Such a version
/// already existed, so its stamp cannot be after the server's time; only the node itself stamps
/// the present and the future. Without this a writer could claim a stamp another writer is about
/// to make (predictable once that writer has adopted a time ahead of the wall clock), get there
/// first, and leave the real writer's push answered "applied" (an equal HLC is the same write)
/// with the forger's content stored. [`check_pushed_change`] already refuses another node on an
/// edit with a `base`, so the base rule's same-client exemption cannot be claimed either.
fn check_offer(c: &Change, client_id: &str, now_ms: u64) -> Result<(), PushRefusal> {
    if c.hlc.node == client_id || c.hlc.wall_ms <= now_ms {
        return Ok(());
    }
    Err(PushRefusal::Invalid(format!(
        "hlc node {:?} is not the pushing clientId {client_id:?}, and its time is {} ms after the server's: \
         a client stamps its changes with its own id; only a re-sync offer carries another writer's \
         stamp, and that version was written in the past",
        c.hlc.node.chars().take(64).collect::<String>(),
        c.hlc.wall_ms - now_ms
    )))
}

/// A pushed document's rules ([`crate::document::validate`]) and its own id.
fn check_doc(doc: &Value, id: &str) -> Result<(), PushRefusal> {
    doc_fault(doc, id).map_or(Ok(()), |m| Err(PushRefusal::Invalid(m)))
}

/// Why `doc` cannot be the document of a change to `id` (the document rules of
/// [`crate::document::validate`], and its own id), if it cannot: what a server checks of a pushed
/// document, and of one a push hook puts in its place.
pub fn doc_fault(doc: &Value, id: &str) -> Option<String> {
    match document::validate(doc) {
        Ok(Some(own)) if own == id => None,
        Ok(Some(own)) => Some(format!(
            "doc.id {:?} differs from the change's id {:?}",
            own.chars().take(80).collect::<String>(),
            id.chars().take(80).collect::<String>()
        )),
        Ok(None) => Some("doc must include its id".into()),
        Err(e) => Some(format!("doc: {e}")),
    }
}

/// The rules a server applies to each pushed change before storing anything ([`check_push`] runs
/// them; the client's own writes pass them by construction):
/// names and id, the document rules of [`crate::document::validate`] (reserved `$` names, depth),
/// the document's own id, `base` older than `hlc`, `fields` times no later than `hlc` (so a field
/// cannot outrank its own version, and the drift bound on `hlc` bounds every field), and an edit
/// carrying a `base` stamped by the pushing client itself (`base` exempts the client's own
/// versions, so its node must be the client's). Clock drift is [`check_pushed_clock`], checked
/// after every change's shape.
pub fn check_pushed_change(c: &Change, client_id: &str) -> Result<(), PushRefusal> {
    let invalid = |m: String| PushRefusal::Invalid(m);
    validate_collection_name(&c.collection).map_err(|e| invalid(format!("collection: {e}")))?;
    validate_id(&c.id).map_err(|e| invalid(format!("id: {e}")))?;
    if let Some(base) = &c.base {
        if *base >= c.hlc {
            return Err(invalid(format!(
                "base {base} must be older than the change's hlc {} (an edit is made after the version it edits)",
                c.hlc
            )));
        }
        if c.hlc.node != client_id {
            return Err(invalid(format!(
                "hlc node {:?} is not the pushing clientId {client_id:?}: an edit is stamped by the client that pushes it",
                c.hlc.node
            )));
        }
    }
    match (&c.doc, c.deleted) {
        (Some(_), true) => {
            return Err(invalid(
                "a delete (deleted: true) must not carry a doc".into(),
            ))
        }
        (None, false) => return Err(invalid("doc is required unless deleted is true".into())),
        (None, true) => {}
        (Some(doc), false) => {
            // The one place a pushed document is read whole: its text passes on as it came.
            let doc = doc.parse().map_err(|e| invalid(format!("doc: {e}")))?;
            check_doc(&doc, &c.id)?;
        }
    }
    if let Some(fields) = &c.fields {
        for (name, at) in fields {
            if name.starts_with('$') && name != DELETED_AT {
                return Err(invalid(format!(
                    "fields: name {:?} is reserved (only {DELETED_AT:?} may start with '$')",
                    name.chars().take(80).collect::<String>()
                )));
            }
            if *at > c.hlc {
                return Err(invalid(format!(
                    "fields.{}: time {at} is later than the change's hlc {} (a field is written at or before its version)",
                    name.chars().take(80).collect::<String>(),
                    c.hlc
                )));
            }
        }
    }
    Ok(())
}

/// A pushed change's clock: `hlc` at most `max_drift_ms` ahead of `now_ms` (every `fields` time is
/// at most `hlc`, see [`check_pushed_change`], so this bounds them too; checked here as well).
pub fn check_pushed_clock(c: &Change, now_ms: u64, max_drift_ms: u64) -> Result<(), PushRefusal> {
    let ahead = |e: crate::hlc::HlcError| PushRefusal::ClockAhead(e.to_string());
    check_drift(&c.hlc, now_ms, max_drift_ms).map_err(ahead)?;
    for at in c.fields.iter().flat_map(|f| f.values()) {
        check_drift(at, now_ms, max_drift_ms).map_err(ahead)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(changes: Value) -> PushRequest {
        serde_json::from_value(json!({"clientId": "c1", "changes": changes})).unwrap()
    }

    /// The pull check reads a document's id from its text, never building the document: the last
    /// `id` member counts, as in `JSON.parse`, which is what the device will store.
    #[test]
    fn pulled_changes_the_client_refuses() {
        let change = |doc: &str| -> Change {
            let text = format!(
                r#"{{"collection":"t","id":"a","hlc":"018bcfe56800-000000-c1","doc":{doc}}}"#
            );
            serde_json::from_str(&text).unwrap()
        };
        for ok in [
            r#"{"id":"a"}"#,
            r#"{ "x": [{"id": "b"}], "id" : "a" }"#,
            r#"{"id":"b","id":"a"}"#,
            r#"{"id":"\u0061"}"#,
            // Not representable by the server's parser, but the id is right: stored as sent.
            r#"{"id":"a","n":1e400}"#,
        ] {
            assert_eq!(validate_change(&change(ok)), Ok(()), "{ok}");
        }
        for bad in [
            r#"{"id":"b"}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"id":1}"#,
            r#"{"x":"a"}"#,
            r#"["a"]"#,
            r#""a""#,
            "1",
            "null",
        ] {
            let e = validate_change(&change(bad)).unwrap_err();
            assert!(matches!(e, TransportError::Malformed(_)), "{bad}: {e:?}");
        }
        let deleted: Change = serde_json::from_str(
            r#"{"collection":"t","id":"a","hlc":"018bcfe56800-000000-c1","deleted":true,"doc":{"id":"a"}}"#,
        )
        .unwrap();
        assert!(validate_change(&deleted).is_err());
    }

    #[test]
    fn a_pushed_document_is_parsed_whole_by_the_check() {
        let push: PushRequest = serde_json::from_str(
            r#"{"clientId":"c1","changes":[{"collection":"t","id":"a","hlc":"018bcfe56800-000000-c1","doc":{"id":"a","n":1e400}}]}"#,
        )
        .unwrap();
        let e = check_push(&push, 1_700_000_000_000, 60_000).unwrap_err();
        assert!(matches!(e, PushRefusal::Invalid(_)), "{e:?}");
    }

    #[test]
    fn pushes_the_servers_refuse() {
        let now = 1_700_000_000_000u64;
        let ok = req(
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "doc": {"id": "a"}}]),
        );
        assert_eq!(check_push(&ok, now, 60_000), Ok(()));
        let cases = [
            json!([{"collection": "1t", "id": "a", "hlc": "018bcfe56800-000000-c1", "doc": {"id": "a"}}]),
            json!([{"collection": "t", "id": "", "hlc": "018bcfe56800-000000-c1", "doc": {"id": ""}}]),
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "doc": {"id": "b"}}]),
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "doc": [1]}]),
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1"}]),
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "deleted": true, "doc": {"id": "a"}}]),
        ];
        for c in cases {
            let e = check_push(&req(c.clone()), now, 60_000).unwrap_err();
            assert!(matches!(e, PushRefusal::Invalid(_)), "{c}: {e:?}");
            assert!(e.to_string().starts_with("changes[0] ("), "{e}");
        }
        // Another node's stamp: an offer from the past is accepted, one from the future is not.
        let offer = |node: &str| {
            req(
                json!([{"collection": "t", "id": "a", "hlc": format!("018bcfe56800-000000-{node}"), "deleted": true}]),
            )
        };
        assert_eq!(check_push(&offer("c2"), now, 60_000), Ok(()));
        assert!(matches!(
            check_push(&offer("c2"), now - 1, 60_000),
            Err(PushRefusal::Invalid(_))
        ));
        assert_eq!(check_push(&offer("c1"), now - 1, 60_000), Ok(()));
        // The clock is checked after every change's shape.
        let ahead = req(json!([
            {"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "deleted": true},
            {"collection": "t", "id": "b", "hlc": "018bcfe56800-000000-c1"}
        ]));
        assert!(matches!(
            check_push(&ahead, now - 3_600_000, 60_000),
            Err(PushRefusal::Invalid(_))
        ));
        let ahead = req(
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "deleted": true}]),
        );
        let e = check_push(&ahead, now - 3_600_000, 60_000).unwrap_err();
        assert_eq!((e.status(), e.code()), (422, codes::CLOCK_AHEAD));
        let bad_client: PushRequest =
            serde_json::from_value(json!({"clientId": "", "changes": []})).unwrap();
        let e = check_push(&bad_client, now, 60_000).unwrap_err();
        assert_eq!((e.status(), e.code()), (400, codes::BAD_REQUEST));
        let many = vec![
            json!({"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "deleted": true});
            MAX_PUSH_CHANGES + 1
        ];
        let e = check_push(&req(Value::Array(many)), now, 60_000).unwrap_err();
        assert_eq!((e.status(), e.code()), (400, codes::TOO_MANY_CHANGES));
    }
}
