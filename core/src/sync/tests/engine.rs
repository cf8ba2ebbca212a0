//! One behaviour per test: push, pull, conflicts by policy, failures, clocks, epochs.

use crate::protocol::Doc;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use serde_json::{json, Value};

use super::*;
use crate::hlc::{Hlc, HlcClock, DEFAULT_MAX_DRIFT_MS};
use crate::merge::FieldState;
use crate::protocol::{
    codes, ErrorDetail, PullResponse, PushRequest, PushResponse, PushResult, PushStatus,
};
use crate::sync::engine::RESOLVER_FAILED;
use crate::sync::mem::{Fault, MemStore, MemTransport};
use crate::sync::{Conflict, PendingKind, ResolverFuture, RetryClass, Transport, TransportError};

fn ok(r: Result<SyncReport, SyncError>) -> SyncReport {
    r.unwrap_or_else(|e| panic!("sync failed: {e}"))
}

#[test]
fn push_then_pull_round_trip() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let b = w.device("b", 0, lww());
    for i in 0..3 {
        a.put("tasks", &format!("t{i}"), json!({"title": i}));
    }
    assert_eq!(a.store.pending_count(), 3);
    let r = ok(a.sync());
    assert_eq!((r.pushed, r.pulled, r.conflicts), (3, 0, 0));
    assert_eq!(a.store.pending_count(), 0);
    let r = ok(b.sync());
    assert_eq!((r.pushed, r.pulled, r.conflicts), (0, 3, 0));
    assert_eq!(b.all(), a.all());
    assert_eq!(b.all(), server_all(&w));
    assert_eq!(b.doc("tasks", "t1"), Some(json!({"id": "t1", "title": 1})));
    // Nothing new: a second sync moves nothing and writes nothing.
    let applies = b.store.applies();
    let r = ok(b.sync());
    assert_eq!((r.pushed, r.pulled), (0, 0));
    assert_eq!(b.store.applies(), applies);
}

#[test]
fn pushes_in_batches_of_at_most_max_push_changes() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    for i in 0..2500 {
        a.put("tasks", &format!("t{i:05}"), json!({"n": i}));
    }
    let r = ok(a.sync());
    assert_eq!(r.pushed, 2500);
    assert_eq!(w.server.push_sizes(), vec![1000, 1000, 500]);
    assert_eq!(a.store.pending_count(), 0);
    assert_eq!(w.server.docs(NS).len(), 2500);
}

#[test]
fn splits_by_body_size_and_halves_on_413() {
    let w = World::new();
    let config = SyncConfig {
        max_body_bytes: 4096,
        ..SyncConfig::default()
    };
    let a = w.device_with("a", 0, lww(), config);
    let big = "x".repeat(1000);
    for i in 0..10 {
        a.put("tasks", &format!("t{i}"), json!({"body": big}));
    }
    ok(a.sync());
    let sizes = w.server.push_sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 10);
    assert!(
        sizes.iter().all(|&n| n <= 3),
        "each request under 4 KB: {sizes:?}"
    );

    let w = World::new();
    let a = w.device("a", 0, lww());
    for i in 0..10 {
        a.put("tasks", &format!("t{i}"), json!({"n": i}));
    }
    a.net().fail_next(Fault::Status(413));
    ok(a.sync());
    assert_eq!(w.server.push_sizes(), vec![5, 5]);
}

#[test]
fn pulls_pages_and_reports_progress() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    for i in 0..1200 {
        a.put("tasks", &format!("t{i:05}"), json!({"n": i}));
    }
    ok(a.sync());
    let b = w.device("b", 0, lww());
    let (r, progress) = b.sync_with_progress();
    assert_eq!(ok(r).pulled, 1200);
    let pulls: Vec<(u64, Option<u64>)> = progress.iter().map(|p| (p.pulled, p.remaining)).collect();
    assert_eq!(
        pulls,
        vec![(500, Some(700)), (1000, Some(200)), (1200, Some(0))]
    );
    assert_eq!(b.store.applies(), 3, "one store transaction per page");
    assert_eq!(b.all(), a.all());
}

#[test]
fn lww_stale_push_takes_the_newer_remote() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let b = w.device("b", 0, lww());
    a.put("tasks", "x", json!({"v": "a"}));
    w.advance(10);
    let newer = b.put("tasks", "x", json!({"v": "b"}));
    ok(b.sync());
    let r = ok(a.sync());
    assert_eq!((r.pushed, r.conflicts), (0, 1));
    assert_eq!(a.store.get("tasks", "x"), Some(newer.clone()));
    assert!(!a.store.is_pending("tasks", "x"));
    assert_eq!(w.server.docs(NS), vec![newer]);
}

#[test]
fn pulled_older_version_does_not_overwrite_a_newer_pending_edit() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let b = w.device("b", 0, lww());
    b.put("tasks", "x", json!({"v": "b"}));
    w.advance(10);
    let mine = a.put("tasks", "x", json!({"v": "a"}));
    ok(b.sync());
    // a pushes first (applied: newer), then pulls b's older version: its pending edit stands.
    let r = ok(a.sync());
    assert_eq!(r.pushed, 1);
    assert_eq!(a.store.get("tasks", "x"), Some(mine.clone()));
    ok(b.sync());
    assert_eq!(b.store.get("tasks", "x"), Some(mine));
}

#[test]
fn delete_wins_over_older_update_and_loses_to_newer() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let b = w.device("b", 0, lww());
    a.put("tasks", "x", json!({"v": 1}));
    a.put("tasks", "y", json!({"v": 1}));
    ok(a.sync());
    ok(b.sync());
    // x: b updates, then a deletes later -> deleted. y: a deletes, then b updates later -> kept.
    b.put("tasks", "x", json!({"v": 2}));
    a.delete("tasks", "y");
    w.advance(5);
    a.delete("tasks", "x");
    b.put("tasks", "y", json!({"v": 3}));
    for _ in 0..2 {
        ok(a.sync());
        ok(b.sync());
    }
    for d in [&a, &b] {
        assert_eq!(d.doc("tasks", "x"), None);
        assert!(
            d.store.get("tasks", "x").unwrap().deleted,
            "kept as a tombstone"
        );
        assert_eq!(d.doc("tasks", "y"), Some(json!({"id": "y", "v": 3})));
    }
    assert_eq!(a.all(), server_all(&w));
    assert_eq!(b.all(), server_all(&w));
}

#[test]
fn merge_policy_keeps_concurrent_edits_of_different_fields() {
    let w = World::new();
    let a = w.device("a", 0, merge_notes());
    let b = w.device("b", 0, merge_notes());
    a.put("notes", "n", json!({"title": "draft", "done": false}));
    ok(a.sync());
    ok(b.sync());
    a.put("notes", "n", json!({"title": "final", "done": false}));
    w.advance(3);
    b.put("notes", "n", json!({"title": "draft", "done": true}));
    ok(b.sync());
    // a's push is stale; the merge is written as a new version and pushed in the same sync.
    let r = ok(a.sync());
    assert_eq!(r.conflicts, 1);
    assert!(!r.more);
    assert_eq!(a.store.pending_count(), 0);
    ok(b.sync());
    let want = json!({"id": "n", "title": "final", "done": true});
    assert_eq!(a.doc("notes", "n"), Some(want.clone()));
    assert_eq!(b.doc("notes", "n"), Some(want));
    assert_eq!(a.all(), server_all(&w));
    assert_eq!(b.all(), server_all(&w));
}

