//! Turning request bytes into checked protocol values. Everything a push is refused for is found
//! here, before the database is touched, so a refused push changes nothing.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use ferrosync_core::hlc::validate_node;
use ferrosync_core::limits::MAX_PUSH_CHANGES;
use ferrosync_core::protocol::{Change, PushRequest};
use ferrosync_core::sync::validate::{check_pushed_change, check_pushed_clock};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "request body is larger than the limit of {limit} bytes"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::BadRequest(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// [`read_body`] within `deadline` (408 REQUEST_TIMEOUT after it): a client that sends a body
/// byte by byte, or never, cannot hold a request open.
pub async fn read_body_within(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<bytes::Bytes, ApiError> {
    tokio::time::timeout(deadline, read_body(headers, body, limit))
        .await
        .map_err(|_| {
            ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} ms",
                deadline.as_millis()
            ))
        })?
}

/// Parses JSON, naming what was wrong (syntax, a missing or unknown field, a wrong type) and where.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => "malformed JSON",
            Category::Data => "invalid request",
        };
        ApiError::BadRequest(format!("{what}: {e}"))
    })
}

/// Checks a push as a whole: the client id, the batch size, and each change by core's rules
/// ([`check_pushed_change`], the same function the in-memory server uses), clocks last.
pub fn check_push(req: &PushRequest, now_ms: u64, max_drift_ms: u64) -> Result<(), ApiError> {
    validate_node(&req.client_id).map_err(|e| ApiError::BadRequest(format!("clientId: {e}")))?;
    if req.changes.len() > MAX_PUSH_CHANGES {
        return Err(ApiError::TooManyChanges(format!(
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
            .map_err(|e| ApiError::InvalidChange(format!("{}: {e}", at(i, c))))?;
        check_offer(c, &req.client_id, now_ms)
            .map_err(|e| ApiError::InvalidChange(format!("{}: {e}", at(i, c))))?;
    }
    // Clock last: a malformed change is reported as such even if its clock is also off.
    for (i, c) in req.changes.iter().enumerate() {
        check_pushed_clock(c, now_ms, max_drift_ms).map_err(|e| {
            ApiError::ClockAhead(format!(
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
/// with the forger's content stored. Core's rule already refuses another node on an edit with a
/// `base`, so the base rule's same-client exemption cannot be claimed either.
fn check_offer(c: &Change, client_id: &str, now_ms: u64) -> Result<(), String> {
    if c.hlc.node == client_id || c.hlc.wall_ms <= now_ms {
        return Ok(());
    }
    Err(format!(
        "hlc node {:?} is not the pushing clientId {client_id:?}, and its time is {} ms after the server's: \
         a client stamps its changes with its own id; only a re-sync offer carries another writer's \
         stamp, and that version was written in the past",
        c.hlc.node.chars().take(64).collect::<String>(),
        c.hlc.wall_ms - now_ms
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn req(changes: Value) -> PushRequest {
        serde_json::from_value(json!({"clientId": "c1", "changes": changes})).unwrap()
    }

    #[test]
    fn shapes() {
        let now = 1_700_000_000_000u64;
        let ok = req(
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "doc": {"id": "a"}}]),
        );
        assert!(check_push(&ok, now, 60_000).is_ok());
        let cases = [
            json!([{"collection": "1t", "id": "a", "hlc": "018bcfe56800-000000-c1", "doc": {"id": "a"}}]),
            json!([{"collection": "t", "id": "", "hlc": "018bcfe56800-000000-c1", "doc": {"id": ""}}]),
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "doc": {"id": "b"}}]),
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "doc": [1]}]),
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1"}]),
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "deleted": true, "doc": {"id": "a"}}]),
        ];
        for c in cases {
            assert!(
                matches!(
                    check_push(&req(c.clone()), now, 60_000),
                    Err(ApiError::InvalidChange(_))
                ),
                "{c}"
            );
        }
        // Another node's stamp: an offer from the past is accepted, one from the future is not.
        let offer = |node: &str| {
            req(
                json!([{"collection": "t", "id": "a", "hlc": format!("018bcfe56800-000000-{node}"), "deleted": true}]),
            )
        };
        assert!(check_push(&offer("c2"), now, 60_000).is_ok());
        assert!(check_push(&offer("c2"), now - 1, 60_000).is_err());
        assert!(check_push(&offer("c1"), now - 1, 60_000).is_ok());
        let ahead = req(
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "deleted": true}]),
        );
        assert!(matches!(
            check_push(&ahead, now - 3_600_000, 60_000),
            Err(ApiError::ClockAhead(_))
        ));
    }
}
