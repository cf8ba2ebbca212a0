//! Conflict policies per collection, and the pure decision of what to do when a remote version
//! meets the local one.

use std::collections::BTreeMap;

use crate::by_name::ByName;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use serde_json::Value;

use crate::hlc::Hlc;
use crate::merge::FieldState;
use crate::protocol::{Change, Doc};

use super::store::LocalDoc;

/// Both sides of a conflict, handed to a custom resolver. `None` is a deleted document.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    pub collection: String,
    pub id: String,
    pub local: Option<Value>,
    pub remote: Option<Value>,
}

/// What a custom resolver returns: the document to keep (None: delete it), or why it failed.
pub type ResolverFuture = Pin<Box<dyn Future<Output = Result<Option<Value>, String>>>>;

/// An app-supplied resolver (a JS function in the browser). Async and not `Send`.
pub type CustomResolver = Rc<dyn Fn(Conflict) -> ResolverFuture>;

/// What [`with_timeout`] waits on: a future that finishes after the given milliseconds (a
/// `setTimeout` in the browser, simulated time in native tests).
pub type Sleep = Rc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = ()>>>>;

/// The default of [`with_timeout`]'s bound (`sync.resolverTimeoutMs` in the browser).
pub const DEFAULT_RESOLVER_TIMEOUT_MS: u64 = 10_000;

/// `resolve` bounded in time: an answer not given within `timeout_ms` is a failure (the engine
/// then sets the document aside), so one resolver that never settles never stalls sync.
pub fn with_timeout(resolve: CustomResolver, timeout_ms: u64, sleep: Sleep) -> CustomResolver {
    Rc::new(move |c: Conflict| {
        let mut answer = resolve(c);
        let mut timer = sleep(timeout_ms);
        Box::pin(std::future::poll_fn(move |cx| {
            if let Poll::Ready(out) = answer.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(format!(
                    "it did not settle within {timeout_ms} ms (sync.resolverTimeoutMs)"
                )));
            }
            Poll::Pending
        })) as ResolverFuture
    })
}

/// How a collection settles a pending local change that meets a different remote version.
#[derive(Clone)]
pub enum Policy {
    /// The higher HLC wins whole (ties by client id). The default.
    Lww,
    /// Field by field, each field last-write-wins (see [`crate::merge`]).
    Merge,
    /// The app decides when its pending edit meets a newer version (the case the server reports as
    /// stale); its answer becomes a new local write that syncs back. An older remote version loses
    /// by order, as it would on the server.
    Custom(CustomResolver),
}

impl Policy {
    /// Whether local writes of this collection must record per-field HLCs.
    pub fn tracks_fields(&self) -> bool {
        matches!(self, Policy::Merge)
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Lww => "Lww",
            Policy::Merge => "Merge",
            Policy::Custom(_) => "Custom",
        })
    }
}

/// The policy of each collection; collections not named use the default (LWW unless changed).
#[derive(Clone, Debug)]
pub struct Policies {
    default: Policy,
    by_collection: ByName<Policy>,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            default: Policy::Lww,
            by_collection: ByName::new(),
        }
    }
}

impl Policies {
    pub fn new(default: Policy) -> Self {
        Policies {
            default,
            by_collection: ByName::new(),
        }
    }

    pub fn with(mut self, collection: impl Into<String>, policy: Policy) -> Self {
        self.by_collection.insert(collection.into(), policy);
        self
    }

    pub fn set(&mut self, collection: impl Into<String>, policy: Policy) {
        self.by_collection.insert(collection.into(), policy);
    }

    pub fn get(&self, collection: &str) -> &Policy {
        self.by_collection.get(collection).unwrap_or(&self.default)
    }
}

/// What to do with one remote version against the local one.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decision {
    /// Local stays as it is (and, if pending, is pushed as it is).
    Keep,
    /// The server holds exactly the local version: drop the outbox row.
    Unpend,
    /// Store the remote version; any pending local change is superseded.
    TakeRemote,
    /// Store this as a new local write (fresh HLC, into the outbox).
    Write {
        doc: Option<Doc>,
        fields: Option<BTreeMap<String, Hlc>>,
    },
}

/// The decision for LWW (and for anything not a pending user edit) and for field merge. Custom
/// resolvers go through [`decide_custom`] once the app answered.
pub(crate) fn decide_by_order(local: &LocalDoc, remote: &Change, merge: bool) -> Decision {
    let l = &local.change;
    if l.hlc == remote.hlc {
        return same_version(local);
    }
    if !merge {
        return if remote.hlc > l.hlc {
            Decision::TakeRemote
        } else {
            Decision::Keep
        };
    }
    // Field merge, whether or not the local version is pending: a local version the server
    // acknowledged may since have been overwritten by a write that never saw it (the server is
    // LWW per document), so the join is written back whenever it holds more than the remote.
    let ls = FieldState::of(l);
    let rs = FieldState::of(remote);
    let joined = ls.join(&rs);
    if joined == rs && remote.hlc > l.hlc {
        Decision::TakeRemote
    } else if joined == ls && l.hlc > remote.hlc {
        Decision::Keep
    } else {
        let c = joined.to_change(&l.collection, &l.id, remote.hlc.clone());
        Decision::Write {
            doc: c.doc,
            fields: c.fields,
        }
    }
}

fn same_version(local: &LocalDoc) -> Decision {
    if local.pending.is_some() {
        Decision::Unpend
    } else {
        Decision::Keep
    }
}

