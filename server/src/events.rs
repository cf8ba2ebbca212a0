//! "New changes up to cursor N" notices, fanned out to the `/v1/events` streams of this process.
//!
//! On SQLite the store publishes after each commit. On PostgreSQL every process publishes only what
//! it hears through LISTEN/NOTIFY (its own pushes included), so all processes behind one database
//! see the same notices in commit order.

use std::sync::Arc;

use tokio::sync::broadcast;

/// One notice: `namespace` has changes up to `head`. `namespace: None` means "anything may have
/// changed" (sent after the notification connection was lost): streams re-read their head.
#[derive(Clone, Debug)]
pub struct Notice {
    pub namespace: Option<Arc<str>>,
    pub head: u64,
}

/// In-process fan-out of notices. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Notice>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Events {
        let (tx, _) = broadcast::channel(4096);
        Events { tx }
    }

    pub fn publish(&self, notice: Notice) {
        // No subscribers is fine: nobody is listening right now.
        let _ = self.tx.send(notice);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.tx.subscribe()
    }
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
