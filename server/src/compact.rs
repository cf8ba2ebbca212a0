//! The compaction loop: every `--compact-interval`, purge tombstones and replay rows older than
//! `--retention` (see `store/ops.rs` for how, and docs/OPERATIONS.md for the trade-off).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::ops::{CompactReport, Compaction};
use crate::store::{Store, StoreError};

/// One run now, counted in `metrics`.
pub async fn run_once(
    store: &Store,
    metrics: &Metrics,
    retention: Duration,
    batch: usize,
) -> Result<CompactReport, StoreError> {
    let started = Instant::now();
    let result = store
        .compact(Compaction {
            retention_ms: retention.as_millis() as u64,
            now_ms: now_ms(),
            batch,
        })
        .await;
    match &result {
        Ok(r) => {
            metrics.record_compaction(r);
            if r.tombstones + r.replays > 0 {
                tracing::info!(
                    tombstones = r.tombstones,
                    replays = r.replays,
                    namespaces = r.namespaces,
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "compacted"
                );
            }
        }
        Err(e) => {
            metrics.compaction_failures.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "compaction failed; retrying next interval");
        }
    }
    result
}

/// Runs compaction every `interval` until `shutdown` (nothing when `interval` is zero). The
/// first run comes one interval after start, so starting many processes does not stampede.
pub fn spawn(
    state: Arc<AppState>,
    interval: Duration,
    retention: Duration,
    batch: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            // A run in progress finishes its batch; the next one is not started after shutdown.
            tokio::select! {
                _ = run_once(&state.store, &state.metrics, retention, batch) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    });
}
