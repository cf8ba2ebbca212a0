//! Wiring: the router with its layers, the background tasks, and a running server that shuts
//! down cleanly. [`open`] opens the state, [`router`] serves it (no socket: tests call it with
//! `oneshot`), [`start`] binds the listeners and serves the router on them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::{AuthMode, Config};
use crate::error::ApiError;
use crate::hook::SharedHook;
use crate::listen::{self, ListenLimits};
use crate::metrics::MetricsState;
use crate::request_id::{self, RequestId};
use crate::state::{AppState, StartError};
use crate::store::redact;
use crate::{compact, handlers, metrics, sse};

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
    check_dev_auth(&config)?;
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
    let handle = open(&config, hook).await?;
    let app = router(handle.state.clone());
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
    let limits = ListenLimits {
        header_read_timeout: Duration::from_millis(config.header_read_timeout_ms.max(1)),
        max_connections: listen::connection_cap(config.max_connections),
    };
    let state = handle.state.clone();
    let metrics_app = metrics_listener.map(|l| (l, handle.metrics_router()));
    let task = tokio::spawn(async move {
        if let Some((l, m)) = metrics_app {
            tokio::spawn(listen::serve(l, m, limits, stop.clone()));
        }
        let served = listen::serve(listener, app, limits, stop.clone());
        let mut late = stop;
        let overdue = async move {
            let _ = late.wait_for(|s| *s).await;
            tokio::time::sleep(deadline).await;
        };
        tokio::select! {
            () = served => {}
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

/// Opens the database and everything else `config` names, and starts the background tasks
/// (compaction, PostgreSQL's notices). Serve [`router`] of [`Handle::state`], e.g. mounted in
/// an app's own axum app, and call [`Handle::close`] when the app stops.
pub async fn open(config: &Config, hook: SharedHook) -> Result<Handle, StartError> {
    let (state, shutdown) = AppState::open(config, hook).await?;
    let state = Arc::new(state);
    state.store.spawn_listener(state.shutdown.clone());
    compact::spawn(
        state.clone(),
        config.compact_interval,
        config.retention,
        config.compact_batch,
        state.shutdown.clone(),
    );
    Ok(Handle { state, shutdown })
}

/// Every route of the server, with its layers, over `state`: what the listener serves.
pub fn router(state: Arc<AppState>) -> Router {
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
    app = match &state.site.static_dir {
        Some(dir) => app
            .fallback_service(ServeDir::new(dir))
            .layer(axum::middleware::from_fn(refuse_dotfiles)),
        None => app.fallback(handlers::not_found),
    };
    let mut app = app.with_state(state.clone());
    if state.site.metrics {
        app = app.merge(metrics_router(&state));
    }
    app
        // Every error reply is JSON, including the router's and the file server's own.
        .layer(axum::middleware::map_response(json_errors))
        .layer(state.site.cors.clone())
        .layer(
            TraceLayer::new_for_http()
                // The path only: query strings may carry tokens.
                .make_span_with(|req: &Request<_>| {
                    let id = req.extensions().get::<RequestId>().map_or("", |r| r.0.as_str());
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn(request_id::assign))
}

/// `GET /metrics` alone.
fn metrics_router(state: &Arc<AppState>) -> Router {
    let pools = state.clone();
    let ms = Arc::new(MetricsState {
        metrics: state.metrics.clone(),
        pool: Arc::new(move || pools.store.pool_stats()),
    });
    Router::new()
        .route("/metrics", get(metrics::endpoint))
        .with_state(ms)
}

/// Stops what [`open`] started: event streams, compaction, then the database.
pub struct Handle {
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
}

impl Handle {
    /// The shared state (the store, the metrics), e.g. to run [`compact::run_once`].
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// [`router`] of this state.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// `GET /metrics` alone.
    pub fn metrics_router(&self) -> Router {
        metrics_router(&self.state)
    }

    /// Ends event streams and compaction, lets queued pushes commit, closes the database.
    pub async fn close(self) {
        let _ = self.shutdown.send(true);
        self.state.store.close().await;
    }
}

/// `--auth dev` accepts any token: only on loopback, unless the operator says so explicitly.
fn check_dev_auth(config: &Config) -> Result<(), StartError> {
    if config.auth == AuthMode::Dev && !config.listen.ip().is_loopback() && !config.allow_dev_auth {
        return Err(StartError::Config(format!(
            "--auth dev accepts any bearer token as its namespace, and {} is not a loopback \
             address: use --auth jwt, or pass --allow-dev-auth (FERROSYNC_ALLOW_DEV_AUTH=true) \
             to run it anyway",
            config.listen
        )));
    }
    Ok(())
}

/// Refuses paths with a segment starting with `.` (`/.env`, `/.git/config`, also
/// percent-encoded): dotfiles are never served.
async fn refuse_dotfiles(req: Request<axum::body::Body>, next: axum::middleware::Next) -> Response {
    let path = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8_lossy();
    if path.split(['/', '\\']).any(|seg| seg.starts_with('.')) {
        return ApiError::NotFound("no such file".into()).into_response();
    }
    next.run(req).await
}

/// Turns a bodiless 404 or 405 (axum's own, or the static file server's) into the JSON error
/// every other reply uses.
async fn json_errors(response: Response) -> Response {
    use axum::body::HttpBody as _;
    let empty = response.body().size_hint().exact() == Some(0);
    match response.status() {
        StatusCode::NOT_FOUND if empty => {
            ApiError::NotFound("no such endpoint or file; see docs/PROTOCOL.md".into())
                .into_response()
        }
        StatusCode::METHOD_NOT_ALLOWED if empty => {
            ApiError::MethodNotAllowed("method not allowed here".into()).into_response()
        }
        _ => response,
    }
}
