//! Command line flags, each also settable by an environment variable (`--help` lists both).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use ferrosync_core::hlc::DEFAULT_MAX_DRIFT_MS;
use ferrosync_core::limits::DEFAULT_MAX_BODY_BYTES;

#[derive(Parser, Clone, Debug)]
#[command(
    name = "ferrosync-server",
    version,
    about = "Reference sync server for ferrosync"
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
