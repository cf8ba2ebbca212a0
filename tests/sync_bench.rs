//! Sync throughput over loopback against the real server (behind the fault proxy, no faults):
//! push 10,000 pending ~1 KB documents, and pull 10,000 into an empty database. Prints docs/s;
//! the figures go to docs/BENCHMARKS.md ("Sync (browser)"). Run the release build:
//!
//! `FERROSYNC_BENCH_N=10000 FERROSYNC_TEST_SERVER=... FERROSYNC_TEST_CONTROL=... CHROMEDRIVER=/usr/bin/chromedriver \
//!  wasm-pack test --release --headless --chrome -- --test sync_bench -- --nocapture`

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use common::sync::*;
use common::*;
use ferrosync::sync::local_store::{self, IdbLocal};
use ferrosync::sync::transport::{Endpoint, HttpTransport};
use ferrosync_core::protocol::{PullResponse, PushRequest, PushResponse};
use ferrosync_core::sync::{
    ApplyOutcome, Decide, DocKey, LocalDoc, LocalStore, PendingChange, Policies, Pushed, StoreOp,
    SyncClock, SyncEngine, Transport, TransportError,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Documents each way: 1,000 in the regular test runs (a smoke test); set `FERROSYNC_BENCH_N=10000`
/// at compile time for the figures in docs/BENCHMARKS.md (a multiple of 1000).
const N: usize = match option_env!("FERROSYNC_BENCH_N") {
    Some(n) => parse(n),
    None => 1_000,
};

const fn parse(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    n
}

/// The API base measured: `FERROSYNC_BENCH_SERVER` (e.g. a release server without the proxy,
/// `http://127.0.0.1:18093`) if set at compile time, else the test server (through the proxy).
fn base() -> String {
    match option_env!("FERROSYNC_BENCH_SERVER") {
        Some(s) if !s.is_empty() => format!("{}/v1", s.trim_end_matches('/')),
        _ => api(),
    }
}

#[wasm_bindgen(inline_js = r#"
// Hand-written IndexedDB writing the records a pull stored, again: the same values, a store of the
// same shape (key path `id`, the `done` index), transactions of `page` committed one after another as
// the pull's are. Returns the milliseconds of the writes alone.
const req = (r) => new Promise((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
export async function rawRewrite(source, page) {
  const src = await req(indexedDB.open(source));
  const records = await req(src.transaction("tasks").objectStore("tasks").getAll());
  src.close();
  const name = source + "-raw";
  await req(indexedDB.deleteDatabase(name));
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => {
    const st = open.result.createObjectStore("tasks", { keyPath: "id" });
    st.createIndex("done", "ix.done");
  };
  const db = await req(open);
  const t0 = performance.now();
  for (let from = 0; from < records.length; from += page) {
    const tx = db.transaction("tasks", "readwrite", { durability: "relaxed" });
    const st = tx.objectStore("tasks");
    for (const r of records.slice(from, from + page)) st.put(r);
    await new Promise((ok, fail) => { tx.oncomplete = ok; tx.onabort = () => fail(tx.error); });
  }
  const ms = performance.now() - t0;
  db.close();
  await req(indexedDB.deleteDatabase(name));
  return [records.length, ms];
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = rawRewrite)]
    fn raw_rewrite(source: &str, page: u32) -> js_sys::Promise;
}

fn log(msg: &str) {
    web_sys::console::log_1(&JsValue::from_str(msg));
}

/// A ~1 KB document.
fn doc(i: usize) -> String {
    let body: String = (0..16)
        .map(|w| {
            format!(
                "word{:02}-{:04} lorem ipsum dolor sit amet ",
                w,
                (i * 7 + w) % 10_000
            )
        })
        .collect();
    format!(
        r#"{{"id": "doc{i:06}", "title": "Task number {i} with a title", "done": {}, "n": {i}, "tags": ["t{}", "bench"], "createdAt": "2026-01-01T00:00:{:02}Z", "body": "{body}"}}"#,
        i.is_multiple_of(3),
        i % 10,
        i % 60
    )
}

async fn fill(d: &Device) {
    for batch in 0..N / 1000 {
        let docs: Vec<String> = (batch * 1000..(batch + 1) * 1000).map(doc).collect();
        ok(d.coll("tasks")
            .bulk_put(json(&format!("[{}]", docs.join(",")))))
        .await;
    }
}

/// The real transport for pushes; pulls answer "nothing new" without a request, so the timing
/// covers the push path alone (outbox read, request, server, acknowledgement transaction).
struct PushOnly(HttpTransport);

impl Transport for PushOnly {
    async fn push(&self, req: &PushRequest) -> Result<PushResponse, TransportError> {
        self.0.push(req).await
    }

    async fn pull(&self, cursor: Option<&str>, _: usize) -> Result<PullResponse, TransportError> {
        Ok(PullResponse {
            changes: vec![],
            cursor: cursor.unwrap_or("bench").to_string(),
            has_more: false,
            remaining: Some(0),
            server_time: js_sys::Date::now() as u64,
            max_drift_ms: None,
        })
    }
}

/// Where the time goes: milliseconds per store call and per request (the rest is the engine).
#[derive(Default)]
struct Spent(RefCell<BTreeMap<&'static str, (f64, u32)>>);

impl Spent {
    fn add(&self, what: &'static str, since: f64) {
        let mut m = self.0.borrow_mut();
        let e = m.entry(what).or_default();
        e.0 += js_sys::Date::now() - since;
        e.1 += 1;
    }

    fn report(&self, total_ms: f64) -> String {
        let m = self.0.borrow();
        let mut parts: Vec<String> = m
            .iter()
            .map(|(k, (ms, n))| format!("{k} {ms:.0} ms/{n}"))
            .collect();
        let known: f64 = m.values().map(|v| v.0).sum();
        parts.push(format!("engine+rest {:.0} ms", total_ms - known));
        parts.join(", ")
    }
}

struct Timed<T> {
    inner: T,
    spent: Rc<Spent>,
}

impl LocalStore for Timed<Rc<IdbLocal>> {
    type Error = ferrosync::Error;

    fn clock(&self) -> &SyncClock {
        self.inner.clock()
    }

    async fn pending(
        &self,
        after: Option<&DocKey>,
        limit: usize,
    ) -> Result<Vec<PendingChange>, Self::Error> {
        let t = js_sys::Date::now();
        let r = self.inner.pending(after, limit).await;
        self.spent.add("store.pending", t);
        r
    }

    async fn ack_pushed(&self, acked: &[Pushed]) -> Result<(), Self::Error> {
        let t = js_sys::Date::now();
        let r = self.inner.ack_pushed(acked).await;
        self.spent.add("store.ack", t);
        r
    }

    async fn load(&self, keys: &[DocKey]) -> Result<Vec<Option<LocalDoc>>, Self::Error> {
        let t = js_sys::Date::now();
        let r = self.inner.load(keys).await;
        self.spent.add("store.load", t);
        r
    }

    async fn apply(
        &self,
        ops: &[StoreOp],
        cursor: Option<&str>,
    ) -> Result<ApplyOutcome, Self::Error> {
        let t = js_sys::Date::now();
        let r = self.inner.apply(ops, cursor).await;
        self.spent.add("store.apply", t);
        r
    }

    async fn load_and_apply(
        &self,
        keys: &[DocKey],
        cursor: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<ApplyOutcome, Self::Error> {
        let t = js_sys::Date::now();
        let r = self.inner.load_and_apply(keys, cursor, decide).await;
        self.spent.add("store.load_and_apply", t);
        r
    }

    async fn cursor(&self) -> Result<Option<String>, Self::Error> {
        self.inner.cursor().await
    }

    async fn reset_for_resync(&self) -> Result<(), Self::Error> {
        self.inner.reset_for_resync().await
    }
}

impl<T: Transport> Transport for Timed<T> {
    async fn push(&self, req: &PushRequest) -> Result<PushResponse, TransportError> {
        let t = js_sys::Date::now();
        let r = self.inner.push(req).await;
        self.spent.add("http.push", t);
        r
    }

    async fn pull(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<PullResponse, TransportError> {
        let t = js_sys::Date::now();
        let r = self.inner.pull(cursor, limit).await;
        self.spent.add("http.pull", t);
        r
    }
}

type TimedEngine<T> = SyncEngine<Timed<Rc<IdbLocal>>, Timed<T>>;

/// An engine over `db`'s store (a database opened without its own agent) with timing wrappers.
fn timed_engine<T: Transport>(
    db: &ferrosync::Database,
    transport: T,
    pull_limit: usize,
) -> (TimedEngine<T>, Rc<Spent>) {
    let spent = Rc::new(Spent::default());
    let local = Rc::new(local_store::open(db.store().clone(), 0.0).unwrap());
    let config = ferrosync_core::sync::SyncConfig {
        pull_limit,
        ..Default::default()
    };
    let engine = SyncEngine::new(
        Timed {
            inner: local,
            spent: spent.clone(),
        },
        Timed {
            inner: transport,
            spent: spent.clone(),
        },
        Policies::default(),
    )
    .with_config(config);
    (engine, spent)
}

async fn open_plain(name: &str) -> Device {
    let o = json(&format!(
        r#"{{"name": "{name}", "collections": {{"tasks": {{"indexes": ["done"]}}}}}}"#
    ));
    let db = <ferrosync::Database as wasm_bindgen::convert::TryFromJsValue>::try_from_js_value(
        ok(ferrosync::Database::open(o)).await,
    )
    .unwrap();
    Device {
        db,
        name: name.to_string(),
    }
}

fn rate(n: usize, ms: f64) -> String {
    format!(
        "{n} docs in {ms:.0} ms = {:.0} docs/s",
        n as f64 / (ms / 1000.0)
    )
}

#[wasm_bindgen_test]
async fn sync_throughput_push_and_pull_10k() {
    if option_env!("FERROSYNC_BENCH_SERVER").is_none() {
        clear_faults().await;
    }
    log(&format!("BENCH server {}", base()));
    let token = unique("bench");
    let url = format!(r#"{{"url": "{}"}}"#, base());
    let url1000 = format!(r#"{{"url": "{}", "pullLimit": 1000}}"#, base());
    let at = |extra| Opts {
        sync_extra: extra,
        ..Opts::default()
    };
    // The receiving devices exist before the data, so their first sync is empty.
    let pull500 = device(&unique("bench-pull500"), &token, at(&url)).await;
    let pull1000 = device(&unique("bench-pull1000"), &token, at(&url1000)).await;
    pull500.settled().await;
    pull1000.settled().await;

    // Push: 10,000 pending documents in a database without its own agent, pushed by an engine on
    // the same store with the real HTTP transport (pulls answered locally: push path only).
    let pusher = open_plain(&unique("bench-push")).await;
    let t0 = js_sys::Date::now();
    fill(&pusher).await;
    let fill_ms = js_sys::Date::now() - t0;
    // The same machine's local write speed at the same time, for scale: pulled documents cannot be
    // stored faster than the store writes them (bulkPut of 1000 at a time).
    log(&format!(
        "BENCH baseline local bulkPut: {}",
        rate(N, fill_ms)
    ));
    assert_eq!(pusher.pending().await as usize, N);
    let endpoint = Rc::new(Endpoint::new(&base(), &token));
    let (engine, spent) = timed_engine(
        &pusher.db,
        PushOnly(HttpTransport::new(endpoint.clone())),
        500,
    );
    let t0 = js_sys::Date::now();
    let report = engine.sync_once(&mut |_| {}).await.unwrap();
    let push_ms = js_sys::Date::now() - t0;
    assert_eq!(report.pushed as usize, N);
    assert_eq!(pusher.pending().await, 0);
    log(&format!("BENCH sync push: {}", rate(N, push_ms)));
    log(&format!(
        "BENCH   push breakdown: {}",
        spent.report(push_ms)
    ));

    // The same pull path as a device's, timed by parts, into a database without an agent.
    let puller = open_plain(&unique("bench-pull-timed")).await;
    let (engine, spent) = timed_engine(&puller.db, HttpTransport::new(endpoint), 500);
    let t0 = js_sys::Date::now();
    let report = engine.sync_once(&mut |_| {}).await.unwrap();
    let ms = js_sys::Date::now() - t0;
    assert_eq!(report.pulled as usize, N);
    log(&format!(
        "BENCH   pull breakdown (pages of 500, {}): {}",
        rate(N, ms),
        spent.report(ms)
    ));
    // IndexedDB's own speed for exactly these records, at this moment: the ceiling of any pull.
    let raw = JsFuture::from(raw_rewrite(&puller.name, 500))
        .await
        .unwrap();
    let raw: js_sys::Array = raw.into();
    assert_eq!(raw.get(0).as_f64(), Some(N as f64));
    log(&format!(
        "BENCH raw IndexedDB, the pulled records written again by hand (transactions of 500): {}",
        rate(N, raw.get(1).as_f64().unwrap_or(f64::NAN))
    ));

    // Pull: 10,000 into an empty database, default page size (500), then pages of 1000.
    let t0 = js_sys::Date::now();
    let (_, pulled, _) = pull500.sync().await;
    let pull500_ms = js_sys::Date::now() - t0;
    assert_eq!(pulled as usize, N);
    assert_eq!(pull500.count("tasks").await as usize, N);
    log(&format!(
        "BENCH sync pull (pages of 500): {}",
        rate(N, pull500_ms)
    ));

    let t0 = js_sys::Date::now();
    let (_, pulled, _) = pull1000.sync().await;
    let pull1000_ms = js_sys::Date::now() - t0;
    assert_eq!(pulled as usize, N);
    log(&format!(
        "BENCH sync pull (pages of 1000): {}",
        rate(N, pull1000_ms)
    ));

    // The whole db.sync() of a device with 10,000 pending: push, then pull the 10,000 echoes.
    let token2 = unique("bench2");
    let full = device(&unique("bench-full"), &token2, at(&url)).await;
    full.settled().await;
    full.offline(true);
    fill(&full).await;
    log(&format!(
        "pending before: {} status {}",
        full.pending().await,
        to_json(&full.status())
    ));
    let t0 = js_sys::Date::now();
    let (pushed, _, _) = full.online_sync().await;
    let full_ms = js_sys::Date::now() - t0;
    assert_eq!(pushed as usize, N);
    log(&format!(
        "BENCH db.sync() with 10,000 pending (push + echo pull): {}",
        rate(N, full_ms)
    ));

    for d in [pusher, puller, pull500, pull1000, full] {
        d.close_and_destroy().await;
    }
}
