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
use ferrosync_server::cursor::Cursor;
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(
    compaction_under_load_skips_nothing,
    rotate_epoch_makes_every_device_resync,
    rotate_epoch_refuses_while_a_server_runs,
    a_restore_that_kept_the_epoch_is_caught_at_a_reused_position
);

/// `(collection, id)` -> `(hlc, deleted)`.
type View = HashMap<String, (String, bool)>;

/// A device: pulls into its view; on 410 forgets its cursor and pulls from the start.
#[derive(Debug)]
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
    run_sql(db, sql, true).await
}

/// Runs SQL statements on the test database.
async fn exec(db: &FreshDb, sql: &str) {
    run_sql(db, sql, false).await;
}

/// A batch of statements, or (`count`) one query whose single integer it returns.
async fn run_sql(db: &FreshDb, sql: &str, count: bool) -> i64 {
    match db.backend {
        Backend::Sqlite => {
            let path = db.url.trim_start_matches("sqlite://").to_string();
            let sql = sql.to_string();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).unwrap();
                if count {
                    conn.query_row(&sql, [], |r| r.get::<_, i64>(0)).unwrap()
                } else {
                    conn.execute_batch(&sql).unwrap();
                    0
                }
            })
            .await
            .unwrap()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let n = if count {
                sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
            } else {
                sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                0
            };
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
                        if (round + k).is_multiple_of(2) {
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

/// A database restored by hand from an older copy, keeping its epoch (the operator skipped
/// `rotate-epoch`), then written to past a device's cursor: the positions after the restored head
/// are reused for other changes. The cursor names the change it was at, so the device is answered
/// 409 and re-syncs instead of silently skipping the changes written since the restore. A cursor
/// whose change was merely rewritten since (no restore) goes on as before.
async fn a_restore_that_kept_the_epoch_is_caught_at_a_reused_position(b: Backend) {
    let s = TestServer::start(b).await;
    let t = token("reused");
    let w = now_ms();
    async fn push(s: &TestServer, t: &str, w: u64, id: String, i: u32) {
        let body = push_body("w", vec![put("t", &id, &hlc(w, i, "w"), json!({}))]);
        assert_eq!(s.push(t, body).await.0, StatusCode::OK);
    }
    for i in 0..5 {
        push(&s, &t, w, format!("a{i}"), i).await; // positions 1..5
    }
    let mut ahead = Device::new(&t);
    ahead.sync(&s).await;
    assert!(
        ahead.cursor.as_deref().unwrap().contains(":5~"),
        "{ahead:?}"
    );
    // Not a restore: the change at the cursor is rewritten (it moves to position 6).
    let mut rewritten = Device::new(&t);
    rewritten.sync(&s).await;
    push(&s, &t, w, "a4".into(), 9).await;
    rewritten.sync(&s).await;
    assert_eq!(rewritten.mismatched, 0);
    assert_eq!(rewritten.view, server_view(&s, &t).await);
    let db = s.stop().await;
    // The copy taken when the head was at 2.
    exec(
        &db,
        "DELETE FROM ferrosync_docs WHERE seq > 2; UPDATE ferrosync_namespaces SET head = 2;",
    )
    .await;
    let s = TestServer::start_on(db, |_| {}).await;
    for i in 0..5 {
        push(&s, &t, w, format!("b{i}"), 10 + i).await; // positions 3..7 again
    }
    ahead.sync(&s).await;
    assert_eq!(ahead.mismatched, 1, "the reused position was not caught");
    let server = server_view(&s, &t).await;
    for (id, v) in &server {
        assert_eq!(
            ahead.view.get(id),
            Some(v),
            "{id} skipped after the restore"
        );
    }
    assert_eq!(server.len(), 7);
    s.finish().await;
}

/// `rotate-epoch` with a server still running on the database is refused: that server keeps its
/// cached epoch and would go on answering old cursors over the restored data, skipping changes
/// at reused positions without an error anywhere. Nothing changes; after the server stops it works.
async fn rotate_epoch_refuses_while_a_server_runs(b: Backend) {
    let s = TestServer::start(b).await;
    let t = token("rotate-live");
    let (st, _) = s
        .push(
            &t,
            push_body("w", vec![put("t", "a", &hlc(now_ms(), 0, "w"), json!({}))]),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, cursor) = s.pull_all(&t, None).await;
    let epoch = epoch_of(&s).await;
    if b == Backend::Postgres {
        // A server is seen by its notification connection, which it opens just after starting.
        let listening = format!("ferrosync_{epoch}");
        let mut seen = false;
        for _ in 0..100 {
            let sql = format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND query ILIKE 'listen%{listening}%'"
            );
            if count(&s.db, &sql).await > 0 {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen, "the server never listened on {listening}");
    }
    let err = run_failing(&["rotate-epoch", "--database", &s.db.url]).await;
    assert!(err.contains("in use"), "{err}");
    // The running server's cursors are still this epoch's.
    assert_eq!(s.pull(&t, Some(&cursor), None).await.0, StatusCode::OK);
    assert_eq!(epoch_of(&s).await, epoch);
    let db = s.stop().await;
    let out = run_command(&["rotate-epoch", "--database", &db.url]).await;
    assert_eq!(out["previousEpoch"], epoch.as_str(), "{out}");
    let s = TestServer::start_on(db, |_| {}).await;
    let (st, body) = s.pull(&t, Some(&cursor), None).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("CURSOR_EPOCH_MISMATCH"))
    );
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

