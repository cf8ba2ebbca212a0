//! Load benchmark: a real server on loopback (in this process, or `--url` of a running one) and
//! `--clients` concurrent clients pushing and pulling for a bounded time, first single-change
//! pushes, then 100-change pushes, each as fast as the server answers (every client sends its next
//! push when the last is answered: the server's capacity), then each again at a fixed offered rate
//! (`--fixed-rates`, by default the targets: 2,000 single-change pushes/s and 20,000 changes/s in
//! 100-change pushes), where latency is what a client sees at that load. Prints throughput and
//! latency percentiles, then checks that every acknowledged change is in the feed exactly once and
//! that following the feed with cursors saw all of them.
//!
//! Why both: with clients that never pause, latency is set by throughput alone (Little's law: the
//! mean is clients x batch / changes per second), so those phases measure capacity. The fixed-rate
//! phases measure latency at a given load, open loop: each client has a schedule (pushes evenly
//! spaced, clients staggered), and a push's latency runs from its scheduled time, so a client held
//! up by a slow reply (or by its own pull) counts the delay instead of hiding it (no coordinated
//! omission). A server that cannot keep up shows it as a falling rate and a growing p99.
//!
//! `--hostile <seconds>` adds the attack rows: one client of an unrelated namespace pushes single
//! changes back to back, quietly, then while an attacker sends the amplification push (1000 stale
//! changes naming one document that holds a 100 KB field, about 81 KB), then beside 300 half-open
//! connections (half the headers, or 1 byte of a 100,000-byte body), then quietly again; each row
//! prints that client's push p50/p99, what the attacker got back and the process's RSS.
//!
//! cargo run --release -p ferrosync-load -- --seconds 10 --database sqlite:///tmp/load.db

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use clap::Parser;
use ferrosync_core::protocol::{Change, PullResponse, PushRequest, PushResponse, PushStatus};
use ferrosync_core::HlcClock;
use serde_json::json;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "ferrosync-load",
    about = "Load benchmark for ferrosync-server (loopback only)"
)]
struct Args {
    /// Seconds per phase (single-change pushes, then 100-change pushes).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Database for the in-process server: sqlite://path or postgres://...
    #[arg(long, default_value = "sqlite://target-load/load.db")]
    database: String,
    /// Benchmark an already running server instead (must be --auth dev, on loopback).
    #[arg(long)]
    url: Option<String>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Namespaces the clients are spread over (1: everybody shares one).
    #[arg(long, default_value_t = 8)]
    namespaces: usize,
    /// Each client pulls its namespace's new changes this often (ms).
    #[arg(long, default_value_t = 250)]
    pull_every_ms: u64,
    /// Changes per push in the batch phase.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Offered load of the fixed-rate phases: single-change pushes per second, then changes per
    /// second in batches (0,0 skips them).
    #[arg(long, value_delimiter = ',', num_args = 2, default_values_t = [2000, 20000])]
    fixed_rates: Vec<u64>,
    /// Seconds per attack row (quiet, amplification, 300 half-open connections, quiet); 0 skips
    /// them.
    #[arg(long, default_value_t = 0)]
    hostile: u64,
}

/// A pull reply as the simulated devices read it during the run: ids and clocks only, so that the
/// clients, which share the two cores with the server here, spend little on parsing documents. The
/// final check parses full `PullResponse`s.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LitePull {
    changes: Vec<LiteChange>,
    cursor: String,
    has_more: bool,
}

#[derive(serde::Deserialize)]
struct LiteChange {
    id: String,
    hlc: String,
}

#[derive(Default)]
struct ClientStats {
    push_us: Vec<u32>,
    pull_us: Vec<u32>,
    pushed: u64,
    pulled: u64,
    /// (id, hlc) of every change the server acknowledged as applied.
    acked: Vec<(String, String)>,
    errors: u64,
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    clock: HlcClock,
    name: String,
    next_id: u64,
    cursor: Option<String>,
    /// Every (id, hlc) this client saw by following its namespace's feed, in feed order. A list,
    /// not a map: this runs during the measured phases, on the cores the server uses; the final
    /// check builds the map.
    seen: Vec<(String, String)>,
}

