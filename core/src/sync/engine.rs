//! The sync engine: push the outbox, settle what the server refused, pull the feed, settle what
//! meets a pending local change. Generic over [`LocalStore`] and [`Transport`], so the same code runs
//! over IndexedDB + `fetch` in the browser and over the in-memory pair in native tests.

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};

use crate::limits::{DEFAULT_MAX_BODY_BYTES, DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, MAX_PUSH_CHANGES};
use crate::merge::made_without;
use crate::protocol::{Change, PushRequest, PushStatus};

use super::policy::{
    decide_by_order, decide_custom, normalize_resolved, Conflict, Decision, Policies, Policy,
};
use super::store::{
    ApplyOutcome, DocKey, LocalDoc, LocalStore, PendingChange, PendingKind, Pushed, StoreOp,
};
use super::transport::{Transport, TransportError};
use super::validate::{validate_pull, validate_push};

/// Why a sync stopped. Nothing local is lost or half-written in any case: what was not
/// acknowledged stays in the outbox, what was not applied is pulled again from the saved cursor.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("local store error: {0}")]
    Store(Box<dyn std::error::Error>),
    #[error("conflict resolver failed for {collection}/{id}: {message}")]
    Resolver {
        collection: String,
        id: String,
        message: String,
    },
    /// Local writes kept changing the documents of a page while it was being applied.
    #[error("local writes kept racing with sync; will try again")]
    Busy,
    #[error("a sync of this database is already running")]
    AlreadyRunning,
}

impl SyncError {
    /// A stable code for the JS `Error.code` / status `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::Transport(t) => match t {
                TransportError::Network(_) => "NETWORK",
                TransportError::Server { .. } => "SERVER_ERROR",
                TransportError::Unauthorized { .. } => "UNAUTHORIZED",
                TransportError::CursorEpochMismatch(_) => "CURSOR_EPOCH_MISMATCH",
                TransportError::BadRequest { .. } => "REQUEST_REFUSED",
                TransportError::Malformed(_) => "MALFORMED_REPLY",
            },
            SyncError::Store(_) => "STORE_ERROR",
            SyncError::Resolver { .. } => "RESOLVER_FAILED",
            SyncError::Busy => "SYNC_BUSY",
            SyncError::AlreadyRunning => "SYNC_RUNNING",
        }
    }
}

fn store_err<E: std::error::Error + 'static>(e: E) -> SyncError {
    SyncError::Store(Box::new(e))
}

/// Tunables; the defaults follow the protocol limits.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Outbox rows read (and at most pushed) per request.
    pub push_batch: usize,
    /// Request bodies are split to stay under this (the server's body limit).
    pub max_body_bytes: usize,
    pub pull_limit: usize,
    /// Push/pull rounds per sync when settling conflicts produced new local writes to push.
    pub max_rounds: usize,
    /// Attempts to apply one page when local writes keep invalidating the decisions.
    pub max_apply_attempts: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            push_batch: MAX_PUSH_CHANGES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            pull_limit: DEFAULT_PULL_LIMIT,
            max_rounds: 3,
            max_apply_attempts: 5,
        }
    }
}

/// What one sync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Local changes the server acknowledged.
    pub pushed: u64,
    /// Remote changes that changed local documents.
    pub pulled: u64,
    /// Documents whose pending local change met a newer remote version (settled by the policy).
    pub conflicts: u64,
    /// Conflict resolutions still wait in the outbox: sync again soon.
    pub more: bool,
}

/// Progress of a running sync, for a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub pushed: u64,
    /// Changes received by pulls so far (including echoes of our own).
    pub pulled: u64,
    /// Changes the server still has for us, when it says.
    pub remaining: Option<u64>,
}

struct Run<'a> {
    report: SyncReport,
    progress: Progress,
    on_progress: &'a mut dyn FnMut(Progress),
    resynced: bool,
    /// Documents whose pending edit met a newer remote version during this sync.
    conflicted: HashSet<DocKey>,
    /// Settling wrote new pending local versions (or a resync queued documents): push again.
    wrote: bool,
}