#[test]
fn merge_policy_repairs_an_acknowledged_edit_overwritten_by_a_newer_whole_document() {
    // The server is LWW per document: b's newer version, written without seeing a's acknowledged
    // edit, replaces it there. a still holds its edit and writes the join back.
    let w = World::new();
    let a = w.device("a", 0, merge_notes());
    let b = w.device("b", 0, merge_notes());
    a.put("notes", "n", json!({"title": "draft", "done": false}));
    ok(a.sync());
    ok(b.sync());
    a.put("notes", "n", json!({"title": "final", "done": false}));
    ok(a.sync());
    w.advance(5);
    b.put("notes", "n", json!({"title": "draft", "done": true}));
    ok(b.sync()); // pushes first: applied (newer HLC), overwriting the title on the server
    ok(a.sync());
    ok(b.sync());
    let want = json!({"id": "n", "title": "final", "done": true});
    assert_eq!(w.server.docs(NS)[0].doc, Doc::some(want.clone()));
    assert_eq!(a.doc("notes", "n"), Some(want.clone()));
    assert_eq!(b.doc("notes", "n"), Some(want));
}

#[test]
fn merge_policy_delete_vs_field_edit() {
    let w = World::new();
    let a = w.device("a", 0, merge_notes());
    let b = w.device("b", 0, merge_notes());
    a.put(
        "notes",
        "n",
        json!({"title": "t", "done": false, "tag": "x"}),
    );
    ok(a.sync());
    ok(b.sync());
    a.delete("notes", "n");
    w.advance(5);
    b.put(
        "notes",
        "n",
        json!({"title": "t", "done": true, "tag": "x"}),
    );
    for _ in 0..2 {
        ok(a.sync());
        ok(b.sync());
    }
    // The edit after the delete survives, alone: fields last written before the delete are gone.
    let want = Some(json!({"id": "n", "done": true}));
    assert_eq!(a.doc("notes", "n"), want);
    assert_eq!(b.doc("notes", "n"), want);
}

fn resolver(
    calls: Rc<RefCell<Vec<Conflict>>>,
    answer: impl Fn(&Conflict) -> Option<Value> + 'static,
) -> Policy {
    Policy::Custom(Rc::new(move |c: Conflict| {
        let out = answer(&c);
        calls.borrow_mut().push(c);
        Box::pin(async move { Ok(out) }) as ResolverFuture
    }))
}

/// `cards` resolved by adding the two sides' `n` (the calls recorded in `calls`), the rest lww.
fn summing(calls: &Rc<RefCell<Vec<Conflict>>>) -> Policies {
    Policies::new(Policy::Lww).with(
        "cards",
        resolver(calls.clone(), |c| {
            let l = c.local.as_ref()?["n"].as_i64().unwrap_or(0);
            let r = c.remote.as_ref()?["n"].as_i64().unwrap_or(0);
            Some(json!({"n": l + r}))
        }),
    )
}

#[test]
fn custom_resolver_gets_both_versions_and_its_answer_syncs_back() {
    let w = World::new();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let a = w.device("a", 0, summing(&calls));
    let b = w.device("b", 0, summing(&Rc::new(RefCell::new(Vec::new()))));
    a.put("cards", "c", json!({"n": 1}));
    b.put("cards", "c", json!({"n": 10}));
    ok(b.sync());
    let r = ok(a.sync());
    assert_eq!(r.conflicts, 1);
    {
        let calls = calls.borrow();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].local, Some(json!({"id": "c", "n": 1})));
        assert_eq!(calls[0].remote, Some(json!({"id": "c", "n": 10})));
    }
    ok(b.sync());
    assert_eq!(a.doc("cards", "c"), Some(json!({"id": "c", "n": 11})));
    assert_eq!(b.doc("cards", "c"), Some(json!({"id": "c", "n": 11})));
    assert_eq!(a.all(), server_all(&w));
}

#[test]
fn pages_are_decided_inside_one_store_call_unless_a_resolver_must_be_awaited() {
    let w = World::new();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let pol = |calls: &Rc<RefCell<Vec<Conflict>>>| {
        Policies::new(Policy::Lww).with("cards", resolver(calls.clone(), |c| c.remote.clone()))
    };
    let a = w.device("a", 0, pol(&calls));
    let b = w.device("b", 0, pol(&Rc::new(RefCell::new(Vec::new()))));
    a.put("tasks", "t", json!({"n": 1}));
    ok(a.sync());
    // An lww page: read, decided and written in one `load_and_apply` (one transaction in the
    // browser), no separate `apply`.
    let (settles, applies) = (b.store.one_call_settles(), b.store.applies());
    let r = ok(b.sync());
    assert_eq!(r.pulled, 1);
    assert_eq!(b.store.one_call_settles(), settles + 1);
    assert_eq!(b.store.applies(), applies + 1);
    // A page of a collection with a JS resolver: load, await the resolver, then apply (a
    // transaction cannot stay open across the resolver's promise).
    b.put("cards", "c", json!({"n": 10}));
    a.put("cards", "c", json!({"n": 1}));
    ok(b.sync());
    let settles = a.store.one_call_settles();
    let r = ok(a.sync());
    assert_eq!(r.conflicts, 1);
    assert_eq!(calls.borrow().len(), 1);
    assert_eq!(
        a.store.one_call_settles(),
        settles,
        "the resolver's page went through load + apply"
    );
    assert_eq!(a.doc("cards", "c"), Some(json!({"id": "c", "n": 10})));
}

#[test]
fn custom_resolver_is_asked_when_the_older_edit_synced_first() {
    // Both devices edit a synced document; the one with the OLDER edit syncs first. Its edit
    // was made on the synced version, so the server takes it; the newer edit was made on that
    // same version, not on the other device's edit, so the server refuses it (its base) and
    // the second device's resolver decides, though its edit is the newer by clock.
    let w = World::new();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let a_calls = Rc::new(RefCell::new(Vec::new()));
    let a = w.device("a", 0, summing(&a_calls));
    let b = w.device("b", 0, summing(&calls));
    a.put("cards", "c", json!({"n": 0}));
    ok(a.sync());
    ok(b.sync());
    a.put("cards", "c", json!({"n": 1}));
    w.advance(5);
    b.put("cards", "c", json!({"n": 10}));
    let r = ok(a.sync());
    assert_eq!(
        (r.pushed, r.conflicts),
        (1, 0),
        "the older edit, made on the synced version"
    );
    let r = ok(b.sync());
    assert_eq!(r.conflicts, 1);
    {
        let calls = calls.borrow();
        assert_eq!(calls.len(), 1, "the newer edit's device is asked");
        assert_eq!(calls[0].local, Some(json!({"id": "c", "n": 10})));
        assert_eq!(calls[0].remote, Some(json!({"id": "c", "n": 1})));
    }
    ok(a.sync());
    let want = Some(json!({"id": "c", "n": 11}));
    assert_eq!(a.doc("cards", "c"), want);
    assert_eq!(b.doc("cards", "c"), want);
    assert_eq!(a.all(), server_all(&w));
    assert!(
        a_calls.borrow().is_empty(),
        "a took the resolution: nothing to resolve"
    );
    // An edit made after a device's own acknowledged edit is not a conflict with it.
    b.put("cards", "c", json!({"n": 12}));
    ok(b.sync());
    b.put("cards", "c", json!({"n": 13}));
    let r = ok(b.sync());
    assert_eq!((r.pushed, r.conflicts), (1, 0));
    assert_eq!(calls.borrow().len(), 1);
    ok(a.sync());
    assert_eq!(a.doc("cards", "c"), Some(json!({"id": "c", "n": 13})));
}

