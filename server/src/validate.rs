//! Turning request bytes into checked protocol values. Everything a push is refused for is found
//! here, before the database is touched, so a refused push changes nothing.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use ferrosync_core::protocol::PushRequest;
use ferrosync_core::sync::validate::{self, PushRefusal};
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

/// Checks a push by core's rules ([`validate::check_push`], the same function the in-memory
/// server uses), answered with the protocol's 4xx.
pub fn check_push(req: &PushRequest, now_ms: u64, max_drift_ms: u64) -> Result<(), ApiError> {
    validate::check_push(req, now_ms, max_drift_ms).map_err(refused)
}

fn refused(e: PushRefusal) -> ApiError {
    match e {
        PushRefusal::BadRequest(m) => ApiError::BadRequest(m),
        PushRefusal::TooManyChanges(m) => ApiError::TooManyChanges(m),
        PushRefusal::Invalid(m) => ApiError::InvalidChange(m),
        PushRefusal::ClockAhead(m) => ApiError::ClockAhead(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules are core's (tested there); this pins that each refusal gets the status and code
    /// core says the protocol answers it with, as the in-memory server sends them.
    #[test]
    fn refusals_keep_the_protocol_status_and_code() {
        for e in [
            PushRefusal::BadRequest("m".into()),
            PushRefusal::TooManyChanges("m".into()),
            PushRefusal::Invalid("m".into()),
            PushRefusal::ClockAhead("m".into()),
        ] {
            let want = (e.status(), e.code());
            let (status, code) = refused(e).status_and_code();
            assert_eq!((status.as_u16(), code), want);
        }
    }
}
