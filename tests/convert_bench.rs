//! How documents should cross the JS/WASM boundary, measured: the strategies must agree (asserted),
//! and the figures are printed. In the regular test runs it uses 1,000 documents (quick, still a
//! correctness check); for figures use a release build, 10,000 documents and a longer timeout:
//!
//! ```sh
//! FERROSYNC_BENCH_N=10000 WASM_BINDGEN_TEST_TIMEOUT=900 CHROMEDRIVER=/usr/bin/chromedriver \
//!   wasm-pack test --release --headless --chrome -- --test convert_bench -- --nocapture
//! ```
//!
//! Strategies for a batch of ~1 KB documents (what `bulkPut` must do before writing):
//! - `json`: JS-side checks, one `JSON.stringify` of the batch, serde_json parse in WASM, core
//!   validation (what ferrosync did first);
//! - `serde-wasm-bindgen`: JS-side checks, then `serde_wasm_bindgen::from_value` per document (one
//!   boundary call per field), core validation;
//! - `untouched` (what ferrosync does): one JavaScript walk enforcing the JS-only problems and core's
//!   rules (cross-checked against core in tests/browser.rs); only the ids come back to Rust.
//!
//! End to end it also times `bulkPut` against hand-written IndexedDB (one transaction, all puts
//! issued at once), and a watch callback's latency after a write with 1,000 documents watched.

mod common;

