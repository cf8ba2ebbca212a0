//! Wiring: shared state, the router with its layers, and a running server that shuts down cleanly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, Method, Request};
use axum::routing::{get, post};
use axum::Router;
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
use crate::sse;
use crate::store::{Store, StoreError};

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub events: Events,
    pub auth: Auth,
    pub max_drift_ms: u64,
    pub max_body_bytes: usize,
    /// Turns true when the server shuts down; ends the event streams.
    pub shutdown: watch::Receiver<bool>,
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
    let auth = Auth::new(config.auth, config.jwt_secret.as_deref()).map_err(StartError::Config)?;
    let cors = cors_layer(&config)?;
    let events = Events::new();
    let store = Store::open(&config.database, config.db_connections, events.clone()).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    store.spawn_listener(shutdown_rx.clone());
    let epoch = store.epoch().to_string();
    let state = Arc::new(AppState {
        store,
        events,
        auth,
        max_drift_ms: config.max_drift_ms,
        max_body_bytes: config.max_body_bytes,
        shutdown: shutdown_rx.clone(),
    });

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
    let app = app
        .layer(cors)
        .layer(
            TraceLayer::new_for_http()
                // The path only: query strings may carry tokens.
                .make_span_with(|req: &Request<_>| {
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state.clone());

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
    tracing::info!(%addr, epoch, database = %redact(&config.database), "ferrosync-server listening");
    if config.auth == AuthMode::Dev {
        tracing::warn!(
            "--auth dev: any bearer token is accepted as its own namespace; not for production"
        );
    }

    let mut stop = shutdown_rx;
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "server stopped with an error");
        }
        // In-flight requests are done; give background tasks a moment, then close the pools.
        tokio::time::sleep(Duration::from_millis(10)).await;
        state.store.close().await;
        tracing::info!("stopped");
    });
    Ok(Server {
        addr,
        epoch,
        shutdown: shutdown_tx,
        task,
    })
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
