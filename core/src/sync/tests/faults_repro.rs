//! Focused reproductions of the faults of issue 13, one behaviour each, small enough to read as a
//! trace. Each failed before its fix and now guards it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde_json::{json, Value};

use super::faults::{drive, Ran};
use super::*;
use crate::protocol::{Change, Doc};
use crate::sync::mem::Fault;
use crate::sync::{with_timeout, Conflict, ResolverFuture, DEFAULT_RESOLVER_TIMEOUT_MS};

type Seen = Rc<RefCell<Vec<Conflict>>>;

/// A custom collection `cus` whose resolver records what it is offered and answers with `answer`.
fn custom(seen: &Seen, answer: impl Fn(&Conflict) -> ResolverFuture + 'static) -> Policies {
    let seen = seen.clone();
    Policies::new(Policy::Lww).with(
        "cus",
        Policy::Custom(Rc::new(move |c: Conflict| {
            seen.borrow_mut().push(c.clone());
            answer(&c)
        })),
    )
}

/// Remote with the local fields on top.
fn overlay(c: &Conflict) -> ResolverFuture {
    let mut out = c.remote.clone().unwrap_or_else(|| json!({}));
    if let Some(l) = c.local.as_ref().and_then(Value::as_object) {
        for (k, v) in l {
            out[k] = v.clone();
        }
    }
    Box::pin(async move { Ok(Some(out)) })
}

fn on_server(w: &World, collection: &str, id: &str) -> Option<Change> {
    w.server
        .docs(NS)
        .into_iter()
        .find(|c| c.collection == collection && c.id == id)
}

/// One field of the server's version of a live document.
fn server_field(w: &World, collection: &str, id: &str, field: &str) -> Value {
    let doc = on_server(w, collection, id).and_then(|c| value(c.doc));
    doc.expect("a live document on the server")[field].clone()
}

/// Item 6 (native model): a store wiped between two pages of a pull. The engine still holds the
/// cursor it read before the wipe; the store refuses to save it into the new, empty database
/// (`MemStoreError::Wiped`), so the next sync pulls from the start and the device gets every
/// document. Without the refusal the device would save a cursor past documents it no longer has
/// and never pull them again.
#[test]
fn a_store_wiped_mid_pull_resyncs_from_the_start() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    for i in 0..6 {
        a.put("t", &format!("d{i}"), json!({ "n": i }));
    }
    a.sync().unwrap();
    let config = SyncConfig {
        pull_limit: 2,
        ..SyncConfig::default()
    };
    let b = w.device_with("b", 0, lww(), config);
    b.sync().unwrap();
    a.put("t", "d6", json!({ "n": 6 }));
    a.put("t", "d7", json!({ "n": 7 }));
    a.sync().unwrap();
    // b pulls d6, d7 in one page... and its database is wiped while the page is in flight.
    let store = b.store.clone();
    let wiped = Rc::new(Cell::new(false));
    let once = wiped.clone();
    b.net().on_pull(Some(Box::new(move || {
        if !once.replace(true) {
            store.wipe();
        }
    })));
    let first = b.sync();
    b.net().on_pull(None);
    assert!(wiped.get());
    assert!(first.is_err(), "the old cursor is refused: {first:?}");
    assert_eq!(
        b.store.saved_cursor(),
        None,
        "nothing saved with the old cursor"
    );
    b.sync().unwrap();
    assert_eq!(b.all(), server_all(&w), "every document pulled again");
    assert_eq!(b.all().len(), 8);
}

/// Item 1: a document the server refuses on its own (a server-side rule: 422) must not stop the
/// other pending documents, nor the pull.
#[test]
fn a_refused_row_does_not_stop_the_rest() {
    let w = World::new();
    w.server.refuse(Some(Box::new(|c: &Change| {
        (c.id == "bad").then(|| (422, "RULE_VIOLATION".into(), "refused by a rule".into()))
    })));
    let a = w.device("a", 0, lww());
    let b = w.device("b", 0, lww());
    b.put("t", "from-b", json!({ "n": 1 }));
    b.sync().unwrap();
    a.put("t", "bad", json!({ "n": 0 }));
    a.put("t", "good", json!({ "n": 2 }));
    let _ = a.sync();
    let _ = a.sync();
    assert!(
        on_server(&w, "t", "good").is_some(),
        "the good row was pushed"
    );
    assert!(a.doc("t", "from-b").is_some(), "the pull ran");
    assert!(
        a.store.is_pending("t", "bad"),
        "the refused row stays pending"
    );
}