/// A device that writes as well as reads: its edits wait in `pending` until a push is answered.
#[cfg(ferrosync_pg)]
struct Writer {
    dev: Device,
    client: String,
    next: u32,
    pending: Vec<Value>,
}

#[cfg(ferrosync_pg)]
impl Writer {
    fn new(token: &str, client: &str) -> Writer {
        Writer {
            dev: Device::new(token),
            client: client.to_string(),
            next: 0,
            pending: Vec::new(),
        }
    }

    /// Queues a change to `id`, versioned above everything this device wrote before.
    fn edit(&mut self, id: &str, deleted: bool) -> (String, String) {
        let h = hlc(now_ms(), self.next, &self.client);
        self.next += 1;
        self.pending.push(if deleted {
            del("t", id, &h)
        } else {
            put("t", id, &h, json!({ "by": self.client }))
        });
        (id.to_string(), h)
    }

    /// Pushes every pending change; they leave `pending` only once the server answered 200.
    async fn push(&mut self, s: &TestServer) {
        if self.pending.is_empty() {
            return;
        }
        let (st, body) = s
            .push(
                &self.dev.token,
                push_body(&self.client, self.pending.clone()),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        for r in body["results"].as_array().unwrap() {
            assert_ne!(r["status"], "rejected", "{body}");
        }
        self.pending.clear();
    }
}

/// The PostgreSQL client tools matching the test cluster: the binary's path and the server's
/// major version. Debian keeps them in `/usr/lib/postgresql/<major>/bin` (`/usr/bin/pg_dump` is a
/// wrapper that picks a version by its own rules); otherwise whatever is on PATH.
#[cfg(ferrosync_pg)]
async fn pg_tool(base: &str, name: &str) -> (String, u32) {
    let pool = sqlx::PgPool::connect(base).await.unwrap();
    let num: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let major = num.parse::<u32>().unwrap() / 10000;
    let mut dirs: Vec<(u32, String)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin").join(name);
            bin.exists().then(|| (v, bin.display().to_string()))
        })
        .collect();
    dirs.sort();
    // The server's own version, else the newest (pg_dump reads older servers, never newer ones).
    let path = dirs
        .iter()
        .find(|(v, _)| *v == major)
        .or(dirs.last())
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| name.to_string());
    let out = tokio::process::Command::new(&path)
        .arg("--version")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("{name} not found ({path}): {e}; install the PostgreSQL client tools")
        });
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    let tool_major: u32 = version
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the version of {path}: {version}"));
    assert!(
        tool_major >= major,
        "{path} is version {tool_major} ({}) but the server is PostgreSQL {major}: \
         {name} must be at least the server's major version",
        version.trim()
    );
    (path, major)
}

