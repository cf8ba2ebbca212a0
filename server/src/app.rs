//! Wiring: shared state, the router with its layers, and a running server that shuts down cleanly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::Auth;
use crate::config::{AuthMode, Config};
use crate::error::ApiError;
use crate::events::Events;
use crate::handlers;
use crate::hook::{HttpHook, SharedHook};
use crate::listen::{self, ListenLimits};
use crate::metrics::{Metrics, MetricsState};
use crate::request_id::{self, RequestId};
use crate::sse;
use crate::store::{DbTuning, RequestLimits, Store, StoreError};
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
    /// Reply and page bounds of pushes and pulls.
    pub limits: RequestLimits,
    /// A request body must arrive within this (408 after).
    pub body_read_timeout: Duration,
    /// A push must commit within this (503 after).
    pub push_timeout: Duration,
    /// Open event streams, against their caps.
    pub streams: sse::StreamSlots,
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

/// The server without a listener, for an app that mounts it in its own axum app. Serve
/// `router` (with `into_make_service`), and call [`Handle::close`] when the app stops.
pub async fn router(config: Config, hook: SharedHook) -> Result<(Router, Handle), StartError> {
    let auth = Auth::from_config(&config)
        .await
        .map_err(StartError::Config)?;
    let cors = cors_layer(&config)?;
    let hook = match (hook, &config.push_hook) {
        (Some(h), _) => Some(h),
        (None, Some(url)) => Some(Arc::new(
            HttpHook::new(url, config.push_hook_timeout).map_err(StartError::Config)?,
        ) as Arc<dyn crate::hook::PushHook>),
        (None, None) => None,
    };
    let events = Events::new();
    let store = Store::open_tuned(
        &config.database,
        config.db_connections,
        events.clone(),
        DbTuning::from_config(&config),
    )
    .await?;
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
        limits: RequestLimits {
            max_reply_bytes: config.max_reply_bytes,
            max_page_bytes: config.max_page_bytes.max(1),
        },
        body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
        push_timeout: Duration::from_millis(config.push_timeout_ms),
        streams: sse::StreamSlots::new(
            config.max_event_streams,
            config.max_event_streams_per_namespace,
        ),
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
        Some(dir) => app
            .fallback_service(ServeDir::new(dir))
            .layer(axum::middleware::from_fn(refuse_dotfiles)),
        None => app.fallback(handlers::not_found),
    };
    let mut app = app.with_state(state.clone());
    if config.metrics_listen.is_none() {
        app = app.merge(handle.metrics_router());
    }
    let app = app
        // Every error reply is JSON, including the router's and the file server's own.
        .layer(axum::middleware::map_response(json_errors))
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

/// Query parameters of a database URL whose values are secrets (matched as substrings of the
/// lower-cased name: `password`, `sslpassword`, `sslkey`, `token`...).
const SECRET_PARAMS: [&str; 5] = ["pass", "secret", "token", "key", "auth"];

/// A database URL without its secrets (the user-info password and secret-looking query
/// parameters), for logs and errors.
pub fn redact(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let mut out = match (main.find("://"), main.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &main[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &main[..s + 3], &main[at..]),
                None => main.to_string(),
            }
        }
        _ => main.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _))
                    if SECRET_PARAMS
                        .iter()
                        .any(|s| k.to_ascii_lowercase().contains(s)) =>
                {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Refuses paths with a segment starting with `.` (`/.env`, `/.git/config`, also
/// percent-encoded): dotfiles are never served.
async fn refuse_dotfiles(req: Request<axum::body::Body>, next: axum::middleware::Next) -> Response {
    let path = percent_decode(req.uri().path());
    if path.split(['/', '\\']).any(|seg| seg.starts_with('.')) {
        return ApiError::NotFound("no such file".into()).into_response();
    }
    next.run(req).await
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