fn now_ms() -> u64 {
    ferrosync_server::clock::now_ms()
}

impl Client {
    fn change(&mut self) -> Change {
        self.next_id += 1;
        let id = format!("{}-{}", self.name, self.next_id);
        let hlc = self.clock.tick(now_ms());
        Change {
            collection: "tasks".into(),
            doc: Some(
                json!({
                    "id": id,
                    "title": format!("task {} of {}", self.next_id, self.name),
                    "done": self.next_id.is_multiple_of(3),
                    "rank": self.next_id,
                    "note": "the quick brown fox jumps over the lazy dog"
                })
                .into(),
            ),
            id,
            hlc,
            deleted: false,
            fields: None,
            base: None,
        }
    }

    /// One push of `n` changes; its latency runs from `scheduled` (fixed-rate phases) or from
    /// just before it is sent.
    async fn push(&mut self, n: usize, stats: &mut ClientStats, scheduled: Option<Instant>) {
        let changes: Vec<Change> = (0..n).map(|_| self.change()).collect();
        let req = PushRequest {
            client_id: self.name.clone(),
            changes,
            cursor: None,
        };
        let t = scheduled.unwrap_or_else(Instant::now);
        let res = self
            .http
            .post(format!("{}/v1/push", self.base))
            .bearer_auth(&self.token)
            .json(&req)
            .send()
            .await;
        let reply = match res {
            Ok(r) if r.status().is_success() => r.json::<PushResponse>().await.ok(),
            Ok(r) => {
                eprintln!(
                    "push failed: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
                None
            }
            Err(e) => {
                eprintln!("push failed: {e}");
                None
            }
        };
        let Some(reply) = reply else {
            stats.errors += 1;
            return;
        };
        stats.push_us.push(t.elapsed().as_micros() as u32);
        stats.pushed += n as u64;
        for (c, r) in req.changes.iter().zip(&reply.results) {
            if r.status == PushStatus::Applied {
                stats.acked.push((c.id.clone(), c.hlc.encode()));
            }
        }
    }

    /// Pulls until caught up.
    async fn pull(&mut self, stats: &mut ClientStats) {
        loop {
            let mut q = vec![("limit", "1000".to_string())];
            if let Some(c) = &self.cursor {
                q.push(("cursor", c.clone()));
            }
            let t = Instant::now();
            let res = self
                .http
                .get(format!("{}/v1/pull", self.base))
                .bearer_auth(&self.token)
                .query(&q)
                .send()
                .await;
            let page = match res {
                Ok(r) if r.status().is_success() => r.json::<LitePull>().await.ok(),
                _ => None,
            };
            let Some(page) = page else {
                stats.errors += 1;
                return;
            };
            stats.pull_us.push(t.elapsed().as_micros() as u32);
            stats.pulled += page.changes.len() as u64;
            for c in page.changes {
                self.seen.push((c.id, c.hlc));
            }
            self.cursor = Some(page.cursor);
            if !page.has_more {
                return;
            }
        }
    }
}

/// CPU seconds this process has used (user + system), from /proc (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime), in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

struct PhaseResult {
    stats: ClientStats,
    elapsed: Duration,
    /// CPU seconds used by this process (server and clients) during the phase.
    cpu: f64,
    /// Pushes per second offered (fixed-rate phases).
    offered: Option<f64>,
}

/// One phase: every client pushes `batch` changes at a time until `seconds` are up, back to back,
/// or, with `rate` (pushes per second over all clients), on its schedule.
async fn phase(
    clients: &mut Vec<Client>,
    batch: usize,
    seconds: u64,
    pull_every: Duration,
    rate: Option<f64>,
) -> PhaseResult {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let n = clients.len().max(1) as f64;
    // Each client's pushes are `interval` apart; client i starts i/n of an interval in.
    let interval = rate.map(|r| Duration::from_secs_f64(n / r.max(1e-9)));
    let mut tasks = Vec::new();
    for (i, mut c) in clients.drain(..).enumerate() {
        let first = interval.map(|iv| start + iv.mul_f64(i as f64 / n));
        tasks.push(tokio::spawn(async move {
            let mut stats = ClientStats::default();
            let mut last_pull = Instant::now();
            let mut next = first;
            while Instant::now() < deadline {
                let scheduled = match (next, interval) {
                    (Some(at), Some(iv)) => {
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        next = Some(at + iv);
                        Some(at)
                    }
                    _ => None,
                };
                c.push(batch, &mut stats, scheduled).await;
                if last_pull.elapsed() >= pull_every {
                    c.pull(&mut stats).await;
                    last_pull = Instant::now();
                }
            }
            (c, stats)
        }));
    }
    let mut total = ClientStats::default();
    for t in tasks {
        let (c, s) = t.await.expect("client task");
        clients.push(c);
        total.push_us.extend(s.push_us);
        total.pull_us.extend(s.pull_us);
        total.pushed += s.pushed;
        total.pulled += s.pulled;
        total.acked.extend(s.acked);
        total.errors += s.errors;
    }
    PhaseResult {
        stats: total,
        elapsed: start.elapsed(),
        cpu: cpu_seconds() - cpu0,
        offered: rate,
    }
}

fn report(name: &str, r: &mut PhaseResult) {
    let s = &mut r.stats;
    s.push_us.sort_unstable();
    s.pull_us.sort_unstable();
    let secs = r.elapsed.as_secs_f64();
    if let Some(offered) = r.offered {
        let achieved = s.push_us.len() as f64 / secs;
        println!(
            "{name:<22} offered {offered:.0} pushes/s, answered {achieved:.0}/s{}",
            if achieved < 0.97 * offered {
                " (NOT sustained)"
            } else {
                ""
            }
        );
    }
    println!(
        "{name:<22} {:>9.0} pushes/s {:>9.0} changes/s   push p50 {:>6.2} ms  p99 {:>6.2} ms   \
         pull p50 {:>6.2} ms  p99 {:>6.2} ms  ({} pulls, {} changes pulled, {} errors; {:.2} cores busy = {:.0} changes pushed per CPU-second; load {})",
        s.push_us.len() as f64 / secs,
        s.pushed as f64 / secs,
        pct(&s.push_us, 0.50),
        pct(&s.push_us, 0.99),
        pct(&s.pull_us, 0.50),
        pct(&s.pull_us, 0.99),
        s.pull_us.len(),
        s.pulled,
        s.errors,
        r.cpu / secs,
        s.pushed as f64 / r.cpu.max(1e-9),
        load_average(),
    );
}

/// Resident memory of this process (server and clients), in MB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Single-change pushes to `token`, one after another, for `seconds`: their latencies (µs).
async fn victim(http: &reqwest::Client, base: &str, token: &str, seconds: u64) -> Vec<u32> {
    let name = format!("victim-{:08x}", rand::random::<u32>());
    let mut clock = HlcClock::new(name.clone(), 60_000).expect("valid node");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut us = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let id = format!("{name}-{n}");
        let req = PushRequest {
            client_id: name.clone(),
            cursor: None,
            changes: vec![Change {
                collection: "tasks".into(),
                doc: Some(json!({ "id": id, "title": "victim" }).into()),
                id,
                hlc: clock.tick(now_ms()),
                deleted: false,
                fields: None,
                base: None,
            }],
        };
        let t = Instant::now();
        let ok = http
            .post(format!("{base}/v1/push"))
            .bearer_auth(token)
            .json(&req)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            us.push(t.elapsed().as_micros() as u32);
        }
    }
    us.sort_unstable();
    us
}

