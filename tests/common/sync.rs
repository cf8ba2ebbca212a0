//! What the browser sync tests (`tests/sync*.rs`, `push_hook.rs`) add to the shared helpers: devices (`Database` instances with `sync`),
//! the real server behind `tests/support/faultproxy.py`, and its control API.
//!
//! The server is read at COMPILE time: build the tests with
//! `FERROSYNC_TEST_SERVER=http://127.0.0.1:18090 FERROSYNC_TEST_CONTROL=http://127.0.0.1:18090`
//! (the fault proxy's address for both). Without them every test fails with that instruction.
use super::*;
use ferrosync::{Collection, Database};
use gloo_net::http::Request;
use js_sys::{Array, Function, Object};
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

const HOW: &str = "set FERROSYNC_TEST_SERVER and FERROSYNC_TEST_CONTROL when compiling the sync tests, e.g. \
FERROSYNC_TEST_SERVER=http://127.0.0.1:18090 FERROSYNC_TEST_CONTROL=http://127.0.0.1:18090 \
CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome -- --test sync, with the fault proxy \
running in front of a real ferrosync-server (see docs/ARCHITECTURE.md, Sync engine (browser) > Tests)";

/// The server's base URL (the fault proxy), e.g. `http://127.0.0.1:18090`.
pub fn server() -> String {
    match option_env!("FERROSYNC_TEST_SERVER") {
        Some(s) if !s.is_empty() => s.trim_end_matches('/').to_string(),
        _ => panic!("FERROSYNC_TEST_SERVER was not set at compile time: {HOW}"),
    }
}

/// The sync API base handed to `Database.open({ sync: { url } })`.
pub fn api() -> String {
    format!("{}/v1", server())
}

/// The fault proxy's control API base.
pub fn control_base() -> String {
    match option_env!("FERROSYNC_TEST_CONTROL") {
        Some(s) if !s.is_empty() => s.trim_end_matches('/').to_string(),
        _ => panic!("FERROSYNC_TEST_CONTROL was not set at compile time: {HOW}"),
    }
}

// ------------------------------------------------------------------------------------------------
// The fault proxy

/// POST `/__control/<cmd>` with a JSON body; returns the reply.
pub async fn control(cmd: &str, body: &str) -> JsValue {
    let resp = Request::post(&format!("{}/__control/{cmd}", control_base()))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .unwrap()
        .send()
        .await
        .unwrap_or_else(|e| panic!("fault proxy control {cmd} failed: {e} ({HOW})"));
    assert!(resp.ok(), "control {cmd}: HTTP {}", resp.status());
    json(&resp.text().await.unwrap())
}

/// The next `count` requests whose path starts with `path` ("" for any) fail as `mode`.
pub async fn fault(mode: &str, path: &str, count: u32) {
    control(
        "fault",
        &format!(r#"{{"mode":"{mode}","path":"{path}","count":{count}}}"#),
    )
    .await;
}

pub async fn clear_faults() {
    fault("none", "", 0).await;
}

/// Requests the proxy forwarded (or failed) per path since the last `clear_stats`.
pub async fn requests(path: &str) -> u32 {
    let stats = control("stats", "{}").await;
    prop(&prop(&stats, "requests"), path)
        .as_f64()
        .unwrap_or(0.0) as u32
}

pub async fn clear_stats() {
    control("clearstats", "{}").await;
}

/// The server's whole feed for `token`, as raw pull pages (the test's own view of the server).
pub async fn server_feed(token: &str) -> Vec<JsValue> {
    let mut cursor: Option<String> = None;
    let mut out = Vec::new();
    loop {
        let mut url = format!("{}/pull?limit=1000", api());
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", js_sys::encode_uri_component(c)));
        }
        let resp = Request::get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert!(resp.ok(), "pull: HTTP {}", resp.status());
        let page = json(&resp.text().await.unwrap());
        let changes: Array = prop(&page, "changes").unchecked_into();
        out.extend(changes.iter());
        cursor = prop(&page, "cursor").as_string();
        if !prop(&page, "hasMore").as_bool().unwrap_or(false) {
            return out;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Devices

/// One `Database` instance with sync: a device (or a tab, when two share a name).
pub struct Device {
    pub db: Database,
    pub name: String,
}

/// Options for [`device`]: the collections JSON and extra `sync` options JSON (merged in).
pub struct Opts<'a> {
    pub collections: &'a str,
    pub sync_extra: &'a str,
    /// `conflict` functions per collection (JS source of `(local, remote) => ...`).
    pub resolvers: &'a [(&'a str, &'a str)],
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            collections: r#"{"tasks": {"indexes": ["done"]}}"#,
            sync_extra: "{}",
            resolvers: &[],
        }
    }
}

/// Opens device `name` syncing namespace `token`. Timers that would make a test depend on timing
/// are off unless `sync_extra` turns them on: no interval, no event stream.
pub async fn device(name: &str, token: &str, opts: Opts<'_>) -> Device {
    let sync = json(&format!(
        r#"{{"url": "{}", "token": "{token}", "intervalMs": 0, "events": false}}"#,
        api()
    ));
    let extra = json(opts.sync_extra);
    Object::assign(
        sync.unchecked_ref::<Object>(),
        extra.unchecked_ref::<Object>(),
    );
    let collections = json(opts.collections);
    for (coll, src) in opts.resolvers {
        let f =
            Function::new_with_args("local, remote", &format!("return ({src})(local, remote);"));
        let spec = prop(&collections, coll);
        set(&spec, "conflict", &f);
    }
    let o: JsValue = Object::new().into();
    set(&o, "name", &JsValue::from_str(name));
    set(&o, "collections", &collections);
    set(&o, "sync", &sync);
    let db = Database::try_from_js_value(ok(Database::open(o)).await).unwrap();
    Device {
        db,
        name: name.to_string(),
    }
}

