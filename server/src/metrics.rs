//! `/metrics` in the Prometheus text format (version 0.0.4): requests by route and status, push
//! and pull latency, changes applied, stale and refused, bytes pulled, open event streams, the
//! database pool, compaction. Counters are plain atomics: recording costs a few nanoseconds and
//! needs no exporter crate. Routes are a fixed list (never the raw path), so label values stay few.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use crate::store::ops::{CompactReport, PoolStats};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum of the observations in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Every figure the server reports.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    pub push_seconds: Histogram,
    pub pull_seconds: Histogram,
    pub changes_applied: AtomicU64,
    pub changes_stale: AtomicU64,
    pub changes_rejected: AtomicU64,
    pub bytes_pulled: AtomicU64,
    pub event_streams: AtomicI64,
    pub cursors_expired: AtomicU64,
    pub compaction_runs: AtomicU64,
    pub compaction_failures: AtomicU64,
    pub tombstones_purged: AtomicU64,
    pub replays_purged: AtomicU64,
    pub hook_calls: AtomicU64,
    pub hook_failures: AtomicU64,
    pub hook_seconds: Histogram,
}

/// The fixed route label of a request path.
fn route(path: &str) -> &'static str {
    match path {
        "/v1/push" => "/v1/push",
        "/v1/pull" => "/v1/pull",
        "/v1/events" => "/v1/events",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        p if p.starts_with("/v1/") => "/v1/other",
        _ => "other",
    }
}

fn method_label(m: &axum::http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "OPTIONS" => "OPTIONS",
        "HEAD" => "HEAD",
        _ => "other",
    }
}

impl Metrics {
    pub fn record_compaction(&self, r: &CompactReport) {
        self.compaction_runs.fetch_add(1, Relaxed);
        self.tombstones_purged.fetch_add(r.tombstones, Relaxed);
        self.replays_purged.fetch_add(r.replays, Relaxed);
    }

    /// The text exposition, with the pool figures read now.
    pub fn render(&self, pool: PoolStats) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP ferrosync_http_requests_total HTTP requests by route, method and status.\n\
             # TYPE ferrosync_http_requests_total counter"
        );
        for ((r, m, s), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "ferrosync_http_requests_total{{route=\"{r}\",method=\"{m}\",status=\"{s}\"}} {n}"
            );
        }
        self.push_seconds.render(
            &mut out,
            "ferrosync_push_duration_seconds",
            "Time to answer a push (200 replies), including the commit.",
        );
        self.pull_seconds.render(
            &mut out,
            "ferrosync_pull_duration_seconds",
            "Time to answer a pull (200 replies).",
        );
        self.hook_seconds.render(
            &mut out,
            "ferrosync_push_hook_duration_seconds",
            "Time the push hook took to answer.",
        );
        let counters: [(&str, &str, u64); 11] = [
            (
                "ferrosync_changes_applied_total",
                "Pushed changes answered applied.",
                self.changes_applied.load(Relaxed),
            ),
            (
                "ferrosync_changes_stale_total",
                "Pushed changes answered stale.",
                self.changes_stale.load(Relaxed),
            ),
            (
                "ferrosync_changes_rejected_total",
                "Pushed changes refused by the push hook.",
                self.changes_rejected.load(Relaxed),
            ),
            (
                "ferrosync_pulled_bytes_total",
                "Bytes of pull replies sent.",
                self.bytes_pulled.load(Relaxed),
            ),
            (
                "ferrosync_cursors_expired_total",
                "Pulls answered 410 CURSOR_EXPIRED.",
                self.cursors_expired.load(Relaxed),
            ),
            (
                "ferrosync_compaction_runs_total",
                "Compaction runs completed.",
                self.compaction_runs.load(Relaxed),
            ),
            (
                "ferrosync_compaction_failures_total",
                "Compaction runs that failed (retried next time).",
                self.compaction_failures.load(Relaxed),
            ),
            (
                "ferrosync_compaction_tombstones_purged_total",
                "Tombstones purged by compaction.",
                self.tombstones_purged.load(Relaxed),
            ),
            (
                "ferrosync_compaction_replays_purged_total",
                "Replay rows (clients' last pushes) purged by compaction.",
                self.replays_purged.load(Relaxed),
            ),
            (
                "ferrosync_push_hook_calls_total",
                "Calls to the push hook.",
                self.hook_calls.load(Relaxed),
            ),
            (
                "ferrosync_push_hook_failures_total",
                "Push hook calls that failed or timed out (503 to the client).",
                self.hook_failures.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let gauges: [(&str, &str, i64); 4] = [
            (
                "ferrosync_event_streams_open",
                "Event streams open now.",
                self.event_streams.load(Relaxed),
            ),
            (
                "ferrosync_db_connections_in_use",
                "Database connections in use (SQLite: readers).",
                pool.in_use as i64,
            ),
            (
                "ferrosync_db_connections_idle",
                "Database connections idle (SQLite: readers).",
                pool.idle as i64,
            ),
            (
                "ferrosync_push_queue",
                "Pushes waiting for the writer (SQLite).",
                pool.queued_pushes as i64,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

/// What the metrics middleware and endpoint need.
pub struct MetricsState {
    pub metrics: Arc<Metrics>,
    pub pool: Arc<dyn Fn() -> PoolStats + Send + Sync>,
}

/// `GET /metrics`.
pub async fn endpoint(State(s): State<Arc<MetricsState>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render((s.pool)()),
    )
        .into_response()
}

/// Middleware: counts every request by route and status, times pushes and pulls, counts pulled
/// bytes and keeps the open event streams gauge (decremented when the stream's body is dropped).
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = route(req.uri().path());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    {
        let mut requests = m.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests
            .entry((route, method, status.as_u16()))
            .or_insert(0) += 1;
    }
    if status != StatusCode::OK {
        return response;
    }
    let seconds = started.elapsed().as_secs_f64();
    match route {
        "/v1/push" => m.push_seconds.observe(seconds),
        "/v1/pull" => {
            m.pull_seconds.observe(seconds);
            if let Some(n) = response.body().size_hint().exact() {
                m.bytes_pulled.fetch_add(n, Relaxed);
            }
        }
        "/v1/events" => {
            let (parts, body) = response.into_parts();
            let open = StreamOpen::new(m.clone());
            let body = body.into_data_stream().map(move |chunk| {
                let _ = &open;
                chunk
            });
            return Response::from_parts(parts, Body::from_stream(body));
        }
        _ => {}
    }
    response
}

/// Counts an open event stream for as long as it lives.
struct StreamOpen(Arc<Metrics>);

impl StreamOpen {
    fn new(m: Arc<Metrics>) -> StreamOpen {
        m.event_streams.fetch_add(1, Relaxed);
        StreamOpen(m)
    }
}

impl Drop for StreamOpen {
    fn drop(&mut self) {
        self.0.event_streams.fetch_sub(1, Relaxed);
    }
}
