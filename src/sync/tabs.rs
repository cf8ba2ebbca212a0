//! Messages between the instances of one database (tabs, workers, instances on one page) about
//! sync, over a `BroadcastChannel` of its own. Only the leader (Web Lock holder) talks to the
//! server; the others tell it about their writes, forward `db.sync()` and mirror its status.

use serde::Serialize;
use serde_json::{Map, Value};
use wasm_bindgen::prelude::*;

use super::status::{Status, StatusError};

/// What `db.sync()` resolves with, as it crosses tabs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub pushed: u64,
    pub pulled: u64,
    pub conflicts: u64,
}

/// Externally tagged (`"wrote"`, `{"sync":{"id":…}}`): an internally tagged enum makes serde
/// buffer every message in its generic `Content` tree, about 12 KB of the `.wasm` for nothing.
/// Read back by hand (`TabMsg::read`), not by a derived `Deserialize`.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
            if let Some(msg) = data.as_string().and_then(|t| TabMsg::read(&t)) {
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

impl TabMsg {
    /// A message as `post` wrote it (here or in another version of the app: the wire is serde's
    /// externally tagged JSON of the type above), read through `serde_json::Value`, which the
    /// library links anyway, instead of derived deserializers (about 12 KB of the `.wasm`).
    /// Unknown members are ignored and a missing or `null` optional member is `None`, as a
    /// derived `Deserialize` reads them; anything else malformed is `None`.
    pub fn read(text: &str) -> Option<TabMsg> {
        match serde_json::from_str::<Value>(text).ok()? {
            Value::String(tag) => match tag.as_str() {
                "wrote" => Some(TabMsg::Wrote),
                "leader" => Some(TabMsg::Leader),
                "hello" => Some(TabMsg::Hello),
                _ => None,
            },
            Value::Object(m) if m.len() == 1 => {
                let (tag, body) = m.into_iter().next()?;
                let b = body.as_object()?;
                Some(match tag.as_str() {
                    "sync" => TabMsg::Sync {
                        id: text_of(b, "id")?,
                    },
                    "synced" => TabMsg::Synced {
                        id: text_of(b, "id")?,
                        report: optional(b, "report", report)?,
                        error: optional(b, "error", status_error)?,
                    },
                    "status" => TabMsg::Status {
                        status: status(b.get("status")?)?,
                    },
                    "token" => TabMsg::Token {
                        token: text_of(b, "token")?,
                    },
                    "clock" => TabMsg::Clock {
                        offset_ms: b.get("offset_ms")?.as_i64()?,
                    },
                    "aside" => TabMsg::Aside {
                        collection: text_of(b, "collection")?,
                        id: text_of(b, "id")?,
                        discard: b.get("discard")?.as_bool()?,
                    },
                    _ => return None,
                })
            }
            _ => None,
        }
    }
}

fn text_of(o: &Map<String, Value>, key: &str) -> Option<String> {
    o.get(key)?.as_str().map(str::to_owned)
}

fn count_of(o: &Map<String, Value>, key: &str) -> Option<u64> {
    o.get(key)?.as_u64()
}

/// `Some(None)` when `key` is missing or `null`, `None` when it is there but not a `T`.
fn optional<T>(
    o: &Map<String, Value>,
    key: &str,
    read: impl Fn(&Value) -> Option<T>,
) -> Option<Option<T>> {
    match o.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(v) => read(v).map(Some),
    }
}

fn report(v: &Value) -> Option<Report> {
    let o = v.as_object()?;
    Some(Report {
        pushed: count_of(o, "pushed")?,
        pulled: count_of(o, "pulled")?,
        conflicts: count_of(o, "conflicts")?,
    })
}

fn status_error(v: &Value) -> Option<StatusError> {
    let o = v.as_object()?;
    Some(StatusError {
        code: text_of(o, "code")?,
        message: text_of(o, "message")?,
    })
}

