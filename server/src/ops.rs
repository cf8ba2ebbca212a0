//! Operator commands: `backup`, `restore`, `rotate-epoch`, `compact` (`ferrosync-server <command>`).
//! Each prints one JSON line saying what it did, and exits non-zero with a message otherwise.
//!
//! Every restore path ends with a new epoch: a restored database reuses feed positions the old one
//! had already given out, and a device that kept a cursor from before would skip the changes now
//! written at those positions. With a new epoch every cursor gets 409 `CURSOR_EPOCH_MISMATCH`
//! and every device re-syncs from the start, keeping its pending changes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use crate::events::Events;
use crate::metrics::Metrics;
use crate::store::new_epoch;
use crate::store::url::{parse_sqlite, SqliteUrl};
use crate::store::Store;

/// The first arguments that select an operator command instead of running the server.
pub const COMMANDS: [&str; 4] = ["backup", "restore", "rotate-epoch", "compact"];

#[derive(Parser, Debug)]
#[command(
    name = "ferrosync-server",
    about = "ferrosync-server operator commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Copies a SQLite database to a new file: one consistent snapshot, taken while the server
    /// runs (readers and the writer are not blocked). PostgreSQL: see docs/OPERATIONS.md.
    Backup {
        #[arg(long, env = "FERROSYNC_DATABASE")]
        database: String,
        /// The backup file to create (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Replaces a SQLite database with a backup and gives it a new epoch. The server must be
    /// stopped (refused while it has the database open).
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        #[arg(long, env = "FERROSYNC_DATABASE")]
        database: String,
    },
    /// Gives a database a new epoch, so every device re-syncs from the start. Run it after any
    /// restore done by other means (a PostgreSQL restore, a file copy), with the servers stopped
    /// (refused while one has the database open).
    RotateEpoch {
        #[arg(long, env = "FERROSYNC_DATABASE")]
        database: String,
    },
    /// Runs one compaction pass now (the server also runs them every --compact-interval).
    Compact {
        #[arg(long, env = "FERROSYNC_DATABASE")]
        database: String,
        #[arg(long, env = "FERROSYNC_RETENTION", default_value = "30d", value_parser = crate::duration::parse)]
        retention: Duration,
        #[arg(long, env = "FERROSYNC_COMPACT_BATCH", default_value_t = 500)]
        batch: usize,
    },
}

/// Runs the command in `args` (`args[1]` is one of [`COMMANDS`]).
pub async fn main(args: Vec<String>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let started = Instant::now();
    let result = match cli.command {
        Command::Backup { database, to } => {
            let from = sqlite_path(&database);
            blocking(move || backup(&from?, &to)).await
        }
        Command::Restore { from, database } => {
            let to = sqlite_path(&database);
            blocking(move || restore(&from, &to?)).await
        }
        Command::RotateEpoch { database } => rotate(&database).await,
        Command::Compact {
            database,
            retention,
            batch,
        } => compact(&database, retention, batch).await,
    };
    match result {
        Ok(mut summary) => {
            summary["ms"] = json!(started.elapsed().as_millis() as u64);
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferrosync-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn blocking(
    f: impl FnOnce() -> Result<serde_json::Value, String> + Send + 'static,
) -> Result<serde_json::Value, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
}

/// The file of a `sqlite:` URL.
fn sqlite_path(url: &str) -> Result<PathBuf, String> {
    if !url.starts_with("sqlite:") {
        return Err(format!(
            "this command needs a sqlite:// database; for PostgreSQL see docs/OPERATIONS.md (got {:?})",
            url.split("://").next().unwrap_or("")
        ));
    }
    match parse_sqlite(url)? {
        SqliteUrl::Memory => Err("an in-memory database has nothing to back up or restore".into()),
        SqliteUrl::File(path) => Ok(path),
    }
}

fn sql(e: rusqlite::Error) -> String {
    format!("sqlite: {e}")
}

fn io(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// The epoch a database file holds.
fn epoch_of(conn: &Connection) -> Result<String, String> {
    conn.query_row(
        "SELECT value FROM ferrosync_meta WHERE key = 'epoch'",
        [],
        |r| r.get(0),
    )
    .map_err(|e| format!("not a ferrosync database (no epoch): {e}"))
}

/// `PRAGMA quick_check` says "ok".
fn check(conn: &Connection, path: &Path) -> Result<(), String> {
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(sql)?;
    if verdict != "ok" {
        return Err(format!("{} is damaged: {verdict}", path.display()));
    }
    Ok(())
}

/// `fsync` a file and its directory, so a rename that follows is durable.
fn sync(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("cannot sync", path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Directories cannot be opened for syncing everywhere; best effort.
        let _ = std::fs::File::open(dir).and_then(|f| f.sync_all());
    }
    Ok(())
}

/// `VACUUM INTO`: one read transaction (a snapshot of the last commit; the server's writer goes
/// on), written compactly to a new file, checked, then renamed into place.
fn backup(from: &Path, to: &Path) -> Result<serde_json::Value, String> {
    if !from.exists() {
        return Err(format!("{} does not exist", from.display()));
    }
    if to.exists() {
        return Err(format!("{} exists; backups never overwrite", to.display()));
    }
    let partial = with_suffix(to, ".partial");
    let _ = std::fs::remove_file(&partial);
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql)?;
    src.busy_timeout(Duration::from_secs(30)).map_err(sql)?;
    let epoch = epoch_of(&src)?;
    src.execute("VACUUM INTO ?1", [partial.to_string_lossy()])
        .map_err(sql)?;
    drop(src);
    let copy = Connection::open(&partial).map_err(sql)?;
    check(&copy, &partial)?;
    let docs: i64 = copy
        .query_row("SELECT count(*) FROM ferrosync_docs", [], |r| r.get(0))
        .map_err(sql)?;
    drop(copy);
    sync(&partial)?;
    std::fs::rename(&partial, to).map_err(|e| io("cannot rename into", to, e))?;
    sync(to)?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(json!({ "backup": to, "epoch": epoch, "documents": docs, "bytes": bytes }))
}

/// Fails when another connection has the database open (a running server holds a shared lock
/// on it for as long as it runs, in WAL mode).
fn ensure_unused(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    conn.busy_timeout(Duration::from_millis(200)).map_err(sql)?;
    let in_use = || {
        format!(
            "{} is in use (is the server still running?): stop every server process first",
            path.display()
        )
    };
    conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))
        .map_err(sql)?;
    conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
        .map_err(|_| in_use())?;
    Ok(conn)
}