#[test]
fn an_edit_of_a_far_future_version_is_pushed_without_its_base() {
    // The clock refuses to adopt a far-future version, so an edit made on it is stamped before
    // it: such a base would be refused as invalid, so it is left out and the order applies.
    let w = World::new();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let a = w.device(
        "a",
        0,
        Policies::new(Policy::Lww).with("cards", resolver(calls.clone(), |c| c.local.clone())),
    );
    let far = far_future("cards");
    w.server.inject(NS, far.clone());
    ok(a.sync());
    a.put("cards", "x", json!({"v": "mine"}));
    let r = ok(a.sync());
    assert_eq!(r.pushed, 0, "not refused as invalid, just stale");
    assert!(a.store.is_pending("cards", "x"), "kept for a later sync");
}

#[test]
fn custom_resolver_none_deletes_and_errors_keep_the_change() {
    let w = World::new();
    let pol = Policies::new(Policy::Lww).with("cards", resolver(Rc::default(), |_| None));
    let a = w.device("a", 0, pol);
    let b = w.device("b", 0, lww());
    a.put("cards", "c", json!({"n": 1}));
    b.put("cards", "c", json!({"n": 2}));
    ok(b.sync());
    ok(a.sync());
    ok(b.sync());
    assert_eq!(a.doc("cards", "c"), None);
    assert_eq!(b.doc("cards", "c"), None);

    let failing = Policy::Custom(Rc::new(|_c: Conflict| {
        Box::pin(async { Err("resolver threw: boom".to_string()) }) as ResolverFuture
    }));
    let w = World::new();
    let a = w.device("a", 0, Policies::new(Policy::Lww).with("cards", failing));
    let b = w.device("b", 0, lww());
    let mine = a.put("cards", "c", json!({"n": 1}));
    b.put("cards", "c", json!({"n": 2}));
    ok(b.sync());
    // The document is set aside (listed with the resolver's message); the sync itself goes on.
    ok(a.sync());
    let aside = a.engine.set_aside();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        (aside[0].key.id.as_str(), aside[0].code.as_str()),
        ("c", RESOLVER_FAILED)
    );
    assert!(aside[0].message.contains("boom"), "{}", aside[0].message);
    assert_eq!(a.store.get("cards", "c"), Some(mine));
    assert!(a.store.is_pending("cards", "c"));
}

#[test]
fn an_edit_made_during_a_push_is_never_lost() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    a.put("tasks", "x", json!({"v": 1}));
    let store = a.store.clone();
    let edited = Rc::new(RefCell::new(None));
    let e2 = edited.clone();
    a.net().on_push(Some(Box::new(move || {
        if e2.borrow().is_none() {
            *e2.borrow_mut() = Some(store.write("tasks", "x", Some(json!({"v": 2}))));
        }
    })));
    let r = ok(a.sync());
    let edited = edited.borrow().clone().unwrap();
    assert_eq!(r.pushed, 1, "v1 was applied...");
    assert!(
        a.store.is_pending("tasks", "x"),
        "...but the row holds v2 and stays"
    );
    assert_eq!(a.store.get("tasks", "x"), Some(edited.clone()));
    a.net().on_push(None);
    ok(a.sync());
    assert_eq!(a.store.pending_count(), 0);
    assert_eq!(w.server.docs(NS), vec![edited]);
}

#[test]
fn an_edit_racing_with_a_push_on_the_same_executor_is_never_lost() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    for i in 0..5 {
        a.put("tasks", &format!("t{i}"), json!({"v": 1}));
    }
    let store = a.store.clone();
    let edit = async {
        // Let the sync start and its push go in flight, then edit.
        for _ in 0..2 {
            YieldOnce::default().await;
        }
        store.write("tasks", "t2", Some(json!({"v": 2})))
    };
    let (r, edited) =
        futures::executor::block_on(futures::future::join(a.engine.sync_once(&mut |_| {}), edit));
    ok(r);
    ok(a.sync());
    assert_eq!(a.store.pending_count(), 0);
    let on_server = w
        .server
        .docs(NS)
        .into_iter()
        .find(|c| c.id == "t2")
        .unwrap();
    assert_eq!(on_server, edited);
}

#[derive(Default)]
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

#[test]
fn a_push_whose_reply_was_lost_is_applied_once() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    for i in 0..3 {
        a.put("tasks", &format!("t{i}"), json!({"v": i}));
    }
    a.net().fail_next(Fault::DropReply);
    let e = a.sync().unwrap_err();
    assert!(matches!(
        e,
        SyncError::Transport(TransportError::Network(_))
    ));
    assert_eq!(e.retry_class(), RetryClass::Backoff);
    assert_eq!(w.server.seq(NS), 3, "the server applied it");
    assert_eq!(a.store.pending_count(), 3, "the client does not know");
    let r = ok(a.sync());
    assert_eq!(r.pushed, 3);
    assert_eq!(
        w.server.seq(NS),
        3,
        "the retry changed nothing on the server"
    );
    assert_eq!(a.store.pending_count(), 0);
    let b = w.device("b", 0, lww());
    assert_eq!(ok(b.sync()).pulled, 3);
}

#[test]
fn offline_and_5xx_retry_with_nothing_lost() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let v = a.put("tasks", "x", json!({"v": 1}));
    a.net().set_offline(true);
    let e = a.sync().unwrap_err();
    assert_eq!(
        (e.code(), e.retry_class()),
        ("NETWORK", RetryClass::Backoff)
    );
    a.net().set_offline(false);
    a.net().fail_next(Fault::Status(503));
    let e = a.sync().unwrap_err();
    assert_eq!(
        (e.code(), e.retry_class()),
        ("SERVER_ERROR", RetryClass::Backoff)
    );
    assert_eq!(a.store.get("tasks", "x"), Some(v.clone()));
    assert!(a.store.is_pending("tasks", "x"));
    assert!(w.server.docs(NS).is_empty());
    assert_eq!(ok(a.sync()).pushed, 1);
    assert_eq!(w.server.docs(NS), vec![v]);
}

#[test]
fn a_failed_pull_keeps_the_push_acknowledged_and_the_cursor() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let b = w.device("b", 0, lww());
    b.put("tasks", "y", json!({"v": 1}));
    ok(b.sync());
    a.put("tasks", "x", json!({"v": 1}));
    a.net().fail_next(Fault::Pass); // the push goes through
    a.net().fail_next(Fault::Status(502)); // the pull fails
    let e = a.sync().unwrap_err();
    assert_eq!(e.code(), "SERVER_ERROR");
    assert_eq!(a.store.pending_count(), 0, "the push was acknowledged");
    assert_eq!(a.store.saved_cursor(), None);
    assert_eq!(a.doc("tasks", "y"), None);
    ok(a.sync());
    assert_eq!(a.all(), server_all(&w));
}

