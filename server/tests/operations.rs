//! Running the server for real: compaction under load (410 CURSOR_EXPIRED, nothing skipped),
//! backups taken under load and restored with a new epoch, `/metrics`, request ids, graceful
//! SIGTERM, the push hook. Real server, real HTTP, real database (SQLite; PostgreSQL where it
//! matters, when `DATABASE_URL` is set at build time).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(
    compaction_under_load_skips_nothing,
    rotate_epoch_makes_every_device_resync
);

/// `(collection, id)` -> `(hlc, deleted)`.
type View = HashMap<String, (String, bool)>;

/// A device: pulls into its view; on 410 forgets its cursor and pulls from the start.
struct Device {
    token: String,
    cursor: Option<String>,
    view: View,
    /// Versions received since the cursor was last reset: none may come twice.
    seen: HashSet<(String, String)>,
    expired: u32,
    mismatched: u32,
}

impl Device {
    fn new(token: &str) -> Device {
        Device {
            token: token.to_string(),
            cursor: None,
            view: View::new(),
            seen: HashSet::new(),
            expired: 0,
            mismatched: 0,
        }
    }

    /// Pulls until `hasMore` is false (restarting from scratch on 410 or 409).
    async fn sync(&mut self, s: &TestServer) {
        loop {
            let (st, body) = s.pull(&self.token, self.cursor.as_deref(), Some(50)).await;
            match (st, body["error"]["code"].as_str()) {
                (StatusCode::OK, _) => {}
                (StatusCode::GONE, Some("CURSOR_EXPIRED")) => {
                    self.expired += 1;
                    self.reset();
                    continue;
                }
                (StatusCode::CONFLICT, Some("CURSOR_EPOCH_MISMATCH")) => {
                    self.mismatched += 1;
                    self.reset();
                    continue;
                }
                _ => panic!("pull failed: {st} {body}"),
            }
            for c in body["changes"].as_array().unwrap() {
                let id = c["id"].as_str().unwrap().to_string();
                let h = c["hlc"].as_str().unwrap().to_string();
                assert!(
                    self.seen.insert((id.clone(), h.clone())),
                    "{id}@{h} delivered twice without a reset"
                );
                let deleted = c["deleted"].as_bool().unwrap_or(false);
                match self.view.get(&id) {
                    Some((old, _)) if *old >= h => {}
                    _ => {
                        self.view.insert(id, (h, deleted));
                    }
                }
            }
            self.cursor = Some(body["cursor"].as_str().unwrap().to_string());
            if !body["hasMore"].as_bool().unwrap() {
                return;
            }
        }
    }

    fn reset(&mut self) {
        self.cursor = None;
        self.seen.clear();
    }
}

/// The server's state of a namespace, read from the start.
async fn server_view(s: &TestServer, token: &str) -> View {
    let (changes, _) = s.pull_all(token, None).await;
    changes
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                (
                    c["hlc"].as_str().unwrap().to_string(),
                    c["deleted"].as_bool().unwrap_or(false),
                ),
            )
        })
        .collect()
}

/// Runs one SQL count on the test database (SQLite file or PostgreSQL schema).
async fn count(db: &FreshDb, sql: &str) -> i64 {
    match db.backend {
        Backend::Sqlite => {
            let path = db.url.trim_start_matches("sqlite://").to_string();
            let sql = sql.to_string();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row(&sql, [], |r| r.get::<_, i64>(0)).unwrap()
            })
            .await
            .unwrap()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
    }
}

/// Metric values by name with labels, from a Prometheus text page.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').expect("metric line: name value");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        out.insert(name.to_string(), v);
    }
    out
}

async fn scrape(http: &reqwest::Client, url: &str) -> HashMap<String, f64> {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse_metrics(&r.text().await.unwrap())
}

