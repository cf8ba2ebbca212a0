//! Messages between the instances of one database (tabs, workers, instances on one page) about
//! sync, over a `BroadcastChannel` of its own. Only the leader (Web Lock holder) talks to the
//! server; the others tell it about their writes, forward `db.sync()` and mirror its status.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use super::status::{Status, StatusError};

/// What `db.sync()` resolves with, as it crosses tabs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub pushed: u64,
    pub pulled: u64,
    pub conflicts: u64,
}

/// Externally tagged (`"wrote"`, `{"sync":{"id":…}}`): an internally tagged enum makes serde
/// buffer every message in its generic `Content` tree, about 12 KB of the `.wasm` for nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TabMsg {
    /// A follower committed a local write: the leader schedules a push.
    Wrote,
    /// A follower's `db.sync()`; the leader answers with `Synced` carrying the same id.
    Sync { id: String },
    Synced {
        id: String,
        report: Option<Report>,
        error: Option<StatusError>,
    },
    /// The leader's status, after every change.
    Status { status: Status },
    /// A new leader: followers resend unanswered `Sync` requests.
    Leader,
    /// A new instance asks the leader for its status.
    Hello,
    /// `db.setToken()` in some instance: the leader uses the new token from now on.
    Token { token: String },
    /// The leader's offset to the server's clock (after each sync, and to a new instance):
    /// followers stamp their writes with it.
    Clock { offset_ms: i64 },
    /// `db.retryRejected()` / `db.discardRejected()` in some instance: the leader does it.
    Aside {
        collection: String,
        id: String,
        discard: bool,
    },
}

/// This instance's end of the channel; dropping it closes the channel.
pub struct Channel(crate::env::Channel);

impl Channel {
    /// Opens `ferrosync-sync:<database>`; `None` where BroadcastChannel does not exist (then each
    /// instance is on its own, which is also what the lock gives it).
    pub fn open(database: &str, on_message: impl Fn(TabMsg) + 'static) -> Option<Channel> {
        let name = format!("ferrosync-sync:{database}");
        crate::env::Channel::open(&name, move |data| {
            if let Some(msg) = data
                .as_string()
                .and_then(|t| serde_json::from_str::<TabMsg>(&t).ok())
            {
                on_message(msg);
            }
        })
        .map(Channel)
    }

    pub fn post(&self, msg: &TabMsg) {
        if let Ok(text) = serde_json::to_string(msg) {
            let _ = self.0.post(&JsValue::from_str(&text));
        }
    }
}