#[test]
fn unauthorized_stops_until_the_token_changes() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let v = a.put("tasks", "x", json!({"v": 1}));
    a.net().set_token(None);
    let e = a.sync().unwrap_err();
    assert!(matches!(
        e,
        SyncError::Transport(TransportError::Unauthorized { status: 401, .. })
    ));
    assert_eq!(e.retry_class(), RetryClass::StopUntilTokenChange);
    assert_eq!(e.code(), "UNAUTHORIZED");
    assert!(a.store.is_pending("tasks", "x"));
    w.server.revoke("old");
    a.net().set_token(Some("old"));
    assert_eq!(
        a.sync().unwrap_err().retry_class(),
        RetryClass::StopUntilTokenChange
    );
    a.net().set_token(Some(NS));
    ok(a.sync());
    assert_eq!(w.server.docs(NS), vec![v]);
}

fn malformed(e: SyncError) -> String {
    match e {
        SyncError::Transport(TransportError::Malformed(m)) => m,
        other => panic!("expected a malformed-reply error, got {other}"),
    }
}

#[test]
fn malformed_push_replies_are_never_applied() {
    type Corrupt = fn(&mut Value);
    let cases: Vec<(&str, Corrupt)> = vec![
        ("a result missing", |v| {
            v["results"].as_array_mut().unwrap().pop();
        }),
        ("an extra result", |v| {
            let r = v["results"][0].clone();
            v["results"].as_array_mut().unwrap().push(r);
        }),
        ("unknown status", |v| {
            v["results"][0]["status"] = json!("bogus")
        }),
        ("stale without current", |v| {
            v["results"][0] = json!({"status": "stale"})
        }),
        ("stale for another document", |v| {
            v["results"][0] = json!({"status": "stale", "current": {
                "collection": "tasks", "id": "other", "hlc": "ffffffffff00-000000-z", "doc": {"id": "other"}}});
        }),
        ("stale but not newer", |v| {
            v["results"][0] = json!({"status": "stale", "current": {
                "collection": "tasks", "id": "x", "hlc": "000000000001-000000-z", "doc": {"id": "x"}}});
        }),
        ("no serverTime", |v| {
            v.as_object_mut().unwrap().remove("serverTime");
        }),
        ("not JSON of the right shape", |v| *v = json!([1, 2])),
    ];
    for (what, corrupt) in cases {
        let w = World::new();
        let a = w.device("a", 0, lww());
        let v = a.put("tasks", "x", json!({"v": 1}));
        a.net().corrupt_push(Some(Box::new(corrupt)));
        let msg = malformed(a.sync().unwrap_err());
        assert!(!msg.is_empty(), "{what}");
        // The reply is not applied; the pull that still runs after the failed push is what
        // may acknowledge the version (the server's feed holds exactly it).
        assert_eq!(a.store.get("tasks", "x"), Some(v.clone()), "{what}");
        assert!(
            a.store.is_pending("tasks", "x") || w.server.docs(NS) == vec![v.clone()],
            "{what}: acknowledged only by the server's own feed"
        );
        a.net().corrupt_push(None);
        ok(a.sync());
        assert_eq!(
            a.store.pending_count(),
            0,
            "{what}: a good reply later works"
        );
    }
}

#[test]
fn malformed_pull_replies_are_never_applied() {
    type Corrupt = fn(&mut Value);
    let cases: Vec<(&str, Corrupt)> = vec![
        ("document id mismatch", |v| {
            v["changes"][0]["doc"]["id"] = json!("zzz")
        }),
        ("document not an object", |v| {
            v["changes"][1]["doc"] = json!(5)
        }),
        ("delete with a document", |v| {
            v["changes"][0]["deleted"] = json!(true)
        }),
        ("bad hlc", |v| v["changes"][0]["hlc"] = json!("yesterday")),
        ("bad collection name", |v| {
            v["changes"][0]["collection"] = json!("no spaces allowed")
        }),
        ("more than the limit", |v| {
            let c = v["changes"][0].clone();
            let arr = v["changes"].as_array_mut().unwrap();
            while arr.len() <= 10 {
                arr.push(c.clone());
            }
        }),
        ("has more but empty", |v| {
            v["changes"] = json!([]);
            v["hasMore"] = json!(true);
        }),
        ("no cursor", |v| v["cursor"] = json!("")),
        ("unknown field", |v| v["surprise"] = json!(1)),
    ];
    for (what, corrupt) in cases {
        let w = World::new();
        let a = w.device("a", 0, lww());
        for i in 0..3 {
            a.put("tasks", &format!("t{i}"), json!({"v": i}));
        }
        ok(a.sync());
        let config = SyncConfig {
            pull_limit: 10,
            ..SyncConfig::default()
        };
        let b = w.device_with("b", 0, lww(), config);
        b.net().corrupt_pull(Some(Box::new(corrupt)));
        malformed(b.sync().unwrap_err());
        assert!(b.all().is_empty(), "{what}: nothing applied");
        assert_eq!(b.store.saved_cursor(), None, "{what}: cursor not moved");
        assert_eq!(b.store.applies(), 0, "{what}");
        b.net().corrupt_pull(None);
        ok(b.sync());
        assert_eq!(b.all(), a.all(), "{what}");
    }
}

#[test]
fn a_device_an_hour_behind_converges_and_its_later_edits_win() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let slow = w.device("slow", -3_600_000, lww());
    let first = a.put("tasks", "x", json!({"v": "a"}));
    ok(a.sync());
    w.advance(1000);
    let r = ok(slow.sync());
    assert_eq!(
        r.pulled, 1,
        "an honest timestamp is not refused as an hour in the future"
    );
    let off = slow.store.sync_clock().offset_ms();
    assert!((3_599_000..=3_601_000).contains(&off), "offset {off}");
    w.advance(1000);
    let edit = slow.put("tasks", "x", json!({"v": "slow"}));
    assert!(edit.hlc > first.hlc);
    assert!(
        edit.hlc.wall_ms >= w.time.get() - 10,
        "stamped with corrected time"
    );
    let r = ok(slow.sync());
    assert_eq!((r.pushed, r.conflicts), (1, 0));
    ok(a.sync());
    assert_eq!(a.doc("tasks", "x"), Some(json!({"id": "x", "v": "slow"})));
    assert_eq!(a.all(), slow.all());
}

/// Document `x` of `collection` from a device whose clock is two hours ahead.
fn far_future(collection: &str) -> Change {
    Change {
        collection: collection.into(),
        id: "x".into(),
        hlc: Hlc::new(START + 7_200_000, 0, "broken").unwrap(),
        deleted: false,
        doc: Doc::some(json!({"id": "x", "v": "future"})),
        fields: None,
        base: None,
    }
}

#[test]
fn a_far_future_timestamp_is_applied_but_not_adopted_by_the_clock() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let far = far_future("tasks");
    w.server.inject(NS, far.clone());
    ok(a.sync());
    assert_eq!(
        a.store.get("tasks", "x"),
        Some(far.clone()),
        "the feed's data is applied"
    );
    assert!(
        a.store.sync_clock().last().wall_ms < START + 60_000,
        "the clock did not jump 2 h"
    );
    assert!(a.store.sync_clock().tick().wall_ms < START + 60_000);
}

