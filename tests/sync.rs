//! Browser sync tests: real headless Chromium, real IndexedDB, the real ferrosync-server over
//! loopback behind `tests/support/faultproxy.py`. Two `Database` instances with different names
//! are two devices; each test uses its own token (server namespace).
//!
//! `FERROSYNC_TEST_SERVER=http://127.0.0.1:18090 FERROSYNC_TEST_CONTROL=http://127.0.0.1:18090 \
//!  CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome -- --test sync`

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::sync::*;
use common::*;
use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const MERGE: &str = r#"{"tasks": {"conflict": "merge"}}"#;

fn hlc_wall(record: &JsValue) -> f64 {
    let hlc = prop(record, "hlc").as_string().unwrap();
    u64::from_str_radix(&hlc[..12], 16).unwrap() as f64
}

#[wasm_bindgen_test]
async fn offline_edits_on_two_devices_converge() {
    clear_faults().await;
    let token = unique("conv");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    a.settled().await;
    b.settled().await;
    a.offline(true);
    b.offline(true);
    let aa = &a;
    eventually("status offline", 2000.0, || async move {
        if aa.state() == "offline" {
            Ok(())
        } else {
            Err(aa.state())
        }
    })
    .await;
    a.put("tasks", r#"{"id": "a1", "title": "from a", "done": false}"#)
        .await;
    a.put("tasks", r#"{"id": "shared", "title": "a's version"}"#)
        .await;
    b.put("tasks", r#"{"id": "b1", "title": "from b", "done": true}"#)
        .await;
    sleep(50).await;
    b.put(
        "tasks",
        r#"{"id": "shared", "title": "b's version (later)"}"#,
    )
    .await;
    b.delete("tasks", "a-never-existed").await;
    assert_eq!(a.pending().await, 2);
    assert_eq!(b.pending().await, 3);
    // Offline: nothing is attempted, db.sync() says so.
    a.sync_fails("SYNC_OFFLINE").await;
    // Both wrote "shared": the version with the higher HLC wins everywhere (b's, written later,
    // unless the two clocks' corrections disagree by more than the gap).
    let shared = if b.hlc("tasks", "shared").await > a.hlc("tasks", "shared").await {
        r#"{"id":"shared","title":"b's version (later)"}"#
    } else {
        r#"{"id":"shared","title":"a's version"}"#
    };
    a.offline(false);
    b.offline(false);
    let all = converge(&[&a, &b], "tasks").await;
    assert_eq!(
        all,
        format!(
            r#"[{{"done":false,"id":"a1","title":"from a"}},{{"done":true,"id":"b1","title":"from b"}},{shared}]"#
        )
    );
    assert_eq!(a.state(), "idle");
    assert!(prop(&a.status(), "lastSyncAt").as_f64().unwrap() > 0.0);
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn lww_conflict_higher_hlc_wins_and_the_stale_side_counts_it() {
    clear_faults().await;
    let token = unique("lww");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    a.put("tasks", r#"{"id": "x", "title": "base", "done": false}"#)
        .await;
    a.sync().await;
    b.sync().await;
    for round in 0..2 {
        a.offline(true);
        b.offline(true);
        b.put(
            "tasks",
            &format!(r#"{{"id": "x", "title": "b{round}", "done": true}}"#),
        )
        .await;
        sleep(300).await;
        a.put(
            "tasks",
            &format!(r#"{{"id": "x", "title": "a{round}", "done": false}}"#),
        )
        .await;
        let (ha, hb) = (a.hlc("tasks", "x").await, b.hlc("tasks", "x").await);
        let (newer, older) = if ha > hb { (&a, &b) } else { (&b, &a) };
        let winner = newer.get("tasks", "x").await;
        // The newer version reaches the server first in round 0, the older one in round 1.
        let (first, second) = if round == 0 {
            (newer, older)
        } else {
            (older, newer)
        };
        let r1 = first.online_sync().await;
        let r2 = second.online_sync().await;
        if round == 0 {
            // The older push is refused as stale and settled by LWW on that device.
            assert_eq!(r1, (1, 0, 0), "newer pushed first");
            assert_eq!(
                (r2.0, r2.2),
                (0, 1),
                "older pushed second: stale, one conflict"
            );
            assert_eq!(older.get("tasks", "x").await, winner);
        } else {
            // The older version lands first; the newer one replaces it on the server.
            assert_eq!((r1.0, r1.2), (1, 0));
            assert_eq!((r2.0, r2.2), (1, 0));
        }
        let all = converge(&[&a, &b], "tasks").await;
        assert_eq!(all, format!("[{winner}]"));
    }
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn merge_policy_keeps_both_field_edits() {
    clear_faults().await;
    let token = unique("merge");
    let opts = || Opts {
        collections: MERGE,
        ..Opts::default()
    };
    let a = device(&unique("a"), &token, opts()).await;
    let b = device(&unique("b"), &token, opts()).await;
    a.put(
        "tasks",
        r#"{"id": "t", "title": "Buy milk", "done": false, "n": 1}"#,
    )
    .await;
    a.sync().await;
    b.sync().await;
    assert_eq!(
        b.get("tasks", "t").await,
        r#"{"done":false,"id":"t","n":1,"title":"Buy milk"}"#
    );
    // Per-field timestamps are recorded with each local write.
    let rec = a.record("tasks", "t").await;
    assert!(
        prop(&rec, "fields").is_object(),
        "merge records carry fields: {}",
        to_json(&rec)
    );

    a.offline(true);
    b.offline(true);
    a.put(
        "tasks",
        r#"{"id": "t", "title": "Buy oat milk", "done": false, "n": 1}"#,
    )
    .await;
    sleep(50).await;
    b.put("tasks", r#"{"id": "t", "title": "Buy milk", "done": true}"#)
        .await;
    a.online_sync().await;
    b.online_sync().await;
    let all = converge(&[&a, &b], "tasks").await;
    // a's title edit and b's done edit (and b's removal of n) all survive.
    assert_eq!(all, r#"[{"done":true,"id":"t","title":"Buy oat milk"}]"#);
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

/// Two devices of one namespace whose `tasks` use `resolver`, both holding the synced document
/// `r`, then both offline with an edit of `r` each (b's first, a's 300 ms later). Returns them
/// and whether b's edit is the older by HLC (it is, unless the two clock corrections disagree by
/// more than the gap).
async fn concurrent_edits(token: &str, resolver: &str) -> (Device, Device, bool) {
    let resolvers = [("tasks", resolver)];
    let opts = || Opts {
        resolvers: &resolvers,
        ..Opts::default()
    };
    let a = device(&unique("a"), token, opts()).await;
    let b = device(&unique("b"), token, opts()).await;
    a.put("tasks", r#"{"id": "r", "title": "base"}"#).await;
    a.sync().await;
    b.sync().await;
    a.offline(true);
    b.offline(true);
    b.put("tasks", r#"{"id": "r", "title": "B"}"#).await;
    sleep(300).await;
    a.put("tasks", r#"{"id": "r", "title": "A"}"#).await;
    let b_older = b.hlc("tasks", "r").await < a.hlc("tasks", "r").await;
    (a, b, b_older)
}

/// A counter the test resolvers keep on `globalThis`.
fn js_counter(name: &str) -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &name.into())
        .unwrap()
        .as_f64()
        .unwrap_or(0.0)
}

#[wasm_bindgen_test]
async fn js_resolver_decides_and_its_answer_syncs_back() {
    clear_faults().await;
    let token = unique("resolver");
    let resolver = r#"(local, remote) => {
        globalThis.__resolverCalls = (globalThis.__resolverCalls || 0) + 1;
        if (remote === null || local === null) return null;
        return { ...remote, title: local.title + " & " + remote.title, resolved: true };
    }"#;
    let (a, b, b_older) = concurrent_edits(&token, resolver).await;
    // Sync the newer edit first: the older one then meets it, and its device's resolver runs.
    let (newer, older) = if b_older { (&a, &b) } else { (&b, &a) };
    let expected = if b_older {
        r#"[{"id":"r","resolved":true,"title":"B & A"}]"#
    } else {
        r#"[{"id":"r","resolved":true,"title":"A & B"}]"#
    };
    let calls = || js_counter("__resolverCalls");
    let before = calls();
    newer.online_sync().await;
    let (_, _, conflicts) = older.online_sync().await;
    assert_eq!(conflicts, 1);
    assert_eq!(
        calls() - before,
        1.0,
        "the resolver ran once, on the older side"
    );
    // Its answer is a new local write there, pushed in the same sync, then pulled by the other.
    let all = converge(&[&a, &b], "tasks").await;
    assert_eq!(all, expected);

    // A resolver answering null deletes the document everywhere (whichever side is older).
    a.offline(true);
    b.offline(true);
    a.put("tasks", r#"{"id": "r", "title": "A2"}"#).await;
    b.delete("tasks", "r").await;
    let a_older = a.hlc("tasks", "r").await < b.hlc("tasks", "r").await;
    let (newer, older) = if a_older { (&b, &a) } else { (&a, &b) };
    newer.online_sync().await;
    let (_, _, conflicts) = older.online_sync().await;
    assert_eq!(conflicts, 1);
    let all = converge(&[&a, &b], "tasks").await;
    assert_eq!(all, "[]");

    // A resolver that throws: its document is set aside (listed in status.rejected with the
    // resolver's message), the local edit stays pending, and the sync itself succeeds.
    let bad = [("tasks", "(local, remote) => { throw new Error('nope'); }")];
    let bad_opts = || Opts {
        resolvers: &bad,
        ..Opts::default()
    };
    let c = device(&unique("c"), &token, bad_opts()).await;
    let d = device(&unique("d"), &token, bad_opts()).await;
    c.settled().await;
    d.settled().await;
    c.offline(true);
    d.offline(true);
    c.put("tasks", r#"{"id": "q", "title": "from c"}"#).await;
    sleep(300).await;
    d.put("tasks", r#"{"id": "q", "title": "from d"}"#).await;
    let c_older = c.hlc("tasks", "q").await < d.hlc("tasks", "q").await;
    let (newer, older) = if c_older { (&d, &c) } else { (&c, &d) };
    newer.online_sync().await;
    older.online_sync().await;
    assert_eq!(older.pending().await, 1, "the local edit is kept");
    assert_eq!(older.state(), "idle");
    let rejected = prop(&older.status(), "rejected");
    let first = js_sys::Reflect::get_u32(&rejected, 0).unwrap();
    assert_eq!(prop(&first, "code").as_string().unwrap(), "RESOLVER_FAILED");
    assert_eq!(prop(&first, "id").as_string().unwrap(), "q");
    let msg = prop(&first, "message").as_string().unwrap();
    assert!(msg.contains("nope"), "{msg}");
    d.close_and_destroy().await;
    a.close_and_destroy().await;
    b.close_and_destroy().await;
    c.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn js_resolver_runs_when_the_older_edit_syncs_first() {
    clear_faults().await;
    let token = unique("resolver-base");
    let resolver = r#"(local, remote) => {
        globalThis.__baseCalls = (globalThis.__baseCalls || 0) + 1;
        return { ...remote, title: local.title + " & " + remote.title };
    }"#;
    let (a, b, b_older) = concurrent_edits(&token, resolver).await;
    let (newer, older) = if b_older { (&a, &b) } else { (&b, &a) };
    let expected = if b_older {
        r#"[{"id":"r","title":"A & B"}]"#
    } else {
        r#"[{"id":"r","title":"B & A"}]"#
    };
    let calls = || js_counter("__baseCalls");
    // The OLDER edit syncs first: made on the synced version, the server takes it. The newer one
    // was made on that same version, not on the older edit: the server refuses it whatever the
    // clocks say, and the newer device's resolver decides.
    let (pushed, _, conflicts) = older.online_sync().await;
    assert_eq!((pushed, conflicts), (1, 0));
    assert_eq!(calls(), 0.0);
    let (_, _, conflicts) = newer.online_sync().await;
    assert_eq!(conflicts, 1);
    assert_eq!(calls(), 1.0, "the resolver ran once, on the newer side");
    let all = converge(&[&a, &b], "tasks").await;
    assert_eq!(all, expected);
    assert_eq!(calls(), 1.0, "the resolution itself is no conflict");
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn delete_versus_update_later_one_wins() {
    clear_faults().await;
    let token = unique("delupd");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    a.put("tasks", r#"{"id": "d1", "v": 0}"#).await;
    a.put("tasks", r#"{"id": "d2", "v": 0}"#).await;
    a.sync().await;
    b.sync().await;
    a.offline(true);
    b.offline(true);
    // d1: update first, delete later -> deleted. d2: delete first, update later -> kept.
    b.put("tasks", r#"{"id": "d1", "v": 1}"#).await;
    a.delete("tasks", "d2").await;
    sleep(300).await;
    a.delete("tasks", "d1").await;
    b.put("tasks", r#"{"id": "d2", "v": 2}"#).await;
    // LWW by HLC: the later version of each (by the clocks, d1's delete and d2's update).
    let mut expected = Vec::new();
    if b.hlc("tasks", "d1").await > a.hlc("tasks", "d1").await {
        expected.push(r#"{"id":"d1","v":1}"#);
    }
    if b.hlc("tasks", "d2").await > a.hlc("tasks", "d2").await {
        expected.push(r#"{"id":"d2","v":2}"#);
    }
    assert_eq!(
        expected,
        [r#"{"id":"d2","v":2}"#],
        "the intended order (300 ms apart)"
    );
    a.offline(false);
    b.offline(false);
    let all = converge(&[&a, &b], "tasks").await;
    assert_eq!(all, format!("[{}]", expected.join(",")));
    // Deletes travel as tombstones.
    let feed = server_feed(&token).await;
    let d1 = feed
        .iter()
        .find(|c| prop(c, "id").as_string().as_deref() == Some("d1"))
        .unwrap();
    assert_eq!(prop(d1, "deleted").as_bool(), Some(true));
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn edit_during_an_in_flight_push_is_kept_and_pushed_next() {
    clear_faults().await;
    let token = unique("inflight");
    // No debounced push of its own: the test decides when a syncs.
    let a = device(
        &unique("a"),
        &token,
        Opts {
            sync_extra: r#"{"debounceMs": 60000}"#,
            ..Opts::default()
        },
    )
    .await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    a.settled().await;
    a.offline(true);
    a.put("tasks", r#"{"id": "e", "v": 1}"#).await;
    // Hold the push's reply until a second edit of the same document has committed.
    let coll = a.coll("tasks");
    let edit = Closure::<dyn FnMut() -> js_sys::Promise>::new(move || {
        coll.put(json(r#"{"id": "e", "v": 2}"#))
    });
    let install = Function::new_with_args(
        "edit",
        r#"
        const orig = globalThis.fetch;
        globalThis.__origFetch = orig;
        globalThis.fetch = async (req, init) => {
            const resp = await orig(req, init);
            const url = typeof req === "string" ? req : req.url;
            if (url.includes("/v1/push") && globalThis.__holdPush) {
                globalThis.__holdPush = false;
                await edit();
            }
            return resp;
        };
        globalThis.__holdPush = true;
        "#,
    );
    install.call1(&JsValue::NULL, edit.as_ref()).unwrap();
    let (pushed, _, _) = a.online_sync().await;
    let restore = Function::new_no_args("globalThis.fetch = globalThis.__origFetch;");
    restore.call0(&JsValue::NULL).unwrap();
    assert_eq!(pushed, 1, "v1 was acknowledged");
    // v2 was written while v1's push was in flight: not lost, still pending.
    assert_eq!(a.get("tasks", "e").await, r#"{"id":"e","v":2}"#);
    assert_eq!(
        a.pending().await,
        1,
        "the edit made during the push is still pending"
    );
    let feed = server_feed(&token).await;
    assert_eq!(to_json(&prop(&feed[0], "doc")), r#"{"id":"e","v":1}"#);
    let (pushed, _, _) = a.sync().await;
    assert_eq!(pushed, 1);
    assert_eq!(a.pending().await, 0);
    b.sync().await;
    assert_eq!(b.get("tasks", "e").await, r#"{"id":"e","v":2}"#);
    drop(edit);
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn local_edits_racing_the_pages_of_a_pull_are_kept_and_pushed() {
    clear_faults().await;
    let token = unique("pullrace");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(
        &unique("b"),
        &token,
        Opts {
            sync_extra: r#"{"debounceMs": 60000}"#,
            ..Opts::default()
        },
    )
    .await;
    a.settled().await;
    b.settled().await;
    // 1,200 documents: three pages of 500 for b.
    let docs: Vec<String> = (0..1200)
        .map(|i| format!(r#"{{"id": "d{i:04}", "v": "a"}}"#))
        .collect();
    ok(a.coll("tasks")
        .bulk_put(json(&format!("[{}]", docs.join(",")))))
    .await;
    a.sync().await;
    // Each time a pull reply arrives, b's app edits, without waiting, documents of the page about
    // to be applied, of one still to come, and (the second reply is fetched while the first page
    // is applied) of the page being applied: each write transaction lands just before or just
    // after a page's, and must win either way (it is newer).
    let coll = b.coll("tasks");
    let edit = Closure::<dyn FnMut(String)>::new(move |id: String| {
        let _ = coll.put(json(&format!(r#"{{"id": "{id}", "v": "b"}}"#)));
    });
    let install = Function::new_with_args(
        "edit",
        r#"
        const orig = globalThis.fetch;
        globalThis.__origFetch = orig;
        let n = 0;
        const targets = [["d0007", "d1100"], ["d0400", "d0600", "d1150"], ["d1001", "d1199"]];
        globalThis.fetch = async (req, init) => {
            const resp = await orig(req, init);
            const url = typeof req === "string" ? req : req.url;
            if (url.includes("/v1/pull") && n < targets.length) {
                for (const id of targets[n++]) edit(id);
            }
            return resp;
        };
        "#,
    );
    install.call1(&JsValue::NULL, edit.as_ref()).unwrap();
    b.sync().await;
    Function::new_no_args("globalThis.fetch = globalThis.__origFetch;")
        .call0(&JsValue::NULL)
        .unwrap();
    let edited = [
        "d0007", "d1100", "d0400", "d0600", "d1150", "d1001", "d1199",
    ];
    assert_eq!(
        b.count("tasks").await,
        1200,
        "every pulled document is there"
    );
    for id in edited {
        assert_eq!(
            b.get("tasks", id).await,
            format!(r#"{{"id":"{id}","v":"b"}}"#),
            "{id}: the edit made while the pull ran is kept"
        );
    }
    assert_eq!(b.get("tasks", "d0008").await, r#"{"id":"d0008","v":"a"}"#);
    // The edits are still pending, then pushed, and reach a.
    b.sync().await;
    assert_eq!(b.pending().await, 0);
    a.sync().await;
    for id in edited {
        assert_eq!(
            a.get("tasks", id).await,
            format!(r#"{{"id":"{id}","v":"b"}}"#)
        );
    }
    drop(edit);
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

/// Devices `a` and `b` of a new namespace, `b` pulling pages of 50; `a` has pushed 230 documents
/// `{ id: "p0000".., n: 0.., <more(n)> }`.
async fn paged_pair(name: &str, more: impl Fn(u32) -> String) -> (Device, Device) {
    clear_faults().await;
    let token = unique(name);
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(
        &unique("b"),
        &token,
        Opts {
            sync_extra: r#"{"pullLimit": 50}"#,
            ..Opts::default()
        },
    )
    .await;
    b.settled().await;
    let docs: Vec<String> = (0..230u32)
        .map(|i| format!(r#"{{"id": "p{i:04}", "n": {i}, {}}}"#, more(i)))
        .collect();
    ok(a.coll("tasks")
        .bulk_put(json(&format!("[{}]", docs.join(",")))))
    .await;
    assert_eq!(a.sync().await.0, 230);
    (a, b)
}

#[wasm_bindgen_test]
async fn pull_pages_apply_in_order_report_progress_and_notify_once_per_page() {
    let (a, b) = paged_pair("pages", |i| format!(r#""done": {}"#, i % 2 == 0)).await;
    // Record progress and live-query callbacks during b's sync.
    type Seen = Rc<RefCell<Vec<(f64, Option<f64>)>>>;
    let progress: Seen = Rc::default();
    let p2 = progress.clone();
    let on_status = Closure::<dyn FnMut(JsValue)>::new(move |s: JsValue| {
        if prop(&s, "state").as_string().as_deref() == Some("syncing") {
            let pr = prop(&s, "progress");
            p2.borrow_mut().push((
                prop(&pr, "pulled").as_f64().unwrap(),
                prop(&pr, "remaining").as_f64(),
            ));
        }
    });
    let sub = b.db.on_status(on_status.as_ref().clone()).unwrap();
    let callbacks: Rc<RefCell<Vec<u32>>> = Rc::default();
    let c2 = callbacks.clone();
    let on_docs = Closure::<dyn FnMut(JsValue)>::new(move |docs: JsValue| {
        c2.borrow_mut().push(docs.unchecked_ref::<Array>().length());
    });
    let watch = b
        .coll("tasks")
        .watch(
            json(r#"{"where": {"done": true}}"#),
            on_docs.as_ref().clone(),
        )
        .unwrap();
    sleep(50).await;
    let (_, pulled, _) = b.sync().await;
    assert_eq!(pulled, 230);
    b.settled().await;
    assert_eq!(b.count("tasks").await, 230);
    assert_eq!(b.all("tasks").await, a.all("tasks").await);
    let seen = progress.borrow().clone();
    let pulled: Vec<f64> = seen.iter().map(|p| p.0).collect();
    assert!(
        pulled.contains(&50.0) && pulled.contains(&200.0),
        "progress {seen:?}"
    );
    assert!(
        seen.iter().any(|p| p.0 == 50.0 && p.1 == Some(180.0)),
        "the first page reports what remains: {seen:?}"
    );
    // One live-query callback per page at most (plus the initial one), never one per document.
    sleep(100).await;
    let calls = callbacks.borrow().clone();
    assert!(
        calls.len() >= 2 && calls.len() <= 6,
        "watch callbacks {calls:?}"
    );
    assert_eq!(calls[0], 0, "the initial result");
    assert_eq!(*calls.last().unwrap(), 115);
    watch.unsubscribe();
    let mut sub = sub;
    sub.unsubscribe();
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

/// A live query is not run again for pulled pages that cannot touch its result (issue 17): the
/// pages carry their documents, so the query's window is checked instead. 230 documents in pages of
/// 50: only the last page holds matches of `n >= 200`.
#[wasm_bindgen_test]
async fn pulled_pages_that_cannot_touch_a_live_result_do_not_run_it_again() {
    let (a, b) = paged_pair("pages-live", |_| r#""done": false"#.to_string()).await;
    let last: Rc<RefCell<u32>> = Rc::default();
    let l2 = last.clone();
    let on_docs = Closure::<dyn FnMut(JsValue)>::new(move |docs: JsValue| {
        *l2.borrow_mut() = docs.unchecked_ref::<Array>().length();
    });
    let watch = b
        .coll("tasks")
        .watch(
            json(r#"{"where": {"n": {"$gte": 200}}, "orderBy": {"n": "desc"}}"#),
            on_docs.as_ref().clone(),
        )
        .unwrap();
    // A document watched by id (decided from the page's ids, its text not read): only the page
    // holding it runs it again.
    let one: Rc<RefCell<String>> = Rc::default();
    let o2 = one.clone();
    let on_one = Closure::<dyn FnMut(JsValue)>::new(move |docs: JsValue| {
        *o2.borrow_mut() = to_json(&docs);
    });
    let by_id = b
        .coll("tasks")
        .watch(
            json(r#"{"where": {"id": "p0123"}}"#),
            on_one.as_ref().clone(),
        )
        .unwrap();
    sleep(50).await;
    let before = b.db.live().runs_for_test();
    assert_eq!(before, 2, "the first runs");
    assert_eq!(b.sync().await.1, 230);
    b.settled().await;
    sleep(100).await;
    assert_eq!(
        *last.borrow(),
        30,
        "the result holds the last page's matches"
    );
    assert_eq!(
        *one.borrow(),
        r#"[{"id":"p0123","n":123,"done":false}]"#,
        "the watched document arrived"
    );
    let runs = b.db.live().runs_for_test() - before;
    assert_eq!(
        runs, 2,
        "only the page with matches, and the page holding the watched id, run a query again ({runs} runs)"
    );
    // The pulled documents were held in JavaScript until written: none is held any more.
    assert_eq!(ferrosync::store::held::pages_for_test(), 0);
    watch.unsubscribe();
    by_id.unsubscribe();
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn the_online_event_triggers_a_sync() {
    clear_faults().await;
    let token = unique("online");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    b.settled().await;
    a.put("tasks", r#"{"id": "o", "title": "hello"}"#).await;
    a.sync().await;
    sleep(300).await;
    // b has no timer, no event stream and no writes: only the event can make it sync.
    assert_eq!(b.get("tasks", "o").await, "undefined");
    let ev = web_sys::Event::new("online").unwrap();
    let global: web_sys::EventTarget = js_sys::global().unchecked_into();
    global.dispatch_event(&ev).unwrap();
    let bb = &b;
    eventually("b pulled after the online event", 5000.0, || async move {
        match bb.get("tasks", "o").await.as_str() {
            r#"{"id":"o","title":"hello"}"# => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn the_page_becoming_visible_and_the_interval_trigger_syncs() {
    clear_faults().await;
    let token = unique("visible");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    b.settled().await;
    a.put("tasks", r#"{"id": "v", "title": "seen when visible"}"#)
        .await;
    a.sync().await;
    sleep(300).await;
    assert_eq!(b.get("tasks", "v").await, "undefined");
    let document: web_sys::EventTarget =
        js_sys::Reflect::get(&js_sys::global(), &"document".into())
            .unwrap()
            .unchecked_into();
    document
        .dispatch_event(&web_sys::Event::new("visibilitychange").unwrap())
        .unwrap();
    let bb = &b;
    eventually("b pulled after visibilitychange", 5000.0, || async move {
        match bb.get("tasks", "v").await.as_str() {
            "undefined" => Err("not yet".into()),
            _ => Ok(()),
        }
    })
    .await;

    // A device with a short interval and nothing else pulls by itself.
    let c = device(
        &unique("c"),
        &token,
        Opts {
            sync_extra: r#"{"intervalMs": 200}"#,
            ..Opts::default()
        },
    )
    .await;
    c.settled().await;
    a.put("tasks", r#"{"id": "i", "title": "by the interval"}"#)
        .await;
    a.sync().await;
    let cc = &c;
    eventually("c pulled on its interval", 5000.0, || async move {
        match cc.get("tasks", "i").await.as_str() {
            "undefined" => Err("not yet".into()),
            _ => Ok(()),
        }
    })
    .await;
    a.close_and_destroy().await;
    b.close_and_destroy().await;
    c.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn local_writes_are_pushed_shortly_after_without_calling_sync() {
    clear_faults().await;
    let token = unique("debounce");
    let a = device(&unique("a"), &token, Opts::default()).await;
    a.settled().await;
    for i in 0..5 {
        a.put("tasks", &format!(r#"{{"id": "w{i}"}}"#)).await;
    }
    let aa = &a;
    eventually(
        "writes pushed by the debounced sync",
        5000.0,
        || async move {
            match aa.pending().await {
                0 => Ok(()),
                n => Err(format!("{n} pending")),
            }
        },
    )
    .await;
    assert_eq!(server_feed(&token).await.len(), 5);
    a.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn server_down_then_up_is_retried_with_backoff() {
    clear_faults().await;
    let token = unique("down");
    let a = device(
        &unique("a"),
        &token,
        Opts {
            sync_extra: r#"{"backoffBaseMs": 200, "backoffMaxMs": 1000}"#,
            ..Opts::default()
        },
    )
    .await;
    a.settled().await;
    a.offline(true);
    a.put("tasks", r#"{"id": "k", "title": "survives an outage"}"#)
        .await;
    clear_stats().await;
    fault("down", "", 3).await;
    a.offline(false);
    // The sync started by going online fails, and so does this one: connection closed.
    let aa = &a;
    eventually("status error", 5000.0, || async move {
        if aa.state() == "error" {
            Ok(())
        } else {
            Err(aa.state())
        }
    })
    .await;
    let err = prop(&a.status(), "error");
    assert_eq!(prop(&err, "code").as_string().unwrap(), "SYNC_NETWORK");
    // No further call: backoff retries until the server answers, then the change is pushed.
    eventually("pushed after the outage", 15_000.0, || async move {
        match (aa.pending().await, aa.state().as_str()) {
            (0, "idle") => Ok(()),
            (n, s) => Err(format!("{n} pending, {s}")),
        }
    })
    .await;
    assert!(requests("/v1/push").await >= 2, "retried");
    assert!(prop(&a.status(), "error").is_null());
    assert_eq!(server_feed(&token).await.len(), 1);
    a.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn server_killed_mid_push_the_retry_applies_once() {
    clear_faults().await;
    let token = unique("killed");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    a.settled().await;
    a.offline(true);
    ok(a.coll("tasks").bulk_put(json(
        r#"[{"id": "m1", "v": 1}, {"id": "m2", "v": 1}, {"id": "m3", "v": 1}]"#,
    )))
    .await;
    let hlc_before = JsValue::from_str(&a.hlc("tasks", "m1").await);
    // The server applies the push, then dies before replying (and is restarted).
    clear_stats().await;
    fault("kill_after_forward", "/v1/push", 1).await;
    a.offline(false);
    // The reply is lost. (Chromium itself may resend a request whose connection died before
    // any reply; then this first sync already succeeds through that resend.)
    let first = wasm_bindgen_futures::JsFuture::from(a.db.sync()).await;
    if let Err(e) = &first {
        assert_eq!(code(e), "SYNC_NETWORK", "{}", message(e));
        // Our retry: the same changes again; the server applies them once.
        let (pushed, _, conflicts) = a.sync().await;
        assert_eq!((pushed, conflicts), (3, 0));
    }
    assert!(
        requests("/v1/push").await >= 2,
        "the push was sent again after the lost reply"
    );
    assert_eq!(a.pending().await, 0);
    let feed = server_feed(&token).await;
    assert_eq!(feed.len(), 3, "each document once in the feed");
    let m1 = feed
        .iter()
        .find(|c| prop(c, "id").as_string().as_deref() == Some("m1"))
        .unwrap();
    assert_eq!(
        prop(m1, "hlc"),
        hlc_before,
        "the stored version is the one pushed"
    );
    b.sync().await;
    assert_eq!(b.count("tasks").await, 3);
    assert_eq!(b.all("tasks").await, a.all("tasks").await);
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn unauthorized_stops_retrying_until_set_token() {
    clear_faults().await;
    let token = unique("auth");
    let a = device(
        &unique("a"),
        &token,
        Opts {
            sync_extra: r#"{"backoffBaseMs": 50, "intervalMs": 200}"#,
            ..Opts::default()
        },
    )
    .await;
    a.settled().await;
    a.offline(true);
    sleep(300).await; // let an interval sync that already started finish
    fault("status401", "", 1).await;
    a.offline(false);
    let msg = a.sync_fails("SYNC_UNAUTHORIZED").await;
    assert!(msg.contains("setToken"), "{msg}");
    assert_eq!(a.state(), "error");
    assert_eq!(
        prop(&prop(&a.status(), "error"), "code")
            .as_string()
            .unwrap(),
        "SYNC_UNAUTHORIZED"
    );
    clear_stats().await;
    // Writes, the interval and the online event do not make it try again.
    a.put("tasks", r#"{"id": "u", "title": "waits for a token"}"#)
        .await;
    let global: web_sys::EventTarget = js_sys::global().unchecked_into();
    global
        .dispatch_event(&web_sys::Event::new("online").unwrap())
        .unwrap();
    sleep(800).await;
    assert_eq!(requests("/v1/push").await + requests("/v1/pull").await, 0);
    assert_eq!(a.state(), "error");
    assert_eq!(a.pending().await, 1);
    // A new token resumes at once.
    a.db.set_token(JsValue::from_str(&token)).unwrap();
    a.settled().await;
    assert_eq!(server_feed(&token).await.len(), 1);
    a.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn malformed_replies_are_errors_and_nothing_is_applied() {
    clear_faults().await;
    let token = unique("malformed");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    a.settled().await;
    b.settled().await;
    a.offline(true);
    a.put("tasks", r#"{"id": "g1", "v": 1}"#).await;
    // A garbled push reply: nothing of it is applied. The pull that still follows the failed
    // push finds the version in the server's feed (the server did apply it), which is what
    // acknowledges it, if anything does.
    fault("malformed", "/v1/push", 1).await;
    a.offline(false);
    a.sync_fails("SYNC_MALFORMED_REPLY").await;
    assert_eq!(a.get("tasks", "g1").await, r#"{"id":"g1","v":1}"#);
    assert!(a.pending().await <= 1);
    assert_eq!(
        prop(&prop(&a.status(), "error"), "code")
            .as_string()
            .unwrap(),
        "SYNC_MALFORMED_REPLY"
    );
    a.sync().await;
    assert_eq!(a.pending().await, 0);
    // A garbled pull reply: nothing applied, the cursor stays; the next pull gets it all.
    fault("malformed", "/v1/pull", 5).await;
    b.sync_fails("SYNC_MALFORMED_REPLY").await;
    assert_eq!(b.get("tasks", "g1").await, "undefined");
    clear_faults().await;
    b.sync().await;
    assert_eq!(b.get("tasks", "g1").await, r#"{"id":"g1","v":1}"#);
    assert!(prop(&b.status(), "error").is_null());
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn pulled_pages_that_break_the_rules_are_refused_and_let_go() {
    clear_faults().await;
    let token = unique("hostile-page");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    a.settled().await;
    b.settled().await;
    a.put("tasks", r#"{"id": "h1", "v": 1}"#).await;
    a.sync().await;
    // Each parses as JSON (the browser holds its documents) but breaks a rule: nothing of it is
    // applied, the cursor stays, and the page is let go.
    for kind in [
        "pull_wrong_id",
        "pull_array_doc",
        "pull_no_id",
        "pull_changes_object",
    ] {
        fault(kind, "/v1/pull", 5).await;
        b.sync_fails("SYNC_MALFORMED_REPLY").await;
        assert_eq!(b.get("tasks", "h1").await, "undefined", "{kind}");
        assert_eq!(ferrosync::store::held::pages_for_test(), 0, "{kind}");
        clear_faults().await;
    }
    b.sync().await;
    assert_eq!(b.get("tasks", "h1").await, r#"{"id":"h1","v":1}"#);
    assert_eq!(ferrosync::store::held::pages_for_test(), 0);
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn a_device_an_hour_behind_converges_correctly() {
    clear_faults().await;
    let token = unique("skew");
    let slow = device(
        &unique("slow"),
        &token,
        Opts {
            sync_extra: r#"{"clockSkewMs": -3600000}"#,
            ..Opts::default()
        },
    )
    .await;
    let ok_dev = device(&unique("ok"), &token, Opts::default()).await;
    slow.settled().await;
    ok_dev.settled().await;
    ok_dev
        .put("tasks", r#"{"id": "c", "title": "first (correct clock)"}"#)
        .await;
    ok_dev.sync().await;
    sleep(1000).await;
    // Later in real time, written by the device whose clock is an hour behind: it must win.
    slow.put("tasks", r#"{"id": "c", "title": "second (slow clock)"}"#)
        .await;
    let rec = slow.record("tasks", "c").await;
    let drift = (hlc_wall(&rec) - js_sys::Date::now()).abs();
    assert!(
        drift < 60_000.0,
        "stamped with corrected time, off by {drift} ms"
    );
    slow.sync().await;
    ok_dev.sync().await;
    let all = converge(&[&slow, &ok_dev], "tasks").await;
    assert_eq!(all, r#"[{"id":"c","title":"second (slow clock)"}]"#);
    // The correction survives a reopen (the offset is persisted with the sync state).
    let name = slow.name.clone();
    slow.db.close();
    let slow2 = device(
        &name,
        &token,
        Opts {
            sync_extra: r#"{"clockSkewMs": -3600000}"#,
            ..Opts::default()
        },
    )
    .await;
    slow2.offline(true);
    slow2
        .put("tasks", r#"{"id": "c2", "title": "offline after reopen"}"#)
        .await;
    let drift = (hlc_wall(&slow2.record("tasks", "c2").await) - js_sys::Date::now()).abs();
    assert!(
        drift < 60_000.0,
        "corrected after reopen too, off by {drift} ms"
    );
    slow2.close_and_destroy().await;
    ok_dev.close_and_destroy().await;
}

/// A slow request is not a slow clock. The server reads its clock somewhere between the request
/// leaving and the reply arriving; a device that took the midpoint as the server's time learnt an
/// offset of half the round trip, stamped its writes that far ahead of a device on the same clock,
/// and an earlier write beat a later one (the flaky failure of
/// `small_push_batches_split_bulk_writes_and_stale_rows_hold_the_watermark` in CI, under load).
#[wasm_bindgen_test]
async fn a_slow_reply_does_not_move_a_correct_clock() {
    clear_faults().await;
    let token = unique("slowreply");
    let b = device(&unique("b"), &token, Opts::default()).await;
    b.settled().await;
    // a's first syncs wait 600 ms in the network before the server reads its clock.
    control(
        "fault",
        r#"{"mode":"delay","path":"/v1/","count":20,"ms":600}"#,
    )
    .await;
    let a = device(&unique("a"), &token, Opts::default()).await;
    a.settled().await;
    clear_faults().await;
    a.put("tasks", r#"{"id": "k", "v": "a"}"#).await;
    let drift = hlc_wall(&a.record("tasks", "k").await) - js_sys::Date::now();
    sleep(100).await;
    // Later in real time, from a device on the same clock: it must win.
    b.put("tasks", r#"{"id": "k", "v": "b"}"#).await;
    let all = converge(&[&a, &b], "tasks").await;
    assert_eq!(all, r#"[{"id":"k","v":"b"}]"#, "a stamped {drift} ms ahead");
    assert!(
        drift.abs() < 50.0,
        "a stamped {drift} ms off the wall clock"
    );
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn server_reset_keeps_pending_repulls_and_pushes_what_the_server_lacks() {
    clear_faults().await;
    let token = unique("reset");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    for i in 0..5 {
        a.put("tasks", &format!(r#"{{"id": "s{i}", "v": 0}}"#))
            .await;
    }
    a.sync().await;
    b.sync().await;
    a.offline(true);
    a.put("tasks", r#"{"id": "s0", "v": "edited offline"}"#)
        .await;
    a.put("tasks", r#"{"id": "new", "v": "offline"}"#).await;
    // The server loses its database (restored from nothing): a new epoch.
    control("reset", "{}").await;
    let (pushed, pulled, _) = a.online_sync().await;
    assert!(pushed >= 6, "a offered everything it holds: {pushed}");
    assert!(pulled == 0 || pulled <= 6);
    b.sync().await;
    let all = converge(&[&a, &b], "tasks").await;
    assert_eq!(
        all,
        r#"[{"id":"new","v":"offline"},{"id":"s0","v":"edited offline"},{"id":"s1","v":0},{"id":"s2","v":0},{"id":"s3","v":0},{"id":"s4","v":0}]"#
    );
    // A fresh device sees everything on the new server database.
    let c = device(&unique("c"), &token, Opts::default()).await;
    c.settled().await;
    assert_eq!(c.all("tasks").await, all);
    a.close_and_destroy().await;
    b.close_and_destroy().await;
    c.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn two_instances_of_one_database_sync_through_one_leader() {
    clear_faults().await;
    let token = unique("tabs");
    let name = unique("tab");
    let t1 = device(&name, &token, Opts::default()).await;
    t1.settled().await;
    let t2 = device(&name, &token, Opts::default()).await;
    // t2 follows: its write is pushed by t1, its db.sync() is answered through t1.
    t2.put("tasks", r#"{"id": "f", "title": "from the follower"}"#)
        .await;
    let (pushed, _, _) = t2.sync().await;
    assert!(pushed <= 1);
    assert_eq!(t2.pending().await, 0);
    assert_eq!(server_feed(&token).await.len(), 1);
    // The follower mirrors the leader's status.
    let tt = &t2;
    eventually(
        "follower status mirrors the leader",
        2000.0,
        || async move {
            if prop(&tt.status(), "lastSyncAt").is_null() {
                Err(to_json(&tt.status()))
            } else {
                Ok(())
            }
        },
    )
    .await;
    // The leader goes away: the follower takes over.
    t1.db.close();
    t2.put("tasks", r#"{"id": "g", "title": "after the hand-over"}"#)
        .await;
    t2.sync().await;
    assert_eq!(t2.pending().await, 0);
    assert_eq!(server_feed(&token).await.len(), 2);
    t2.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn events_from_the_server_trigger_a_pull() {
    clear_faults().await;
    let token = unique("sse");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(
        &unique("b"),
        &token,
        Opts {
            sync_extra: r#"{"events": true}"#,
            ..Opts::default()
        },
    )
    .await;
    b.settled().await;
    sleep(300).await;
    a.put("tasks", r#"{"id": "ev", "title": "announced"}"#)
        .await;
    a.sync().await;
    let bb = &b;
    eventually("b pulled after the server's event", 5000.0, || async move {
        match bb.get("tasks", "ev").await.as_str() {
            "undefined" => Err("not yet".into()),
            _ => Ok(()),
        }
    })
    .await;
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn an_evicted_database_resyncs_everything_on_the_next_open() {
    clear_faults().await;
    let token = unique("evicted");
    let name = unique("ev");
    let a = device(&name, &token, Opts::default()).await;
    for i in 0..3 {
        a.put("tasks", &format!(r#"{{"id": "e{i}", "v": {i}}}"#))
            .await;
    }
    a.sync().await;
    let before = a.all("tasks").await;
    // The browser drops the whole database (storage pressure): same name, nothing local.
    a.close_and_destroy().await;
    let again = device(&name, &token, Opts::default()).await;
    again.settled().await;
    assert_eq!(again.all("tasks").await, before);
    assert_eq!(again.pending().await, 0);
    again.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn bad_sync_options_and_calls_are_coded_errors() {
    let o = json(r#"{"name": "x-bad", "collections": {"t": {}}, "sync": {"url": 5}}"#);
    rejects(ferrosync::Database::open(o), "INVALID_OPTIONS").await;
    let o = json(r#"{"name": "x-bad", "collections": {"t": {"conflict": "newest"}}}"#);
    let m = rejects(ferrosync::Database::open(o), "INVALID_OPTIONS").await;
    assert!(m.contains("conflict"), "{m}");
    let o = json(
        r#"{"name": "x-bad", "collections": {"t": {}}, "sync": {"url": "/v1", "intervalMs": -1}}"#,
    );
    rejects(ferrosync::Database::open(o), "INVALID_OPTIONS").await;
    // Without sync: status null, pendingCount works, sync() rejects with its code.
    let name = unique("local");
    let o = json(&format!(
        r#"{{"name": "{name}", "collections": {{"t": {{}}}}}}"#
    ));
    let db = <ferrosync::Database as wasm_bindgen::convert::TryFromJsValue>::try_from_js_value(
        ok(ferrosync::Database::open(o)).await,
    )
    .unwrap();
    assert!(db.status().is_null());
    ok(db
        .collection(JsValue::from_str("t"))
        .unwrap()
        .put(json(r#"{"id": "1"}"#)))
    .await;
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(1.0));
    rejects(db.sync(), "SYNC_NOT_CONFIGURED").await;
    db.close();
    ok(ferrosync::Database::destroy(JsValue::from_str(&name))).await;
}

/// The outbox is read in write order and acknowledged by moving a watermark along it
/// (src/store/outbox.rs). Batches smaller than one bulkPut (whose documents share one HLC) must
/// still push every document once; a stale row in a batch must not let the watermark pass rows
/// the server never took; and versions from two collections go out independently.
#[wasm_bindgen_test]
async fn small_push_batches_split_bulk_writes_and_stale_rows_hold_the_watermark() {
    clear_faults().await;
    let token = unique("batches");
    let opts = || Opts {
        collections: r#"{"tasks": {"indexes": ["done"]}, "notes": {}}"#,
        sync_extra: r#"{"debounceMs": 60000, "pushBatch": 3}"#,
        ..Opts::default()
    };
    let a = device(&unique("a"), &token, opts()).await;
    let b = device(&unique("b"), &token, opts()).await;
    a.settled().await;
    b.settled().await;
    a.offline(true);
    let docs: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"id": "k{i}", "v": "a"}}"#))
        .collect();
    ok(a.coll("tasks")
        .bulk_put(json(&format!("[{}]", docs.join(",")))))
    .await;
    a.put("notes", r#"{"id": "n1"}"#).await;
    assert_eq!(a.pending().await, 9);
    // b writes k2 later: a's k2 is stale on the server.
    b.put("tasks", r#"{"id": "k2", "v": "b"}"#).await;
    b.sync().await;

    let (pushed, _, _) = a.online_sync().await;
    assert!(pushed >= 8, "pushed {pushed}");
    assert_eq!(a.get("tasks", "k2").await, r#"{"id":"k2","v":"b"}"#);
    // Another sync may re-send rows the watermark could not pass; then nothing is left.
    a.sync().await;
    assert_eq!(a.pending().await, 0);
    let feed = server_feed(&token).await;
    let mut ids: Vec<String> = feed
        .iter()
        .map(|c| prop(c, "id").as_string().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec!["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "n1"],
        "each document once in the feed"
    );
    b.sync().await;
    assert_eq!(b.count("tasks").await, 8);
    assert_eq!(b.get("tasks", "k7").await, r#"{"id":"k7","v":"a"}"#);
    assert_eq!(b.count("notes").await, 1);

    // New writes after the watermark moved are pending again, in both collections.
    a.put("tasks", r#"{"id": "k0", "v": "a2"}"#).await;
    a.put("notes", r#"{"id": "n2"}"#).await;
    assert_eq!(a.pending().await, 2);
    a.sync().await;
    assert_eq!(a.pending().await, 0);
    b.sync().await;
    assert_eq!(b.get("tasks", "k0").await, r#"{"id":"k0","v":"a2"}"#);
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

/// Records keep this client's stamps without the node (`Hlc::stored`: 19 characters, which a find
/// reads faster) and every other client's in full; what goes to the server, and so to the other
/// device, is the full HLC.
#[wasm_bindgen_test]
async fn records_keep_their_own_stamps_without_the_node_and_sync_full_ones() {
    clear_faults().await;
    let token = unique("lean");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, Opts::default()).await;
    a.settled().await;
    b.settled().await;
    let (a_id, b_id) = (
        a.db.store().client_id().to_string(),
        b.db.store().client_id().to_string(),
    );
    a.put("tasks", r#"{"id": "x", "v": 1}"#).await;
    a.delete("tasks", "gone").await;
    for id in ["x", "gone"] {
        let rec = a.record("tasks", id).await;
        for field in ["hlc", "pend"] {
            let stamp = prop(&rec, field).as_string().unwrap();
            assert_eq!(stamp.len(), 19, "{id}.{field}: {stamp}");
        }
    }
    let stamp = a.stored_hlc("tasks", "x").await;
    a.sync().await;
    b.sync().await;
    // B holds A's version with A's node in full.
    assert_eq!(b.stored_hlc("tasks", "x").await, format!("{stamp}-{a_id}"));
    assert_eq!(a.hlc("tasks", "x").await, format!("{stamp}-{a_id}"));
    assert_eq!(
        prop(&b.record("tasks", "gone").await, "tomb").as_string(),
        Some(format!("{}-{a_id}", a.stored_hlc("tasks", "gone").await))
    );
    // B's edit: short on B, full on A; both converge on it.
    b.put("tasks", r#"{"id": "x", "v": 2}"#).await;
    let b_stamp = b.stored_hlc("tasks", "x").await;
    assert_eq!(b_stamp.len(), 19, "{b_stamp}");
    b.sync().await;
    a.sync().await;
    assert_eq!(
        a.stored_hlc("tasks", "x").await,
        format!("{b_stamp}-{b_id}")
    );
    let b_stamp = b.hlc("tasks", "x").await;
    assert_eq!(a.all("tasks").await, r#"[{"id":"x","v":2}]"#);
    assert_eq!(a.all("tasks").await, b.all("tasks").await);
    // A's next edit is made on B's version and wins: stamped after what A pulled.
    a.put("tasks", r#"{"id": "x", "v": 3}"#).await;
    let a_stamp = a.hlc("tasks", "x").await;
    assert!(a_stamp > b_stamp, "{a_stamp} after {b_stamp}");
    a.sync().await;
    b.sync().await;
    assert_eq!(b.all("tasks").await, r#"[{"id":"x","v":3}]"#);
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

/// A database the earlier record format wrote (every stamp in full, the watermark too) keeps its
/// outbox: the rows still pending are pushed in their order, the acknowledged one stays below the
/// watermark, and new writes (stamped without the node) queue after them.
#[wasm_bindgen_test]
async fn a_database_with_full_stamps_keeps_its_outbox_beside_short_ones() {
    clear_faults().await;
    let token = unique("fullstamps");
    let name = unique("a");
    let now = js_sys::Date::now() as u64 - 60_000;
    let at = |ms: u64| format!("{:012x}-000000-oldformat0000001", now + ms);
    let body = format!(
        r#"
    db.createObjectStore("_meta");
    const tasks = db.createObjectStore("tasks", {{ keyPath: "id" }});
    tasks.createIndex("$tombstones", "tomb");
    tasks.createIndex("$pending", ["pend", "id"]);
    const meta = tx.objectStore("_meta");
    meta.put("oldformat0000001", "clientId");
    meta.put("old-format-instance", "instance");
    meta.put({clock:?}, "clock");
    meta.put([{w:?}, "w"], "outbox:tasks");
    tasks.put({{ id: "w", hlc: {w:?}, doc: {{ id: "w", v: "acknowledged" }}, pend: {w:?} }});
    tasks.put({{ id: "q", hlc: {q:?}, doc: {{ id: "q", v: "second" }}, pend: {q:?} }});
    tasks.put({{ id: "p", hlc: {p:?}, doc: {{ id: "p", v: "first" }}, pend: {p:?} }});"#,
        clock = at(40),
        w = at(10),
        p = at(20),
        q = at(30),
    );
    upgrade_by_hand(&name, &body).await;
    let a = device(&name, &token, Opts::default()).await;
    assert_eq!(a.db.store().client_id(), "oldformat0000001");
    a.put("tasks", r#"{"id": "n", "v": "new"}"#).await;
    let rows = a.db.store().outbox(None).await.unwrap();
    let order: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(order, ["p", "q", "n"]);
    assert_eq!(rows[0].hlc, at(20));
    let pend = prop(&a.record("tasks", "n").await, "pend")
        .as_string()
        .unwrap();
    assert_eq!(pend.len(), 19, "{pend}");
    a.sync().await;
    assert_eq!(a.pending().await, 0);
    let b = device(&unique("b"), &token, Opts::default()).await;
    b.settled().await;
    assert_eq!(
        b.all("tasks").await,
        r#"[{"id":"n","v":"new"},{"id":"p","v":"first"},{"id":"q","v":"second"}]"#
    );
    assert_eq!(b.stored_hlc("tasks", "p").await, at(20));
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}