/// Eight devices push puts and deletes over a small set of documents and pull, while the server
/// compacts every 40 ms with a 250 ms horizon. No device ever gets a version twice between
/// resets; at the end every device holds exactly the server's version of every document the
/// server still has; a device holding a document the server no longer has is one that was told
/// 410 (the documented trade-off); purged tombstones are gone from the database; a device idle
/// since the start gets 410, re-syncs from the start and converges.
async fn compaction_under_load_skips_nothing(b: Backend) {
    let s = Arc::new(
        TestServer::start_with(b, |c| {
            c.retention = Duration::from_millis(250);
            c.compact_interval = Duration::from_millis(40);
            c.compact_batch = 7;
        })
        .await,
    );
    let t = token("compact");
    // The old device: synced once, early.
    let (st, _) = s
        .push(
            &t,
            push_body(
                "old",
                vec![put("t", "d0", &hlc(now_ms(), 0, "old"), json!({}))],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let mut old = Device::new(&t);
    old.sync(&s).await;

    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for n in 0..8 {
        let (s, t, stop, counter) = (s.clone(), t.clone(), stop.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let client = format!("c{n}");
            let mut dev = Device::new(&t);
            // Two devices pull less often than the horizon: their cursors expire mid-run.
            let pull_every = if n >= 6 {
                Duration::from_millis(400)
            } else {
                Duration::ZERO
            };
            let mut pulled = std::time::Instant::now();
            let mut round = 0u64;
            while !stop.load(SeqCst) {
                round += 1;
                let changes: Vec<Value> = (0..3)
                    .map(|k| {
                        let id = format!("d{}", (round * 7 + k * 13 + n * 5) % 40);
                        let h = hlc(now_ms(), counter.fetch_add(1, SeqCst) % 0xffff, &client);
                        if (round + k) % 2 == 0 {
                            del("t", &id, &h)
                        } else {
                            put("t", &id, &h, json!({"by": client, "round": round}))
                        }
                    })
                    .collect();
                let (st, body) = s.push(&t, push_body(&client, changes)).await;
                assert_eq!(st, StatusCode::OK, "{body}");
                if pulled.elapsed() >= pull_every {
                    dev.sync(&s).await;
                    pulled = std::time::Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            dev
        }));
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, SeqCst);
    let mut devices = Vec::new();
    for t in tasks {
        devices.push(t.await.unwrap());
    }
    // Let the last writes age past the horizon and be purged.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let truth = server_view(&s, &t).await;
    assert!(
        truth.values().all(|(_, deleted)| !deleted),
        "every tombstone is older than the horizon by now: {truth:?}"
    );
    let tombstones = count(&s.db, "SELECT count(*) FROM ferrosync_docs WHERE deleted").await;
    assert_eq!(
        tombstones, 0,
        "purged tombstones are gone from the database"
    );
    let replays = count(&s.db, "SELECT count(*) FROM ferrosync_client_pushes").await;
    assert_eq!(replays, 0, "replay rows older than the horizon are gone");

    let mut expired = 0;
    for mut dev in devices {
        dev.sync(&s).await;
        expired += dev.expired;
        for (id, version) in &truth {
            assert_eq!(
                dev.view.get(id),
                Some(version),
                "{id}: device skipped a change"
            );
        }
        for (id, (h, deleted)) in &dev.view {
            if !truth.contains_key(id) && !deleted {
                assert!(
                    dev.expired > 0,
                    "{id}@{h} is live on a device that was never told its cursor expired"
                );
            }
        }
    }
    assert!(
        expired > 0,
        "the slow devices' cursors expired during the run"
    );

    // The old device's cursor predates purged deletes.
    let before = old.expired;
    old.sync(&s).await;
    assert_eq!(old.expired, before + 1, "an old cursor is answered 410");
    for (id, version) in &truth {
        assert_eq!(
            old.view.get(id),
            Some(version),
            "{id}: old device after re-sync"
        );
    }

    let m = scrape(&s.http, &s.url("/metrics")).await;
    assert!(m["ferrosync_compaction_runs_total"] > 0.0);
    assert!(m["ferrosync_compaction_tombstones_purged_total"] > 0.0);
    assert!(m["ferrosync_cursors_expired_total"] >= 1.0);
    Arc::into_inner(s).unwrap().finish().await;
}

/// After any restore the database gets a new epoch (`rotate-epoch`, run with the server
/// stopped): every device's cursor is answered 409 and it re-syncs from the start, with
/// nothing skipped at reused positions.
async fn rotate_epoch_makes_every_device_resync(b: Backend) {
    let s = TestServer::start(b).await;
    let t = token("rotate");
    let w = now_ms();
    for i in 0..5 {
        let (st, _) = s
            .push(
                &t,
                push_body(
                    "w",
                    vec![put("t", &format!("a{i}"), &hlc(w, i, "w"), json!({}))],
                ),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
    }
    let mut dev = Device::new(&t);
    dev.sync(&s).await;
    let db = s.stop().await;
    let out = run_command(&["rotate-epoch", "--database", &db.url]).await;
    assert_ne!(out["epoch"], out["previousEpoch"]);
    let s = TestServer::start_on(db, |_| {}).await;
    // New writes reuse nothing the device could mistake: its cursor is refused.
    let (st, _) = s
        .push(
            &t,
            push_body("w", vec![put("t", "z", &hlc(w + 1, 0, "w"), json!({}))]),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    dev.sync(&s).await;
    assert_eq!(dev.mismatched, 1);
    assert_eq!(dev.view, server_view(&s, &t).await);
    assert_eq!(dev.view.len(), 6);
    s.finish().await;
}

/// Runs `ferrosync-server <args>`; returns its JSON summary (panics on failure).
async fn run_command(args: &[&str]) -> Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrosync-server"))
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

/// The same, expecting failure; returns stderr.
async fn run_failing(args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrosync-server"))
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A backup taken while pushes run is consistent (each namespace's head is its highest feed
/// position); restoring it (refused while the server runs) gives a new epoch; a device whose
/// cursor is past the restored head, and one behind it, both re-sync with nothing skipped, and
/// a device's pending edit is pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_then_restore_resyncs_everyone() {
    let s = Arc::new(TestServer::start(Backend::Sqlite).await);
    let t = token("backup");
    let stop = Arc::new(AtomicBool::new(false));
    let mut pushers = Vec::new();
    for n in 0..4 {
        let (s, t, stop) = (s.clone(), t.clone(), stop.clone());
        pushers.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(SeqCst) {
                let c = format!("p{n}");
                let h = hlc(now_ms(), i, &c);
                let (st, _) = s
                    .push(
                        &t,
                        push_body(&c, vec![put("t", &format!("{c}-{i}"), &h, json!({}))]),
                    )
                    .await;
                assert_eq!(st, StatusCode::OK);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut behind = Device::new(&t);
    behind.sync(&s).await;
    let live = s.db.url.trim_start_matches("sqlite://").to_string();
    let file = format!("{live}.backup");
    let out = run_command(&["backup", "--database", &s.db.url, "--to", &file]).await;
    assert!(out["documents"].as_u64().unwrap() > 0, "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, SeqCst);
    for p in pushers {
        p.await.unwrap();
    }
    let mut ahead = Device::new(&t);
    ahead.sync(&s).await;
    // Consistent: every namespace's head equals its highest position in the copy.
    let copy = rusqlite::Connection::open(&file).unwrap();
    let torn: i64 = copy
        .query_row(
            "SELECT count(*) FROM ferrosync_namespaces n WHERE n.head != \
             (SELECT max(seq) FROM ferrosync_docs d WHERE d.namespace = n.namespace)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(torn, 0);
    drop(copy);

    let err = run_failing(&["restore", "--from", &file, "--database", &s.db.url]).await;
    assert!(err.contains("in use"), "{err}");
    let db = Arc::into_inner(s).unwrap().stop().await;
    let out = run_command(&["restore", "--from", &file, "--database", &db.url]).await;
    assert_ne!(out["epoch"], out["backupEpoch"]);
    let s = TestServer::start_on(db, |_| {}).await;
    // New writes land at positions the old database had already given out.
    let w = now_ms();
    for id in ["x", "y", "z"] {
        let (st, _) = s
            .push(
                &t,
                push_body("n", vec![put("t", id, &hlc(w, 0, "n"), json!({}))]),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
    }
    // A pending edit of the device ahead reaches the restored server.
    let (st, _) = s
        .push(
            &t,
            push_body("a", vec![put("t", "pending", &hlc(w, 1, "a"), json!({}))]),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let truth = server_view(&s, &t).await;
    for dev in [&mut behind, &mut ahead] {
        dev.sync(&s).await;
        assert_eq!(dev.mismatched, 1, "the old epoch's cursor is refused");
        for (id, v) in &truth {
            assert_eq!(dev.view.get(id), Some(v), "{id} skipped after the restore");
        }
    }
    s.finish().await;
}