#[test]
fn a_server_reset_loses_nothing() {
    let w = World::new();
    let a = w.device("a", 0, merge_notes());
    let b = w.device("b", 0, merge_notes());
    a.put("tasks", "d1", json!({"v": 1}));
    a.put("notes", "n1", json!({"title": "x"}));
    ok(a.sync());
    let backup = w.server.snapshot(NS);
    w.advance(10);
    a.put("tasks", "d2", json!({"v": 2}));
    a.delete("notes", "n1");
    ok(a.sync());
    ok(b.sync());
    w.advance(10);
    a.put("tasks", "d1", json!({"v": 11})); // pending at the reset
    a.put("tasks", "d3", json!({"v": 3}));
    // The server is restored from the older backup, under a new epoch.
    w.server.reset(vec![(NS.to_string(), backup)]);
    let r = ok(a.sync());
    assert!(!r.more);
    assert_eq!(a.store.pending_count(), 0);
    let want: Vec<(String, Option<Value>)> = vec![
        ("n1".into(), None),
        ("d1".into(), Some(json!({"id": "d1", "v": 11}))),
        ("d2".into(), Some(json!({"id": "d2", "v": 2}))),
        ("d3".into(), Some(json!({"id": "d3", "v": 3}))),
    ];
    let on_server: Vec<(String, Option<Value>)> = w
        .server
        .docs(NS)
        .into_iter()
        .map(|c| (c.id.clone(), if c.deleted { None } else { value(c.doc) }))
        .collect();
    assert_eq!(on_server, want);
    // b re-syncs from scratch: takes the newer versions, pushes nothing it does not need to.
    let pushes_before = w.server.push_sizes().len();
    let r = ok(b.sync());
    assert_eq!(r.pushed, 0);
    assert_eq!(w.server.push_sizes().len(), pushes_before);
    assert_eq!(b.all(), server_all(&w));
    assert_eq!(a.all(), server_all(&w));

    // Reset to an empty database: everything comes back from the clients.
    w.server.reset(vec![]);
    ok(b.sync());
    assert_eq!(b.store.pending_count(), 0);
    assert_eq!(b.all(), server_all(&w));
    ok(a.sync());
    assert_eq!(a.all(), server_all(&w));
    assert_eq!(w.server.docs(NS).len(), 4);
}

#[test]
fn resync_rows_are_settled_by_version_order_not_by_the_custom_resolver() {
    let w = World::new();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let pol =
        Policies::new(Policy::Lww).with("cards", resolver(calls.clone(), |c| c.local.clone()));
    let a = w.device("a", 0, pol);
    let b = w.device("b", 0, lww());
    a.put("cards", "c", json!({"n": 1}));
    ok(a.sync());
    ok(b.sync());
    w.advance(5);
    b.put("cards", "c", json!({"n": 2}));
    ok(b.sync());
    let backup = w.server.snapshot(NS);
    w.server.reset(vec![(NS.to_string(), backup)]);
    ok(a.sync());
    assert!(
        calls.borrow().is_empty(),
        "an old synced version is not a user edit"
    );
    assert_eq!(a.doc("cards", "c"), Some(json!({"id": "c", "n": 2})));
    assert_eq!(
        a.store.get("cards", "c").map(|c| c.hlc),
        b.store.get("cards", "c").map(|c| c.hlc)
    );
    let _ = PendingKind::Resync;
}

#[test]
fn a_local_write_during_page_apply_is_kept_and_the_page_decided_again() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let b = w.device("b", 0, lww());
    a.put("tasks", "x", json!({"v": "a"}));
    ok(a.sync());
    let store = b.store.clone();
    let done = Rc::new(RefCell::new(None));
    let d2 = done.clone();
    w.advance(5);
    // b writes x while the page holding a's x is in flight: b's write is newer and must stand.
    b.net().on_pull(Some(Box::new(move || {
        if d2.borrow().is_none() {
            *d2.borrow_mut() = Some(store.write("tasks", "x", Some(json!({"v": "b"}))));
        }
    })));
    ok(b.sync());
    let mine = done.borrow().clone().unwrap();
    assert_eq!(b.store.get("tasks", "x"), Some(mine.clone()));
    b.net().on_pull(None);
    ok(b.sync());
    ok(a.sync());
    assert_eq!(a.store.get("tasks", "x"), Some(mine));
}

#[test]
fn a_failing_store_loses_nothing() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let v = a.put("tasks", "x", json!({"v": 1}));
    a.store.fail_next_call();
    let e = a.sync().unwrap_err();
    assert_eq!(
        (e.code(), e.retry_class()),
        ("STORE_ERROR", RetryClass::StopUntilChange)
    );
    assert_eq!(a.store.get("tasks", "x"), Some(v));
    ok(a.sync());
    assert_eq!(a.store.pending_count(), 0);
}

#[test]
fn only_one_sync_runs_at_a_time() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    a.put("tasks", "x", json!({"v": 1}));
    let (r1, r2) = futures::executor::block_on(futures::future::join(
        a.engine.sync_once(&mut |_| {}),
        a.engine.sync_once(&mut |_| {}),
    ));
    assert!(r1.is_ok());
    assert!(matches!(r2, Err(SyncError::AlreadyRunning)));
    ok(a.sync());
}

#[test]
fn merge_results_converge_to_the_join_of_all_edits() {
    let w = World::new();
    let devs: Vec<Device> = ["a", "b", "c"]
        .iter()
        .map(|n| w.device(n, 0, merge_notes()))
        .collect();
    devs[0].put("notes", "n", json!({"a": 0, "b": 0, "c": 0}));
    for d in &devs {
        ok(d.sync());
    }
    let mut written = Vec::new();
    for (i, d) in devs.iter().enumerate() {
        w.advance(1);
        let mut doc = d.doc("notes", "n").unwrap();
        doc[["a", "b", "c"][i]] = json!(i + 10);
        written.push(d.put("notes", "n", doc));
    }
    // The server is LWW per document: each newer whole version replaces the last there, and the
    // devices write the join back until it holds every edit. That takes a few rounds, not more.
    for _ in 0..4 {
        for d in &devs {
            ok(d.sync());
        }
    }
    let want = json!({"id": "n", "a": 10, "b": 11, "c": 12});
    for d in &devs {
        assert_eq!(d.doc("notes", "n"), Some(want.clone()));
        assert_eq!(d.all(), server_all(&w));
    }
    let join = written
        .iter()
        .map(FieldState::of)
        .reduce(|x, y| x.join(&y))
        .unwrap();
    assert_eq!(FieldState::of(&w.server.docs(NS)[0]), join);
}

