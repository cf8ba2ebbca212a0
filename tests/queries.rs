//! Queries with limits read from the index, and live windows maintained from changes, against the
//! real IndexedDB of headless Chromium:
//! `CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome -- --test queries`

mod common;

use common::*;
use ferrosync::store::{Notice, Prepared};
use ferrosync::Database;
use ferrosync_core::query::Query;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// 240 documents with ties, missing fields and mixed types, and some tombstones.
async fn seeded(name: &str) -> ferrosync::Database {
    seeded_with(name, r#"["bucket", "title"]"#).await
}

/// [`seeded`] with other declared indexes.
async fn seeded_with(name: &str, indexes: &str) -> ferrosync::Database {
    let db = open(name, &format!(r#"{{"items": {{"indexes": {indexes}}}}}"#)).await;
    let items = coll(&db, "items");
    let mut docs = Vec::new();
    for n in 0..240u32 {
        let bucket = match n {
            _ if n % 11 == 0 => String::new(),
            _ if n % 7 == 0 => r#", "bucket": "1""#.to_string(),
            _ => format!(r#", "bucket": {}"#, n % 5),
        };
        let title = match n % 13 {
            0 => r#"["list"]"#.to_string(),
            1 => "null".to_string(),
            k => format!(r#""t{}""#, (k * 7 + n / 13) % 9),
        };
        docs.push(format!(
            r#"{{"id": "i{n:03}", "title": {title}, "done": {}{bucket}}}"#,
            n % 3 == 0
        ));
    }
    bulk(&items, &format!("[{}]", docs.join(","))).await;
    for n in (0..240).step_by(9) {
        ok(items.delete(JsValue::from_str(&format!("i{n:03}")))).await;
    }
    db
}

/// The same query without limit and offset (text surgery: `orderBy` key order must survive), read
/// whole by the planner, then paged here.
async fn paged_reference(items: &ferrosync::Collection, text: &str) -> Vec<String> {
    let mut whole = text.to_string();
    let mut take = |key: &str| -> Option<usize> {
        let at = whole.find(&format!(", \"{key}\": "))?;
        let rest = &whole[at + key.len() + 6..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n = rest[..end].parse().ok();
        whole.replace_range(at..at + key.len() + 6 + end, "");
        n
    };
    let limit = take("limit");
    let offset = take("offset").unwrap_or(0);
    ids(items, &whole)
        .await
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect()
}

/// Paging `text` (a query without a limit, of more than ten results) with limits 1, 7 and 50 gives
/// its results in order; the second page of five (`after` the fifth result) gives the next five.
/// Returns that second page's query.
async fn check_pages(items: &ferrosync::Collection, text: &str) -> String {
    let all = ids(items, text).await;
    assert!(all.len() > 10, "{text}: the data has several pages");
    for limit in [1, 7, 50] {
        let got: Vec<String> = pages(items, text, limit).await.concat();
        assert_eq!(got, all, "{text} by {limit}");
    }
    let second = format!(
        "{}, \"limit\": 5, \"after\": {}}}",
        &text[..text.len() - 1],
        get(items, &all[4]).await
    );
    assert_eq!(ids(items, &second).await, all[5..10].to_vec(), "{second}");
    second
}

/// Two functions: one hides `getAllRecords` from IndexedDB (as in browsers without it, so reads
/// take the cursor path), the other puts it back.
fn get_all_records_switch() -> (js_sys::Function, js_sys::Function) {
    let hide = js_sys::Function::new_no_args(
        "for (const c of [IDBIndex, IDBObjectStore]) { \
           c.prototype.__getAllRecords = c.prototype.getAllRecords; \
           delete c.prototype.getAllRecords; }",
    );
    let restore = js_sys::Function::new_no_args(
        "for (const c of [IDBIndex, IDBObjectStore]) { \
           c.prototype.getAllRecords = c.prototype.__getAllRecords; \
           delete c.prototype.__getAllRecords; }",
    );
    (hide, restore)
}

/// Each query of `items` returns (and counts) what the planner's full read gives, read the way
/// named (`Store::explain`).
async fn check_plans(db: &ferrosync::Database, cases: &[(&str, &str)]) {
    let items = coll(db, "items");
    for (text, plan) in cases {
        let got = ids(&items, text).await;
        let want = paged_reference(&items, text).await;
        assert_eq!(got, want, "{text}");
        let parsed = Query::parse(text).unwrap();
        assert_eq!(
            &db.store().explain("items", &parsed).await.unwrap(),
            plan,
            "{text}"
        );
        let n = count(&items, text).await as usize;
        assert_eq!(n, want.len(), "count {text}");
    }
}

#[wasm_bindgen_test]
async fn limits_are_read_from_the_index_and_equal_full_reads() {
    let name = unique("walks");
    let db = seeded(&name).await;
    let items = coll(&db, "items");
    let cases: &[(&str, &str)] = &[
        (
            r#"{"where": {"bucket": 1}, "limit": 7}"#,
            "walk:index:bucket",
        ),
        (
            r#"{"where": {"bucket": 1}, "limit": 7, "offset": 5}"#,
            "walk:index:bucket",
        ),
        (
            r#"{"where": {"bucket": 1}, "orderBy": {"id": "asc"}, "limit": 3}"#,
            "walk:index:bucket",
        ),
        (
            r#"{"where": {"bucket": "1"}, "limit": 4}"#,
            "walk:index:bucket",
        ),
        (
            r#"{"where": {"bucket": null}, "limit": 4}"#,
            "walk:index:bucket",
        ),
        (
            r#"{"where": {"bucket": {"$in": [1, 2, "1"]}}, "limit": 10, "offset": 4}"#,
            "walk:index:bucket",
        ),
        (
            r#"{"where": {"bucket": 1, "done": false}, "limit": 6}"#,
            "walk:index:bucket",
        ),
        (
            r#"{"where": {"bucket": 4, "done": true}, "limit": 100}"#,
            "walk:index:bucket",
        ),
        (r#"{"where": {}, "limit": 10, "offset": 20}"#, "walk:ids"),
        (r#"{"where": null, "limit": 500}"#, "walk:ids"),
        (
            r#"{"where": {"done": true}, "limit": 5, "offset": 2}"#,
            "walk:ids",
        ),
        (
            r#"{"where": {"id": {"$gt": "i050"}}, "limit": 5}"#,
            "walk:ids",
        ),
        (
            r#"{"where": {"id": {"$in": ["i005", "i002", "i009"]}}, "limit": 2}"#,
            "walk:ids",
        ),
        (
            r#"{"orderBy": {"title": "asc"}, "limit": 8}"#,
            "walk:index:title",
        ),
        (
            r#"{"orderBy": {"title": "asc", "id": "asc"}, "limit": 300}"#,
            "walk:index:title",
        ),
        (
            r#"{"where": {"title": {"$gte": "t5"}}, "orderBy": {"title": "asc"}, "limit": 4, "offset": 3}"#,
            "walk:index:title",
        ),
        (
            r#"{"where": {"title": {"$gte": "t5"}, "done": false}, "orderBy": {"title": "asc"}, "limit": 30}"#,
            "walk:index:title",
        ),
        // Not walks: a bounded top-k over what the planner reads.
        (
            r#"{"where": {"bucket": 1}, "orderBy": {"title": "desc"}, "limit": 5}"#,
            "index:bucket",
        ),
        (
            r#"{"where": {"bucket": {"$gt": 1}}, "limit": 5, "offset": 1}"#,
            "index:bucket",
        ),
        (r#"{"orderBy": {"done": "asc"}, "limit": 9}"#, "scan"),
        (
            r#"{"where": {"bucket": 1}, "limit": 0}"#,
            "walk:index:bucket",
        ),
    ];
    check_plans(&db, cases).await;
    assert!(
        !ids(&items, r#"{"where": {"bucket": 1}, "limit": 7}"#)
            .await
            .is_empty(),
        "the data has matches"
    );
    db.close();
    destroy(&name).await;
}

async fn settles(rec: &Recorder, items: &ferrosync::Collection, q: &str, what: &str) {
    let want = ids(items, q).await;
    let start = now();
    while rec.last() != want {
        assert!(
            now() - start < 2000.0,
            "{what}: watch shows {:?}, find gives {want:?}",
            rec.last()
        );
        sleep(2).await;
    }
}

#[wasm_bindgen_test]
async fn live_windows_patch_enter_leave_move_and_delete() {
    let name = unique("window");
    let db = seeded(&name).await;
    let items = coll(&db, "items");
    let docs: Vec<String> = (0..60)
        .map(|n| {
            format!(
                r#"{{"id": "r{n:02}", "bucket": {}, "rank": {}}}"#,
                n % 3,
                n / 2
            )
        })
        .collect();
    bulk(&items, &format!("[{}]", docs.join(","))).await;
    let q = r#"{"where": {"bucket": 2, "rank": {"$gte": -100}}, "orderBy": {"rank": "asc"}, "limit": 3}"#;
    let rec = Recorder::new();
    let _sub = items.watch(json(q), rec.function()).unwrap();
    assert!(rec.wait_for(1, 2000.0).await);
    settles(&rec, &items, q, "first").await;
    let calls = rec.count();

    // Outside the window: another bucket, and a match sorting after the full page. Nobody called.
    put(&items, r#"{"id": "x1", "bucket": 3, "rank": -5}"#).await;
    put(&items, r#"{"id": "x2", "bucket": 2, "rank": 99}"#).await;
    sleep(60).await;
    assert_eq!(rec.count(), calls, "writes outside the window call nobody");

    // Enters at the front (the last one falls off), moves inside, leaves, is deleted.
    put(&items, r#"{"id": "e1", "bucket": 2, "rank": -3}"#).await;
    settles(&rec, &items, q, "enter").await;
    assert_eq!(rec.last()[0], "e1");
    put(&items, r#"{"id": "e2", "bucket": 2, "rank": -2}"#).await;
    settles(&rec, &items, q, "enter second").await;
    put(&items, r#"{"id": "e1", "bucket": 2, "rank": -1}"#).await;
    settles(&rec, &items, q, "move").await;
    assert_eq!(rec.last()[..2], s(&["e2", "e1"]));
    let before = rec.count();
    put(&items, r#"{"id": "e1", "bucket": 2, "rank": -1}"#).await;
    sleep(60).await;
    assert_eq!(rec.count(), before, "an identical rewrite is no change");
    put(&items, r#"{"id": "e1", "bucket": 4, "rank": -1}"#).await;
    settles(&rec, &items, q, "leave (refilled from the index)").await;
    ok(items.delete(JsValue::from_str("e2"))).await;
    settles(&rec, &items, q, "delete").await;
    assert!(!rec.last().contains(&"e2".to_string()));
    // A bulk write that enters and leaves at once: one callback.
    let before = rec.count();
    bulk(
        &items,
        r#"[{"id": "b1", "bucket": 2, "rank": -9}, {"id": "b2", "bucket": 2, "rank": -8}, {"id": "x2", "bucket": 5}]"#,
    )
    .await;
    settles(&rec, &items, q, "bulk").await;
    sleep(30).await;
    assert_eq!(rec.count(), before + 1);

    // Another instance (another tab) writes: entering, then leaving.
    let other = open(&name, r#"{"items": {"indexes": ["bucket", "title"]}}"#).await;
    let items2 = coll(&other, "items");
    put(&items2, r#"{"id": "o1", "bucket": 2, "rank": -20}"#).await;
    settles(&rec, &items, q, "other tab enters").await;
    assert_eq!(rec.last()[0], "o1");
    ok(items2.delete(JsValue::from_str("o1"))).await;
    settles(&rec, &items, q, "other tab deletes").await;

    // A pulled page: the sync engine writes in its own transaction and calls notify_changed.
    let store = db.store();
    store
        .run(|conn| async move {
            let tx = ferrosync::store::indexeddb::transaction(&conn.db, &["items"], true)?;
            let done = ferrosync::store::indexeddb::TxDone::new(&tx);
            let st = ferrosync::store::indexeddb::store(&tx, "items")?;
            let rec = json(
                r#"{"id": "p1", "hlc": "000000000001-000000-server", "doc": {"id": "p1", "bucket": 2, "rank": -50}, "ix": {"pbucket": [2, 2]}}"#,
            );
            st.put(&rec).unwrap();
            done.wait().await
        })
        .await
        .unwrap();
    store.notify_changed("items", vec!["p1".into()]);
    settles(&rec, &items, q, "pulled page").await;
    assert_eq!(rec.last()[0], "p1");
    other.close();
    db.close();
    destroy(&name).await;
}

/// A live result is never shown an older version after a newer one: a notice that arrives late
/// (here replayed by hand, as a local write's notice overtaken by another tab's newer write) is
/// ignored. Before the version check the late notice put the old title back.
#[wasm_bindgen_test]
async fn a_late_notice_never_brings_back_an_older_version() {
    let name = unique("stale");
    let db = open(&name, r#"{"items": {"indexes": ["bucket"]}}"#).await;
    let items = coll(&db, "items");
    for q in [
        r#"{"where": {"bucket": 1}}"#,
        r#"{"where": {"bucket": 1}, "orderBy": {"id": "asc"}, "limit": 5}"#,
    ] {
        put(&items, r#"{"id": "a", "bucket": 1, "title": "old"}"#).await;
        let store = db.store();
        let old_hlc = {
            let r = store.records_by_id("items", &["a".into()]).await.unwrap();
            prop(&r[0], "hlc").as_string().unwrap()
        };
        put(&items, r#"{"id": "a", "bucket": 1, "title": "new"}"#).await;
        let rec = Recorder::new();
        let sub = items.watch(json(q), rec.function()).unwrap();
        assert!(rec.wait_for(1, 2000.0).await);
        assert!(rec.last_docs().contains("new"));
        let old = Prepared::new(
            "a".into(),
            json(r#"{"id": "a", "bucket": 1, "title": "old"}"#),
        );
        store.notify(
            Notice::local("items", old_hlc.clone(), vec![("a".into(), Some(old))]),
            false,
        );
        sleep(60).await;
        assert!(
            rec.last_docs().contains("new"),
            "{q}: shows {} after a stale notice",
            rec.last_docs()
        );
        assert_eq!(rec.count(), 1);
        // It also stays out once a newer version left the result.
        put(&items, r#"{"id": "a", "bucket": 2, "title": "gone"}"#).await;
        assert!(rec.wait_for(2, 2000.0).await);
        let old = Prepared::new(
            "a".into(),
            json(r#"{"id": "a", "bucket": 1, "title": "old"}"#),
        );
        store.notify(
            Notice::local("items", old_hlc.clone(), vec![("a".into(), Some(old))]),
            false,
        );
        sleep(60).await;
        assert_eq!(rec.last(), Vec::<String>::new(), "{q}");
        sub.unsubscribe();
        ok(items.delete(JsValue::from_str("a"))).await;
    }
    db.close();
    destroy(&name).await;
}

/// Notices waiting for the broadcast throttle go out on `pagehide` (a page being torn down may
/// never run its timers). Before the listener the queued notice stayed queued.
#[wasm_bindgen_test]
async fn pagehide_flushes_queued_notices() {
    let name = unique("pagehide");
    let db = open(&name, r#"{"items": {}}"#).await;
    let other = open(&name, r#"{"items": {}}"#).await;
    let rec = Recorder::new();
    let _sub = coll(&other, "items")
        .watch(JsValue::UNDEFINED, rec.function())
        .unwrap();
    assert!(rec.wait_for(1, 2000.0).await);
    let items = coll(&db, "items");
    // The first write is announced at once, the second waits for the throttle window.
    put(&items, r#"{"id": "a"}"#).await;
    put(&items, r#"{"id": "b"}"#).await;
    let queued = db.live().queued_notices_for_test();
    if queued == 0 {
        // The machine was slow enough that the window passed between the writes; try once more.
        put(&items, r#"{"id": "c"}"#).await;
        put(&items, r#"{"id": "d"}"#).await;
    }
    assert!(
        db.live().queued_notices_for_test() > 0,
        "a notice is waiting"
    );
    let ev = web_sys::Event::new("pagehide").unwrap();
    let global: web_sys::EventTarget = wasm_bindgen::JsCast::unchecked_into(js_sys::global());
    global.dispatch_event(&ev).unwrap();
    assert_eq!(
        db.live().queued_notices_for_test(),
        0,
        "flushed on pagehide"
    );
    let want = ids(&coll(&other, "items"), "{}").await;
    let start = now();
    while rec.last() != want {
        assert!(
            now() - start < 2000.0,
            "the other instance hears every write"
        );
        sleep(2).await;
    }
    other.close();
    db.close();
    destroy(&name).await;
}

const DONE_TITLE: &str = r#"walk:index:$["done","title"]"#;

/// Compound walks (booleans, nulls, arrays left out of the index, ties) equal the planner's full
/// reads, on a fresh database and on an existing one that gains the index (back-filled on open).
/// Descending orders are read backwards (`prev` cursors) as far as the limit needs, ties by id
/// ascending included, and equal the planner's full read; a walk for the order alone is refused
/// while some document has no key in the index (an array there, which sorts first descending).
#[wasm_bindgen_test]
async fn descending_limits_walk_backwards_and_equal_full_reads() {
    let name = unique("walks-back");
    let db = seeded(&name).await;
    let items = coll(&db, "items");
    let cases: &[(&str, &str)] = &[
        (
            r#"{"orderBy": {"id": "desc"}, "limit": 10, "offset": 3}"#,
            "walk-back:ids",
        ),
        (
            r#"{"where": {"done": false}, "orderBy": {"id": "desc"}, "limit": 5}"#,
            "walk-back:ids",
        ),
        (
            r#"{"where": {"id": {"$lt": "i100"}}, "orderBy": {"id": "desc"}, "limit": 4}"#,
            "walk-back:ids",
        ),
        (
            r#"{"where": {"bucket": 1}, "orderBy": {"id": "desc"}, "limit": 4}"#,
            "walk-back:index:bucket",
        ),
        (
            r#"{"where": {"bucket": {"$in": [1, 2, "1"]}}, "orderBy": {"id": "desc"}, "limit": 9, "offset": 2}"#,
            "walk-back:index:bucket",
        ),
        (
            r#"{"where": {"title": {"$gte": "t5"}}, "orderBy": {"title": "desc"}, "limit": 4, "offset": 2}"#,
            "walk-back:index:title",
        ),
        (
            r#"{"where": {"title": {"$lte": "t6"}, "done": false}, "orderBy": {"title": "desc"}, "limit": 11}"#,
            "walk-back:index:title",
        ),
        (
            r#"{"where": {"title": {"$gt": "t1"}}, "orderBy": {"title": "desc", "id": "desc"}, "limit": 6}"#,
            "walk-back:index:title",
        ),
        // Exact, one range, no tie group: the offset is skipped by a key cursor (`skipBack`),
        // past the end too.
        (
            r#"{"where": {"bucket": 1}, "orderBy": {"id": "desc"}, "limit": 4, "offset": 3}"#,
            "walk-back:index:bucket",
        ),
        (
            r#"{"where": {"bucket": 1}, "orderBy": {"id": "desc"}, "limit": 4, "offset": 300}"#,
            "walk-back:index:bucket",
        ),
        (
            r#"{"where": {"title": {"$gt": "t1"}}, "orderBy": {"title": "desc", "id": "desc"}, "limit": 6, "offset": 7}"#,
            "walk-back:index:title",
        ),
        // Walked for its order alone: documents with `["list"]` as title have no key there.
        (r#"{"orderBy": {"title": "desc"}, "limit": 8}"#, "scan"),
    ];
    check_plans(&db, cases).await;
    // The same with a `prev` cursor: where IndexedDB has no `getAllRecords`.
    let (hide, restore) = get_all_records_switch();
    hide.call0(&JsValue::NULL).unwrap();
    check_plans(&db, cases).await;
    restore.call0(&JsValue::NULL).unwrap();
    // Without those documents the order-only walk is valid, ties by id ascending included.
    for n in (0..240u32).step_by(13) {
        ok(items.delete(JsValue::from_str(&format!("i{n:03}")))).await;
    }
    let cases: &[(&str, &str)] = &[
        (
            r#"{"orderBy": {"title": "desc"}, "limit": 8}"#,
            "walk-back:index:title",
        ),
        (
            r#"{"orderBy": {"title": "desc", "id": "asc"}, "limit": 25, "offset": 5}"#,
            "walk-back:index:title",
        ),
        (
            r#"{"where": {"done": true}, "orderBy": {"title": "desc"}, "limit": 7}"#,
            "walk-back:index:title",
        ),
    ];
    check_plans(&db, cases).await;
    // The data has ties at the page boundaries the cases cut.
    let titles = ids(&items, r#"{"orderBy": {"title": "desc"}, "limit": 9}"#).await;
    assert_eq!(titles.len(), 9);
    db.close();
    destroy(&name).await;
}

#[wasm_bindgen_test]
async fn compound_indexes_walk_and_equal_full_reads() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"where": {"done": false}, "orderBy": {"title": "asc"}, "limit": 9}"#,
            DONE_TITLE,
        ),
        (
            r#"{"where": {"done": true}, "orderBy": {"title": "asc", "id": "asc"}, "limit": 6, "offset": 3}"#,
            DONE_TITLE,
        ),
        // Runs past the indexed titles: the arrays left out are read by the planner.
        (
            r#"{"where": {"done": true}, "orderBy": {"title": "asc"}, "limit": 500}"#,
            DONE_TITLE,
        ),
        (
            r#"{"where": {"done": false, "title": "t3"}, "limit": 4}"#,
            DONE_TITLE,
        ),
        (
            r#"{"where": {"done": false, "title": null}, "orderBy": {"id": "asc"}, "limit": 50}"#,
            DONE_TITLE,
        ),
        (
            r#"{"where": {"done": false, "bucket": 2, "title": {"$ne": "t1"}}, "orderBy": {"title": "asc"}, "limit": 5}"#,
            r#"walk:index:$["bucket","done","title"]"#,
        ),
        (
            r#"{"where": {"bucket": 3, "done": false}, "orderBy": {"title": "asc"}, "limit": 5}"#,
            r#"walk:index:$["bucket","done","title"]"#,
        ),
        (
            r#"{"where": {"bucket": 3}, "orderBy": {"done": "asc", "title": "asc"}, "limit": 7}"#,
            "index:bucket",
        ),
        // Backwards, the documents with an array as title (no key) would come first: refused
        // (see `compound_indexes_walk_backwards_for_descending_orders`).
        (
            r#"{"where": {"done": false}, "orderBy": {"title": "desc"}, "limit": 5}"#,
            "scan",
        ),
    ];
    let indexes = r#"["bucket", ["done", "title"], ["bucket", "done", "title"]]"#;
    // A fresh database, and one created with only `bucket` that gains the compound indexes.
    let fresh = unique("compound");
    let grown = unique("compound-grown");
    seeded_with(&fresh, indexes).await.close();
    seeded_with(&grown, r#"["bucket"]"#).await.close();
    for name in [&fresh, &grown] {
        let db = open(name, &format!(r#"{{"items": {{"indexes": {indexes}}}}}"#)).await;
        let items = coll(&db, "items");
        check_plans(&db, cases).await;
        assert_eq!(
            ids(
                &items,
                r#"{"where": {"done": false}, "orderBy": {"title": "asc"}, "limit": 3}"#
            )
            .await
            .len(),
            3
        );
        // Writes after the upgrade keep the index: a title moving to the front, one leaving.
        put(&items, r#"{"id": "z1", "done": false, "title": "a-first"}"#).await;
        put(
            &items,
            r#"{"id": "i001", "done": false, "title": ["now an array"]}"#,
        )
        .await;
        let text = r#"{"where": {"done": false}, "orderBy": {"title": "asc"}, "limit": 40}"#;
        let got = ids(&items, text).await;
        assert!(got.contains(&"z1".to_string()) && !got.contains(&"i001".to_string()));
        assert_eq!(got, paged_reference(&items, text).await);
        db.close();
        destroy(name).await;
    }
}

const DONE_TITLE_BACK: &str = r#"walk-back:index:$["done","title"]"#;

/// Descending orders on a compound index's last field (or on `id` with every field fixed) are read
/// backwards as far as the page, plus the rest of the last key's ties (ties by id ascending), and
/// equal the planner's full reads: ties, missing titles, mixed types (strings, numbers, booleans,
/// nulls), `offset`, other conditions, and pages with `after`. While some document has an array
/// in the index's fields (no key: it would come first) the walk is refused, except after a page
/// start with a key (such documents come before it).
#[wasm_bindgen_test]
async fn compound_indexes_walk_backwards_for_descending_orders() {
    let name = unique("compound-back");
    let db = seeded_with(
        &name,
        r#"["bucket", ["done", "title"], ["bucket", "done", "title"]]"#,
    )
    .await;
    let items = coll(&db, "items");
    for doc in [
        r#"{"id": "m1", "done": false}"#,
        r#"{"id": "m2", "done": true, "bucket": 3}"#,
        r#"{"id": "n1", "done": false, "title": 5}"#,
        r#"{"id": "n2", "done": false, "title": true, "bucket": 3}"#,
        r#"{"id": "n3", "done": true, "title": 5}"#,
    ] {
        put(&items, doc).await;
    }
    // Each query, how it is read while documents have `["list"]` as title (no key in the index:
    // the walk is refused unless every field is fixed), and how once they are gone.
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"where": {"done": false}, "orderBy": {"title": "desc"}, "limit": 9}"#,
            "scan",
            DONE_TITLE_BACK,
        ),
        (
            r#"{"where": {"done": true}, "orderBy": {"title": "desc", "id": "asc"}, "limit": 6, "offset": 3}"#,
            "scan",
            DONE_TITLE_BACK,
        ),
        (
            r#"{"where": {"done": true}, "orderBy": {"title": "desc", "id": "desc"}, "limit": 7}"#,
            "scan",
            DONE_TITLE_BACK,
        ),
        // Runs out: every match, down to the numbers, booleans and nulls.
        (
            r#"{"where": {"done": false}, "orderBy": {"title": "desc"}, "limit": 500}"#,
            "scan",
            DONE_TITLE_BACK,
        ),
        (
            r#"{"where": {"done": false, "title": "t5"}, "orderBy": {"id": "desc"}, "limit": 4}"#,
            DONE_TITLE_BACK,
            DONE_TITLE_BACK,
        ),
        (
            r#"{"where": {"done": false, "title": null}, "orderBy": {"id": "desc"}, "limit": 50}"#,
            DONE_TITLE_BACK,
            DONE_TITLE_BACK,
        ),
        (
            r#"{"where": {"bucket": 3, "done": false}, "orderBy": {"title": "desc"}, "limit": 5}"#,
            "index:bucket",
            r#"walk-back:index:$["bucket","done","title"]"#,
        ),
        (
            r#"{"where": {"done": false, "bucket": 2, "title": {"$ne": "t1"}}, "orderBy": {"title": "desc"}, "limit": 5}"#,
            "index:bucket",
            r#"walk-back:index:$["bucket","done","title"]"#,
        ),
        (
            r#"{"where": {"done": true, "bucket": {"$ne": 1}}, "orderBy": {"title": "desc"}, "limit": 8, "offset": 1}"#,
            "scan",
            DONE_TITLE_BACK,
        ),
        // Mixed directions are no order of the index.
        (
            r#"{"where": {"done": false}, "orderBy": {"title": "asc", "id": "desc"}, "limit": 5}"#,
            "scan",
            "scan",
        ),
    ];
    let refused: Vec<(&str, &str)> = cases.iter().map(|(t, p, _)| (*t, *p)).collect();
    let walked: Vec<(&str, &str)> = cases.iter().map(|(t, _, p)| (*t, *p)).collect();
    check_plans(&db, &refused).await;
    // A second page starting at a title is walked all the same.
    let text = r#"{"where": {"done": false}, "orderBy": {"title": "desc"}}"#;
    let all = ids(&items, text).await;
    let mut k = 0;
    while get(&items, &all[k]).await.contains("[\"list\"]") {
        k += 1;
    }
    let k = k + 2;
    let second = format!(
        r#"{{"where": {{"done": false}}, "orderBy": {{"title": "desc"}}, "limit": 5, "after": {}}}"#,
        get(&items, &all[k]).await
    );
    assert_eq!(ids(&items, &second).await, all[k + 1..k + 6].to_vec());
    assert_eq!(
        &db.store()
            .explain("items", &Query::parse(&second).unwrap())
            .await
            .unwrap(),
        DONE_TITLE_BACK
    );
    // Without them every case walks backwards, with `getAllRecords` and with a `prev` cursor.
    for n in (0..240u32).step_by(13) {
        ok(items.delete(JsValue::from_str(&format!("i{n:03}")))).await;
    }
    check_plans(&db, &walked).await;
    let (hide, restore) = get_all_records_switch();
    hide.call0(&JsValue::NULL).unwrap();
    check_plans(&db, &walked).await;
    // Paging with `after` through every page equals one query, ties at page ends included (with
    // a `prev` cursor, then with `getAllRecords`).
    let paged = [
        r#"{"where": {"done": false}, "orderBy": {"title": "desc"}}"#,
        r#"{"where": {"done": true}, "orderBy": {"title": "desc", "id": "desc"}}"#,
        r#"{"where": {"done": false, "title": "t4"}, "orderBy": {"id": "desc"}}"#,
    ];
    for (i, text) in paged.iter().chain(&paged).enumerate() {
        if i == paged.len() {
            restore.call0(&JsValue::NULL).unwrap();
        }
        let second = check_pages(&items, text).await;
        assert_eq!(
            &db.store()
                .explain("items", &Query::parse(&second).unwrap())
                .await
                .unwrap(),
            DONE_TITLE_BACK,
            "{second}"
        );
    }
    // A live page read backwards: a title entering at the front, a member leaving.
    let q = r#"{"where": {"done": false}, "orderBy": {"title": "desc"}, "limit": 5}"#;
    let rec = Recorder::new();
    let _sub = items.watch(json(q), rec.function()).unwrap();
    assert!(rec.wait_for(1, 2000.0).await);
    settles(&rec, &items, q, "first page").await;
    put(&items, r#"{"id": "zz", "done": false, "title": "zz-last"}"#).await;
    settles(&rec, &items, q, "a title enters first").await;
    assert_eq!(rec.last()[0], "zz");
    ok(items.delete(JsValue::from_str("zz"))).await;
    settles(&rec, &items, q, "it leaves").await;
    db.close();
    destroy(&name).await;
}

/// Every bad compound declaration is refused by name, and nothing is created.
#[wasm_bindgen_test]
async fn bad_compound_declarations_are_named() {
    let nine = r#"["a","b","c","d","e","f","g","h","i"]"#;
    let cases = [
        (r#"[[]]"#.to_string(), "lists 2 to 8 field paths, got 0"),
        (
            r#"[["a"]]"#.to_string(),
            "got 1 (for one field write the path itself)",
        ),
        (format!("[{nine}]"), "got 9"),
        (r#"[["a", "a"]]"#.to_string(), "names \"a\" twice"),
        (r#"[["a", 1]]"#.to_string(), "holds a number"),
        (r#"[["a", ["b"]]]"#.to_string(), "holds an array"),
        (r#"[{"a": 1}]"#.to_string(), "holds an object"),
        (r#"[["id", "a"]]"#.to_string(), "\"id\" is always indexed"),
        (r#"[["a", "b..c"]]"#.to_string(), "empty segment"),
        (r#"[["a", "b"], ["a", "b"]]"#.to_string(), "twice"),
    ];
    for (indexes, want) in cases {
        let o = json(&format!(
            r#"{{"name": "bad-compound", "collections": {{"t": {{"indexes": {indexes}}}}}}}"#
        ));
        let msg = rejects(Database::open(o), "INVALID_OPTIONS").await;
        assert!(
            msg.contains(want),
            "{indexes}: {msg:?} should contain {want:?}"
        );
    }
}

/// `find(query)` paged with `after` until a short page, as ids.
async fn pages(items: &ferrosync::Collection, text: &str, limit: usize) -> Vec<Vec<String>> {
    let base = format!("{}, \"limit\": {limit}}}", &text[..text.len() - 1]);
    let mut out: Vec<Vec<String>> = vec![ids(items, &base).await];
    while out.last().unwrap().len() == limit {
        let last = get(items, out.last().unwrap().last().unwrap()).await;
        let q = format!("{}, \"after\": {last}}}", &base[..base.len() - 1]);
        out.push(ids(items, &q).await);
        assert!(out.len() <= 400, "{text}: pages never end");
    }
    out
}

/// Paging with `after` through every page equals one unpaged query, whatever reads it: a
/// compound walk, an index ordered by its field, equality points in id order, the primary key,
/// a top-k over everything; ties (many equal titles) included. Deletes between pages neither
/// repeat nor skip a document that is still there.
#[wasm_bindgen_test]
async fn pages_after_pages_equal_one_query() {
    let name = unique("pages");
    let db = seeded_with(&name, r#"["bucket", "title", ["done", "title"]]"#).await;
    let items = coll(&db, "items");
    let store = db.store();
    let queries: &[(&str, &str)] = &[
        (
            r#"{"where": {"done": false}, "orderBy": {"title": "asc"}}"#,
            DONE_TITLE,
        ),
        (r#"{"orderBy": {"title": "asc"}}"#, "walk:index:title"),
        (r#"{"where": {"bucket": 2}}"#, "walk:index:bucket"),
        (
            r#"{"where": {"bucket": {"$in": [1, 3]}}, "orderBy": {"id": "asc"}}"#,
            "walk:index:bucket",
        ),
        (r#"{"where": {"done": true}}"#, "walk:ids"),
        (r#"{"orderBy": {"done": "desc", "title": "desc"}}"#, "scan"),
        (
            r#"{"where": {"bucket": 1}, "orderBy": {"title": "desc"}}"#,
            "index:bucket",
        ),
        // Backward walks end at the page start (the planner read everything before).
        (r#"{"orderBy": {"id": "desc"}}"#, "walk-back:ids"),
        (
            r#"{"where": {"bucket": 2}, "orderBy": {"id": "desc"}}"#,
            "walk-back:index:bucket",
        ),
        (
            r#"{"where": {"title": {"$gte": "t2"}}, "orderBy": {"title": "desc"}}"#,
            "walk-back:index:title",
        ),
        (
            r#"{"where": {"title": {"$lt": "t7"}}, "orderBy": {"title": "desc", "id": "desc"}}"#,
            "walk-back:index:title",
        ),
    ];
    for (text, plan) in queries {
        let second = check_pages(&items, text).await;
        assert_eq!(
            &store
                .explain("items", &Query::parse(&second).unwrap())
                .await
                .unwrap(),
            plan,
            "{second}"
        );
    }
    // Deletes between pages: a document of the previous page (the page start itself) and one
    // not yet read.
    let text = r#"{"where": {"done": false}, "orderBy": {"title": "asc"}}"#;
    let all = ids(&items, text).await;
    let base = r#"{"where": {"done": false}, "orderBy": {"title": "asc"}, "limit": 6}"#;
    let mut got = ids(&items, base).await;
    let mut gone = Vec::new();
    while got.len() < all.len() - gone.len() {
        let last_id = got.last().unwrap().clone();
        let last = get(&items, &last_id).await;
        ok(items.delete(JsValue::from_str(&last_id))).await;
        if let Some(ahead) = all.get(got.len() + gone.len() + 3) {
            ok(items.delete(JsValue::from_str(ahead))).await;
            gone.push(ahead.clone());
        }
        let q = format!("{}, \"after\": {last}}}", &base[..base.len() - 1]);
        let page = ids(&items, &q).await;
        assert!(!page.is_empty(), "pages stop early: {got:?}");
        got.extend(page);
    }
    let want: Vec<String> = all.into_iter().filter(|i| !gone.contains(i)).collect();
    assert_eq!(got, want);
    // A live second page: maintained after its start (enter before its end, leave, a write before
    // the start stays out), equal to `find` after every write.
    let start = get(&items, &ids(&items, text).await[5]).await;
    let q = format!(
        r#"{{"where": {{"done": false}}, "orderBy": {{"title": "asc"}}, "limit": 4, "after": {start}}}"#
    );
    let rec = Recorder::new();
    let _sub = items.watch(json(&q), rec.function()).unwrap();
    assert!(rec.wait_for(1, 2000.0).await);
    settles(&rec, &items, &q, "second page").await;
    let title = |id: &str| format!(r#"{{"id": "{id}", "done": false, "title": "t0"}}"#);
    put(&items, &title("zz-enters")).await;
    settles(&rec, &items, &q, "a title after the start enters").await;
    put(
        &items,
        r#"{"id": "zz-before", "done": false, "title": null}"#,
    )
    .await;
    settles(&rec, &items, &q, "a title before the start stays out").await;
    assert!(!rec.last().contains(&"zz-before".to_string()));
    let first = rec.last()[0].clone();
    ok(items.delete(JsValue::from_str(&first))).await;
    settles(&rec, &items, &q, "a member leaves").await;
    assert!(!rec.last().contains(&first));
    // Bad page starts are named.
    for (after, want) in [
        ("3", "after must be the previous page's last document"),
        (r#"{"title": "t1"}"#, "it has no id"),
        (r#"{"id": 5}"#, "after.id must be a string"),
    ] {
        let q = format!(r#"{{"limit": 3, "after": {after}}}"#);
        let msg = rejects(items.find(json(&q)), "INVALID_QUERY").await;
        assert!(msg.contains(want), "{q}: {msg:?}");
    }
    db.close();
    destroy(&name).await;
}

// The projection as core's key rules give it (`IndexKey`, `CompoundIndex::key_of`, which the
// query planner searches with): the reference `records.js` `projection` is checked against.
use ferrosync::store::layout::IndexInfo;
use ferrosync_core::query::{IndexKey, KeyComp, TAG_TOP};
use serde_json::{Map, Value};

/// The key of one index for a document (what `records.js` `projection` must compute), `None` when the
/// document is left out of it: `[tag, value]`, or for a compound index `[[tag, value], ..., id]`.
fn projection_of(doc: &Value, info: &IndexInfo) -> Option<Value> {
    match &info.compound {
        None => IndexKey::at(doc, &info.path).map(|k| k.to_json()),
        Some(c) => {
            let parts = c.key_of(doc)?;
            Some(Value::Array(
                parts
                    .iter()
                    .map(|part| match part {
                        KeyComp::Key(k) => k.to_json(),
                        KeyComp::Id(id) => Value::String(id.clone()),
                        KeyComp::Top => Value::Array(vec![Value::from(TAG_TOP)]),
                    })
                    .collect(),
            ))
        }
    }
}

/// The `ix` object of a document, or `None` when the collection has no index.
fn projection_value(doc: &Value, indexes: &[IndexInfo]) -> Option<Value> {
    if indexes.is_empty() {
        return None;
    }
    let mut ix = Map::new();
    for info in indexes {
        if let Some(key) = projection_of(doc, info) {
            ix.insert(info.ident.clone(), key);
        }
    }
    Some(Value::Object(ix))
}
/// The keys `records.js` stores (every write: local, pulled, back-filled) are the keys core's
/// rules give, which queries search with (booleans, nulls, missing and nested fields, numbers of
/// both kinds; none for an array or object).
#[wasm_bindgen_test]
fn compound_keys_agree_between_javascript_and_rust() {
    use ferrosync::store::layout::{compound_ident, ident};
    use ferrosync::store::records::{build_records, index_paths};
    use ferrosync_core::query::Path;
    use ferrosync_core::walk::CompoundIndex;
    let p = |s: &str| Path::parse(s).unwrap();
    let c = CompoundIndex {
        paths: vec![p("done"), p("meta.rank"), p("title")],
    };
    let infos = vec![
        IndexInfo {
            path: p("done"),
            ident: ident(&p("done")),
            compound: None,
        },
        IndexInfo {
            path: p("done"),
            ident: compound_ident(&c),
            compound: Some(c),
        },
    ];
    let docs = r#"[
        {"id": "a", "done": false, "meta": {"rank": 2}, "title": "x"},
        {"id": "b", "done": true, "meta": {"rank": 2.5}, "title": null},
        {"id": "c", "meta": {}, "title": "\u00e9"},
        {"id": "d", "done": 1, "meta": {"rank": -0.0}, "title": ""},
        {"id": "e", "done": false, "meta": {"rank": [1]}, "title": "x"},
        {"id": "f", "done": false, "meta": {"rank": 1}, "title": {"a": 1}},
        {"id": "g", "done": "yes", "meta": 3, "title": "\ud83d\ude00"}
    ]"#;
    let values: Vec<serde_json::Value> = serde_json::from_str(docs).unwrap();
    let from_rust: Vec<serde_json::Value> = values
        .iter()
        .map(|v| projection_value(v, &infos).unwrap())
        .collect();
    let from_rust = serde_json::to_string(&from_rust).unwrap();
    let arr: js_sys::Array = wasm_bindgen::JsCast::unchecked_into(json(docs));
    let recs = build_records("h", "h", &arr, &index_paths(&infos), None).unwrap();
    let from_js: Vec<String> = recs.iter().map(|r| to_json(&prop(&r, "ix"))).collect();
    let from_js = format!("[{}]", from_js.join(","));
    // Through JavaScript's JSON both ways, so `2.0` and `2` (the same IndexedDB key) compare equal.
    let (rust, js): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&to_json(&json(&from_rust))).unwrap(),
        serde_json::from_str(&from_js).unwrap(),
    );
    assert_eq!(rust, js);
    let key = &rust[0][compound_ident(&CompoundIndex {
        paths: vec![p("done"), p("meta.rank"), p("title")],
    })];
    assert_eq!(key, &serde_json::json!([[1, 0], [2, 2], [3, "x"], "a"]));
    assert_eq!(
        rust[4].as_object().unwrap().len(),
        1,
        "an array: no compound key"
    );
}

async fn same_content(rec: &Recorder, items: &ferrosync::Collection, q: &str, what: &str) {
    let found = to_json(&ok(items.find(json(q))).await);
    assert_eq!(
        rec.last_docs(),
        found,
        "{what}: the watch's documents differ from find's"
    );
}

/// A live query over most of a collection (no limit: the issue-19 "2/3 of 100k" shape, smaller) is
/// patched in place on every write, and each callback gets its own array: entering, leaving,
/// moving, changing and deleting documents leave the result equal to a fresh `find` (ids and
/// content), and an array handed to the application earlier never changes afterwards.
#[wasm_bindgen_test]
async fn a_large_live_result_is_patched_and_hands_out_its_own_arrays() {
    let name = unique("large");
    let db = open(&name, r#"{"items": {"indexes": ["done"]}}"#).await;
    let items = coll(&db, "items");
    let docs: Vec<String> = (0..1500)
        .map(|n| {
            format!(
                r#"{{"id": "d{n:04}", "done": {}, "rank": {}, "title": "t{n}"}}"#,
                n % 3 == 0,
                n % 97
            )
        })
        .collect();
    bulk(&items, &format!("[{}]", docs.join(","))).await;
    let q = r#"{"where": {"done": false}, "orderBy": {"rank": "asc"}}"#;
    let rec = Recorder::new();
    let _sub = items.watch(json(q), rec.function()).unwrap();
    assert!(rec.wait_for(1, 5000.0).await);
    settles(&rec, &items, q, "first").await;
    assert_eq!(rec.last().len(), 1000);
    let writes = [
        (
            "enter",
            r#"{"id": "n1", "done": false, "rank": 5, "title": "new"}"#,
        ),
        (
            "move",
            r#"{"id": "d0001", "done": false, "rank": 96, "title": "moved"}"#,
        ),
        (
            "change in place",
            r#"{"id": "d0002", "done": false, "rank": 2, "title": "changed"}"#,
        ),
        (
            "leave",
            r#"{"id": "d0004", "done": true, "rank": 4, "title": "t4"}"#,
        ),
        (
            "enter from done",
            r#"{"id": "d0000", "done": false, "rank": 0, "title": "reopened"}"#,
        ),
    ];
    for (what, doc) in writes {
        let before = rec.count();
        put(&items, doc).await;
        settles(&rec, &items, q, what).await;
        assert!(
            rec.wait_for(before + 1, 2000.0).await,
            "{what}: called back"
        );
        same_content(&rec, &items, q, what).await;
    }
    ok(items.delete(JsValue::from_str("d0005"))).await;
    settles(&rec, &items, q, "delete").await;
    same_content(&rec, &items, q, "delete").await;
    // Every array handed out still holds what it held when it was handed out.
    let calls = rec.calls.borrow().clone();
    for ((ids_then, _), arr) in calls.iter().zip(rec.docs.borrow().iter()) {
        let arr: js_sys::Array = wasm_bindgen::JsCast::unchecked_into(arr.clone());
        let now_ids: Vec<String> = arr
            .iter()
            .map(|d| prop(&d, "id").as_string().unwrap())
            .collect();
        assert_eq!(
            &now_ids, ids_then,
            "an array handed to a callback changed later"
        );
    }
    db.close();
    destroy(&name).await;
}