/// Drops the test's schema and restored database when the test ends, even by a panic.
#[cfg(ferrosync_pg)]
struct PgCleanup {
    base: String,
    schema: String,
    database: String,
}

#[cfg(ferrosync_pg)]
impl Drop for PgCleanup {
    fn drop(&mut self) {
        let base = self.base.clone();
        let sql = [
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
        ];
        // On its own thread: `drop` cannot await, and the test's runtime may be unwinding.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                    for q in &sql {
                        let _ = sqlx::query(q).execute(&pool).await;
                    }
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// Runs a PostgreSQL tool; panics with its output when it fails.
#[cfg(ferrosync_pg)]
async fn run_pg_tool(path: &str, args: &[&str]) {
    let out = tokio::process::Command::new(path)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{path} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The PostgreSQL procedure of docs/OPERATIONS.md, under load: `pg_dump -Fc` of the server's
/// schema while four devices push and pull (a fifth last pulled before it); pushes go on after
/// the dump; the dump is restored with `pg_restore --clean --if-exists` into a fresh database,
/// `rotate-epoch` runs, and a server starts on it. Every device's next pull is answered 409 `CURSOR_EPOCH_MISMATCH`, it re-syncs
/// from the start and receives every change the restored database holds, once; the edits each
/// device made offline after the dump are pushed and end on the server.
#[cfg(ferrosync_pg)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_under_load_then_restore_resyncs_everyone() {
    let base = std::env::var("DATABASE_URL").unwrap();
    let (pg_dump, major) = pg_tool(&base, "pg_dump").await;
    let (pg_restore, _) = pg_tool(&base, "pg_restore").await;
    let s = Arc::new(TestServer::start(Backend::Postgres).await);
    let schema = s.db.schema().unwrap().to_string();
    let name = format!("fs_restore_{:016x}", rand::random::<u64>());
    let _cleanup = PgCleanup {
        base: base.clone(),
        schema: schema.clone(),
        database: name.clone(),
    };
    let old_epoch = epoch_of(&s).await;
    let t = token("pgbackup");
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..4 {
        let (s, t, stop) = (s.clone(), t.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = Writer::new(&t, &format!("d{n}"));
            let mut i = 0u32;
            while !stop.load(SeqCst) {
                w.edit(&format!("d{n}-{i}"), false);
                if i.is_multiple_of(3) {
                    w.edit(&format!("shared-{}", i % 5), false);
                }
                if i % 7 == 6 {
                    w.edit(&format!("d{n}-{}", i - 3), true);
                }
                w.push(&s).await;
                w.dev.sync(&s).await;
                i += 1;
            }
            w
        }));
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    // A reader that last pulled before the dump: its cursor is behind the restored head.
    let mut behind = Writer::new(&t, "behind");
    behind.dev.sync(&s).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let dump = tempfile::tempdir().unwrap();
    let file = dump.path().join("db.dump").display().to_string();
    run_pg_tool(
        &pg_dump,
        &[
            "-Fc",
            "-n",
            &schema,
            "-f",
            &file,
            &format!("--dbname={base}"),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, SeqCst);
    let mut writers = vec![behind];
    for task in tasks {
        writers.push(task.await.unwrap());
    }
    let live_docs = count(&s.db, "SELECT count(*) FROM ferrosync_docs").await;
    // Stop every server process first (they cache the epoch).
    Arc::into_inner(s).unwrap().stop().await;

    // Offline after the dump: a new document, a rewrite and a delete of documents the dump holds.
    let mut offline = Vec::new();
    for w in &mut writers[1..] {
        let c = w.client.clone();
        offline.push(w.edit(&format!("{c}-offline"), false));
        offline.push(w.edit(&format!("{c}-0"), false));
        offline.push(w.edit(&format!("{c}-1"), true));
    }

    // A fresh database in the same cluster, restored as the doc says.
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let (head, query) = base.split_once('?').unwrap_or((&base, ""));
    let restored = format!("{}/{name}", head.rsplit_once('/').unwrap().0);
    let restored = if query.is_empty() {
        restored
    } else {
        format!("{restored}?{query}")
    };
    run_pg_tool(
        &pg_restore,
        &["--clean", "--if-exists", "-d", &restored, &file],
    )
    .await;
    let sep = if restored.contains('?') { '&' } else { '?' };
    let url = format!("{restored}{sep}options[search_path]={schema}");
    let db = FreshDb::existing(url.clone(), Backend::Postgres);
    // Consistent: every namespace's head is its highest feed position; pushes went on after it.
    let torn = count(
        &db,
        "SELECT count(*) FROM ferrosync_namespaces n WHERE n.head != \
         (SELECT max(seq) FROM ferrosync_docs d WHERE d.namespace = n.namespace)",
    )
    .await;
    assert_eq!(torn, 0, "pg_dump {major} gave a torn copy");
    let dumped = count(&db, "SELECT count(*) FROM ferrosync_docs").await;
    assert!(
        0 < dumped && dumped < live_docs,
        "the dump ({dumped} documents) was not taken under load ({live_docs} at the end)"
    );

    let out = run_command(&["rotate-epoch", "--database", &url]).await;
    assert_eq!(out["previousEpoch"], old_epoch.as_str(), "{out}");
    assert_ne!(out["epoch"], out["previousEpoch"]);
    let s = TestServer::start_on(db, |_| {}).await;
    assert_eq!(epoch_of(&s).await, out["epoch"].as_str().unwrap());
    // Half the devices pull first, half push their offline edits first.
    for (n, w) in writers.iter_mut().enumerate() {
        if n % 2 == 0 {
            w.dev.sync(&s).await;
            w.push(&s).await;
        } else {
            w.push(&s).await;
            w.dev.sync(&s).await;
        }
    }
    for w in &mut writers {
        w.dev.sync(&s).await;
    }
    let (feed, _) = s.pull_all(&t, None).await;
    let truth = server_view(&s, &t).await;
    assert_eq!(feed.len(), truth.len(), "a document twice in the feed");
    assert_eq!(
        truth.len() as i64,
        count(&s.db, "SELECT count(*) FROM ferrosync_docs").await
    );
    for (id, h) in &offline {
        assert_eq!(
            truth.get(id).map(|v| &v.0),
            Some(h),
            "the offline edit {id}@{h} is not on the restored server"
        );
    }
    for w in &writers {
        assert_eq!(
            w.dev.mismatched, 1,
            "{}: the old epoch's cursor is refused once",
            w.client
        );
        for (id, (h, _)) in &truth {
            assert!(
                w.dev.seen.contains(&(id.clone(), h.clone())),
                "{}: {id}@{h} skipped after the restore",
                w.client
            );
        }
    }
    s.stop().await;
}

/// `/metrics` after known traffic: exact counters by route and status, latency counts, stale
/// changes, an open event stream; request ids in the header and in error bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_request_ids_after_known_traffic() {
    let s = TestServer::start(Backend::Sqlite).await;
    let t = token("metrics");
    let w = now_ms();
    let (st, _) = s
        .push(
            &t,
            push_body(
                "c",
                vec![
                    put("t", "a", &hlc(w, 5, "c"), json!({})),
                    put("t", "b", &hlc(w, 0, "c"), json!({})),
                ],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, body) = s
        .push(
            &t,
            push_body("d", vec![put("t", "a", &hlc(w, 1, "d"), json!({}))]),
        )
        .await;
    assert_eq!(body["results"][0]["status"], "stale", "{st} {body}");
    for _ in 0..2 {
        assert_eq!(s.pull(&t, None, None).await.0, StatusCode::OK);
    }
    // An error: its body and header carry the same request id; a client's own id is kept.
    let r = s
        .http
        .get(s.url("/v1/pull"))
        .header("x-request-id", "support-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "support-42");
    let (st, body) = json_reply(r).await;
    assert_eq!(
        (st, body["requestId"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("support-42"))
    );
    let stream = s
        .http
        .get(s.url("/v1/events"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let mut events = SseReader::new(stream);
    events.next(Duration::from_secs(5)).await;

    let m = scrape(&s.http, &s.url("/metrics")).await;
    let req = |route: &str, method: &str, status: u16| {
        m.get(&format!(
            "ferrosync_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
        ))
        .copied()
        .unwrap_or(0.0)
    };
    assert_eq!(req("/v1/push", "POST", 200), 2.0);
    assert_eq!(req("/v1/pull", "GET", 200), 2.0);
    assert_eq!(req("/v1/pull", "GET", 401), 1.0);
    assert_eq!(req("/v1/events", "GET", 200), 1.0);
    assert_eq!(m["ferrosync_push_duration_seconds_count"], 2.0);
    assert_eq!(
        m["ferrosync_push_duration_seconds_bucket{le=\"+Inf\"}"],
        2.0
    );
    assert_eq!(m["ferrosync_pull_duration_seconds_count"], 2.0);
    assert_eq!(m["ferrosync_changes_applied_total"], 2.0);
    assert_eq!(m["ferrosync_changes_stale_total"], 1.0);
    assert!(m["ferrosync_pulled_bytes_total"] > 100.0);
    assert_eq!(m["ferrosync_event_streams_open"], 1.0);
    drop(events);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = scrape(&s.http, &s.url("/metrics")).await;
    assert_eq!(
        m["ferrosync_event_streams_open"], 0.0,
        "a closed stream is counted out"
    );
    s.finish().await;
}

/// The app's rules as Rust code: titles over 200 characters refused, whitespace trimmed. The
/// trimmed version is stored above the pushed HLC, so the writer's own pull brings it back.
struct TitleRules;

impl ferrosync_server::PushHook for TitleRules {
    fn check<'a>(
        &'a self,
        req: &'a ferrosync_server::HookRequest,
    ) -> ferrosync_server::hook::HookFuture<'a> {
        use ferrosync_server::Verdict;
        Box::pin(async move {
            Ok(req
                .changes
                .iter()
                .map(|c| {
                    // A document arrives as JSON text: the hook reads what it needs.
                    let doc = c.doc.as_ref().map(|d| d.parse().unwrap());
                    let title = doc.as_ref().and_then(|d| d["title"].as_str()).unwrap_or("");
                    if title.chars().count() > 200 {
                        Verdict::Reject {
                            code: "TITLE_TOO_LONG".into(),
                            message: "titles are at most 200 characters".into(),
                        }
                    } else if title.trim() != title {
                        let mut doc = doc.clone().unwrap();
                        doc["title"] = json!(title.trim());
                        Verdict::Replace { doc }
                    } else {
                        Verdict::Accept
                    }
                })
                .collect())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_hook_refuses_and_replaces() {
    let db = FreshDb::new(Backend::Sqlite).await;
    let config = ferrosync_server::Config::for_database(db.url.clone());
    let server = ferrosync_server::start_with(config, Some(Arc::new(TitleRules)))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let t = token("hook");
    let w = now_ms();
    let pushed = hlc(w, 0, "c");
    let body = push_body(
        "c",
        vec![
            put("t", "ok", &hlc(w, 1, "c"), json!({"title": "fine"})),
            put(
                "t",
                "long",
                &hlc(w, 2, "c"),
                json!({"title": "x".repeat(201)}),
            ),
            put("t", "pad", &pushed, json!({"title": "  padded  "})),
        ],
    );
    let send = || {
        http.post(format!("{base}/v1/push"))
            .bearer_auth(&t)
            .json(&body)
            .send()
    };
    let (st, reply) = json_reply(send().await.unwrap()).await;
    assert_eq!(st, StatusCode::OK, "{reply}");
    let r = &reply["results"];
    assert_eq!(r[0], json!({"status": "applied"}));
    assert_eq!(r[1]["status"], "rejected");
    assert_eq!(r[1]["error"]["code"], "TITLE_TOO_LONG");
    assert_eq!(r[2], json!({"status": "applied"}));
    // A retry gets the same answer.
    let (_, again) = json_reply(send().await.unwrap()).await;
    assert_eq!(again["results"], reply["results"]);
    let r = http
        .get(format!("{base}/v1/pull"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let (_, page) = json_reply(r).await;
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "the refused change is not stored: {page}");
    let pad = changes.iter().find(|c| c["id"] == "pad").unwrap();
    assert_eq!(pad["doc"]["title"], "padded");
    let stored = pad["hlc"].as_str().unwrap();
    assert!(
        stored > pushed.as_str() && stored.ends_with("-ferrosync-hook"),
        "{stored}"
    );
    server.shutdown().await;
}

/// An HTTP hook that is down or too slow: 503 HOOK_UNAVAILABLE and nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_hook_down_or_slow_is_503() {
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = slow.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = slow.accept().await {
            held.push(sock); // never answers
        }
    });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for hook in [
        format!("http://{closed}/hook"),
        format!("http://{slow_addr}/hook"),
    ] {
        let s = TestServer::start_with(Backend::Sqlite, |c| {
            c.push_hook = Some(hook.clone());
            c.push_hook_timeout = Duration::from_millis(300);
        })
        .await;
        let t = token("hookdown");
        let (st, body) = s
            .push_raw(
                &t,
                push_body("c", vec![put("t", "a", &hlc(now_ms(), 0, "c"), json!({}))]).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "HOOK_UNAVAILABLE");
        assert!(s.pull_all(&t, None).await.0.is_empty(), "nothing stored");
        s.finish().await;
    }
}

/// `examples/push-hook/hook.py` behind a real server: a long title is refused, a padded one
/// trimmed and brought back to the writer above its own version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example_hook_end_to_end() {
    use tokio::io::AsyncBufReadExt;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/push-hook/hook.py");
    let mut hook = tokio::process::Command::new("python3")
        .args([script, "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = tokio::io::BufReader::new(hook.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = format!("{}/hook", line.trim_start_matches("listening on "));
    let s = TestServer::start_with(Backend::Sqlite, |c| c.push_hook = Some(url)).await;
    let t = token("pyhook");
    let w = now_ms();
    let pushed = hlc(w, 0, "c");
    let (st, reply) = s
        .push_raw(
            &t,
            push_body(
                "c",
                vec![
                    put(
                        "t",
                        "long",
                        &hlc(w, 1, "c"),
                        json!({"title": "y".repeat(201)}),
                    ),
                    put("t", "pad", &pushed, json!({"title": " hi "})),
                    del("t", "gone", &hlc(w, 2, "c")),
                ],
            )
            .to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{reply}");
    assert_eq!(reply["results"][0]["error"]["code"], "TITLE_TOO_LONG");
    assert_eq!(reply["results"][1]["status"], "applied");
    assert_eq!(reply["results"][2]["status"], "applied");
    let (changes, _) = s.pull_all(&t, None).await;
    let pad = changes.iter().find(|c| c["id"] == "pad").unwrap();
    assert_eq!(pad["doc"]["title"], "hi");
    assert!(pad["hlc"].as_str().unwrap() > pushed.as_str());
    assert!(changes.iter().all(|c| c["id"] != "long"));
    s.finish().await;
}

/// SIGTERM to the real binary in the middle of eight pushers and an event stream: the stream
/// ends, the process exits within its deadline, every acknowledged change is stored, and every
/// push cut off without a reply is answered when retried (replayed or applied once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_loses_nothing() {
    let db = FreshDb::new(Backend::Sqlite).await;
    let mut proc = ServerProcess::spawn(&db.url, &["--shutdown-timeout", "5s"]).await;
    let base = proc.base.clone();
    let t = token("term");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let stream = http
        .get(format!("{base}/v1/events"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let mut events = SseReader::new(stream);
    events.next(Duration::from_secs(5)).await;
    let mut pushers = Vec::new();
    for n in 0..8 {
        let (http, base, t) = (http.clone(), base.clone(), t.clone());
        pushers.push(tokio::spawn(async move {
            let client = format!("p{n}");
            let (mut acked, mut unsure) = (Vec::new(), None);
            for i in 0u32.. {
                let id = format!("{client}-{i}");
                let body = push_body(
                    &client,
                    vec![put("t", &id, &hlc(now_ms(), i, &client), json!({}))],
                );
                match http
                    .post(format!("{base}/v1/push"))
                    .bearer_auth(&t)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::OK => {
                        r.text()
                            .await
                            .ok()
                            .map(|_| acked.push(id))
                            .unwrap_or_else(|| {
                                unsure = Some(body.clone());
                            });
                        if unsure.is_some() {
                            break;
                        }
                    }
                    _ => {
                        unsure = Some(body);
                        break;
                    }
                }
            }
            (acked, unsure)
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = proc.child.id().unwrap().to_string();
    let started = std::time::Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(10), proc.child.wait())
        .await
        .expect("exits within the deadline")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(6));
    // Events announced before the stop may still be buffered; then the stream ends.
    tokio::time::timeout(Duration::from_secs(2), async {
        while events.next_inner().await.is_some() {}
    })
    .await
    .expect("the event stream ended");
    let mut acked = Vec::new();
    let mut unsure = Vec::new();
    for p in pushers {
        let (a, u) = p.await.unwrap();
        acked.extend(a);
        unsure.extend(u);
    }
    assert!(acked.len() > 8, "load was running: {}", acked.len());
    let s = TestServer::start_on(db, |_| {}).await;
    for body in &unsure {
        let (st, reply) = s.push(&t, body.clone()).await;
        assert_eq!(st, StatusCode::OK, "{reply}");
        acked.push(body["changes"][0]["id"].as_str().unwrap().to_string());
    }
    let stored: HashSet<String> = server_view(&s, &t).await.into_keys().collect();
    for id in &acked {
        assert!(
            stored.contains(id),
            "{id} was acknowledged (or retried) but is not stored"
        );
    }
    s.finish().await;
}

/// Database size before and after compacting a delete-heavy history (SQLite): 20,000 documents
/// written then deleted; the `compact` command (run beside the live server, horizon 0) purges
/// the tombstones and the pages they used become free. Prints the figures (docs/BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_heavy_history_shrinks_after_compaction() {
    let s = TestServer::start_with(Backend::Sqlite, |c| c.compact_interval = Duration::ZERO).await;
    let t = token("size");
    let n = 20_000u32;
    let w = now_ms();
    for deleted in [false, true] {
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let changes = chunk
                .iter()
                .map(|i| {
                    let id = format!("doc-{i:06}");
                    if deleted {
                        del("t", &id, &hlc(w, i + 1, "c"))
                    } else {
                        put(
                            "t",
                            &id,
                            &hlc(w - 1, *i, "c"),
                            json!({"title": "x".repeat(150)}),
                        )
                    }
                })
                .collect();
            let (st, body) = s.push_raw(&t, push_body("c", changes).to_string()).await;
            assert_eq!(st, StatusCode::OK, "{body}");
        }
    }
    let used = "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size";
    let before = count(&s.db, used).await;
    assert_eq!(
        count(&s.db, "SELECT count(*) FROM ferrosync_docs WHERE deleted").await,
        n as i64
    );
    let out = run_command(&["compact", "--database", &s.db.url, "--retention", "0s"]).await;
    assert_eq!(out["tombstonesPurged"], n, "{out}");
    let after = count(&s.db, used).await;
    assert_eq!(count(&s.db, "SELECT count(*) FROM ferrosync_docs").await, 0);
    eprintln!(
        "delete-heavy history, {n} documents written then deleted: {before} bytes in use before \
         compaction, {after} after ({} ms)",
        out["ms"]
    );
    assert!(after * 4 < before, "{before} -> {after}");
    // A cursor from before the purge has expired; a fresh device starts empty.
    let (st, body) = s
        .pull(
            &t,
            Some(&Cursor::at(&epoch_of(&s).await, &t, 1).encode()),
            None,
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("CURSOR_EXPIRED"))
    );
    assert!(s.pull_all(&t, None).await.0.is_empty());
    s.finish().await;
}

/// The epoch in this server's cursors.
async fn epoch_of(s: &TestServer) -> String {
    let (_, body) = s.pull(&token("epoch"), None, None).await;
    // A cursor is `<epoch>.<namespace tag>:<seq>`.
    body["cursor"]
        .as_str()
        .unwrap()
        .split(['.', ':'])
        .next()
        .unwrap()
        .to_string()
}

/// The real binary with `--log-format json --metrics-listen`: the request's log lines carry its
/// id; `/metrics` is served on its own address only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_and_metrics_listen_apart() {
    use tokio::io::AsyncBufReadExt;
    let db = FreshDb::new(Backend::Sqlite).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrosync-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db.url,
            "--log-format",
            "json",
        ])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut addr, mut metrics) = (None, None);
    while addr.is_none() || metrics.is_none() {
        let v = next_json(&mut lines).await;
        match v["fields"]["message"].as_str() {
            Some("ferrosync-server listening") => {
                addr = v["fields"]["addr"].as_str().map(String::from)
            }
            Some("metrics listening") => metrics = v["fields"]["addr"].as_str().map(String::from),
            _ => {}
        }
    }
    let (addr, metrics) = (addr.unwrap(), metrics.unwrap());
    let http = reqwest::Client::new();
    let r = http
        .get(format!("http://{addr}/v1/pull"))
        .bearer_auth("ns")
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    loop {
        let v = next_json(&mut lines).await;
        if v.to_string().contains("trace-me-1") {
            assert_eq!(v["span"]["request_id"], "trace-me-1", "{v}");
            break;
        }
    }
    let r = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let m = scrape(&http, &format!("http://{metrics}/metrics")).await;
    assert_eq!(
        m["ferrosync_http_requests_total{route=\"/v1/pull\",method=\"GET\",status=\"200\"}"],
        1.0
    );
}

/// The next line of a child's JSON log.
async fn next_json(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a log line in time")
        .unwrap()
        .expect("server still running");
    serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("not JSON: {e}: {line}"))
}

/// An app mounts the server's router in its own axum app, under its own prefix, next to its
/// own routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_mounts_in_an_app() {
    let db = FreshDb::new(Backend::Sqlite).await;
    let config = ferrosync_server::Config::for_database(db.url.clone());
    let handle = ferrosync_server::open(&config, None).await.unwrap();
    let sync = ferrosync_server::router(handle.state().clone());
    let app = axum::Router::new()
        .route("/app/hello", axum::routing::get(|| async { "hi" }))
        .nest("/sync", sync);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let t = token("mounted");
    let body = push_body("c", vec![put("t", "a", &hlc(now_ms(), 0, "c"), json!({}))]);
    let r = http
        .post(format!("http://{addr}/sync/v1/push"))
        .bearer_auth(&t)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .get(format!("http://{addr}/sync/v1/pull"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let (_, page) = json_reply(r).await;
    assert_eq!(page["changes"][0]["id"], "a");
    let r = http
        .get(format!("http://{addr}/app/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "hi");
    served.abort();
    handle.close().await;
}
