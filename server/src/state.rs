//! What every handler can reach, and opening it from the configuration: the database, identity,
//! the push hook, limits and metrics. No listener, compaction or notice task starts here (`app.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, Method};
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Auth;
use crate::config::{AuthMode, Config};
use crate::events::Events;
use crate::hook::{HttpHook, PushHook, SharedHook};
use crate::metrics::Metrics;
use crate::store::{RequestLimits, Store, StoreError};
use crate::stream_slots::StreamSlots;

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub events: Events,
    pub auth: Auth,
    pub max_drift_ms: u64,
    pub max_body_bytes: usize,
    /// Turns true when the server shuts down; ends the event streams.
    pub shutdown: watch::Receiver<bool>,
    /// Reply and page bounds of pushes and pulls.
    pub limits: RequestLimits,
    /// A request body must arrive within this (408 after).
    pub body_read_timeout: Duration,
    /// A push must commit within this (503 after).
    pub push_timeout: Duration,
    /// Open event streams, against their caps.
    pub streams: StreamSlots,
    pub metrics: Arc<Metrics>,
    /// The app's own rules on every push, if configured.
    pub hook: SharedHook,
    /// What the router serves besides the protocol.
    pub site: Site,
}

/// What the router serves besides the protocol, and to which origins.
pub struct Site {
    pub cors: CorsLayer,
    /// Static files at `/` (`--static`).
    pub static_dir: Option<PathBuf>,
    /// `/metrics` on the main router too (no `--metrics-listen`).
    pub metrics: bool,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl AppState {
    /// Opens the database (creating it if needed) and everything else `config` names. The
    /// returned sender ends the event streams when it sends `true` (or is dropped).
    pub async fn open(
        config: &Config,
        hook: SharedHook,
    ) -> Result<(AppState, watch::Sender<bool>), StartError> {
        let auth = Auth::from_config(config)
            .await
            .map_err(StartError::Config)?;
        let cors = cors_layer(config)?;
        let hook = match (hook, &config.push_hook) {
            (Some(h), _) => Some(h),
            (None, Some(url)) => Some(Arc::new(
                HttpHook::new(url, config.push_hook_timeout).map_err(StartError::Config)?,
            ) as Arc<dyn PushHook>),
            (None, None) => None,
        };
        let events = Events::new();
        let store = Store::open_tuned(
            &config.database,
            config.db_connections,
            events.clone(),
            config.db_tuning(),
        )
        .await?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = AppState {
            store,
            events,
            auth,
            max_drift_ms: config.max_drift_ms,
            max_body_bytes: config.max_body_bytes,
            shutdown: shutdown_rx,
            limits: config.request_limits(),
            body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
            push_timeout: Duration::from_millis(config.push_timeout_ms),
            streams: StreamSlots::new(
                config.max_event_streams,
                config.max_event_streams_per_namespace,
            ),
            metrics: Arc::new(Metrics::default()),
            hook,
            site: Site {
                cors,
                static_dir: config.static_dir.clone(),
                metrics: config.metrics_listen.is_none(),
            },
        };
        Ok((state, shutdown_tx))
    }
}

fn cors_layer(config: &Config) -> Result<CorsLayer, StartError> {
    let origins: Vec<&str> = config
        .cors_origins
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    let allow = if origins.contains(&"*") || (origins.is_empty() && config.auth == AuthMode::Dev) {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o)
                    .map_err(|_| StartError::Config(format!("invalid CORS origin {o:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600)))
}
