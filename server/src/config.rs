//! Command line flags, each also settable by an environment variable (`--help` lists both).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ferrosync_core::hlc::DEFAULT_MAX_DRIFT_MS;
use ferrosync_core::limits::DEFAULT_MAX_BODY_BYTES;

#[derive(Parser, Clone, Debug)]
#[command(
    name = "ferrosync-server",
    version,
    about = "Reference sync server for ferrosync",
    after_help = "Operations (run `ferrosync-server <command> --help`; docs/OPERATIONS.md):\n  \
                  backup        copy a running SQLite database consistently to a file\n  \
                  restore       put a SQLite backup in place (server stopped) with a new epoch\n  \
                  rotate-epoch  give a database a new epoch (after any restore; server stopped)\n  \
                  compact       run one compaction pass now"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "FERROSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// `sqlite://path/to/file.db` (created on first start, WAL mode) or `postgres://user@host/db`.
    #[arg(
        long,
        env = "FERROSYNC_DATABASE",
        default_value = "sqlite://data/ferrosync.db"
    )]
    pub database: String,

    /// Directory of static files served at `/` (the PWA demo and the built package).
    #[arg(long = "static", env = "FERROSYNC_STATIC")]
    pub static_dir: Option<PathBuf>,

    /// `dev`: any bearer token is accepted and is its own namespace (demo and tests only).
    /// `jwt`: HS256 tokens signed with --jwt-secret; the `sub` claim is the namespace.
    #[arg(long, env = "FERROSYNC_AUTH", value_enum, default_value_t = AuthMode::Dev)]
    pub auth: AuthMode,

    /// Shared secret for `--auth jwt`.
    #[arg(long, env = "FERROSYNC_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Refuse pushed timestamps more than this many ms ahead of the server clock (CLOCK_AHEAD).
    #[arg(long, env = "FERROSYNC_MAX_DRIFT_MS", default_value_t = DEFAULT_MAX_DRIFT_MS)]
    pub max_drift_ms: u64,

    /// Largest accepted request body; larger ones get 413 PAYLOAD_TOO_LARGE.
    #[arg(long, env = "FERROSYNC_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Comma-separated origins allowed by CORS (`*` for any). Empty: any origin with `--auth dev`,
    /// none with `--auth jwt`.
    #[arg(long, env = "FERROSYNC_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Most database connections per server process. SQLite: this many readers but at most one
    /// per core (reads are CPU work; more would take the writer's CPU), plus the writer and the
    /// checkpointer. PostgreSQL: the pool, a quarter of it (1-4) writing.
    #[arg(long, env = "FERROSYNC_DB_CONNECTIONS", default_value_t = 16)]
    pub db_connections: u32,

    /// Log format: human-readable text or one JSON object per line. Levels via RUST_LOG.
    #[arg(long, env = "FERROSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    // ---- Operations (docs/OPERATIONS.md) ----
    /// How long tombstones and clients' replay rows are kept (e.g. 30d, 12h). A device offline
    /// longer than this re-syncs from the start (410 CURSOR_EXPIRED).
    #[arg(long, env = "FERROSYNC_RETENTION", default_value = "30d", value_parser = crate::duration::parse)]
    pub retention: Duration,

    /// How often compaction runs (0: never). Each run purges in small transactions.
    #[arg(long, env = "FERROSYNC_COMPACT_INTERVAL", default_value = "1h", value_parser = crate::duration::parse)]
    pub compact_interval: Duration,

    /// Most feed rows one compaction transaction examines (how long it may hold the write lock).
    #[arg(long, env = "FERROSYNC_COMPACT_BATCH", default_value_t = 500)]
    pub compact_batch: usize,

    /// Serve `/metrics` on this address only, instead of on --listen.
    #[arg(long, env = "FERROSYNC_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// On SIGTERM: stop accepting, let requests in flight finish, end event streams; exit after
    /// this long at most.
    #[arg(long, env = "FERROSYNC_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = crate::duration::parse)]
    pub shutdown_timeout: Duration,

    /// URL the server POSTs every push to before commit (the app's own rules; see
    /// docs/OPERATIONS.md). Unreachable or late: the push gets 503 HOOK_UNAVAILABLE.
    #[arg(long, env = "FERROSYNC_PUSH_HOOK")]
    pub push_hook: Option<String>,

    /// How long to wait for the push hook.
    #[arg(long, env = "FERROSYNC_PUSH_HOOK_TIMEOUT", default_value = "2s", value_parser = crate::duration::parse)]
    pub push_hook_timeout: Duration,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    Dev,
    Jwt,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Defaults for embedding the server (tests, benchmarks) with the given database URL.
    pub fn for_database(database: impl Into<String>) -> Config {
        let mut c = Config::parse_from(["ferrosync-server"]);
        c.database = database.into();
        c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c
    }
}