/// Drives push and pull for one local database. Holds no state between syncs but a re-entrancy
/// flag: everything durable is in the store.
pub struct SyncEngine<S, T> {
    store: S,
    transport: T,
    policies: Policies,
    config: SyncConfig,
    running: Cell<bool>,
}

struct RunGuard<'a>(&'a Cell<bool>);

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl<S: LocalStore, T: Transport> SyncEngine<S, T> {
    pub fn new(store: S, transport: T, policies: Policies) -> Self {
        SyncEngine {
            store,
            transport,
            policies,
            config: SyncConfig::default(),
            running: Cell::new(false),
        }
    }

    pub fn with_config(mut self, mut config: SyncConfig) -> Self {
        config.push_batch = config.push_batch.clamp(1, MAX_PUSH_CHANGES);
        config.pull_limit = config.pull_limit.clamp(1, MAX_PULL_LIMIT);
        config.max_rounds = config.max_rounds.max(1);
        config.max_apply_attempts = config.max_apply_attempts.max(1);
        self.config = config;
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    pub fn set_policies(&mut self, policies: Policies) {
        self.policies = policies;
    }

    /// One sync: push the outbox (in batches), then pull from the saved cursor until the server
    /// has nothing more; repeat (up to `max_rounds`) while settling conflicts wrote new versions.
    pub async fn sync_once(
        &self,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<SyncReport, SyncError> {
        if self.running.replace(true) {
            return Err(SyncError::AlreadyRunning);
        }
        let _guard = RunGuard(&self.running);
        let mut run = Run {
            report: SyncReport::default(),
            progress: Progress::default(),
            on_progress,
            resynced: false,
            conflicted: HashSet::new(),
            wrote: false,
        };
        for _ in 0..self.config.max_rounds {
            run.wrote = false;
            self.push_all(&mut run).await?;
            self.pull_all(&mut run).await?;
            if !run.wrote {
                break;
            }
        }
        run.report.more = run.wrote;
        Ok(run.report)
    }

    async fn push_all(&self, run: &mut Run<'_>) -> Result<(), SyncError> {
        let mut after: Option<DocKey> = None;
        loop {
            let rows = self
                .store
                .pending(after.as_ref(), self.config.push_batch)
                .await
                .map_err(store_err)?;
            let Some(last) = rows.last() else { break };
            after = Some(DocKey::of(&last.change));
            let full = rows.len() >= self.config.push_batch;
            let mut queue: VecDeque<Vec<PendingChange>> =
                split_by_size(rows, self.config.max_body_bytes).into();
            while let Some(chunk) = queue.pop_front() {
                match self.push_chunk(&chunk, run).await {
                    // The server's body limit is lower than we assumed: halve and retry.
                    Err(SyncError::Transport(TransportError::BadRequest {
                        status: 413, ..
                    })) if chunk.len() > 1 => {
                        let mut first = chunk;
                        let second = first.split_off(first.len() / 2);
                        queue.push_front(second);
                        queue.push_front(first);
                    }
                    r => r?,
                }
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    async fn push_chunk(
        &self,
        chunk: &[PendingChange],
        run: &mut Run<'_>,
    ) -> Result<(), SyncError> {
        let clock = self.store.clock();
        let req = PushRequest {
            client_id: clock.node(),
            changes: chunk.iter().map(|p| self.to_push(p)).collect(),
        };
        let sent = clock.wall_ms();
        let resp = self.transport.push(&req).await?;
        validate_push(&req, &resp)?;
        clock.observe_server_time(resp.server_time, sent, clock.wall_ms());
        let mut acked = Vec::new();
        let mut stale = Vec::new();
        for (c, r) in req.changes.iter().zip(resp.results) {
            match r.status {
                PushStatus::Applied => acked.push(Pushed {
                    key: DocKey::of(c),
                    hlc: c.hlc.clone(),
                }),
                PushStatus::Stale => stale.extend(r.current),
            }
        }
        self.store.ack_pushed(&acked).await.map_err(store_err)?;
        run.report.pushed += acked.len() as u64;
        run.progress.pushed += acked.len() as u64;
        (run.on_progress)(run.progress);
        if !stale.is_empty() {
            self.settle(&stale, None, false, run).await?;
        }
        Ok(())
    }

    /// A pending change as pushed: with its base only for an edit of a collection whose app
    /// resolves conflicts itself (for `lww` and `merge` the server's order is the rule, and a
    /// resync offers versions of an old server database, not edits).
    fn to_push(&self, p: &PendingChange) -> Change {
        let mut c = p.change.clone();
        let custom = matches!(self.policies.get(&c.collection), Policy::Custom(_));
        // A base at or after the edit's own HLC (an edit of a far-future version the clock
        // refused to adopt) would be refused as invalid: without it, the server's order applies
        // and the edit waits, pending, until the clock passes that version (see `plan`).
        let usable = c.base.as_ref().is_some_and(|b| *b < c.hlc);
        if p.kind != PendingKind::Edit || !custom || !usable {
            c.base = None;
        }
        c
    }

    async fn pull_all(&self, run: &mut Run<'_>) -> Result<(), SyncError> {
        let clock = self.store.clock();
        let limit = self.config.pull_limit;
        let mut cursor = self.store.cursor().await.map_err(store_err)?;
        loop {
            let sent = clock.wall_ms();
            let page = match self.transport.pull(cursor.as_deref(), limit).await {
                Ok(p) => p,
                Err(TransportError::CursorEpochMismatch(_)) if !run.resynced => {
                    // Another server database: keep the outbox, offer it everything we hold, and
                    // read its feed from the start.
                    self.store.reset_for_resync().await.map_err(store_err)?;
                    run.resynced = true;
                    run.wrote = true;
                    cursor = None;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            validate_pull(&page, limit, cursor.as_deref())?;
            clock.observe_server_time(page.server_time, sent, clock.wall_ms());
            let moved = cursor.as_deref() != Some(page.cursor.as_str());
            if !page.changes.is_empty() || moved {
                self.settle(&page.changes, Some(&page.cursor), true, run)
                    .await?;
            }
            run.progress.pulled += page.changes.len() as u64;
            run.progress.remaining = if page.has_more {
                page.remaining
            } else {
                Some(0)
            };
            (run.on_progress)(run.progress);
            cursor = Some(page.cursor);
            if !page.has_more {
                break;
            }
        }
        Ok(())
    }

    /// Brings remote versions (a pulled page, or the current versions of stale pushes) into the
    /// store: decide per document against its local version, then write all decisions (and the
    /// page's cursor) in one store call. Decisions by version order are taken inside the store's
    /// write ([`LocalStore::load_and_apply`]: one transaction in the browser); a JS resolver's are
    /// taken between reading and writing, and if a local write slipped in after them the store
    /// refuses the call and the page is decided again.
    async fn settle(
        &self,
        remotes: &[Change],
        cursor: Option<&str>,
        from_pull: bool,
        run: &mut Run<'_>,
    ) -> Result<(), SyncError> {
        let clock = self.store.clock();
        for c in remotes {
            // A timestamp too far ahead is refused by the clock (not adopted) but the version is
            // still applied: it is in the server's feed, and every replica must hold the same data.
            let _ = clock.observe(&c.hlc);
        }
        let mut keys: Vec<DocKey> = Vec::new();
        let mut index: HashMap<DocKey, usize> = HashMap::new();
        for c in remotes {
            let k = DocKey::of(c);
            if !index.contains_key(&k) {
                index.insert(k.clone(), keys.len());
                keys.push(k);
            }
        }
        let page = Page {
            remotes,
            keys: &keys,
            index: &index,
        };
        let asks_app = remotes
            .iter()
            .any(|r| matches!(self.policies.get(&r.collection), Policy::Custom(_)));
        for _ in 0..self.config.max_apply_attempts {
            let mut planned: Option<Result<Planned, SyncError>> = None;
            let outcome = if asks_app {
                let loaded = self.store.load(&keys).await.map_err(store_err)?;
                let (ops, p) = self.plan(&page, &loaded).await?;
                if ops.is_empty() && cursor.is_none() {
                    return Ok(());
                }
                let outcome = self.store.apply(&ops, cursor).await;
                planned = Some(Ok(p));
                outcome
            } else {
                let mut decide = |loaded: &[Option<LocalDoc>]| {
                    // Never pending: only a JS resolver awaits, and none is involved here.
                    match poll_once(self.plan(&page, loaded)).unwrap_or(Err(SyncError::Busy)) {
                        Ok((ops, p)) => {
                            planned = Some(Ok(p));
                            Some(ops)
                        }
                        Err(e) => {
                            planned = Some(Err(e));
                            None
                        }
                    }
                };
                self.store.load_and_apply(&keys, cursor, &mut decide).await
            };
            let outcome = outcome.map_err(store_err)?;
            let p = match planned {
                Some(p) => p?,
                None => continue,
            };
            match outcome {
                ApplyOutcome::Committed => {
                    if from_pull {
                        run.report.pulled += p.applied;
                    }
                    run.conflicted.extend(p.conflicts);
                    run.report.conflicts = run.conflicted.len() as u64;
                    run.wrote |= p.wrote;
                    return Ok(());
                }
                ApplyOutcome::Conflict => continue,
            }
        }
        Err(SyncError::Busy)
    }

    /// The store ops that bring one page's remote versions into `loaded` (the local versions of
    /// `page.keys`), by the collections' policies, and what they mean for the report. Awaits only
    /// a JS resolver.
    async fn plan(
        &self,
        page: &Page<'_>,
        loaded: &[Option<LocalDoc>],
    ) -> Result<(Vec<StoreOp>, Planned), SyncError> {
        let clock = self.store.clock();
        let mut view: Vec<Option<LocalDoc>> = loaded.to_vec();
        let mut applied = 0u64;
        let mut conflicts: HashSet<DocKey> = HashSet::new();
        let mut wrote = false;
        for remote in page.remotes {
            let i = page.index[&DocKey::of(remote)];
            let Some(local) = view[i].clone() else {
                view[i] = Some(LocalDoc {
                    change: remote.clone(),
                    pending: None,
                });
                applied += 1;
                continue;
            };
            if local.pending.is_some() && self.concurrent(&local, remote) {
                conflicts.insert(DocKey::of(remote));
            }
            match self.decide(&local, remote).await? {
                Decision::Keep => {}
                Decision::Unpend => {
                    if let Some(l) = view[i].as_mut() {
                        l.pending = None;
                    }
                }
                Decision::TakeRemote => {
                    view[i] = Some(LocalDoc {
                        change: remote.clone(),
                        pending: None,
                    });
                    applied += 1;
                }
                Decision::Write { doc, fields } => {
                    let hlc = clock.tick();
                    if hlc <= remote.hlc || hlc <= local.change.hlc {
                        // Only possible against a far-future timestamp the clock refused: we
                        // cannot write after it yet. Keep the local side; a later sync retries.
                        continue;
                    }
                    view[i] = Some(LocalDoc {
                        change: Change {
                            collection: remote.collection.clone(),
                            id: remote.id.clone(),
                            hlc,
                            deleted: doc.is_none(),
                            doc,
                            fields,
                            // Made on the remote version: the server takes it over that one.
                            base: Some(remote.hlc.clone()),
                        },
                        pending: Some(PendingKind::Edit),
                    });
                    applied += 1;
                    wrote = true;
                }
            }
        }
        let planned = Planned {
            applied,
            conflicts,
            wrote,
        };
        Ok((diff_ops(page.keys, loaded, view), planned))
    }

    /// Whether `remote` is a version the local one was not made on: a newer one, or, for a
    /// collection whose app resolves conflicts (the only ones whose edits carry a base), another
    /// device's version written after the base.
    fn concurrent(&self, local: &LocalDoc, remote: &Change) -> bool {
        remote.hlc > local.change.hlc
            || (matches!(self.policies.get(&remote.collection), Policy::Custom(_))
                && made_without(&local.change, &remote.hlc))
    }

    async fn decide(&self, local: &LocalDoc, remote: &Change) -> Result<Decision, SyncError> {
        match self.policies.get(&remote.collection) {
            Policy::Lww => Ok(decide_by_order(local, remote, false)),
            Policy::Merge => Ok(decide_by_order(local, remote, true)),
            Policy::Custom(resolve) => {
                // The app is asked when its own pending edit meets a version it was not made on:
                // a newer one, or one written meanwhile by another device (judged by the edit's
                // base; the server refuses such a push as stale whatever the order). A version the
                // edit was made on, or one of our own, is settled by order, as on the server; a
                // resolution is made on the remote, so that remote is never offered twice.
                if local.pending != Some(PendingKind::Edit) || !self.concurrent(local, remote) {
                    return Ok(decide_by_order(local, remote, false));
                }
                let fail = |message: String| SyncError::Resolver {
                    collection: remote.collection.clone(),
                    id: remote.id.clone(),
                    message,
                };
                let conflict = Conflict {
                    collection: remote.collection.clone(),
                    id: remote.id.clone(),
                    local: live_doc(&local.change),
                    remote: live_doc(remote),
                };
                let out = resolve(conflict).await.map_err(fail)?;
                let out = normalize_resolved(&remote.id, out).map_err(fail)?;
                Ok(decide_custom(local, remote, out))
            }
        }
    }
}

/// The remote versions being settled, with their distinct keys in first-seen order.
struct Page<'a> {
    remotes: &'a [Change],
    keys: &'a [DocKey],
    index: &'a HashMap<DocKey, usize>,
}

/// What a page's decisions mean for the sync's report.
struct Planned {
    applied: u64,
    conflicts: HashSet<DocKey>,
    wrote: bool,
}

/// The output of a future that finishes without waiting (None if it would wait), so a decision
/// can run inside a store transaction that must not await anything foreign.
fn poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

fn live_doc(c: &Change) -> Option<serde_json::Value> {
    if c.deleted {
        None
    } else {
        c.doc.clone()
    }
}

/// The store ops that turn `loaded` into `view`, each guarded by the HLC it was decided against.
fn diff_ops(
    keys: &[DocKey],
    loaded: &[Option<LocalDoc>],
    view: Vec<Option<LocalDoc>>,
) -> Vec<StoreOp> {
    let mut ops = Vec::new();
    for ((key, before), after) in keys.iter().zip(loaded).zip(view) {
        let Some(after) = after else { continue };
        let expect = before.as_ref().map(|b| b.change.hlc.clone());
        let same_version = before.as_ref().map(|b| &b.change) == Some(&after.change);
        if !same_version {
            ops.push(StoreOp::Put {
                change: after.change,
                pending: after.pending.is_some(),
                expect,
            });
        } else if before.as_ref().is_some_and(|b| b.pending.is_some()) && after.pending.is_none() {
            ops.push(StoreOp::Unpend {
                key: key.clone(),
                expect: after.change.hlc,
            });
        }
    }
    ops
}

/// Splits outbox rows into requests whose JSON bodies stay under `max_body` (a single change
/// larger than that goes alone; the server will say whether it takes it).
fn split_by_size(rows: Vec<PendingChange>, max_body: usize) -> Vec<Vec<PendingChange>> {
    const ENVELOPE: usize = 256;
    let budget = max_body.saturating_sub(ENVELOPE).max(1);
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut size = 0usize;
    for r in rows {
        let n = json_len(&r.change) + 1;
        if !cur.is_empty() && size + n > budget {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += n;
        cur.push(r);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn json_len(c: &Change) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    let _ = serde_json::to_writer(&mut n, c);
    n.0
}
