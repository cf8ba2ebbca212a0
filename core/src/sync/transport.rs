//! How the engine talks to the server: two calls, and the ways they fail.

use crate::protocol::{codes, ErrorBody, PullResponse, PushRequest, PushResponse};

/// A failed request, classified by what the engine should do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No reply: offline, DNS, connection reset, timeout. The request may or may not have been
    /// applied; retries are safe (pushes are idempotent).
    #[error("network error: {0}")]
    Network(String),
    /// 5xx, or 408/429: the server is in trouble or busy; retry later.
    #[error("server error {status} ({code}): {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    /// 401/403: the token is missing, wrong or expired; retrying will not help until it changes.
    #[error("unauthorized ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// 403 `NAMESPACE_MISMATCH`: the token is another account's than the one this device synced
    /// with (its cursor names another namespace). Nothing is pushed or pulled until the token
    /// changes: re-syncing from the start would offer the last account's documents to this one.
    #[error("the token is for another account than this device synced with: {0}")]
    NamespaceMismatch(String),
    /// 409 `CURSOR_EPOCH_MISMATCH`: our cursor belongs to another server database.
    #[error("cursor belongs to another server database: {0}")]
    CursorEpochMismatch(String),
    /// Any other 4xx: the server refused the request as sent.
    #[error("request refused ({status} {code}): {message}")]
    BadRequest {
        status: u16,
        code: String,
        message: String,
    },
    /// A reply that does not parse or breaks the protocol; never applied.
    #[error("malformed server reply: {0}")]
    Malformed(String),
}

impl TransportError {
    /// Classifies a non-2xx HTTP reply from its status and body (`{error:{code,message}}` when the
    /// server sent one), so every transport maps statuses the same way.
    pub fn from_status(status: u16, body: &str) -> TransportError {
        let detail = serde_json::from_str::<ErrorBody>(body)
            .ok()
            .map(|b| b.error);
        let (code, message) = match detail {
            Some(d) => (d.code, d.message),
            None => (String::new(), body.chars().take(200).collect::<String>()),
        };
        match status {
            403 if code == codes::NAMESPACE_MISMATCH => TransportError::NamespaceMismatch(message),
            401 | 403 => TransportError::Unauthorized { status, message },
            409 if code == codes::CURSOR_EPOCH_MISMATCH => {
                TransportError::CursorEpochMismatch(message)
            }
            410 if code == codes::CURSOR_EXPIRED => TransportError::CursorEpochMismatch(message),
            408 | 429 | 500..=599 => TransportError::Server {
                status,
                code,
                message,
            },
            400..=499 => TransportError::BadRequest {
                status,
                code,
                message,
            },
            _ => TransportError::Malformed(format!("unexpected HTTP status {status}")),
        }
    }

    /// The `serverTime` of an error reply's body, if it has one.
    pub fn server_time_of(body: &str) -> Option<u64> {
        serde_json::from_str::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.server_time)
    }

    /// A 2xx body that does not parse as the expected reply.
    pub fn malformed(what: &str, err: impl std::fmt::Display) -> TransportError {
        TransportError::Malformed(format!("{what}: {err}"))
    }
}

/// The server, as the engine sees it. `async fn` without `Send`, like [`super::LocalStore`].
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// `POST /v1/push`.
    async fn push(&self, req: &PushRequest) -> Result<PushResponse, TransportError>;
    /// `GET /v1/pull?cursor=&limit=` (no cursor: from the start).
    async fn pull(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<PullResponse, TransportError>;

    /// The `serverTime` of the error reply the last failed call got, if it carried one (the
    /// reference server's all do): the engine learns its clock offset from refusals too.
    fn error_server_time(&self) -> Option<u64> {
        None
    }
}

/// A shared transport (e.g. the app swaps its token through another handle).
impl<T: Transport + ?Sized> Transport for std::rc::Rc<T> {
    async fn push(&self, req: &PushRequest) -> Result<PushResponse, TransportError> {
        (**self).push(req).await
    }

    async fn pull(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<PullResponse, TransportError> {
        (**self).pull(cursor, limit).await
    }

    fn error_server_time(&self) -> Option<u64> {
        (**self).error_server_time()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str) -> String {
        format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#)
    }

    #[test]
    fn statuses_map_to_kinds() {
        use TransportError as E;
        assert!(matches!(
            E::from_status(401, &body("UNAUTHORIZED")),
            E::Unauthorized { status: 401, .. }
        ));
        assert!(matches!(
            E::from_status(403, ""),
            E::Unauthorized { status: 403, .. }
        ));
        assert!(matches!(
            E::from_status(409, &body(codes::CURSOR_EPOCH_MISMATCH)),
            E::CursorEpochMismatch(_)
        ));
        assert!(matches!(
            E::from_status(410, &body(codes::CURSOR_EXPIRED)),
            E::CursorEpochMismatch(_)
        ));
        assert!(matches!(
            E::from_status(409, &body("OTHER")),
            E::BadRequest { status: 409, .. }
        ));
        assert!(matches!(
            E::from_status(503, "<html>"),
            E::Server { status: 503, .. }
        ));
        assert!(matches!(
            E::from_status(429, ""),
            E::Server { status: 429, .. }
        ));
        match E::from_status(422, &body(codes::CLOCK_AHEAD)) {
            E::BadRequest {
                status,
                code,
                message,
            } => {
                assert_eq!(
                    (status, code.as_str(), message.as_str()),
                    (422, codes::CLOCK_AHEAD, "m")
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(E::from_status(302, ""), E::Malformed(_)));
    }
}