/// Backup → `<database>.restoring` → new epoch → checked → renamed over the database.
fn restore(from: &Path, to: &Path) -> Result<serde_json::Value, String> {
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open the backup {}: {e}", from.display()))?;
    check(&source, from)?;
    let backup_epoch = epoch_of(&source)?;
    drop(source);
    let previous = if to.exists() {
        let live = ensure_unused(to)?;
        let e = epoch_of(&live).ok();
        // Closing the last connection folds the log into the file and removes it.
        live.close().map_err(|(_, e)| sql(e))?;
        e
    } else {
        None
    };
    let staged = with_suffix(to, ".restoring");
    let _ = std::fs::remove_file(&staged);
    std::fs::copy(from, &staged).map_err(|e| io("cannot copy to", &staged, e))?;
    let epoch = new_epoch();
    {
        let conn = Connection::open(&staged).map_err(sql)?;
        conn.execute(
            "UPDATE ferrosync_meta SET value = ?1 WHERE key = 'epoch'",
            [&epoch],
        )
        .map_err(sql)?;
        check(&conn, &staged)?;
        conn.close().map_err(|(_, e)| sql(e))?;
    }
    sync(&staged)?;
    // A log left beside the old file would be replayed into the new one.
    for ext in ["-wal", "-shm"] {
        let p = with_suffix(to, ext);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| io("cannot remove", &p, e))?;
        }
    }
    std::fs::rename(&staged, to).map_err(|e| io("cannot rename into", to, e))?;
    sync(to)?;
    Ok(json!({
        "restored": to, "from": from, "epoch": epoch,
        "backupEpoch": backup_epoch, "previousEpoch": previous,
    }))
}

/// A new epoch, in place.
async fn rotate(url: &str) -> Result<serde_json::Value, String> {
    let epoch = new_epoch();
    if url.starts_with("sqlite:") {
        let path = sqlite_path(url)?;
        let e = epoch.clone();
        return blocking(move || {
            let conn = ensure_unused(&path)?;
            let previous = epoch_of(&conn)?;
            conn.execute(
                "UPDATE ferrosync_meta SET value = ?1 WHERE key = 'epoch'",
                [&e],
            )
            .map_err(sql)?;
            conn.close().map_err(|(_, e)| sql(e))?;
            Ok(json!({ "database": path, "epoch": e, "previousEpoch": previous }))
        })
        .await;
    }
    let pool = sqlx::PgPool::connect(url)
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    let previous: String =
        sqlx::query_scalar("SELECT value FROM ferrosync_meta WHERE key = 'epoch'")
            .fetch_one(&pool)
            .await
            .map_err(|e| format!("not a ferrosync database (no epoch): {e}"))?;
    // A running server caches the epoch and would go on accepting old cursors over the restored
    // rows (skipping changes at reused positions): refuse while one listens for this epoch's
    // notices. Only sessions of roles whose queries we may see are found. A server that has just
    // stopped leaves its session behind for a moment: look again for up to two seconds.
    let mut servers = 0;
    for _ in 0..20 {
        servers = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND query ILIKE 'listen%' AND strpos(query, $1) > 0",
        )
        .bind(format!("ferrosync_{previous}"))
        .fetch_one(&pool)
        .await
        .map_err(|e| format!("postgres: {e}"))?;
        if servers == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if servers > 0 {
        pool.close().await;
        return Err(format!(
            "the database is in use by {servers} running server process(es) \
             (listening for epoch {previous}): stop every server process first"
        ));
    }
    sqlx::query("UPDATE ferrosync_meta SET value = $1 WHERE key = 'epoch'")
        .bind(&epoch)
        .execute(&pool)
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    pool.close().await;
    Ok(json!({ "epoch": epoch, "previousEpoch": previous }))
}

async fn compact(
    url: &str,
    retention: Duration,
    batch: usize,
) -> Result<serde_json::Value, String> {
    let store = Store::open(url, 2, Events::new())
        .await
        .map_err(|e| e.to_string())?;
    let metrics = Metrics::default();
    let result = crate::compact::run_once(&store, &metrics, retention, batch).await;
    store.close().await;
    let r = result.map_err(|e| e.to_string())?;
    Ok(json!({
        "namespaces": r.namespaces, "tombstonesPurged": r.tombstones, "replaysPurged": r.replays,
    }))
}

/// `path` with `suffix` appended to its file name (`db.sqlite` + `-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
