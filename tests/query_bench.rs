//! Queries and live windows at scale, side by side with hand-written IndexedDB in the same run.
//! Default 2,000 documents (a smoke test); for figures (issue 19: 100,000):
//!
//! ```sh
//! FERROSYNC_QBENCH_N=100000 WASM_BINDGEN_TEST_TIMEOUT=1800 CHROMEDRIVER=/usr/bin/chromedriver \
//!   wasm-pack test --release --headless --chrome -- --test query_bench -- --nocapture
//! ```
//!
//! Data: ~1 KB documents, `bucket` indexed (1% per bucket), `done` true for 2 in 3, `title`
//! unindexed. Rows: `find` with a limit vs `index.getAll(range, n)`; live windows: write-to-callback
//! latency for a write inside the top-50 window and inside a 2/3 result, and the cost of a write
//! outside the window (which must call nobody); then a compound index `[bucket, title]` added to
//! the same database (its build on open, "bucket 7 by title" before and after), and page 10 of
//! that query read with `offset` and with `after`.

mod common;

use common::*;
use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function makeDocs(from, n) {
  const docs = [];
  for (let i = from; i < from + n; i++) {
    docs.push({
      id: "d" + String(i).padStart(7, "0"),
      bucket: i % 100,
      done: i % 3 !== 0,
      title: "t" + ((i * 7919) % 100003),
      body: "x".repeat(900),
    });
  }
  return docs;
}
export function rawGetAll(name, bucket, n) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name);
    req.onsuccess = () => {
      const db = req.result;
      const t0 = performance.now();
      const tx = db.transaction(["items"], "readonly");
      const r = tx.objectStore("items").index("bucket").getAll(IDBKeyRange.only([2, bucket]), n);
      r.onsuccess = () => {
        const ms = performance.now() - t0;
        const docs = r.result.map((x) => x.doc);
        db.close();
        resolve([ms, docs.length]);
      };
      r.onerror = () => reject(r.error);
    };
    req.onerror = () => reject(req.error);
  });
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = makeDocs)]
    fn make_docs(from: u32, n: u32) -> Array;
    #[wasm_bindgen(js_name = rawGetAll)]
    fn raw_get_all(name: &str, bucket: u32, n: u32) -> Promise;
}

const N: u32 = match option_env!("FERROSYNC_QBENCH_N") {
    Some(n) => parse_u32(n),
    None => 2_000,
};
const REPS: usize = if option_env!("FERROSYNC_QBENCH_N").is_some() {
    21
} else {
    3
};

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

