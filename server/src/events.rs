//! "New changes up to cursor N" notices, fanned out to the `/v1/events` streams of this process.
//!
//! On SQLite the store publishes after each commit. On PostgreSQL every process publishes only what
//! it hears through LISTEN/NOTIFY (its own pushes included), so all processes behind one database
//! see the same notices in commit order.
//!
//! Each namespace with open streams has a channel of its own, so a notice wakes only its own
//! namespace's streams (a busy namespace costs the others nothing); "anything may have changed"
//! notices go to every stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
pub use tokio::sync::broadcast::error::RecvError;

/// One notice: `namespace` has changes up to `head`. `namespace: None` means "anything may have
/// changed" (sent after the notification connection was lost): streams re-read their head.
#[derive(Clone, Debug)]
pub struct Notice {
    pub namespace: Option<Arc<str>>,
    pub head: u64,
}

/// Notices kept per namespace for a slow stream (only the newest matters: a stream that falls
/// behind reads its head again).
const PER_NAMESPACE: usize = 16;

/// In-process fan-out of notices. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    any: broadcast::Sender<Notice>,
    namespaces: Mutex<HashMap<Arc<str>, broadcast::Sender<Notice>>>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Events {
        let (any, _) = broadcast::channel(64);
        Events {
            inner: Arc::new(Inner {
                any,
                namespaces: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn publish(&self, notice: Notice) {
        // No subscribers is fine: nobody is listening right now.
        match &notice.namespace {
            None => {
                let _ = self.inner.any.send(notice);
            }
            Some(ns) => {
                let map = lock(&self.inner.namespaces);
                if let Some(tx) = map.get(ns) {
                    let _ = tx.send(notice);
                }
            }
        }
    }

    /// Notices for `namespace` (and "anything may have changed" ones).
    pub fn subscribe(&self, namespace: &str) -> Subscription {
        let own = {
            let mut map = lock(&self.inner.namespaces);
            map.entry(Arc::from(namespace))
                .or_insert_with(|| broadcast::channel(PER_NAMESPACE).0)
                .subscribe()
        };
        Subscription {
            own: Some(own),
            any: self.inner.any.subscribe(),
            namespace: Arc::from(namespace),
            events: self.clone(),
        }
    }
}

/// One stream's notices; its namespace's channel goes away with its last subscription.
pub struct Subscription {
    own: Option<broadcast::Receiver<Notice>>,
    any: broadcast::Receiver<Notice>,
    namespace: Arc<str>,
    events: Events,
}

impl Subscription {
    /// The next notice for this namespace, or a "look again" one; `Lagged` when some were missed.
    pub async fn recv(&mut self) -> Result<Notice, RecvError> {
        let Some(own) = self.own.as_mut() else {
            return Err(RecvError::Closed);
        };
        tokio::select! {
            n = own.recv() => n,
            n = self.any.recv() => n,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = lock(&self.events.inner.namespaces);
        drop(self.own.take());
        if map
            .get(&self.namespace)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            map.remove(&self.namespace);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The NOTIFY payload: `<head>:<namespace>` (head first, since a namespace may contain `:`).
pub fn encode_payload(namespace: &str, head: u64) -> String {
    format!("{head}:{namespace}")
}

pub fn decode_payload(payload: &str) -> Option<Notice> {
    let (head, ns) = payload.split_once(':')?;
    Some(Notice {
        namespace: Some(Arc::from(ns)),
        head: head.parse().ok()?,
    })
}