/// Item 1: a document alone over the server's body limit (413 that no split fixes).
#[test]
fn a_document_over_the_body_limit_does_not_stop_the_rest() {
    let w = World::new();
    w.server.set_max_body_bytes(Some(4096));
    let a = w.device("a", 0, lww());
    let b = w.device("b", 0, lww());
    b.put("t", "from-b", json!({ "n": 1 }));
    b.sync().unwrap();
    a.put("t", "huge", json!({ "blob": "x".repeat(10_000) }));
    a.put("t", "small", json!({ "n": 2 }));
    let _ = a.sync();
    let _ = a.sync();
    assert!(
        on_server(&w, "t", "small").is_some(),
        "the small row was pushed"
    );
    assert!(a.doc("t", "from-b").is_some(), "the pull ran");
    assert!(a.store.is_pending("t", "huge"));
}

/// Two devices edit `cus/x` concurrently; a's resolver then meets b's edit.
fn concurrent_edit(w: &World, a: &Device, b: &Device) {
    a.put("cus", "x", json!({ "v": 0 }));
    a.sync().unwrap();
    b.sync().unwrap();
    b.put("cus", "x", json!({ "v": 1, "by": "b" }));
    b.sync().unwrap();
    a.put("cus", "x", json!({ "v": 2, "by": "a" }));
    assert!(on_server(w, "cus", "x").is_some());
}

/// Item 1: a resolver that throws sets its document aside; the rest syncs.
#[test]
fn a_throwing_resolver_sets_only_its_document_aside() {
    let w = World::new();
    let seen: Seen = Rc::default();
    let throws = custom(&seen, |_| Box::pin(async { Err("boom".to_string()) }));
    let a = w.device("a", 0, throws);
    let b = w.device("b", 0, custom(&seen, overlay));
    concurrent_edit(&w, &a, &b);
    a.put("t", "other", json!({ "n": 1 }));
    b.put("t", "from-b", json!({ "n": 1 }));
    b.sync().unwrap();
    let _ = a.sync();
    assert!(!seen.borrow().is_empty(), "the resolver was asked");
    assert!(
        on_server(&w, "t", "other").is_some(),
        "the other row was pushed"
    );
    assert!(a.doc("t", "from-b").is_some(), "the pull ran");
    assert!(
        a.store.is_pending("cus", "x"),
        "the conflicted edit stays pending"
    );
    assert_eq!(a.doc("cus", "x").unwrap()["by"], json!("a"));
}

/// Item 1: a resolver that never settles times out (default 10 s) and sets its document aside.
/// The time-out is core's (`with_timeout`), run here over simulated time.
#[test]
fn a_hanging_resolver_times_out() {
    let w = World::new();
    let seen: Seen = Rc::default();
    let hangs = custom(&seen, |_| Box::pin(std::future::pending()));
    let Policy::Custom(hanging) = hangs.get("cus").clone() else {
        unreachable!()
    };
    let hangs = Policies::new(Policy::Lww).with(
        "cus",
        Policy::Custom(with_timeout(
            hanging,
            DEFAULT_RESOLVER_TIMEOUT_MS,
            sim_sleep(w.time.clone()),
        )),
    );
    let a = w.device("a", 0, hangs);
    let b = w.device("b", 0, custom(&seen, overlay));
    concurrent_edit(&w, &a, &b);
    a.put("t", "other", json!({ "n": 1 }));
    let killed = Cell::new(false);
    let ran = drive(a.engine.sync_once(&mut |_| {}), &w.time, &killed);
    assert!(
        matches!(ran, Ran::Done(_)),
        "the sync ends within 200 s of a hanging resolver: {ran:?}"
    );
    assert!(
        on_server(&w, "t", "other").is_some(),
        "the other row was pushed"
    );
    assert!(a.store.is_pending("cus", "x"));
}

/// Item 2: a device whose clock ran 2 h ahead before its first sync gets its writes accepted within
/// one sync (learn the offset from the 422's `serverTime`, re-stamp, push again).
#[test]
fn a_device_two_hours_ahead_gets_its_writes_accepted_in_one_sync() {
    let w = World::new();
    let a = w.device("a", 7_200_000, lww());
    a.put("t", "x", json!({ "n": 1 }));
    let r = a.sync();
    assert!(r.is_ok(), "{r:?}");
    assert!(on_server(&w, "t", "x").is_some());
    assert_eq!(a.store.pending_count(), 0);
    // Later writes are sane: within the drift bound of the server's clock.
    let c = a.put("t", "y", json!({ "n": 2 }));
    assert!(c.hlc.wall_ms <= w.time.get() + 60_000, "{}", c.hlc);
}