/// The decision once a custom resolver answered `resolved` for a pending local edit.
pub(crate) fn decide_custom(
    local: &LocalDoc,
    remote: &Change,
    resolved: Option<Value>,
) -> Decision {
    let l = &local.change;
    let resolved = resolved.map(Doc::from);
    let remote_doc = if remote.deleted {
        None
    } else {
        remote.doc.clone()
    };
    // Never `Keep`, even when the answer is the local document and it is the newer: the app was
    // asked because the local edit was not made on `remote`, and the server refuses it until it
    // is written again on top of `remote` (a new HLC, `remote` as its base).
    if resolved == remote_doc && remote.hlc > l.hlc {
        Decision::TakeRemote
    } else {
        Decision::Write {
            doc: resolved,
            fields: None,
        }
    }
}

/// Checks a custom resolver's answer: an object whose `id`, if present, is the document's (added
/// when absent).
pub(crate) fn normalize_resolved(id: &str, doc: Option<Value>) -> Result<Option<Value>, String> {
    match doc {
        None => Ok(None),
        Some(Value::Object(mut m)) => match m.get("id") {
            None => {
                m.insert("id".into(), Value::String(id.to_string()));
                Ok(Some(Value::Object(m)))
            }
            Some(Value::String(s)) if s == id => Ok(Some(Value::Object(m))),
            Some(other) => Err(format!(
                "resolver returned a document with id {other} for document {id:?}"
            )),
        },
        Some(other) => Err(format!(
            "resolver must return an object or null, got {}",
            crate::document::type_name(&other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::local_change;
    use crate::sync::store::PendingKind;
    use serde_json::json;

    fn h(w: u64, n: &str) -> Hlc {
        Hlc::new(w, 0, n).unwrap()
    }

    fn local(c: Change, pending: bool) -> LocalDoc {
        LocalDoc {
            change: c,
            pending: pending.then_some(PendingKind::Edit),
        }
    }

    #[test]
    fn lww_decisions() {
        let mine = local_change(
            None,
            "t",
            "a",
            Some(json!({"id": "a", "v": 1})),
            h(5, "me"),
            false,
        );
        let older = local_change(None, "t", "a", None, h(4, "x"), false);
        let newer = local_change(None, "t", "a", None, h(6, "x"), false);
        assert_eq!(
            decide_by_order(&local(mine.clone(), true), &older, false),
            Decision::Keep
        );
        assert_eq!(
            decide_by_order(&local(mine.clone(), true), &newer, false),
            Decision::TakeRemote
        );
        assert_eq!(
            decide_by_order(&local(mine.clone(), true), &mine, false),
            Decision::Unpend
        );
        assert_eq!(
            decide_by_order(&local(mine.clone(), false), &mine, false),
            Decision::Keep
        );
    }

    #[test]
    fn merge_decisions() {
        let base = local_change(
            None,
            "t",
            "a",
            Some(json!({"id": "a", "x": 1, "y": 1})),
            h(1, "p"),
            true,
        );
        let mine = local_change(
            Some(&base),
            "t",
            "a",
            Some(json!({"id": "a", "x": 2, "y": 1})),
            h(5, "me"),
            true,
        );
        let theirs = local_change(
            Some(&base),
            "t",
            "a",
            Some(json!({"id": "a", "x": 1, "y": 2})),
            h(6, "x"),
            true,
        );
        match decide_by_order(&local(mine.clone(), true), &theirs, true) {
            Decision::Write { doc, .. } => {
                assert_eq!(doc, Doc::some(json!({"id": "a", "x": 2, "y": 2})))
            }
            d => panic!("{d:?}"),
        }
        // Remote already contains the local version: take it.
        let on_top = local_change(
            Some(&mine),
            "t",
            "a",
            Some(json!({"id": "a", "x": 2, "y": 3})),
            h(7, "x"),
            true,
        );
        assert_eq!(
            decide_by_order(&local(mine.clone(), true), &on_top, true),
            Decision::TakeRemote
        );
        // Local contains the remote and is newer: keep (and push) it.
        assert_eq!(
            decide_by_order(&local(on_top.clone(), true), &mine, true),
            Decision::Keep
        );
    }

    #[test]
    fn custom_decisions_and_output_checks() {
        let mine = local_change(
            None,
            "t",
            "a",
            Some(json!({"id": "a", "v": 1})),
            h(5, "me"),
            false,
        );
        let theirs = local_change(
            None,
            "t",
            "a",
            Some(json!({"id": "a", "v": 2})),
            h(6, "x"),
            false,
        );
        let l = local(mine, true);
        assert_eq!(
            decide_custom(&l, &theirs, Some(json!({"id": "a", "v": 2}))),
            Decision::TakeRemote
        );
        assert!(matches!(
            decide_custom(&l, &theirs, Some(json!({"id": "a", "v": 1}))),
            Decision::Write { .. }
        ));
        assert!(matches!(
            decide_custom(&l, &theirs, None),
            Decision::Write { doc: None, .. }
        ));
        assert_eq!(
            normalize_resolved("a", Some(json!({"v": 1}))).unwrap(),
            Some(json!({"id": "a", "v": 1}))
        );
        assert!(normalize_resolved("a", Some(json!({"id": "b"}))).is_err());
        assert!(normalize_resolved("a", Some(json!([1]))).is_err());
    }
}
