//! The server's one error type. Every failure of a request ends here and becomes a JSON reply
//! `{ "error": { "code", "message" }, "serverTime" }`; internal details are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrosync_core::protocol::codes;
use serde::Serialize;

use crate::clock::now_ms;
use crate::store::StoreError;

/// `Retry-After` of every 503 reply, in seconds.
pub const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidChange(String),
    #[error("{0}")]
    TooManyChanges(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    ClockAhead(String),
    #[error("{0}")]
    BadCursor(String),
    #[error("{0}")]
    EpochMismatch(String),
    /// A cursor of another namespace (403 `NAMESPACE_MISMATCH`): another account's token.
    #[error("{0}")]
    NamespaceMismatch(String),
    #[error("{0}")]
    NotFound(String),
    /// The cursor is older than the compaction horizon (410 `CURSOR_EXPIRED`).
    #[error("{0}")]
    CursorExpired(String),
    /// The push hook did not answer in time or answered nonsense (503 `HOOK_UNAVAILABLE`).
    #[error("push hook unavailable: {0}")]
    HookUnavailable(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request body did not arrive within its deadline.
    #[error("{0}")]
    RequestTimeout(String),
    /// A namespace's event streams are at their cap.
    #[error("{0}")]
    TooManyStreams(String),
    /// A capacity limit or a deadline (event streams in all, a lock held elsewhere, a push that
    /// could not commit in time): worth a retry later. The message is sent as is.
    #[error("{0}")]
    Busy(String),
    /// The database could not be reached or is busy ([`StoreError::is_unavailable`]): worth a
    /// retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] StoreError),
    #[error("database error: {0}")]
    Database(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A store failure as the client sees it: the store says which failures are worth a retry;
/// what else failed is logged, never sent.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ReplyTooLarge(m) => ApiError::PayloadTooLarge(m),
            StoreError::Busy(m) => ApiError::Busy(m),
            e if e.is_unavailable() => ApiError::Unavailable(e),
            e => ApiError::Database(e),
        }
    }
}

impl ApiError {
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, codes::BAD_REQUEST),
            ApiError::InvalidChange(_) => (StatusCode::BAD_REQUEST, codes::INVALID_CHANGE),
            ApiError::TooManyChanges(_) => (StatusCode::BAD_REQUEST, codes::TOO_MANY_CHANGES),
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE)
            }
            ApiError::ClockAhead(_) => (StatusCode::UNPROCESSABLE_ENTITY, codes::CLOCK_AHEAD),
            ApiError::BadCursor(_) => (StatusCode::BAD_REQUEST, codes::BAD_CURSOR),
            ApiError::EpochMismatch(_) => (StatusCode::CONFLICT, codes::CURSOR_EPOCH_MISMATCH),
            ApiError::NamespaceMismatch(_) => (StatusCode::FORBIDDEN, codes::NAMESPACE_MISMATCH),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, codes::NOT_FOUND),
            ApiError::CursorExpired(_) => (StatusCode::GONE, codes::CURSOR_EXPIRED),
            ApiError::HookUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, codes::HOOK_UNAVAILABLE)
            }
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, codes::METHOD_NOT_ALLOWED)
            }
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, codes::REQUEST_TIMEOUT),
            ApiError::TooManyStreams(_) => (StatusCode::TOO_MANY_REQUESTS, codes::TOO_MANY_STREAMS),
            ApiError::Unavailable(_) | ApiError::Busy(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE)
            }
            ApiError::Database(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL)
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    error: Detail<'a>,
    server_time: u64,
    /// The request's id (also in its log lines and the `x-request-id` header), for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Unavailable(_) => {
                tracing::warn!(error = %self, "request failed: database unavailable");
                "the server's database is unavailable; retry later".to_string()
            }
            ApiError::Database(_) | ApiError::Internal(_) => {
                tracing::error!(error = %self, "request failed: internal error");
                "internal server error".to_string()
            }
            ApiError::HookUnavailable(_) => {
                tracing::warn!(error = %self, "push refused: hook unavailable");
                "the server's push hook is unavailable; retry later".to_string()
            }
            other => {
                tracing::debug!(code, error = %other, "request refused");
                other.to_string()
            }
        };
        let body = Body {
            error: Detail { code, message },
            server_time: now_ms(),
            request_id: crate::request_id::current(),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Worth a retry; this soon at the earliest (clients back off from here).
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if matches!(
            self,
            ApiError::PayloadTooLarge(_) | ApiError::Unauthorized(_) | ApiError::RequestTimeout(_)
        ) {
            // The request body may be left unread: tell the client not to reuse this connection,
            // or its next request could be sent on a connection the server is closing.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