fn status(v: &Value) -> Option<Status> {
    use super::status::{Rejected, State, StatusProgress};
    let o = v.as_object()?;
    let progress = o.get("progress")?.as_object()?;
    Some(Status {
        state: match o.get("state")?.as_str()? {
            "idle" => State::Idle,
            "syncing" => State::Syncing,
            "offline" => State::Offline,
            "error" => State::Error,
            _ => return None,
        },
        pending: count_of(o, "pending")?,
        last_sync_at: optional(o, "lastSyncAt", Value::as_u64)?,
        error: optional(o, "error", status_error)?,
        progress: StatusProgress {
            pulled: count_of(progress, "pulled")?,
            remaining: optional(progress, "remaining", Value::as_u64)?,
        },
        rejected: o
            .get("rejected")?
            .as_array()?
            .iter()
            .map(|r| {
                let r = r.as_object()?;
                Some(Rejected {
                    collection: text_of(r, "collection")?,
                    id: text_of(r, "id")?,
                    code: text_of(r, "code")?,
                    message: text_of(r, "message")?,
                })
            })
            .collect::<Option<Vec<_>>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::status::{Rejected, State, StatusProgress};
    use super::*;
    use wasm_bindgen_test::*;
    wasm_bindgen_test_configure!(run_in_browser);

    fn every_message() -> Vec<TabMsg> {
        let error = StatusError {
            code: "SYNC_NETWORK".into(),
            message: "offline \"now\"".into(),
        };
        let full = Status {
            state: State::Error,
            pending: 7,
            last_sync_at: Some(1_796_600_000_000),
            error: Some(error.clone()),
            progress: StatusProgress {
                pulled: 12,
                remaining: Some(3),
            },
            rejected: vec![Rejected {
                collection: "tasks".into(),
                id: "t\u{e9}1".into(),
                code: "SYNC_REJECTED".into(),
                message: "too big".into(),
            }],
        };
        let mut statuses = vec![Status::default(), full];
        for state in [State::Syncing, State::Offline, State::Idle] {
            statuses.push(Status {
                state,
                ..Status::default()
            });
        }
        let mut all = vec![
            TabMsg::Wrote,
            TabMsg::Leader,
            TabMsg::Hello,
            TabMsg::Sync { id: "s1".into() },
            TabMsg::Synced {
                id: "s1".into(),
                report: Some(Report {
                    pushed: 1,
                    pulled: 2,
                    conflicts: 3,
                }),
                error: None,
            },
            TabMsg::Synced {
                id: "s2".into(),
                report: None,
                error: Some(error),
            },
            TabMsg::Token {
                token: "jwt.x.y".into(),
            },
            TabMsg::Clock { offset_ms: -1_500 },
            TabMsg::Aside {
                collection: "tasks".into(),
                id: "a".into(),
                discard: true,
            },
        ];
        all.extend(statuses.into_iter().map(|status| TabMsg::Status { status }));
        all
    }

    #[wasm_bindgen_test]
    fn every_message_reads_back_as_it_was_posted() {
        for msg in every_message() {
            let text = serde_json::to_string(&msg).unwrap();
            assert_eq!(TabMsg::read(&text), Some(msg), "{text}");
        }
    }

    /// The wire itself, as another version of the app posts it: a change here breaks two versions'
    /// tabs talking during a rollout.
    #[wasm_bindgen_test]
    fn the_wire_format_is_the_one_other_versions_post() {
        let wire = [
            (TabMsg::Wrote, r#""wrote""#),
            (
                TabMsg::Clock { offset_ms: -5 },
                r#"{"clock":{"offset_ms":-5}}"#,
            ),
            (
                TabMsg::Synced {
                    id: "x".into(),
                    report: None,
                    error: None,
                },
                r#"{"synced":{"id":"x","report":null,"error":null}}"#,
            ),
            (
                TabMsg::Status {
                    status: Status::default(),
                },
                r#"{"status":{"status":{"state":"idle","pending":0,"lastSyncAt":null,"error":null,"progress":{"pulled":0,"remaining":null},"rejected":[]}}}"#,
            ),
        ];
        for (msg, text) in wire {
            assert_eq!(serde_json::to_string(&msg).unwrap(), text);
            assert_eq!(TabMsg::read(text), Some(msg));
        }
        // Missing optional members and members this version does not know, as a derived
        // `Deserialize` takes them.
        assert_eq!(
            TabMsg::read(r#"{"synced":{"id":"x","later":1}}"#),
            Some(TabMsg::Synced {
                id: "x".into(),
                report: None,
                error: None
            })
        );
    }

    #[wasm_bindgen_test]
    fn malformed_messages_are_ignored() {
        for text in [
            "",
            "null",
            "[]",
            "12",
            r#""bogus""#,
            r#"{"sync":{"id":5}}"#,
            r#"{"sync":{}}"#,
            r#"{"sync":"s1"}"#,
            r#"{"sync":{"id":"a"},"hello":{}}"#,
            r#"{"clock":{"offset_ms":1.5}}"#,
            r#"{"aside":{"collection":"c","id":"a","discard":"yes"}}"#,
            r#"{"synced":{"id":"x","report":{"pushed":-1,"pulled":0,"conflicts":0}}}"#,
            r#"{"status":{"status":{"state":"asleep","pending":0,"progress":{"pulled":0},"rejected":[]}}}"#,
            r#"{"status":{"status":{"state":"idle","pending":0,"progress":{"pulled":0},"rejected":[{"id":"a"}]}}}"#,
        ] {
            assert_eq!(TabMsg::read(text), None, "{text}");
        }
    }
}