/// The attack rows (see the module docs).
async fn hostile(
    http: &reqwest::Client,
    base: &str,
    run: &str,
    seconds: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let row = |name: &str, us: &[u32], extra: String| {
        println!(
            "{name:<26} unrelated namespace: {:>5} pushes, push p50 {:>7.2} ms  p99 {:>7.2} ms; {extra}RSS {:.0} MB; load {}",
            us.len(),
            pct(us, 0.50),
            pct(us, 0.99),
            rss_mb(),
            load_average(),
        )
    };
    let victim_ns = format!("load-{run}-victim");
    let quiet = victim(http, base, &victim_ns, seconds).await;
    row("hostile: quiet", &quiet, String::new());

    // Amplification: a document with a 100 KB field, then pushes of 1000 stale changes to it.
    let attacker_ns = format!("load-{run}-attacker");
    let now = now_ms();
    let hlc = |wall: u64, c: u32, node: &str| format!("{wall:012x}-{c:06x}-{node}");
    let seed = json!({"clientId": "a1", "changes": [{"collection": "t", "id": "a",
        "hlc": hlc(now, 5, "a1"), "doc": {"id": "a", "title": "x".repeat(100_000)}}]});
    http.post(format!("{base}/v1/push"))
        .bearer_auth(&attacker_ns)
        .json(&seed)
        .send()
        .await?
        .error_for_status()?;
    let stale: Vec<serde_json::Value> = (0..1000)
        .map(|i| json!({"collection": "t", "id": "a", "hlc": hlc(now - 10_000, i, "a2"), "doc": {"id": "a"}}))
        .collect();
    let attack = serde_json::to_vec(&json!({"clientId": "a2", "changes": stale}))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let (http, base, ns, body, stop) = (
            http.clone(),
            base.to_string(),
            attacker_ns.clone(),
            attack.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let (mut sent, mut largest) = (0u64, 0usize);
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A different request each time (no replay): the same changes, another client.
                i += 1;
                let text = String::from_utf8_lossy(&body).replace("\"a2\"", &format!("\"a2x{i}\""));
                let text = text.replace("-a2\"", &format!("-a2x{i}\""));
                let r = http
                    .post(format!("{base}/v1/push"))
                    .bearer_auth(&ns)
                    .header("content-type", "application/json")
                    .body(text)
                    .send()
                    .await;
                if let Ok(r) = r {
                    largest = largest.max(r.bytes().await.map_or(0, |b| b.len()));
                    sent += 1;
                }
            }
            (sent, largest)
        })
    };
    let during = victim(http, base, &victim_ns, seconds).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, largest) = attacker.await?;
    row(
        "hostile: amplification",
        &during,
        format!(
            "attacker sent {sent} pushes of {} KB, largest reply {} KB; ",
            attack.len() / 1024,
            largest / 1024
        ),
    );

    // Slowloris: 300 connections that never finish their request.
    let addr = base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for i in 0..300 {
        use tokio::io::AsyncWriteExt;
        if let Ok(mut sock) = tokio::net::TcpStream::connect(&addr).await {
            let part: &[u8] = if i % 2 == 0 {
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            } else {
                b"POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s\r\nContent-Length: 100000\r\n\r\n{"
            };
            let _ = sock.write_all(part).await;
            held.push(sock);
        }
    }
    let health = Instant::now();
    let healthy = http
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    let health_ms = health.elapsed().as_secs_f64() * 1e3;
    let during = victim(http, base, &victim_ns, seconds).await;
    row(
        "hostile: 300 half-open",
        &during,
        format!(
            "{} held, /healthz {} in {health_ms:.1} ms; ",
            held.len(),
            if healthy { "answered" } else { "FAILED" }
        ),
    );
    drop(held);
    let after = victim(http, base, &victim_ns, seconds).await;
    row("hostile: quiet again", &after, String::new());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let mut server = None;
    let base = match &args.url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let mut config = ferrosync_server::Config::for_database(&args.database);
            config.db_connections = 16;
            let s = ferrosync_server::start(config).await?;
            let base = format!("http://{}", s.addr);
            server = Some(s);
            base
        }
    };
    let backend = if args.url.is_some() {
        "external server".to_string()
    } else {
        args.database.split(':').next().unwrap_or("?").to_string()
    };
    println!(
        "ferrosync-load: {} clients over {} namespace(s), {} s per phase, pull every {} ms, {backend}, {base}",
        args.clients, args.namespaces, args.seconds, args.pull_every_ms
    );

    let run = format!("{:08x}", rand::random::<u32>());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let namespaces = args.namespaces.clamp(1, args.clients.max(1));
    let tokens: Vec<String> = (0..namespaces)
        .map(|i| format!("load-{run}-ns{i}"))
        .collect();
    let mut clients: Vec<Client> = (0..args.clients)
        .map(|i| {
            let name = format!("c{i}-{run}");
            Client {
                http: http.clone(),
                base: base.clone(),
                token: tokens[i % namespaces].clone(),
                clock: HlcClock::new(name.clone(), 60_000).expect("valid node"),
                name,
                next_id: 0,
                cursor: None,
                seen: Vec::new(),
            }
        })
        .collect();

    if args.hostile > 0 {
        hostile(&http, &base, &run, args.hostile).await?;
    }
    let pull_every = Duration::from_millis(args.pull_every_ms);
    let mut single = phase(&mut clients, 1, args.seconds, pull_every, None).await;
    report("single-change pushes", &mut single);
    let mut batched = phase(&mut clients, args.batch, args.seconds, pull_every, None).await;
    report(&format!("{}-change pushes", args.batch), &mut batched);
    let mut fixed = Vec::new();
    if let [single_rate, change_rate] = args.fixed_rates[..] {
        if single_rate > 0 {
            let rate = single_rate as f64;
            let mut r = phase(&mut clients, 1, args.seconds, pull_every, Some(rate)).await;
            report(&format!("single at {single_rate}/s"), &mut r);
            fixed.push(r);
        }
        if change_rate > 0 {
            let rate = change_rate as f64 / args.batch.max(1) as f64;
            let mut r = phase(
                &mut clients,
                args.batch,
                args.seconds,
                pull_every,
                Some(rate),
            )
            .await;
            report(&format!("{}-change at {change_rate}/s", args.batch), &mut r);
            fixed.push(r);
        }
    }

    // Final check: every acknowledged change is in its namespace's feed exactly once, and a client
    // that followed the feed with its cursor has seen every change of its namespace.
    let check = Instant::now();
    let acked: Vec<(String, String)> = single
        .stats
        .acked
        .drain(..)
        .chain(batched.stats.acked.drain(..))
        .chain(fixed.iter_mut().flat_map(|r| r.stats.acked.drain(..)))
        .collect();
    let mut feed: HashMap<String, String> = HashMap::new();
    for token in &tokens {
        let mut cursor: Option<String> = None;
        let mut ids_here = HashSet::new();
        loop {
            let mut q = vec![("limit", "1000".to_string())];
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page: PullResponse = http
                .get(format!("{base}/v1/pull"))
                .bearer_auth(token)
                .query(&q)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            for c in page.changes {
                if !ids_here.insert(c.id.clone())
                    || feed.insert(c.id.clone(), c.hlc.encode()).is_some()
                {
                    return Err(format!("change {} listed twice in the feed", c.id).into());
                }
            }
            cursor = Some(page.cursor);
            if !page.has_more {
                break;
            }
        }
    }
    let mut missing = 0;
    for (id, hlc) in &acked {
        if feed.get(id) != Some(hlc) {
            missing += 1;
        }
    }
    let mut stats = ClientStats::default();
    let mut unseen = 0;
    for c in clients.iter_mut() {
        c.pull(&mut stats).await;
    }
    for (i, c) in clients.iter().enumerate() {
        let token = &tokens[i % namespaces];
        // A change seen again later (none here: every id is written once) counts as its last version.
        let seen: HashMap<&str, &str> = c
            .seen
            .iter()
            .map(|(id, hlc)| (id.as_str(), hlc.as_str()))
            .collect();
        // Every change of this client's namespace (all clients sharing the token pushed there).
        for (j, other) in clients.iter().enumerate() {
            if tokens[j % namespaces] != *token {
                continue;
            }
            for n in 1..=other.next_id {
                let id = format!("{}-{n}", other.name);
                if let Some(h) = feed.get(&id) {
                    if seen.get(id.as_str()).copied() != Some(h.as_str()) {
                        unseen += 1;
                    }
                }
            }
        }
    }
    let extra = feed.len().saturating_sub(acked.len());
    println!(
        "check: {} acknowledged changes, {} in the feed, {missing} missing, {extra} unexpected; \
         cursor followers missed {unseen} ({:.1} s)",
        acked.len(),
        feed.len(),
        check.elapsed().as_secs_f64()
    );
    if let Some(s) = server {
        s.shutdown().await;
    }
    if missing > 0 || unseen > 0 || extra > 0 {
        return Err("check failed".into());
    }
    println!("check passed");
    Ok(())
}
