//! Turning request bytes into checked protocol values. Everything a push is refused for is found
//! here, before the database is touched, so a refused push changes nothing.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use ferrosync_core::hlc::{check_drift, validate_node};
use ferrosync_core::limits::{validate_collection_name, validate_id, MAX_PUSH_CHANGES};
use ferrosync_core::protocol::{Change, PushRequest};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

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

/// Checks a push as a whole: the client id, the batch size, and each change's shape and clock.
pub fn check_push(req: &PushRequest, now_ms: u64, max_drift_ms: u64) -> Result<(), ApiError> {
    validate_node(&req.client_id).map_err(|e| ApiError::BadRequest(format!("clientId: {e}")))?;
    if req.changes.len() > MAX_PUSH_CHANGES {
        return Err(ApiError::TooManyChanges(format!(
            "{} changes in one push, limit is {MAX_PUSH_CHANGES}: split it",
            req.changes.len()
        )));
    }
    for (i, c) in req.changes.iter().enumerate() {
        check_change(c).map_err(|m| ApiError::InvalidChange(format!("changes[{i}]: {m}")))?;
    }
    // Clock last: a malformed change is reported as such even if its clock is also off.
    for (i, c) in req.changes.iter().enumerate() {
        check_drift(&c.hlc, now_ms, max_drift_ms).map_err(|e| {
            ApiError::ClockAhead(format!(
                "changes[{i}]: {e}; correct the clock by the reply's serverTime and retry later"
            ))
        })?;
    }
    Ok(())
}

fn check_change(c: &Change) -> Result<(), String> {
    validate_collection_name(&c.collection).map_err(|e| format!("collection: {e}"))?;
    validate_id(&c.id).map_err(|e| format!("id: {e}"))?;
    if let Some(base) = &c.base {
        if *base >= c.hlc {
            return Err(format!(
                "base {base} must be older than the change's hlc {} (an edit is made after the version it edits)",
                c.hlc
            ));
        }
    }
    match (&c.doc, c.deleted) {
        (Some(_), true) => Err("a delete (deleted: true) must not carry a doc".into()),
        (None, false) => Err("doc is required unless deleted is true".into()),
        (None, true) => Ok(()),
        (Some(Value::Object(map)), false) => match map.get("id") {
            Some(Value::String(id)) if *id == c.id => Ok(()),
            Some(Value::String(id)) => Err(format!(
                "doc.id {:?} differs from the change's id {:?}",
                id.chars().take(80).collect::<String>(),
                c.id.chars().take(80).collect::<String>()
            )),
            Some(_) => Err("doc.id must be a string".into()),
            None => Err("doc must include its id".into()),
        },
        (Some(_), false) => Err("doc must be a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let ahead = req(
            json!([{"collection": "t", "id": "a", "hlc": "018bcfe56800-000000-c1", "deleted": true}]),
        );
        assert!(matches!(
            check_push(&ahead, now - 3_600_000, 60_000),
            Err(ApiError::ClockAhead(_))
        ));
    }
}
