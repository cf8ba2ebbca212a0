//! Wiring: shared state, the router with its layers, and a running server that shuts down cleanly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, Method, Request};
use axum::routing::{get, post};
use axum::{middleware, Router};
use std::future::IntoFuture;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::Auth;
use crate::config::{AuthMode, Config};
use crate::events::Events;
use crate::handlers;
use crate::hook::{HttpHook, SharedHook};
use crate::metrics::{Metrics, MetricsState};
use crate::request_id::{self, RequestId};
use crate::sse;
use crate::store::{Store, StoreError};
use crate::{compact, metrics};

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub events: Events,
    pub auth: Auth,
    pub max_drift_ms: u64,
    pub max_body_bytes: usize,
    /// Turns true when the server shuts down; ends the event streams.
    pub shutdown: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    /// The app's own rules on every push, if configured.
    pub hook: SharedHook,
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

/// A running server.
pub struct Server {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `--metrics-listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// The database's epoch.
    pub epoch: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Stops accepting connections, ends event streams, finishes in-flight requests, closes the database.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Runs until `signal` completes, then shuts down.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Opens the database, binds the listener and starts serving in the background.
pub async fn start(config: Config) -> Result<Server, StartError> {
    start_with(config, None).await
}

/// [`start`], with the push hook given as code (`--push-hook` is ignored then).
pub async fn start_with(config: Config, hook: SharedHook) -> Result<Server, StartError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|source| StartError::Listen { addr: a, source })?,
        ),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(
            l.local_addr()
                .map_err(|source| StartError::Listen { addr, source })?,
        ),
        None => None,
    };
    let (app, handle) = router(config.clone(), hook).await?;
    let epoch = handle.state.store.epoch().to_string();
    tracing::info!(%addr, epoch, database = %redact(&config.database), "ferrosync-server listening");
    if let Some(a) = metrics_addr {
        tracing::info!(addr = %a, "metrics listening");
    }
    if config.auth == AuthMode::Dev {
        tracing::warn!(
            "--auth dev: any bearer token is accepted as its own namespace; not for production"
        );
    }

    let stop = handle.shutdown.subscribe();
    let deadline = config.shutdown_timeout;
    let state = handle.state.clone();
    let metrics_app = metrics_listener.map(|l| (l, handle.metrics_router()));
    let task = tokio::spawn(async move {
        if let Some((l, m)) = metrics_app {
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let _ = axum::serve(l, m)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
            });
        }
        let mut graceful = stop.clone();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = graceful.wait_for(|s| *s).await;
            })
            .into_future();
        let mut late = stop;
        let overdue = async move {
            let _ = late.wait_for(|s| *s).await;
            tokio::time::sleep(deadline).await;
        };
        tokio::select! {
            served = served => {
                if let Err(e) = served {
                    tracing::error!(error = %e, "server stopped with an error");
                }
            }
            _ = overdue => tracing::warn!(
                ?deadline,
                "shutdown deadline passed with requests still open; closing anyway"
            ),
        }
        // In-flight requests are done; give background tasks a moment, then close the pools
        // (queued pushes are committed first).
        tokio::time::sleep(Duration::from_millis(10)).await;
        state.store.close().await;
        tracing::info!("stopped");
    });
    Ok(Server {
        addr,
        metrics_addr,
        epoch,
        shutdown: handle.shutdown,
        task,
    })
}

/// The server without a listener, for an app that mounts it in its own axum app. Serve
/// `router` (with `into_make_service`), and call [`Handle::close`] when the app stops.
pub async fn router(config: Config, hook: SharedHook) -> Result<(Router, Handle), StartError> {
    let auth = Auth::new(config.auth, config.jwt_secret.as_deref()).map_err(StartError::Config)?;
    let cors = cors_layer(&config)?;
    let hook = match (hook, &config.push_hook) {
        (Some(h), _) => Some(h),
        (None, Some(url)) => Some(Arc::new(
            HttpHook::new(url, config.push_hook_timeout).map_err(StartError::Config)?,
        ) as Arc<dyn crate::hook::PushHook>),
        (None, None) => None,
    };
    let events = Events::new();
    let store = Store::open(&config.database, config.db_connections, events.clone()).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    store.spawn_listener(shutdown_rx.clone());
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(AppState {
        store,
        events,
        auth,
        max_drift_ms: config.max_drift_ms,
        max_body_bytes: config.max_body_bytes,
        shutdown: shutdown_rx.clone(),
        metrics: metrics.clone(),
        hook,
    });
    compact::spawn(
        state.clone(),
        config.compact_interval,
        config.retention,
        config.compact_batch,
        shutdown_rx.clone(),
    );
    let handle = Handle {
        state: state.clone(),
        shutdown: shutdown_tx,
    };

    let v1 = Router::new()
        .route("/push", post(handlers::push))
        .route("/pull", get(handlers::pull))
        .route("/events", get(sse::events))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed);
    let mut app = Router::new()
        .route("/healthz", get(handlers::healthz))
        .nest("/v1", v1)
        .method_not_allowed_fallback(handlers::method_not_allowed);
    app = match &config.static_dir {
        Some(dir) => app.fallback_service(ServeDir::new(dir)),
        None => app.fallback(handlers::not_found),
    };
    let mut app = app.with_state(state.clone());
    if config.metrics_listen.is_none() {
        app = app.merge(handle.metrics_router());
    }
    let app = app
        .layer(cors)
        .layer(
            TraceLayer::new_for_http()
                // The path only: query strings may carry tokens.
                .make_span_with(|req: &Request<_>| {
                    let id = req.extensions().get::<RequestId>().map_or("", |r| r.0.as_str());
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(middleware::from_fn_with_state(metrics, metrics::track))
        .layer(middleware::from_fn(request_id::assign));
    Ok((app, handle))
}

/// Stops what [`router`] started: event streams, compaction, then the database.
pub struct Handle {
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
}

impl Handle {
    /// The shared state (the store, the metrics), e.g. to run [`compact::run_once`].
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// `GET /metrics` alone.
    pub fn metrics_router(&self) -> Router {
        let state = self.state.clone();
        let ms = Arc::new(MetricsState {
            metrics: self.state.metrics.clone(),
            pool: Arc::new(move || state.store.pool_stats()),
        });
        Router::new()
            .route("/metrics", get(metrics::endpoint))
            .with_state(ms)
    }

    /// Ends event streams and compaction, lets queued pushes commit, closes the database.
    pub async fn close(self) {
        let _ = self.shutdown.send(true);
        self.state.store.close().await;
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

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