#[test]
fn a_local_write_while_the_resolver_runs_is_not_overwritten() {
    // The resolver is a foreign await (a JS function): the app may write the same document meanwhile.
    // The store refuses the decisions taken before that write, and the engine decides again: the
    // new write was not made on the remote version either, so the resolver is asked about it.
    let w = World::new();
    let store_slot: Rc<RefCell<Option<AnyStore>>> = Rc::default();
    let during: Rc<RefCell<Option<Change>>> = Rc::default();
    let calls: Rc<RefCell<Vec<Conflict>>> = Rc::default();
    let (slot, dur, seen) = (store_slot.clone(), during.clone(), calls.clone());
    let pol = Policies::new(Policy::Lww).with(
        "cards",
        Policy::Custom(Rc::new(move |c: Conflict| {
            if let Some(store) = slot.borrow_mut().take() {
                *dur.borrow_mut() = Some(store.write("cards", "c", Some(json!({"n": 99}))));
            }
            // Keep the app's own 99 when it is offered, else the remote.
            let keep_local = c.local.as_ref().is_some_and(|l| l["n"] == 99);
            let out = if keep_local {
                c.local.clone()
            } else {
                c.remote.clone()
            };
            seen.borrow_mut().push(c);
            Box::pin(async move { Ok(out) }) as ResolverFuture
        })),
    );
    let a = w.device("a", 0, pol);
    let b = w.device("b", 0, lww());
    *store_slot.borrow_mut() = Some(a.store.clone());
    a.put("cards", "c", json!({"n": 1}));
    w.advance(5);
    b.put("cards", "c", json!({"n": 2}));
    ok(b.sync());
    ok(a.sync());
    assert!(during.borrow().is_some());
    {
        let calls = calls.borrow();
        assert_eq!(calls.len(), 2, "asked again about the write made meanwhile");
        assert_eq!(calls[0].local, Some(json!({"id": "c", "n": 1})));
        assert_eq!(calls[1].local, Some(json!({"id": "c", "n": 99})));
        assert_eq!(calls[1].remote, Some(json!({"id": "c", "n": 2})));
    }
    ok(a.sync());
    ok(b.sync());
    let want = Some(json!({"id": "c", "n": 99}));
    assert_eq!(a.doc("cards", "c"), want);
    assert_eq!(b.doc("cards", "c"), want);
    assert_eq!(a.all(), server_all(&w));
}

#[test]
fn shared_handles_drive_the_engine() {
    // The browser keeps the store and transport shared with the database object: Rc implements both.
    let w = World::new();
    let a = w.device("a", 0, lww());
    a.put("tasks", "x", json!({"v": 1}));
    let net = Rc::new(MemTransport::new(w.server.clone(), NS));
    let engine = SyncEngine::new(Rc::new(a.store.clone()), net.clone(), lww());
    let r = futures::executor::block_on(engine.sync_once(&mut |_| {})).unwrap();
    assert_eq!(r.pushed, 1);
    assert_eq!(net.requests(), 2);
}

// ---- Faults that must never stop sync or leave replicas silently different (issue 13) ----

/// The in-memory transport with what the in-memory server lacks: a rule refusing chosen documents
/// (the whole push with a 4xx, or that change alone as `rejected`), scripted pull errors, and the
/// server's clock on every error reply (as the reference server sends it).
struct Scripted {
    inner: MemTransport,
    time: Rc<Cell<u64>>,
    /// Document -> true: refuse any push holding it (400); false: answer it `rejected`.
    refuse: RefCell<HashMap<DocKey, bool>>,
    pull_errors: RefCell<VecDeque<TransportError>>,
    error_time: Cell<Option<u64>>,
    pushes: RefCell<Vec<Vec<String>>>,
}

impl Scripted {
    fn refuse(&self, collection: &str, id: &str, whole: bool) {
        self.refuse
            .borrow_mut()
            .insert(DocKey::new(collection, id), whole);
    }

    fn fail_pull(&self, status: u16, code: &str) {
        let body = format!(r#"{{"error":{{"code":"{code}","message":"scripted"}}}}"#);
        self.pull_errors
            .borrow_mut()
            .push_back(TransportError::from_status(status, &body));
    }

    fn failed<T>(&self, e: TransportError) -> Result<T, TransportError> {
        self.error_time.set(Some(self.time.get()));
        Err(e)
    }
}

impl Transport for Scripted {
    async fn push(&self, req: &PushRequest) -> Result<PushResponse, TransportError> {
        self.error_time.set(None);
        self.pushes
            .borrow_mut()
            .push(req.changes.iter().map(|c| c.id.clone()).collect());
        let rules = self.refuse.borrow().clone();
        let rule = |c: &Change| rules.get(&DocKey::of(c)).copied();
        if req.changes.iter().any(|c| rule(c) == Some(true)) {
            return self.failed(TransportError::from_status(
                400,
                r#"{"error":{"code":"INVALID_CHANGE","message":"document too large"}}"#,
            ));
        }
        let kept: Vec<Change> = req
            .changes
            .iter()
            .filter(|c| rule(c).is_none())
            .cloned()
            .collect();
        let mut inner = if kept.is_empty() {
            PushResponse {
                results: vec![],
                cursor: None,
                server_time: self.time.get(),
                max_drift_ms: None,
            }
        } else {
            let sub = PushRequest {
                client_id: req.client_id.clone(),
                changes: kept,
                cursor: req.cursor.clone(),
            };
            match self.inner.push(&sub).await {
                Ok(r) => r,
                Err(e) => return self.failed(e),
            }
        }
        .results
        .into_iter();
        let results = req
            .changes
            .iter()
            .map(|c| match rule(c) {
                Some(_) => PushResult {
                    status: PushStatus::Rejected,
                    current: None,
                    error: Some(ErrorDetail {
                        code: "FORBIDDEN_FIELD".into(),
                        message: "field secret is not allowed".into(),
                    }),
                },
                None => inner.next().unwrap(),
            })
            .collect();
        Ok(PushResponse {
            results,
            cursor: None,
            server_time: self.time.get(),
            max_drift_ms: None,
        })
    }

    async fn pull(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<PullResponse, TransportError> {
        self.error_time.set(None);
        let scripted = self.pull_errors.borrow_mut().pop_front();
        if let Some(e) = scripted {
            return self.failed(e);
        }
        match self.inner.pull(cursor, limit).await {
            Ok(p) => Ok(p),
            Err(e) => self.failed(e),
        }
    }

    fn error_server_time(&self) -> Option<u64> {
        self.error_time.get()
    }
}

struct Faulty {
    store: MemStore,
    engine: SyncEngine<MemStore, Rc<Scripted>>,
    net: Rc<Scripted>,
}

impl Faulty {
    fn new(w: &World, name: &str, skew_ms: i64, policies: Policies) -> Faulty {
        let t = w.time.clone();
        let clock = SyncClock::new(
            HlcClock::new(name, DEFAULT_MAX_DRIFT_MS).unwrap(),
            move || (t.get() as i64 + skew_ms) as u64,
        );
        let store = MemStore::new(clock);
        let net = Rc::new(Scripted {
            inner: MemTransport::new(w.server.clone(), NS),
            time: w.time.clone(),
            refuse: RefCell::default(),
            pull_errors: RefCell::default(),
            error_time: Cell::new(None),
            pushes: RefCell::default(),
        });
        let engine = SyncEngine::new(store.clone(), net.clone(), policies);
        Faulty { store, engine, net }
    }

    fn sync(&self) -> Result<SyncReport, SyncError> {
        futures::executor::block_on(self.engine.sync_once(&mut |_| {}))
    }

    fn put(&self, collection: &str, id: &str, doc: Value) -> Change {
        self.store.write(collection, id, Some(doc))
    }

    fn doc(&self, collection: &str, id: &str) -> Option<Value> {
        self.store
            .get(collection, id)
            .filter(|c| !c.deleted)
            .and_then(|c| value(c.doc))
    }

