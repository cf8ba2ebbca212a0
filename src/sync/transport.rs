//! core's [`Transport`] over `fetch` (gloo-net): `POST {url}/push`, `GET {url}/pull`.
//!
//! Every failure is classified the way the engine needs it: no reply is
//! [`TransportError::Network`], a non-2xx reply goes through [`TransportError::from_status`]
//! (gloo-net hands non-2xx back as `Ok`, so `ok()` is checked explicitly), and a 2xx body that
//! does not parse as the expected reply is [`TransportError::Malformed`], so it is never applied.

use std::cell::RefCell;
use std::rc::Rc;

use ferrosync_core::protocol::{PullResponse, PushRequest, PushResponse};
use ferrosync_core::sync::{Transport, TransportError};
use futures::future::{select, Either};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use web_sys::RequestCache;

use super::time::sleep;

/// A request without a reply after this long counts as a network error (pushes are idempotent,
/// so the retry is safe even if the server did apply it).
pub const DEFAULT_TIMEOUT_MS: f64 = 60_000.0;

/// Where the server is and who we are; shared with the scheduler, which changes the token.
#[derive(Debug)]
pub struct Endpoint {
    /// The API base, e.g. `http://127.0.0.1:8080/v1`, without a trailing slash.
    pub base: String,
    pub token: RefCell<String>,
}

impl Endpoint {
    pub fn new(url: &str, token: &str) -> Self {
        Endpoint {
            base: url.trim_end_matches('/').to_string(),
            token: RefCell::new(token.to_string()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn authorize(&self, req: RequestBuilder) -> RequestBuilder {
        let token = self.token.borrow();
        req.header("Authorization", &format!("Bearer {token}"))
            .cache(RequestCache::NoStore)
    }
}

/// The sync server over HTTP.
pub struct HttpTransport {
    endpoint: Rc<Endpoint>,
    timeout_ms: f64,
}

impl HttpTransport {
    pub fn new(endpoint: Rc<Endpoint>) -> Self {
        HttpTransport {
            endpoint,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    async fn send(&self, req: Request) -> Result<Response, TransportError> {
        let fetch = Box::pin(req.send());
        let timeout = Box::pin(sleep(self.timeout_ms));
        match select(fetch, timeout).await {
            Either::Left((Ok(resp), _)) => Ok(resp),
            Either::Left((Err(e), _)) => Err(TransportError::Network(e.to_string())),
            Either::Right(_) => Err(TransportError::Network(format!(
                "no reply within {} ms",
                self.timeout_ms
            ))),
        }
    }
}

/// Reads the body and turns it into the expected reply, or the error the status stands for.
async fn reply<T: DeserializeOwned>(resp: Response, what: &str) -> Result<T, TransportError> {
    let status = resp.status();
    let ok = resp.ok();
    // A connection dropped while the body streams in is a network failure, not a bad reply.
    let body = resp
        .text()
        .await
        .map_err(|e| TransportError::Network(format!("reading the {what} reply: {e}")))?;
    if !ok {
        return Err(TransportError::from_status(status, &body));
    }
    serde_json::from_str(&body).map_err(|e| TransportError::malformed(what, e))
}

fn build_error(e: gloo_net::Error) -> TransportError {
    // Only a URL the browser refuses gets here (e.g. an invalid `sync.url`): retrying won't help.
    TransportError::BadRequest {
        status: 0,
        code: "INVALID_URL".into(),
        message: e.to_string(),
    }
}

impl Transport for HttpTransport {
    async fn push(&self, req: &PushRequest) -> Result<PushResponse, TransportError> {
        let body = serde_json::to_string(req)
            .map_err(|e| TransportError::Network(format!("encoding the push: {e}")))?;
        let request = self
            .endpoint
            .authorize(Request::post(&self.endpoint.url("push")))
            .header("Content-Type", "application/json")
            .body(body)
            .map_err(build_error)?;
        let resp = self.send(request).await?;
        reply(resp, "push").await
    }

    async fn pull(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<PullResponse, TransportError> {
        let limit = limit.to_string();
        let mut params = vec![("limit", limit.as_str())];
        if let Some(c) = cursor {
            params.push(("cursor", c));
        }
        let request = self
            .endpoint
            .authorize(Request::get(&self.endpoint.url("pull")))
            .query(params)
            .build()
            .map_err(build_error)?;
        let resp = self.send(request).await?;
        reply(resp, "pull").await
    }
}