fn log(line: &str) {
    web_sys::console::log_1(&JsValue::from_str(line));
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn time_find(c: &ferrosync::Collection, q: &str) -> (f64, u32) {
    ok(c.find(json(q))).await; // warm-up
    let mut t = Vec::new();
    let mut n = 0;
    for _ in 0..REPS {
        let t0 = now();
        let docs: Array = ok(c.find(json(q))).await.unchecked_into();
        t.push(now() - t0);
        n = docs.length();
    }
    (pct(&mut t, 0.5), n)
}

async fn time_raw(name: &str, bucket: u32, n: u32) -> f64 {
    let mut t = Vec::new();
    for _ in 0..REPS {
        let r: Array = JsFuture::from(raw_get_all(name, bucket, n))
            .await
            .unwrap()
            .unchecked_into();
        t.push(r.get(0).as_f64().unwrap());
    }
    pct(&mut t, 0.5)
}

/// Times page 10 of bucket 7 (`order`: the query's orderBy part) read with `offset` and with
/// `after` (the last document of page 9).
async fn page_ten(items: &ferrosync::Collection, order: &str, by: &str, k: u32) {
    let page = |extra: &str| format!(r#"{{"where": {{"bucket": 7}}{order}, "limit": {k}{extra}}}"#);
    let ninth = ids(items, &page(&format!(r#", "offset": {}"#, 9 * k - 1))).await;
    let last = get(items, &ninth[0]).await;
    let (by_offset, a) = time_find(items, &page(&format!(r#", "offset": {}"#, 9 * k))).await;
    let (by_after, b) = time_find(items, &page(&format!(r#", "after": {last}"#))).await;
    assert_eq!(a, b, "the same page either way");
    log(&format!(
        "  page 10 of bucket 7 by {by}, {k} a page: offset {by_offset:.2} ms, after {by_after:.2} ms ({b} docs)"
    ));
}

/// A watch callback that only counts calls (reading 66,000 ids per call would be the figure).
struct Counter {
    calls: std::rc::Rc<std::cell::Cell<usize>>,
    closure: Closure<dyn FnMut(JsValue)>,
}

impl Counter {
    fn new() -> Counter {
        let calls = std::rc::Rc::new(std::cell::Cell::new(0));
        let c = calls.clone();
        let closure = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| c.set(c.get() + 1));
        Counter { calls, closure }
    }
    fn function(&self) -> JsValue {
        self.closure.as_ref().clone()
    }
    fn count(&self) -> usize {
        self.calls.get()
    }
    async fn wait_for(&self, n: usize, ms: f64) -> bool {
        let start = now();
        while self.count() < n {
            if now() - start > ms {
                return false;
            }
            sleep(0).await;
        }
        true
    }
}

/// Write-to-callback latency (p50, p95) of `writes` puts, each of which must call back once.
async fn latency(c: &ferrosync::Collection, q: &str, writes: &[String]) -> (f64, f64) {
    let rec = Counter::new();
    let sub = c.watch(json(q), rec.function()).unwrap();
    assert!(rec.wait_for(1, 60_000.0).await);
    let mut t = Vec::new();
    for w in writes {
        let before = rec.count();
        let t0 = now();
        put(c, w).await;
        assert!(
            rec.wait_for(before + 1, 10_000.0).await,
            "{q}: no callback for {w}"
        );
        t.push(now() - t0);
        sleep(5).await;
    }
    sub.unsubscribe();
    (pct(&mut t.clone(), 0.5), pct(&mut t, 0.95))
}

#[wasm_bindgen_test]
async fn queries_and_live_windows_at_scale() {
    let name = unique("qbench");
    let db = open(&name, r#"{"items": {"indexes": ["bucket"]}}"#).await;
    let items = coll(&db, "items");
    let mut from = 0;
    while from < N {
        let n = 5_000.min(N - from);
        ok(items.bulk_put(make_docs(from, n).into())).await;
        from += n;
    }
    let per_bucket = N / 100;
    log(&format!(
        "query_bench: {N} documents, {per_bucket} per bucket, medians of {REPS}"
    ));
    time_raw(&name, 7, 50).await; // warm-up
    let raw50 = time_raw(&name, 7, 50).await;
    let raw_all = time_raw(&name, 7, 0).await;
    let rows = [
        (r#"{"where": {"bucket": 7}, "limit": 50}"#, raw50),
        (
            r#"{"where": {"bucket": 7}, "orderBy": {"id": "asc"}, "limit": 50}"#,
            raw50,
        ),
        (
            r#"{"where": {"bucket": 7}, "orderBy": {"title": "asc"}, "limit": 50}"#,
            raw_all,
        ),
        (r#"{"where": {"bucket": 7}}"#, raw_all),
        (r#"{"limit": 50}"#, raw50),
    ];
    for (q, raw) in rows {
        let (ms, n) = time_find(&items, q).await;
        log(&format!(
            "  find {q}: {ms:.2} ms ({n} docs); raw getAll: {raw:.2} ms; ratio {:.2}",
            ms / raw
        ));
    }

    // Live windows. Writes inside the top-50 of bucket 7 by id (a member's title changes).
    let top = r#"{"where": {"bucket": 7}, "orderBy": {"id": "asc"}, "limit": 50}"#;
    let member = |k: u32, v: u32| {
        format!(
            r#"{{"id": "d{:07}", "bucket": 7, "done": true, "title": "w{v}", "body": "y"}}"#,
            7 + 100 * (k % 50)
        )
    };
    let writes: Vec<String> = (0..REPS as u32 * 2).map(|k| member(k, k)).collect();
    let (p50, p95) = latency(&items, top, &writes).await;
    log(&format!(
        "  watch top-50 window, write inside: p50 {p50:.2} ms, p95 {p95:.2} ms"
    ));

    // A write outside the window: its cost, and nobody is called.
    let rec = Counter::new();
    let sub = items.watch(json(top), rec.function()).unwrap();
    assert!(rec.wait_for(1, 60_000.0).await);
    let calls = rec.count();
    let mut plain = Vec::new();
    for k in 0..REPS as u32 * 2 {
        let t0 = now();
        put(
            &items,
            &format!(
                r#"{{"id": "d{:07}", "bucket": 8, "title": "o{k}"}}"#,
                8 + 100 * k
            ),
        )
        .await;
        plain.push(now() - t0);
    }
    sleep(100).await;
    assert_eq!(rec.count(), calls, "writes outside the window call nobody");
    sub.unsubscribe();
    let mut unwatched = Vec::new();
    for k in 0..REPS as u32 * 2 {
        let t0 = now();
        put(
            &items,
            &format!(
                r#"{{"id": "d{:07}", "bucket": 8, "title": "u{k}"}}"#,
                8 + 100 * k
            ),
        )
        .await;
        unwatched.push(now() - t0);
    }
    let (a, b) = (pct(&mut plain, 0.5), pct(&mut unwatched, 0.5));
    log(&format!(
        "  write outside the window: put p50 {a:.2} ms watched, {b:.2} ms unwatched (difference {:.2} ms), 0 callbacks",
        a - b
    ));

    // A result of 2/3 of the documents.
    let big = r#"{"where": {"done": true}}"#;
    let writes: Vec<String> = (0..REPS as u32 * 2)
        .map(|k| {
            format!(
                r#"{{"id": "d{:07}", "bucket": 1, "done": true, "title": "b{k}"}}"#,
                1 + 3 * k
            )
        })
        .collect();
    let (p50, p95) = latency(&items, big, &writes).await;
    log(&format!(
        "  watch done:true ({} docs), write inside: p50 {p50:.2} ms, p95 {p95:.2} ms",
        N * 2 / 3
    ));
    db.close();

    // The same database gains a compound index (built for every stored document while opening):
    // "bucket 7 by title" becomes one index walk, and deep pages start after the previous one.
    let by_title = r#"{"where": {"bucket": 7}, "orderBy": {"title": "asc"}, "limit": 50}"#;
    let db = open(&name, r#"{"items": {"indexes": ["bucket"]}}"#).await;
    let items = coll(&db, "items");
    let (before, _) = time_find(&items, by_title).await;
    db.close();
    let t0 = now();
    let db = open(
        &name,
        r#"{"items": {"indexes": ["bucket", ["bucket", "title"]]}}"#,
    )
    .await;
    let built = now() - t0;
    let items = coll(&db, "items");
    let (after, n) = time_find(&items, by_title).await;
    log(&format!(
        "  compound [bucket, title]: built on open in {built:.0} ms; find {by_title}: {after:.2} ms ({n} docs), {before:.2} ms before (top-k); raw getAll of 50: {raw50:.2} ms"
    ));
    // Page 10 of bucket 7 (pages of 50, fewer on small runs): `offset` reads the 9 pages before
    // it, `after` does not: by title through the compound index, by id inside one key of the
    // single-field index (a cursor jumps there).
    let k = (per_bucket / 10).clamp(1, 50);
    page_ten(&items, r#", "orderBy": {"title": "asc"}"#, "title", k).await;
    page_ten(&items, "", "id", k).await;
    db.close();
    destroy(&name).await;
}
