//! core's [`Transport`] over `fetch` (gloo-net): `POST {url}/push`, `GET {url}/pull`.
//!
//! Every failure is classified the way the engine needs it: no reply is
//! [`TransportError::Network`], a non-2xx reply goes through [`TransportError::from_status`]
//! (gloo-net hands non-2xx back as `Ok`, so `ok()` is checked explicitly), and a 2xx body that
//! does not parse as the expected reply is [`TransportError::Malformed`], so it is never applied.
//! Pulls read one page ahead (see [`HttpTransport`]'s `pull`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ferrosync_core::protocol::{PullResponse, PushRequest, PushResponse};
use ferrosync_core::sync::{Transport, TransportError};
use futures::future::{select, Either};
use gloo_net::http::{Request, RequestBuilder, Response};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::RequestCache;

use super::read_ahead::ReadAhead;
use super::time::{now_ms, sleep};
use crate::store::held;

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

/// The request a page was read ahead for: cursor, limit, token.
type AheadKey = (String, usize, String);
/// A page read ahead, with the device wall times its request was sent and answered.
type AheadPage = (Result<PullResponse, TransportError>, f64, f64);

/// The sync server over HTTP.
pub struct HttpTransport {
    endpoint: Rc<Endpoint>,
    timeout_ms: f64,
    ahead: ReadAhead<AheadKey, AheadPage>,
    /// `serverTime` of the last error reply (see [`Transport::error_server_time`]).
    error_time: Cell<Option<u64>>,
}

impl HttpTransport {
    pub fn new(endpoint: Rc<Endpoint>) -> Self {
        HttpTransport {
            endpoint,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            ahead: ReadAhead::new(),
            error_time: Cell::new(None),
        }
    }

    /// Requests the page after `cursor` now; `pull` uses it if it is asked for that page soon.
    fn read_ahead(&self, cursor: &str, limit: usize) {
        let (endpoint, timeout, c) = (self.endpoint.clone(), self.timeout_ms, cursor.to_string());
        let key = (c.clone(), limit, self.endpoint.token.borrow().clone());
        self.ahead.start(key, async move {
            let sent = now_ms();
            // A failed read-ahead is never reported (the page is requested again), nor its time.
            let page = fetch_pull(&endpoint, timeout, Some(&c), limit, &Cell::new(None)).await;
            (page, sent, now_ms())
        });
    }

    /// The page read ahead for exactly this request (cursor, limit and token), if there is a good
    /// one. Its `serverTime` is carried forward by the time the reply waited here (the server's
    /// clock *now*, as if it had just answered), so the engine's clock-offset estimate is not
    /// skewed by the read-ahead.
    async fn take_ahead(&self, cursor: Option<&str>, limit: usize) -> Option<PullResponse> {
        let Some(cursor) = cursor else {
            // A pull from the start: nothing read ahead is that page.
            self.ahead.clear();
            return None;
        };
        let key = (
            cursor.to_string(),
            limit,
            self.endpoint.token.borrow().clone(),
        );
        let (page, sent, received) = self.ahead.take(&key).await?;
        let mut page = page.ok()?;
        let waited = now_ms() - (sent + received) / 2.0;
        page.server_time = page.server_time.saturating_add(waited.max(0.0) as u64);
        Some(page)
    }
}

async fn send(req: Request, timeout_ms: f64) -> Result<Response, TransportError> {
    let fetch = Box::pin(req.send());
    let timeout = Box::pin(sleep(timeout_ms));
    match select(fetch, timeout).await {
        Either::Left((Ok(resp), _)) => Ok(resp),
        Either::Left((Err(e), _)) => Err(TransportError::Network(e.to_string())),
        Either::Right(_) => Err(TransportError::Network(format!(
            "no reply within {timeout_ms} ms"
        ))),
    }
}

