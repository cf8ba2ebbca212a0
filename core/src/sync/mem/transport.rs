//! A [`Transport`] to a [`MemServer`] through the real wire format (every request and reply goes
//! through JSON), with failures on demand: offline, 5xx, a reply lost after the server applied the
//! push ("killed mid-push"), corrupted replies, and hooks that run while a request is in flight.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::Value;

use crate::protocol::{PullResponse, PushRequest, PushResponse};
use crate::sync::transport::{Transport, TransportError};

use super::server::MemServer;

/// A failure for the next request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No failure: lets a script of faults skip a request.
    Pass,
    /// Fails before reaching the server.
    Network,
    /// The server answers this status without doing anything.
    Status(u16),
    /// The server applies the request, then the connection drops before the reply arrives.
    DropReply,
}

type Hook = Box<dyn FnMut()>;
type Mutator = Box<dyn FnMut(&mut Value)>;

pub struct MemTransport {
    server: MemServer,
    token: RefCell<Option<String>>,
    offline: Cell<bool>,
    faults: RefCell<VecDeque<Fault>>,
    push_hook: RefCell<Option<Hook>>,
    pull_hook: RefCell<Option<Hook>>,
    corrupt_push: RefCell<Option<Mutator>>,
    corrupt_pull: RefCell<Option<Mutator>>,
    requests: Cell<u64>,
    /// `serverTime` of the last call's error reply, when the server answered one.
    error_time: Cell<Option<u64>>,
}

impl MemTransport {
    pub fn new(server: MemServer, token: &str) -> Self {
        MemTransport {
            server,
            token: RefCell::new(Some(token.to_string())),
            offline: Cell::new(false),
            faults: RefCell::default(),
            push_hook: RefCell::default(),
            pull_hook: RefCell::default(),
            corrupt_push: RefCell::default(),
            corrupt_pull: RefCell::default(),
            requests: Cell::new(0),
            error_time: Cell::new(None),
        }
    }

    pub fn server(&self) -> &MemServer {
        &self.server
    }

    pub fn set_token(&self, token: Option<&str>) {
        *self.token.borrow_mut() = token.map(str::to_string);
    }

    /// While offline every request fails with a network error.
    pub fn set_offline(&self, offline: bool) {
        self.offline.set(offline);
    }

    /// Queues a failure for the next request (push or pull).
    pub fn fail_next(&self, fault: Fault) {
        self.faults.borrow_mut().push_back(fault);
    }

    pub fn clear_faults(&self) {
        self.faults.borrow_mut().clear();
    }

    /// Runs after the server handled a push and before its reply arrives (a local edit "during" it).
    pub fn on_push(&self, hook: Option<Hook>) {
        *self.push_hook.borrow_mut() = hook;
    }

    /// Runs after the server produced a pull page and before it arrives.
    pub fn on_pull(&self, hook: Option<Hook>) {
        *self.pull_hook.borrow_mut() = hook;
    }

    /// Rewrites push replies (as JSON) before the client parses them.
    pub fn corrupt_push(&self, f: Option<Mutator>) {
        *self.corrupt_push.borrow_mut() = f;
    }

    /// Rewrites pull replies (as JSON) before the client parses them.
    pub fn corrupt_pull(&self, f: Option<Mutator>) {
        *self.corrupt_pull.borrow_mut() = f;
    }

    /// Requests attempted so far.
    pub fn requests(&self) -> u64 {
        self.requests.get()
    }

    fn before(&self) -> Result<Option<Fault>, TransportError> {
        self.requests.set(self.requests.get() + 1);
        self.error_time.set(None);
        if self.offline.get() {
            return Err(TransportError::Network("offline".into()));
        }
        let fault = self.faults.borrow_mut().pop_front();
        match fault {
            Some(Fault::Network) => Err(TransportError::Network("connection refused".into())),
            Some(Fault::Status(s)) => {
                // The server answered: its error body carries `serverTime`, as the real one's.
                self.error_time.set(Some(self.server.server_time()));
                Err(TransportError::from_status(
                    s,
                    r#"{"error":{"code":"INTERNAL","message":"injected"}}"#,
                ))
            }
            other => Ok(other),
        }
    }

    fn run_hook(slot: &RefCell<Option<Hook>>) {
        let hook = slot.borrow_mut().take();
        if let Some(mut h) = hook {
            h();
            let mut s = slot.borrow_mut();
            if s.is_none() {
                *s = Some(h);
            }
        }
    }

    fn reply<R: serde::de::DeserializeOwned, S: serde::Serialize>(
        reply: &S,
        corrupt: &RefCell<Option<Mutator>>,
    ) -> Result<R, TransportError> {
        let mut v =
            serde_json::to_value(reply).map_err(|e| TransportError::malformed("reply", e))?;
        if let Some(f) = corrupt.borrow_mut().as_mut() {
            f(&mut v);
        }
        serde_json::from_value(v).map_err(|e| TransportError::malformed("reply", e))
    }
}

impl Transport for MemTransport {
    async fn push(&self, req: &PushRequest) -> Result<PushResponse, TransportError> {
        YieldNow(false).await;
        let fault = self.before()?;
        // Over the wire and back, as the real server would parse it.
        let wire =
            serde_json::to_string(req).map_err(|e| TransportError::malformed("request", e))?;
        let parsed: PushRequest =
            serde_json::from_str(&wire).map_err(|e| TransportError::BadRequest {
                status: 400,
                code: "BAD_REQUEST".into(),
                message: e.to_string(),
            })?;
        let token = self.token.borrow().clone();
        let result = self.server.push(token.as_deref(), &parsed);
        if result.is_err() {
            self.error_time.set(Some(self.server.server_time()));
        }
        Self::run_hook(&self.push_hook);
        YieldNow(false).await;
        if fault == Some(Fault::DropReply) {
            return Err(TransportError::Network(
                "connection lost after the server applied the push".into(),
            ));
        }
        Self::reply(&result?, &self.corrupt_push)
    }

    async fn pull(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<PullResponse, TransportError> {
        YieldNow(false).await;
        let fault = self.before()?;
        let token = self.token.borrow().clone();
        let result = self.server.pull(token.as_deref(), cursor, limit);
        if result.is_err() {
            self.error_time.set(Some(self.server.server_time()));
        }
        Self::run_hook(&self.pull_hook);
        YieldNow(false).await;
        if fault == Some(Fault::DropReply) {
            return Err(TransportError::Network("connection lost".into()));
        }
        Self::reply(&result?, &self.corrupt_pull)
    }

    fn error_server_time(&self) -> Option<u64> {
        self.error_time.get()
    }
}

/// Returns `Pending` once, so other tasks on the same executor run while a request is "in flight".
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