    fn aside(&self) -> Vec<(String, String)> {
        self.engine
            .set_aside()
            .into_iter()
            .map(|a| (a.key.id, a.code))
            .collect()
    }
}

#[test]
fn a_document_the_server_refuses_whole_is_set_aside_and_the_rest_syncs() {
    // Failed before the fix: the 400 aborted the sync before the pull, every time.
    let w = World::new();
    let b = w.device("b", 0, lww());
    b.put("tasks", "from-b", json!({"v": 1}));
    ok(b.sync());
    let a = Faulty::new(&w, "a", 0, lww());
    for i in 0..8 {
        a.put("tasks", &format!("t{i}"), json!({"v": i}));
    }
    let bad = a.put("tasks", "t3", json!({"v": "too big"}));
    a.net.refuse("tasks", "t3", true);
    let r = ok(a.sync());
    assert_eq!(r.pushed, 7, "every other document was pushed");
    assert_eq!(r.pulled, 1, "and the pull ran");
    assert_eq!(a.aside(), vec![("t3".into(), "INVALID_CHANGE".into())]);
    assert_eq!(
        a.store.get("tasks", "t3"),
        Some(bad.clone()),
        "kept locally"
    );
    assert!(a.store.is_pending("tasks", "t3"), "still pending");
    assert_eq!(w.server.docs(NS).len(), 8);
    // Not pushed again until retried.
    let pushes = a.net.pushes.borrow().len();
    ok(a.sync());
    assert_eq!(a.net.pushes.borrow().len(), pushes);
    // Retried: refused again, set aside again.
    assert!(a.engine.retry(&DocKey::new("tasks", "t3")));
    ok(a.sync());
    assert_eq!(a.net.pushes.borrow().len(), pushes + 1);
    assert_eq!(a.aside().len(), 1);
    // A new edit of the document retries by itself; once the server takes it, it is gone.
    a.net.refuse.borrow_mut().clear();
    a.put("tasks", "t3", json!({"v": "small"}));
    let r = ok(a.sync());
    assert_eq!(r.pushed, 1);
    assert!(a.aside().is_empty());
    assert_eq!(a.store.pending_count(), 0);
}

#[test]
fn a_rejected_change_is_set_aside_and_can_be_discarded() {
    // Failed before the fix: `rejected` did not exist (such a reply did not even parse).
    let w = World::new();
    let a = Faulty::new(&w, "a", 0, lww());
    a.put("tasks", "ok", json!({"v": 1}));
    a.put("tasks", "bad", json!({"secret": 1}));
    a.net.refuse("tasks", "bad", false);
    let r = ok(a.sync());
    assert_eq!(r.pushed, 1);
    assert_eq!(a.aside(), vec![("bad".into(), "FORBIDDEN_FIELD".into())]);
    assert_eq!(a.net.pushes.borrow().len(), 1, "no bisection needed");
    // Discard: the local edit goes; the server never had the document, so it is gone here too.
    assert!(futures::executor::block_on(a.engine.discard(&DocKey::new("tasks", "bad"))).unwrap());
    assert!(a.aside().is_empty());
    assert_eq!(a.store.pending_count(), 0);
    assert_eq!(a.doc("tasks", "bad"), None);
    ok(a.sync());
    assert_eq!(a.doc("tasks", "ok"), Some(json!({"id": "ok", "v": 1})));

    // Discarding an edit of a document the server has brings the server's version back.
    let b = w.device("b", 0, lww());
    b.put("tasks", "shared", json!({"v": "server"}));
    ok(b.sync());
    ok(a.sync());
    a.put("tasks", "shared", json!({"v": "refused edit"}));
    a.net.refuse("tasks", "shared", true);
    ok(a.sync());
    assert_eq!(a.aside().len(), 1);
    assert!(
        futures::executor::block_on(a.engine.discard(&DocKey::new("tasks", "shared"))).unwrap()
    );
    ok(a.sync());
    assert_eq!(
        a.doc("tasks", "shared"),
        Some(json!({"id": "shared", "v": "server"}))
    );
    assert!(!a.store.is_pending("tasks", "shared"));
}

#[test]
fn a_failing_resolver_sets_its_document_aside_and_the_rest_syncs() {
    // Failed before the fix: the resolver's error aborted the whole sync.
    let failing = Policy::Custom(Rc::new(|c: Conflict| {
        let id = c.id.clone();
        Box::pin(async move {
            if id == "boom" {
                Err("resolver threw: boom".to_string())
            } else {
                Ok(c.remote)
            }
        }) as ResolverFuture
    }));
    let w = World::new();
    let a = Faulty::new(
        &w,
        "a",
        0,
        Policies::new(Policy::Lww).with("cards", failing),
    );
    let b = w.device("b", 0, lww());
    let mine = a.put("cards", "boom", json!({"n": 1}));
    a.put("cards", "fine", json!({"n": 1}));
    a.put("tasks", "t", json!({"n": 1}));
    w.advance(5);
    b.put("cards", "boom", json!({"n": 2}));
    b.put("cards", "fine", json!({"n": 2}));
    b.put("tasks", "other", json!({"n": 2}));
    ok(b.sync());
    let r = ok(a.sync());
    assert_eq!(a.aside(), vec![("boom".into(), RESOLVER_FAILED.into())]);
    assert!(r.pushed >= 1);
    assert_eq!(a.store.get("cards", "boom"), Some(mine));
    assert!(a.store.is_pending("cards", "boom"));
    assert_eq!(a.doc("cards", "fine"), Some(json!({"id": "fine", "n": 2})));
    assert_eq!(
        a.doc("tasks", "other"),
        Some(json!({"id": "other", "n": 2}))
    );
    ok(b.sync());
    assert_eq!(b.doc("tasks", "t"), Some(json!({"id": "t", "n": 1})));
}

#[test]
fn the_pull_runs_after_a_push_that_failed_with_a_server_error() {
    // Failed before the fix: a 5xx on the push skipped the pull.
    let w = World::new();
    let b = w.device("b", 0, lww());
    b.put("tasks", "from-b", json!({"v": 1}));
    ok(b.sync());
    let a = w.device("a", 0, lww());
    a.put("tasks", "mine", json!({"v": 1}));
    a.net().fail_next(Fault::Status(500));
    let e = a.sync().unwrap_err();
    assert!(matches!(
        e,
        SyncError::Transport(TransportError::Server { .. })
    ));
    assert_eq!(
        a.doc("tasks", "from-b"),
        Some(json!({"id": "from-b", "v": 1}))
    );
    assert!(a.store.is_pending("tasks", "mine"));
    // Network or auth failures do not try a pull that would fail the same way.
    let c = w.device("c", 0, lww());
    c.put("tasks", "x", json!({"v": 1}));
    c.net().fail_next(Fault::Network);
    let before = c.net().requests();
    assert!(c.sync().is_err());
    assert_eq!(c.net().requests(), before + 1);
}

#[test]
fn bad_and_expired_cursors_pull_from_the_start_keeping_pending_edits() {
    // Failed before the fix: BAD_CURSOR and CURSOR_EXPIRED failed every sync for good.
    let w = World::new();
    let b = w.device("b", 0, lww());
    b.put("tasks", "x", json!({"v": 1}));
    ok(b.sync());
    let a = Faulty::new(&w, "a", 0, lww());
    ok(a.sync());
    b.put("tasks", "y", json!({"v": 2}));
    ok(b.sync());
    let mine = a.put("tasks", "mine", json!({"v": 3}));
    a.net.fail_pull(410, codes::CURSOR_EXPIRED);
    let r = ok(a.sync());
    assert_eq!(r.pushed, 1);
    assert_eq!(a.doc("tasks", "y"), Some(json!({"id": "y", "v": 2})));
    assert_eq!(a.store.get("tasks", "mine"), Some(mine));

    b.put("tasks", "z", json!({"v": 4}));
    ok(b.sync());
    a.put("tasks", "mine", json!({"v": 5}));
    a.net.fail_pull(400, codes::BAD_CURSOR);
    ok(a.sync());
    assert_eq!(a.doc("tasks", "z"), Some(json!({"id": "z", "v": 4})));
    assert_eq!(a.store.pending_count(), 0);
    assert_eq!(
        a.store
            .docs()
            .into_iter()
            .map(|c| (DocKey::of(&c), c))
            .collect::<BTreeMap<_, _>>(),
        server_all(&w)
    );
}

#[test]
fn a_device_two_hours_ahead_gets_every_pending_write_accepted_in_one_sync() {
    // Failed before the fix: every push was refused with CLOCK_AHEAD until the server's clock
    // caught up two hours later.
    let w = World::new();
    let a = Faulty::new(&w, "a", 2 * 3_600_000, lww());
    let first = a.put("tasks", "t1", json!({"v": 1}));
    let second = a.put("tasks", "t0", json!({"v": 2}));
    a.put("tasks", "t1", json!({"v": 3}));
    let r = ok(a.sync());
    assert_eq!(r.pushed, 2);
    assert_eq!(a.store.pending_count(), 0);
    let on_server = w.server.docs(NS);
    for c in &on_server {
        assert!(
            c.hlc.wall_ms <= w.time.get() + 60_000,
            "sane stamp: {}",
            c.hlc
        );
    }
    // Order kept: t0 was written before the last write of t1.
    let t0 = on_server.iter().find(|c| c.id == "t0").unwrap();
    let t1 = on_server.iter().find(|c| c.id == "t1").unwrap();
    assert!(t0.hlc < t1.hlc);
    assert!(first.hlc < second.hlc);
    assert_eq!(t1.doc, Doc::some(json!({"id": "t1", "v": 3})));
    // Later writes are sane too.
    let later = a.put("tasks", "t2", json!({"v": 4}));
    assert!(later.hlc.wall_ms <= w.time.get() + 60_000);
    assert!(later.hlc > t1.hlc);
}

#[test]
fn the_clock_offset_is_learnt_from_error_replies() {
    let w = World::new();
    let a = Faulty::new(&w, "a", -3_600_000, lww());
    a.net.fail_pull(500, codes::INTERNAL);
    assert!(a.sync().is_err());
    let off = a.store.sync_clock().offset_ms();
    assert!((3_599_000..=3_601_000).contains(&off), "offset {off}");
}

#[test]
fn two_devices_creating_the_same_id_both_reach_the_resolver() {
    // Failed before the fix: the later creation silently replaced the earlier one.
    let w = World::new();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let a = w.device("a", 0, summing(&calls));
    let b_calls = Rc::new(RefCell::new(Vec::new()));
    let b = w.device("b", 0, summing(&b_calls));
    a.put("cards", "settings", json!({"n": 1}));
    w.advance(5);
    b.put("cards", "settings", json!({"n": 10}));
    ok(a.sync());
    let r = ok(b.sync());
    assert_eq!(r.conflicts, 1);
    assert_eq!(b_calls.borrow().len(), 1);
    ok(a.sync());
    let want = Some(json!({"id": "settings", "n": 11}));
    assert_eq!(a.doc("cards", "settings"), want);
    assert_eq!(b.doc("cards", "settings"), want);
    assert_eq!(a.all(), server_all(&w));
}

#[test]
fn a_far_future_remote_version_under_merge_does_not_leave_a_synced_document_different() {
    // Failed before the fix: the join could not be written after the far-future version, and
    // the synced local document kept its own content for good.
    let w = World::new();
    let a = w.device("a", 0, merge_notes());
    a.put("notes", "x", json!({"title": "a", "extra": 1}));
    ok(a.sync());
    let far = Change {
        collection: "notes".into(),
        id: "x".into(),
        hlc: Hlc::new(START + 7_200_000, 0, "broken").unwrap(),
        deleted: false,
        doc: Doc::some(json!({"id": "x", "title": "future"})),
        fields: None,
        base: None,
    };
    w.server.inject(NS, far.clone());
    ok(a.sync());
    assert_eq!(a.store.get("notes", "x").map(|c| c.doc), Some(far.doc));
    assert!(!a.store.is_pending("notes", "x"));
    assert_eq!(a.all(), server_all(&w));
}

#[test]
fn the_drift_bound_is_the_one_the_server_advertises() {
    // Failed before the fix: a reply with maxDriftMs did not even parse, and the bound was
    // always the built-in 60 s.
    let w = World::new();
    let a = w.device("a", 0, lww());
    a.net()
        .corrupt_pull(Some(Box::new(|v| v["maxDriftMs"] = json!(600_000))));
    let ahead = Hlc::new(START + 300_000, 0, "fast").unwrap();
    w.server.inject(
        NS,
        Change {
            collection: "tasks".into(),
            id: "x".into(),
            hlc: ahead.clone(),
            deleted: false,
            doc: Doc::some(json!({"id": "x"})),
            fields: None,
            base: None,
        },
    );
    ok(a.sync());
    assert_eq!(a.store.sync_clock().max_drift_ms(), 600_000);
    assert!(
        a.store.sync_clock().last().wall_ms >= ahead.wall_ms,
        "5 min ahead is within the server's 10 min bound: adopted"
    );
}

/// Issue 13 item 3: a device that synced as one account and is handed another account's token
/// must neither push the first account's edits into the second's namespace nor re-sync them
/// there from the start; it stops until the token changes back.
#[test]
fn another_accounts_token_stops_sync_and_moves_nothing() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let mine = a.put("tasks", "x", json!({"v": 1}));
    ok(a.sync());
    a.put("tasks", "y", json!({"v": 2}));
    a.net().set_token(Some("someone-else"));
    let e = a.sync().unwrap_err();
    assert!(
        matches!(
            e,
            SyncError::Transport(TransportError::NamespaceMismatch(_))
        ),
        "{e}"
    );
    assert_eq!(e.code(), "NAMESPACE_MISMATCH");
    assert_eq!(e.retry_class(), RetryClass::StopUntilTokenChange);
    assert!(w.server.docs("someone-else").is_empty(), "nothing pushed");
    assert!(a.store.is_pending("tasks", "y"), "the edit is kept");
    assert!(a.store.saved_cursor().is_some(), "the cursor is kept");
    a.net().set_token(Some(NS));
    ok(a.sync());
    assert_eq!(w.server.docs(NS).len(), 2);
    assert_eq!(w.server.docs(NS)[0], mine);
    assert!(w.server.docs("someone-else").is_empty());
}