use common::*;
use ferrosync_core::document::validate;
use js_sys::{Array, Promise};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function makeDocs(n) {
  const words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"];
  const docs = [];
  for (let i = 0; i < n; i++) {
    let notes = "";
    while (notes.length < 700) notes += words[(i * 7 + notes.length) % words.length] + " ";
    docs.push({
      id: "doc-" + String(i).padStart(6, "0"),
      title: words[i % words.length] + " " + i,
      done: i % 3 === 0,
      priority: i % 5,
      tags: [words[i % 4], words[(i + 1) % 4]],
      meta: { created: 1700000000000 + i, owner: "user-" + (i % 17), rank: i % 100 },
      notes,
    });
  }
  return docs;
}
export function checkOnly(docs) {
  // The walk of convert.js without the stringify: what "untouched" would cost at least.
  const seen = new Set();
  const walk = (v, depth) => {
    const t = typeof v;
    if (t === "string" || t === "boolean") return;
    if (t === "number") { if (!Number.isFinite(v)) throw "nan"; return; }
    if (v === null) return;
    if (t !== "object") throw "bad";
    if (seen.has(v)) throw "cycle";
    seen.add(v);
    if (Array.isArray(v)) for (let i = 0; i < v.length; i++) walk(v[i], depth + 1);
    else { for (const k of Object.keys(v)) { if (k[0] === "$") throw "reserved"; walk(v[k], depth + 1); } }
    seen.delete(v);
  };
  for (const d of docs) { walk(d, 0); if (typeof d.id !== "string") throw "id"; }
}
export function stringify(docs) { return JSON.stringify(docs); }
const encoder = new TextEncoder();
export function stringifyBytes(docs) { return encoder.encode(JSON.stringify(docs)); }
export function stringifyOnly(docs) { const t = performance.now(); JSON.stringify(docs); return performance.now() - t; }
export async function rawBulkInsert(name, docs) {
  const db = await new Promise((res, rej) => {
    const r = indexedDB.open(name);
    r.onupgradeneeded = () => r.result.createObjectStore("docs", { keyPath: "id" });
    r.onsuccess = () => res(r.result);
    r.onerror = () => rej(r.error);
  });
  const start = performance.now();
  await new Promise((res, rej) => {
    const tx = db.transaction("docs", "readwrite");
    const st = tx.objectStore("docs");
    for (const d of docs) st.put(d);
    tx.oncomplete = res;
    tx.onabort = () => rej(tx.error);
  });
  const ms = performance.now() - start;
  db.close();
  await new Promise((res) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = res; r.onerror = res; });
  return ms;
}
export function perfNow() { return performance.now(); }
// The cost of record layouts in raw IndexedDB (no ferrosync): what the store's layout costs.
async function layoutRun(label, setup, fill) {
  const name = "layout" + Math.random();
  const db = await new Promise((res, rej) => { const r = indexedDB.open(name); r.onupgradeneeded = () => setup(r.result); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  const names = Array.from(db.objectStoreNames);
  const times = [];
  for (let k = 0; k < 3; k++) {
    const t = performance.now();
    await new Promise((res, rej) => { const tx = db.transaction(names, "readwrite", { durability: "relaxed" }); fill(tx, k); tx.oncomplete = res; tx.onabort = () => rej(tx.error); });
    times.push(performance.now() - t);
  }
  db.close(); indexedDB.deleteDatabase(name);
  times.sort((a, b) => a - b);
  return `${label} ${times[1].toFixed(0)} ms`;
}
export async function layoutCosts(docs) {
  const rec = (d, k) => ({ id: d.id, hlc: "018bcfe56800-00000" + k + "-abcdef0123456789", doc: d, ix: { pdone: [1, d.done ? 1 : 0], ppriority: [2, d.priority] } });
  const store = (db, ix, pending) => { const s = db.createObjectStore("d", { keyPath: "id" }); if (ix) { s.createIndex("done", "ix.pdone"); s.createIndex("priority", "ix.ppriority"); } if (pending) s.createIndex("$pending", "pending"); };
  const out = [];
  out.push(await layoutRun("raw docs:", (db) => store(db, false), (tx) => { const s = tx.objectStore("d"); for (const d of docs) s.put(d); }));
  out.push(await layoutRun("records:", (db) => store(db, false), (tx, k) => { const s = tx.objectStore("d"); for (const d of docs) s.put(rec(d, k)); }));
  out.push(await layoutRun("records + 2 indexes:", (db) => store(db, true), (tx, k) => { const s = tx.objectStore("d"); for (const d of docs) s.put(rec(d, k)); }));
  out.push(await layoutRun("records + 2 indexes + _outbox rows (ferrosync until 2026-11):", (db) => { store(db, true); db.createObjectStore("o", { keyPath: ["collection", "id"] }); }, (tx, k) => { const s = tx.objectStore("d"), o = tx.objectStore("o"); for (const d of docs) { const r = rec(d, k); s.put(r); o.put({ collection: "d", id: d.id, hlc: r.hlc, deleted: false }); } }));
  out.push(await layoutRun("records + 2 indexes + sparse $pending index (ferrosync):", (db) => store(db, true, true), (tx, k) => { const s = tx.objectStore("d"); for (const d of docs) { const r = rec(d, k); r.pending = r.hlc; s.put(r); } }));
  return out.join(" | ");
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = makeDocs)]
    fn make_docs(n: u32) -> Array;
    #[wasm_bindgen(js_name = checkOnly)]
    fn check_only(docs: &Array);
    fn stringify(docs: &Array) -> String;
    #[wasm_bindgen(js_name = stringifyBytes)]
    fn stringify_bytes(docs: &Array) -> js_sys::Uint8Array;
    #[wasm_bindgen(js_name = stringifyOnly)]
    fn stringify_only(docs: &Array) -> f64;
    #[wasm_bindgen(js_name = rawBulkInsert)]
    fn raw_bulk_insert(name: &str, docs: &Array) -> Promise;
    #[wasm_bindgen(js_name = perfNow)]
    fn perf_now() -> f64;
    #[wasm_bindgen(js_name = layoutCosts)]
    fn layout_costs(docs: &Array) -> Promise;
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn log(line: &str) {
    web_sys::console::log_1(&JsValue::from_str(line));
}

/// Documents per batch (compile-time `FERROSYNC_BENCH_N`, default 1,000).
const N: u32 = match option_env!("FERROSYNC_BENCH_N") {
    Some(n) => parse_u32(n),
    None => 1_000,
};

/// Repetitions: few in the regular test runs, more when measuring.
const ROUNDS: usize = if option_env!("FERROSYNC_BENCH_N").is_some() {
    5
} else {
    1
};
const LATENCY_SAMPLES: usize = if option_env!("FERROSYNC_BENCH_N").is_some() {
    100
} else {
    10
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

#[wasm_bindgen_test]
async fn boundary_conversions_agree_and_are_timed() {
    let docs = make_docs(N);
    let bytes = stringify(&docs).len();
    let (mut t_json, mut t_swb, mut t_check) = (vec![], vec![], vec![]);
    let (mut t_stringify, mut t_parse, mut t_validate) = (vec![], vec![], vec![]);
    let (mut t_js_stringify, mut t_bytes) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        let t = perf_now();
        check_only(&docs);
        let t1 = perf_now();
        let text = stringify(&docs);
        let t2 = perf_now();
        let from_json: Vec<Value> = serde_json::from_str(&text).unwrap();
        let t3 = perf_now();
        for v in &from_json {
            validate(v).unwrap();
        }
        let t4 = perf_now();
        t_json.push(t4 - t);
        t_stringify.push(t2 - t1);
        t_parse.push(t3 - t2);
        t_validate.push(t4 - t3);

        // The same JSON through TextEncoder + one memcpy instead of wasm-bindgen's string passing.
        t_js_stringify.push(stringify_only(&docs));
        let t = perf_now();
        let bytes_in = stringify_bytes(&docs).to_vec();
        let from_bytes: Vec<Value> = serde_json::from_slice(&bytes_in).unwrap();
        t_bytes.push(perf_now() - t);
        assert_eq!(from_bytes.len(), from_json.len());

        let t = perf_now();
        check_only(&docs);
        let from_swb: Vec<Value> = docs
            .iter()
            .map(|d| serde_wasm_bindgen::from_value::<Value>(d).unwrap())
            .collect();
        for v in &from_swb {
            validate(v).unwrap();
        }
        t_swb.push(perf_now() - t);
        assert_eq!(
            from_json, from_swb,
            "the strategies must see the same documents"
        );

        // What ferrosync does: convert.js's walk (JS-only problems + core's rules) and the ids.
        let t = perf_now();
        let ids = ferrosync::js::convert::check_batch_for_test(&docs).unwrap();
        t_check.push(perf_now() - t);
        assert_eq!(ids.len(), from_json.len());
        assert!(ids
            .iter()
            .zip(&from_json)
            .all(|(a, v)| a.as_deref() == v["id"].as_str()));
    }
    log(&format!(
        "boundary, {N} docs ({} KB JSON): json {:.1} ms (stringify+transfer {:.1} [JSON.stringify alone {:.1}], serde_json parse {:.1}, validate {:.1}) | json via TextEncoder bytes: stringify+transfer+parse {:.1} ms | serde-wasm-bindgen {:.1} ms | untouched (ferrosync: convert.js walk, ids back) {:.1} ms",
        bytes / 1024,
        median(t_json),
        median(t_stringify),
        median(t_js_stringify),
        median(t_parse),
        median(t_validate),
        median(t_bytes),
        median(t_swb),
        median(t_check)
    ));
}

#[wasm_bindgen_test]
async fn bulk_put_against_raw_indexeddb_and_watch_latency() {
    let docs = make_docs(N);
    let (mut ours, mut raw) = (vec![], vec![]);
    for round in 0..ROUNDS.min(3) {
        let raw_ms = JsFuture::from(raw_bulk_insert(&unique("raw"), &docs))
            .await
            .unwrap()
            .as_f64()
            .unwrap();
        raw.push(raw_ms);

        let name = unique("ours");
        let db = open(&name, r#"{"docs": {"indexes": ["done", "priority"]}}"#).await;
        let c = coll(&db, "docs");
        let t = perf_now();
        ok(c.bulk_put(docs.clone().into())).await;
        ours.push(perf_now() - t);
        assert_eq!(count(&c, "{}").await, N);
        if round == 0 {
            assert_eq!(
                count(&c, r#"{"where": {"done": true}}"#).await,
                N.div_ceil(3)
            );
        }
        db.close();
        destroy(&name).await;
    }
    let (ours, raw) = (median(ours), median(raw));
    log(&format!(
        "bulk insert {N} docs: ferrosync {ours:.0} ms (2 indexes + outbox) | raw IndexedDB {raw:.0} ms | ratio {:.2}",
        ours / raw
    ));

    // Watch latency: 1,000 documents under watch, single puts that change one of them.
    let name = unique("latency");
    let db = open(&name, r#"{"docs": {"indexes": ["done"]}}"#).await;
    let c = coll(&db, "docs");
    ok(c.bulk_put(make_docs(1000).into())).await;
    let rec = Recorder::new();
    let _sub = c.watch(JsValue::UNDEFINED, rec.function()).unwrap();
    assert!(rec.wait_for(1, 5000.0).await);
    let mut lat = vec![];
    for i in 0..LATENCY_SAMPLES {
        let before = rec.count();
        let t = now();
        put(
            &c,
            &format!(
                r#"{{"id": "doc-{:06}", "title": "changed {i}", "done": false}}"#,
                (i * 7) % 1000
            ),
        )
        .await;
        let start = now();
        while rec.count() == before && now() - start < 2000.0 {
            // Busy-wait on microtasks/macrotasks without the 2 ms sleep granularity.
            JsFuture::from(Promise::resolve(&JsValue::NULL))
                .await
                .unwrap();
            sleep(0).await;
        }
        assert!(rec.count() > before);
        // The callback's own timestamp, so the polling granularity does not count.
        let at = rec.calls.borrow()[before].1;
        lat.push(at - t);
    }
    lat.sort_by(f64::total_cmp);
    log(&format!(
        "watch latency, 1000 docs watched, put -> callback: p50 {:.1} ms, p95 {:.1} ms",
        lat[lat.len() / 2],
        lat[lat.len() * 95 / 100]
    ));
    db.close();
    destroy(&name).await;
}

#[wasm_bindgen_test]
async fn indexeddb_layout_costs() {
    // Figures only when measuring; a quick smoke run otherwise (the regular runs have a time limit).
    let n = if option_env!("FERROSYNC_BENCH_N").is_some() {
        N
    } else {
        200
    };
    let docs = make_docs(n);
    let line = JsFuture::from(layout_costs(&docs)).await.unwrap();
    log(&format!(
        "raw IndexedDB layouts, {n} docs, one transaction each: {}",
        line.as_string().unwrap()
    ));
}