/// Item 2: a clock that jumps 1 h forward mid-run (the device had synced fine before).
#[test]
fn a_clock_jump_forward_keeps_syncing() {
    let w = World::new();
    let skew = Rc::new(Cell::new(0i64));
    let s = skew.clone();
    let t = w.time.clone();
    let clock = SyncClock::new(
        crate::hlc::HlcClock::new("a", crate::hlc::DEFAULT_MAX_DRIFT_MS).unwrap(),
        move || (t.get() as i64 + s.get()) as u64,
    );
    let store = AnyStore::new(false, clock);
    let engine = SyncEngine::new(
        store.clone(),
        MemTransport::new(w.server.clone(), NS),
        lww(),
    );
    let a = Device { store, engine };
    a.put("t", "x", json!({ "n": 1 }));
    a.sync().unwrap();
    skew.set(3_600_000);
    a.put("t", "y", json!({ "n": 2 }));
    let _ = a.sync();
    let _ = a.sync();
    assert!(
        on_server(&w, "t", "y").is_some(),
        "the write made after the jump got through"
    );
}

/// Item 3: a server restored from an older copy that kept its epoch: our cursor is ahead of its
/// head, it answers `400 BAD_CURSOR`, which must be handled like 409 (pull from the start, offer
/// what the server lacks).
#[test]
fn bad_cursor_after_a_restore_keeping_the_epoch_resyncs() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    a.put("t", "d1", json!({ "n": 1 }));
    a.sync().unwrap();
    let backup = w.server.snapshot(NS);
    a.put("t", "d2", json!({ "n": 2 }));
    a.put("t", "d3", json!({ "n": 3 }));
    a.sync().unwrap();
    w.server
        .restore_keeping_epoch(vec![(NS.to_string(), backup)]);
    let _ = a.sync();
    let r = a.sync();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(a.all(), server_all(&w));
    assert_eq!(
        server_all(&w).len(),
        3,
        "what the restore lost is pushed again"
    );
}

/// A server restored from an older copy that kept its epoch, and written to again before a device
/// comes back: its cursor is no longer ahead of the head, the positions after the restored head
/// were reused. The cursor names the change at its position, so the server answers 409 and the
/// device re-syncs instead of silently skipping them (failed while cursors were positions only).
#[test]
fn positions_reused_after_a_restore_keeping_the_epoch_are_not_skipped() {
    let w = World::new();
    let a = w.device("a", 0, lww());
    let b = w.device("b", 0, lww());
    a.put("t", "d1", json!({ "n": 1 }));
    a.sync().unwrap();
    let backup = w.server.snapshot(NS);
    a.put("t", "d2", json!({ "n": 2 }));
    a.put("t", "d3", json!({ "n": 3 }));
    a.sync().unwrap(); // a's cursor: position 3
    w.server
        .restore_keeping_epoch(vec![(NS.to_string(), backup)]);
    for i in 0..3 {
        b.put("t", &format!("b{i}"), json!({ "n": i }));
    }
    b.sync().unwrap(); // positions 2, 3, 4 again
    for _ in 0..3 {
        let _ = a.sync();
    }
    for i in 0..3 {
        assert!(
            a.doc("t", &format!("b{i}")).is_some(),
            "a never pulled b{i}: {:?}",
            a.all().keys().collect::<Vec<_>>()
        );
    }
}

/// a's edit E1 of `cus/x` is applied but its reply lost; b pulls E1 and edits on it (E2); a
/// writes another document, so its next push differs from the lost one.
fn lost_reply_then_an_edit_on_it(w: &World, a: &Device, b: &Device) {
    a.put("cus", "x", json!({ "v": 0 }));
    a.sync().unwrap();
    b.sync().unwrap();
    w.advance(1000);
    a.put("cus", "x", json!({ "v": 1, "title": "E1 by a" })); // E1
    a.net().fail_next(Fault::DropReply);
    assert!(a.sync().is_err());
    w.advance(1000);
    b.sync().unwrap();
    assert_eq!(b.doc("cus", "x").unwrap()["title"], json!("E1 by a"));
    b.put("cus", "x", json!({ "v": 2, "title": "E2 by b" })); // E2, made on E1
    b.sync().unwrap();
    w.advance(1000);
    a.put("t", "other", json!({ "n": 1 })); // the next push differs
}

/// Item 4: A's edit E1 was applied but its reply lost; B pulls E1 and edits on top of it (E2); A's
/// next push differs (so the replay does not catch it) and the server answers E1 stale with E2.
/// E2 was made on E1: it is not a conflict, and A's resolver must not be asked (an overlay
/// resolver would write E1 back over E2, losing B's edit).
#[test]
fn a_lost_reply_never_offers_the_resolver_a_remote_made_on_its_local() {
    let w = World::new();
    let seen: Seen = Rc::default();
    let a = w.device("a", 0, custom(&seen, overlay));
    let b = w.device("b", 0, custom(&seen, overlay));
    lost_reply_then_an_edit_on_it(&w, &a, &b);
    a.sync().unwrap();
    a.sync().unwrap();
    assert!(
        seen.borrow().is_empty(),
        "the resolver was offered E2, made on top of its own E1: {:?}",
        seen.borrow()
    );
    assert_eq!(
        server_field(&w, "cus", "x", "title"),
        json!("E2 by b"),
        "B's edit survives"
    );
}

