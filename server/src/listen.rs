//! The accept loop. `axum::serve` has no deadlines, so a client that sends half its headers, or
//! opens connections and never uses them, held a connection (and a file descriptor) for ever.
//! Here every connection must send its headers within the header deadline (hyper's
//! `header_read_timeout`, which also closes a keep-alive connection left idle that long), and at
//! most `max_connections` are open at once: beyond that, new ones wait in the listen backlog.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Deadlines and caps of the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct ListenLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Descriptors kept free for the database, logs and the listener itself.
const SPARE_FDS: usize = 64;

/// `wanted`, but below the process's open-file limit (read from `/proc` where there is one).
pub fn connection_cap(wanted: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|n| n.parse::<usize>().ok());
    match soft {
        Some(n) => wanted.min(n.saturating_sub(SPARE_FDS)).max(1),
        None => wanted.max(1),
    }
}

/// Serves `app` on `listener` until `stop` turns true, then lets open connections finish their
/// requests and returns when they are all closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenLimits,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    // Every connection task holds a clone; when all are gone, everything has closed.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let sock = tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, _)) => sock,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = sock.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let mut stop = stop.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let conn = builder.serve_connection(TokioIo::new(sock), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
            drop(permit);
            drop(open);
        });
    }
    drop(open_rx);
    open_tx.closed().await;
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