async fn fetch_pull(
    endpoint: &Endpoint,
    timeout_ms: f64,
    cursor: Option<&str>,
    limit: usize,
    error_time: &Cell<Option<u64>>,
) -> Result<PullResponse, TransportError> {
    let limit = limit.to_string();
    let mut params = vec![("limit", limit.as_str())];
    if let Some(c) = cursor {
        params.push(("cursor", c));
    }
    let request = endpoint
        .authorize(Request::get(&endpoint.url("pull")))
        .query(params)
        .build()
        .map_err(build_error)?;
    let resp = send(request, timeout_ms).await?;
    if !resp.ok() {
        return Err(refusal(resp, "pull", error_time).await);
    }
    // Parsed by the browser, like a hand-written client's: the documents stay JavaScript objects
    // (`store::held`), and WASM reads the page without them.
    let body = web_sys::Response::from(resp)
        .json()
        .map_err(|e| TransportError::Network(format!("reading the pull reply: {e:?}")))?;
    let page = JsFuture::from(body).await.map_err(|e| {
        let message = js_sys::Error::from(e.clone()).message();
        if e.is_instance_of::<js_sys::SyntaxError>() {
            TransportError::malformed("pull", message)
        } else {
            // The connection dropped while the body streamed in.
            TransportError::Network(format!("reading the pull reply: {message}"))
        }
    })?;
    held::pull_reply(&page).map_err(|e| TransportError::malformed("pull", e))
}

/// The error a non-2xx reply stands for (and its body's `serverTime`, noted in `error_time`).
async fn refusal(resp: Response, what: &str, error_time: &Cell<Option<u64>>) -> TransportError {
    let status = resp.status();
    let body = match resp.binary().await {
        Ok(body) => body,
        Err(e) => return TransportError::Network(format!("reading the {what} reply: {e}")),
    };
    let body = String::from_utf8_lossy(&body);
    error_time.set(TransportError::server_time_of(&body));
    TransportError::from_status(status, &body)
}

/// Reads a push reply, or the error the status stands for (and notes the error body's
/// `serverTime` in `error_time`).
async fn push_reply(
    resp: Response,
    error_time: &Cell<Option<u64>>,
) -> Result<PushResponse, TransportError> {
    let what = "push";
    if !resp.ok() {
        return Err(refusal(resp, what, error_time).await);
    }
    // A connection dropped while the body streams in is a network failure, not a bad reply.
    // The body comes in as bytes (one copy into WASM memory), not as text: passing a JS string
    // into WASM walks it character by character in JS (docs/BENCHMARKS.md).
    let body = resp
        .binary()
        .await
        .map_err(|e| TransportError::Network(format!("reading the {what} reply: {e}")))?;
    // `from_str` after a UTF-8 check, not `from_slice`: the replies' deserializers are already
    // compiled over `&str` (a second copy over bytes adds 22 KB to the module).
    let body = std::str::from_utf8(&body).map_err(|e| TransportError::malformed(what, e))?;
    serde_json::from_str(body).map_err(|e| TransportError::malformed(what, e))
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
        self.error_time.set(None);
        let body = serde_json::to_string(req)
            .map_err(|e| TransportError::Network(format!("encoding the push: {e}")))?;
        let request = self
            .endpoint
            .authorize(Request::post(&self.endpoint.url("push")))
            .header("Content-Type", "application/json")
            .body(body)
            .map_err(build_error)?;
        let resp = send(request, self.timeout_ms).await?;
        push_reply(resp, &self.error_time).await
    }

    fn error_server_time(&self) -> Option<u64> {
        self.error_time.get()
    }

    /// A page; when more follow, the next one is requested at once, so the network works while
    /// this one is applied. A page read ahead is used only for the same cursor, limit and token,
    /// within a few seconds (it is then simply an earlier view of the feed: the next page starts
    /// where it ends); a failed read-ahead is never reported, the page is requested again.
    async fn pull(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<PullResponse, TransportError> {
        self.error_time.set(None);
        let page = match self.take_ahead(cursor, limit).await {
            Some(p) => p,
            None => {
                fetch_pull(
                    &self.endpoint,
                    self.timeout_ms,
                    cursor,
                    limit,
                    &self.error_time,
                )
                .await?
            }
        };
        if page.has_more && !page.changes.is_empty() && Some(page.cursor.as_str()) != cursor {
            self.read_ahead(&page.cursor, limit);
        }
        Ok(page)
    }
}