/// Item 4, killed tab: the same, with the tab killed after the server applied its push.
#[test]
fn a_tab_killed_mid_push_never_offers_the_resolver_a_remote_made_on_its_local() {
    let w = World::new();
    let seen: Seen = Rc::default();
    let a = w.device("a", 0, custom(&seen, overlay));
    let b = w.device("b", 0, custom(&seen, overlay));
    a.put("cus", "x", json!({ "v": 0 }));
    a.sync().unwrap();
    b.sync().unwrap();
    a.put("cus", "x", json!({ "v": 1, "title": "E1 by a" }));
    let killed = Rc::new(Cell::new(false));
    let k = killed.clone();
    a.net().on_push(Some(Box::new(move || k.set(true))));
    let ran = drive(a.engine.sync_once(&mut |_| {}), &w.time, &killed);
    a.net().on_push(None);
    assert!(matches!(ran, Ran::Killed), "{ran:?}");
    b.sync().unwrap();
    b.put("cus", "x", json!({ "v": 2, "title": "E2 by b" }));
    b.sync().unwrap();
    a.put("t", "other", json!({ "n": 1 }));
    a.sync().unwrap();
    a.sync().unwrap();
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    assert_eq!(server_field(&w, "cus", "x", "title"), json!("E2 by b"));
}

/// Item 4, a failed push in between: after the lost reply, a's next push fails (503) and the
/// pull still runs. It meets E2 (made on a's E1) while E1 is pending; the pull cannot tell E1 is
/// on the server, so it leaves E1 alone, and the next push learns it from the server.
#[test]
fn a_pull_after_a_failed_push_leaves_an_edit_in_doubt_to_the_server() {
    let w = World::new();
    let seen: Seen = Rc::default();
    let a = w.device("a", 0, custom(&seen, overlay));
    let b = w.device("b", 0, custom(&seen, overlay));
    lost_reply_then_an_edit_on_it(&w, &a, &b);
    a.net().fail_next(Fault::Status(503));
    assert!(a.sync().is_err());
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    a.sync().unwrap();
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    assert_eq!(a.doc("cus", "x").unwrap()["title"], json!("E2 by b"));
    assert!(!a.store.is_pending("cus", "x"));
    assert_eq!(server_field(&w, "cus", "x", "title"), json!("E2 by b"));
}

/// Item 5: two devices create the same app-chosen id in a custom-resolver collection; both
/// creations reach the resolver.
#[test]
fn create_create_on_a_shared_id_reaches_the_resolver() {
    let w = World::new();
    let seen: Seen = Rc::default();
    let a = w.device("a", 0, custom(&seen, overlay));
    let b = w.device("b", 0, custom(&seen, overlay));
    a.put("cus", "settings", json!({ "theme": "dark" }));
    a.sync().unwrap();
    w.advance(1000);
    b.put("cus", "settings", json!({ "lang": "fr" }));
    b.sync().unwrap();
    a.sync().unwrap();
    b.sync().unwrap();
    assert!(!seen.borrow().is_empty(), "the resolver was never asked");
    let fin = on_server(&w, "cus", "settings")
        .unwrap()
        .doc
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        (fin["theme"].clone(), fin["lang"].clone()),
        (json!("dark"), json!("fr"))
    );
}

/// Issue 13 (merge policy): a field edit the server acknowledged is kept when the only device that
/// held it is gone (its store wiped, or never synced again) and another device then pushes a newer
/// edit of the document made without seeing it. The server is last-writer-wins per document; the
/// newer edit must be told it was made without the current version (`stale`, by its `base`) and
/// pushed again joined with it, not replace it whole.
#[test]
fn a_merge_edit_made_without_the_current_version_does_not_replace_it() {
    let w = World::new();
    let a = w.device("a", 0, merge_notes());
    let b = w.device("b", 0, merge_notes());
    a.put("notes", "n", json!({ "title": "t" }));
    a.sync().unwrap();
    b.sync().unwrap();
    // a edits `body` and the server acknowledges it; then a's store is wiped (or a is gone).
    w.advance(1_000);
    a.put(
        "notes",
        "n",
        json!({ "title": "t", "body": "only a had this" }),
    );
    a.sync().unwrap();
    a.store.wipe();
    // b, which never saw a's edit, edits `tags` later: a higher HLC.
    w.advance(1_000);
    b.put("notes", "n", json!({ "title": "t", "tags": "x" }));
    b.sync().unwrap();
    b.sync().unwrap();
    let fin = on_server(&w, "notes", "n").expect("on the server");
    assert_eq!(
        fin.doc,
        Doc::some(json!({ "id": "n", "title": "t", "body": "only a had this", "tags": "x" })),
        "{fin:?}"
    );
    assert_eq!(b.doc("notes", "n"), value(fin.doc));
}