impl Device {
    pub fn coll(&self, name: &str) -> Collection {
        self.db.collection(JsValue::from_str(name)).unwrap()
    }

    pub async fn put(&self, coll: &str, doc: &str) -> JsValue {
        ok(self.coll(coll).put(json(doc))).await
    }

    pub async fn delete(&self, coll: &str, id: &str) {
        ok(self.coll(coll).delete(JsValue::from_str(id))).await;
    }

    /// The document as canonical JSON text (`undefined` when absent or deleted).
    pub async fn get(&self, coll: &str, id: &str) -> String {
        canonical(&to_json(
            &ok(self.coll(coll).get(JsValue::from_str(id))).await,
        ))
    }

    /// Every document of `coll`, in id order, as one canonical JSON text.
    pub async fn all(&self, coll: &str) -> String {
        canonical(&to_json(
            &ok(self.coll(coll).find(JsValue::UNDEFINED)).await,
        ))
    }

    pub async fn count(&self, coll: &str) -> u32 {
        ok(self.coll(coll).count(JsValue::UNDEFINED))
            .await
            .as_f64()
            .unwrap() as u32
    }

    /// `db.sync()`, which must succeed: `(pushed, pulled, conflicts)`.
    pub async fn sync(&self) -> (u64, u64, u64) {
        let r = ok(self.db.sync()).await;
        let n = |k: &str| prop(&r, k).as_f64().unwrap() as u64;
        (n("pushed"), n("pulled"), n("conflicts"))
    }

    /// Back online and `db.sync()` at once: the sync that going online starts is the one that
    /// answers (both requests are queued before the agent looks).
    pub async fn online_sync(&self) -> (u64, u64, u64) {
        self.offline(false);
        self.sync().await
    }

    /// `db.sync()`, which must fail with `code`.
    pub async fn sync_fails(&self, code: &str) -> String {
        rejects(self.db.sync(), code).await
    }

    pub async fn pending(&self) -> u32 {
        ok(self.db.pending_count()).await.as_f64().unwrap() as u32
    }

    pub fn status(&self) -> JsValue {
        self.db.status()
    }

    pub fn state(&self) -> String {
        prop(&self.status(), "state").as_string().unwrap()
    }

    pub fn offline(&self, offline: bool) {
        self.db.set_offline_for_test(offline).unwrap();
    }

    /// The raw stored record (with `hlc`, `fields`), or `undefined`.
    pub async fn record(&self, coll: &str, id: &str) -> JsValue {
        self.db
            .store()
            .record(coll, id)
            .await
            .unwrap()
            .unwrap_or(JsValue::UNDEFINED)
    }

    /// The HLC of the stored version (live or tombstone), in full (a record stores this client's
    /// without the node); byte order is time order.
    pub async fn hlc(&self, coll: &str, id: &str) -> String {
        let stored = self.stored_hlc(coll, id).await;
        ferrosync_core::Hlc::from_stored(&stored, self.db.store().client_id())
            .unwrap()
            .encode()
    }

    /// The `hlc` of the stored version as the record holds it.
    pub async fn stored_hlc(&self, coll: &str, id: &str) -> String {
        prop(&self.record(coll, id).await, "hlc")
            .as_string()
            .unwrap_or_else(|| panic!("{}: no record {coll}/{id}", self.name))
    }

    /// Waits until the agent is idle with nothing pending (after the sync it starts at open).
    pub async fn settled(&self) {
        let me = self;
        eventually(&format!("{} settles", self.name), 10_000.0, || async move {
            let st = me.state();
            let pending = me.pending().await;
            if st == "idle" && pending == 0 && !prop(&me.status(), "lastSyncAt").is_null() {
                Ok(())
            } else {
                Err(format!(
                    "state {st}, pending {pending}, status {}",
                    to_json(&me.status())
                ))
            }
        })
        .await;
    }

    pub async fn close_and_destroy(self) {
        self.db.close();
        ok(Database::destroy(JsValue::from_str(&self.name))).await;
    }
}

/// Syncs the devices in turn until a round changes nothing, then checks they hold the same `coll`.
pub async fn converge(devices: &[&Device], coll: &str) -> String {
    for round in 0..6 {
        let mut changed = false;
        for d in devices {
            let (pushed, pulled, _) = d.sync().await;
            changed |= pushed > 0 || pulled > 0;
        }
        if !changed && round > 0 {
            break;
        }
    }
    let first = devices[0].all(coll).await;
    for d in &devices[1..] {
        assert_eq!(
            d.all(coll).await,
            first,
            "{} differs from {}",
            d.name,
            devices[0].name
        );
    }
    for d in devices {
        assert_eq!(d.pending().await, 0, "{} still has pending changes", d.name);
    }
    first
}
