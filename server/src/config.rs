//! Command line flags, each also settable by an environment variable (`--help` lists both).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ferrosync_core::hlc::DEFAULT_MAX_DRIFT_MS;
use ferrosync_core::limits::DEFAULT_MAX_BODY_BYTES;

use crate::store::{DbTuning, RequestLimits, DEFAULT_MAX_PAGE_BYTES, DEFAULT_MAX_REPLY_BYTES};

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
    /// `jwt`: tokens signed with --jwt-secret (HS256, at least 32 bytes) or checked with
    /// --jwt-public-key / --jwt-jwks (RS256, ES256); the `sub` claim is the namespace.
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

    // ---- Limits against slow, idle and hostile clients ----
    /// A connection must send a request's headers within this many ms, and an idle keep-alive
    /// connection is closed after it.
    #[arg(
        long,
        env = "FERROSYNC_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000,
        help_heading = "Limits"
    )]
    pub header_read_timeout_ms: u64,

    /// A request body must arrive within this many ms (408 REQUEST_TIMEOUT).
    #[arg(
        long,
        env = "FERROSYNC_BODY_READ_TIMEOUT_MS",
        default_value_t = 30_000,
        help_heading = "Limits"
    )]
    pub body_read_timeout_ms: u64,

    /// Most open connections (event streams included); more wait to be accepted. Also kept below
    /// the process's open-file limit.
    #[arg(
        long,
        env = "FERROSYNC_MAX_CONNECTIONS",
        default_value_t = 8192,
        help_heading = "Limits"
    )]
    pub max_connections: usize,

    /// Most open event streams in all (503 UNAVAILABLE beyond).
    #[arg(
        long,
        env = "FERROSYNC_MAX_EVENT_STREAMS",
        default_value_t = 4096,
        help_heading = "Limits"
    )]
    pub max_event_streams: usize,

    /// Most open event streams of one namespace (429 TOO_MANY_STREAMS beyond).
    #[arg(
        long,
        env = "FERROSYNC_MAX_EVENT_STREAMS_PER_NAMESPACE",
        default_value_t = 32,
        help_heading = "Limits"
    )]
    pub max_event_streams_per_namespace: usize,

    /// A pull page stops before passing this many bytes of changes (one change always comes).
    #[arg(long, env = "FERROSYNC_MAX_PAGE_BYTES", default_value_t = DEFAULT_MAX_PAGE_BYTES, help_heading = "Limits")]
    pub max_page_bytes: usize,

    /// A push of several changes whose reply (current versions of stale changes) would pass this
    /// many bytes is refused with 413 before anything is written (the client splits it).
    #[arg(long, env = "FERROSYNC_MAX_REPLY_BYTES", default_value_t = DEFAULT_MAX_REPLY_BYTES, help_heading = "Limits")]
    pub max_reply_bytes: usize,

    /// A push must commit within this many ms, else 503 UNAVAILABLE (nothing written).
    #[arg(
        long,
        env = "FERROSYNC_PUSH_TIMEOUT_MS",
        default_value_t = 30_000,
        help_heading = "Limits"
    )]
    pub push_timeout_ms: u64,

    /// SQLite: how long a write waits for the database's write lock held by another process (a
    /// backup tool, a second server on the same file) before the push fails with 503 UNAVAILABLE.
    #[arg(
        long,
        env = "FERROSYNC_SQLITE_BUSY_TIMEOUT_MS",
        default_value_t = 10_000,
        help_heading = "Limits"
    )]
    pub sqlite_busy_timeout_ms: u64,

    /// PostgreSQL `lock_timeout` of every connection, ms: a push waiting this long for a lock
    /// another transaction holds fails with 503.
    #[arg(
        long,
        env = "FERROSYNC_PG_LOCK_TIMEOUT_MS",
        default_value_t = 5_000,
        help_heading = "Limits"
    )]
    pub pg_lock_timeout_ms: u64,

    /// PostgreSQL `statement_timeout` of every connection, ms.
    #[arg(
        long,
        env = "FERROSYNC_PG_STATEMENT_TIMEOUT_MS",
        default_value_t = 30_000,
        help_heading = "Limits"
    )]
    pub pg_statement_timeout_ms: u64,

    /// PostgreSQL `idle_in_transaction_session_timeout` of every connection, ms.
    #[arg(
        long,
        env = "FERROSYNC_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        default_value_t = 60_000,
        help_heading = "Limits"
    )]
    pub pg_idle_in_transaction_timeout_ms: u64,

    // ---- Identity ----
    /// `--auth jwt`: accepted `aud` values (comma-separated); when set, a token must carry one.
    #[arg(
        long,
        env = "FERROSYNC_JWT_AUDIENCE",
        value_delimiter = ',',
        help_heading = "Identity"
    )]
    pub jwt_audience: Vec<String>,

    /// `--auth jwt`: accepted `iss` values (comma-separated); when set, a token must carry one.
    #[arg(
        long,
        env = "FERROSYNC_JWT_ISSUER",
        value_delimiter = ',',
        help_heading = "Identity"
    )]
    pub jwt_issuer: Vec<String>,

    /// `--auth jwt`: a PEM public key (RSA or EC P-256) for RS256/ES256 tokens, instead of
    /// --jwt-secret.
    #[arg(long, env = "FERROSYNC_JWT_PUBLIC_KEY", help_heading = "Identity")]
    pub jwt_public_key: Option<PathBuf>,

    /// `--auth jwt`: a JWKS (file path or https:// URL) with the identity provider's RS256/ES256
    /// keys; a URL is cached and fetched again when a token names an unknown `kid`.
    #[arg(long, env = "FERROSYNC_JWT_JWKS", help_heading = "Identity")]
    pub jwt_jwks: Option<String>,

    /// `--auth jwt` with a JWKS URL: fetch it again for an unknown `kid` at most this often, so
    /// tokens naming random key ids cannot make the server hammer the identity provider.
    #[arg(
        long,
        env = "FERROSYNC_JWT_JWKS_COOLDOWN",
        default_value = "30s",
        value_parser = crate::duration::parse,
        help_heading = "Identity"
    )]
    pub jwt_jwks_cooldown: Duration,

    /// `--auth jwt` with a JWKS URL: fetch it again once the keys held are this old, so a key the
    /// identity provider withdrew (rotated out, compromised) stops verifying tokens.
    #[arg(
        long,
        env = "FERROSYNC_JWT_JWKS_MAX_AGE",
        default_value = "10m",
        value_parser = crate::duration::parse,
        help_heading = "Identity"
    )]
    pub jwt_jwks_max_age: Duration,

    /// Allow `--auth dev` (any token accepted) on an address other than loopback. Without it the
    /// server refuses to start there.
    #[arg(long, env = "FERROSYNC_ALLOW_DEV_AUTH", help_heading = "Identity")]
    pub allow_dev_auth: bool,

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

    /// The database's time-outs (PostgreSQL session settings, SQLite's busy time-out).
    pub fn db_tuning(&self) -> DbTuning {
        DbTuning {
            lock_timeout_ms: self.pg_lock_timeout_ms,
            statement_timeout_ms: self.pg_statement_timeout_ms,
            idle_in_transaction_timeout_ms: self.pg_idle_in_transaction_timeout_ms,
            sqlite_busy_timeout_ms: self.sqlite_busy_timeout_ms,
        }
    }

    /// Reply and page bounds of pushes and pulls.
    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            max_reply_bytes: self.max_reply_bytes,
            max_page_bytes: self.max_page_bytes.max(1),
        }
    }
}
