//! The sync engine: push the outbox, settle what the server refused, pull the feed, settle what
//! meets a pending local change. Generic over [`LocalStore`] and [`Transport`], so the same code runs
//! over IndexedDB + `fetch` in the browser and over the in-memory pair in native tests.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};

use crate::hlc::Hlc;
use crate::limits::{DEFAULT_MAX_BODY_BYTES, DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, MAX_PUSH_CHANGES};
use crate::merge::made_without;
use crate::protocol::{codes, Change, PushRequest, PushStatus};

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
    /// A short name of the variant, for tests' assertions and traces. Not an error code: the
    /// codes JavaScript sees are listed once in `src/error.rs` (`codes::ALL`), mapped from these
    /// variants by `From<SyncError>` in `src/sync/schedule.rs`.
    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        match self {
            SyncError::Transport(t) => match t {
                TransportError::Network(_) => "NETWORK",
                TransportError::Server { .. } => "SERVER_ERROR",
                TransportError::Unauthorized { .. } => "UNAUTHORIZED",
                TransportError::CursorEpochMismatch(_) => "CURSOR_EPOCH_MISMATCH",
                TransportError::NamespaceMismatch(_) => "NAMESPACE_MISMATCH",
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

/// A pending change sync has set aside: the server refused it on its own (a `rejected` result, or
/// a 4xx narrowed down to it), or the app's resolver failed on it. It stays in the local store and
/// in the outbox, is not pushed again until [`SyncEngine::retry`] (or a new local edit of the
/// document, which retries by itself), and [`SyncEngine::discard`] drops it. Every other document
/// keeps syncing.
#[derive(Clone, Debug, PartialEq)]
pub struct SetAside {
    pub key: DocKey,
    /// The version set aside; a newer local edit of the document is pushed again.
    pub hlc: Hlc,
    /// A stable code: the server's (`INVALID_CHANGE`, `PAYLOAD_TOO_LARGE`, ...) or
    /// [`RESOLVER_FAILED`].
    pub code: String,
    pub message: String,
    /// The server's version, when a reply carried it (what [`SyncEngine::discard`] restores).
    pub current: Option<Change>,
}

/// [`SetAside::code`] of a document whose conflict resolver threw, timed out or answered badly.
pub const RESOLVER_FAILED: &str = "RESOLVER_FAILED";

struct Run<'a> {
    report: SyncReport,
    progress: Progress,
    on_progress: &'a mut dyn FnMut(Progress),
    resynced: bool,
    /// Documents whose pending edit met a newer remote version during this sync.
    conflicted: HashSet<DocKey>,
    /// Settling wrote new pending local versions (or a resync queued documents): push again.
    wrote: bool,
    /// Pending rows re-stamped after a `CLOCK_AHEAD` in this sync (done at most once).
    restamped: bool,
    /// Set-aside rows moved to the end of the outbox in this pass (done once each per pass).
    requeued: HashSet<DocKey>,
    /// The push failed without an answer for every row: a pending edit may be on the server
    /// already (applied, the reply lost), so the pull does not settle it against another
    /// device's version; the next push asks the server, which knows (`applied` or `stale`).
    in_doubt: bool,
}

/// Drives push and pull for one local database. Holds no state between syncs but a re-entrancy
/// flag: everything durable is in the store.
pub struct SyncEngine<S, T> {
    store: S,
    transport: T,
    policies: Policies,
    config: SyncConfig,
    running: Cell<bool>,
    /// Rows set aside, by document. In memory: after a restart each is tried once more. A hash
    /// map, not a `BTreeMap`, whose removal code alone is 6 KB of the browser module; nor a
    /// sorted list, whose inserts in random order (a page of resolver failures) are quadratic.
    aside: RefCell<HashMap<DocKey, SetAside>>,
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
            aside: RefCell::new(HashMap::new()),
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
            restamped: false,
            requeued: HashSet::new(),
            in_doubt: false,
        };
        for _ in 0..self.config.max_rounds {
            run.wrote = false;
            run.requeued.clear();
            if let Err(e) = self.push_all(&mut run).await {
                // Whatever the push met, the pull still brings this device up to date, unless
                // nothing can reach the server (network, token) or the store itself failed.
                if pull_after(&e) {
                    run.in_doubt = true;
                    let _ = self.pull_all(&mut run).await;
                }
                return Err(e);
            }
            self.pull_all(&mut run).await?;
            if !run.wrote {
                break;
            }
        }
        run.report.more = run.wrote;
        Ok(run.report)
    }

    /// The rows set aside (see [`SetAside`]), in key order.
    pub fn set_aside(&self) -> Vec<SetAside> {
        let mut rows: Vec<SetAside> = self.aside.borrow().values().cloned().collect();
        crate::sort::sort_by(&mut rows, |a, b| a.key.cmp(&b.key));
        rows
    }

    /// Pushes a set-aside row again at the next sync; false if it was not set aside.
    pub fn retry(&self, key: &DocKey) -> bool {
        self.aside.borrow_mut().remove(key).is_some()
    }

    /// Drops a set-aside row's local edit: the document takes the server's version (the one a
    /// reply carried; otherwise the next sync reads the feed from the start, which brings it
    /// back, or leaves the document absent when the server never had it). False if it was not
    /// set aside, or the document changed since (then it is pushed again as a new edit).
    pub async fn discard(&self, key: &DocKey) -> Result<bool, SyncError> {
        let Some(entry) = self.aside.borrow_mut().remove(key) else {
            return Ok(false);
        };
        let loaded = self
            .store
            .load(std::slice::from_ref(key))
            .await
            .map_err(store_err)?;
        let Some(local) = loaded.into_iter().next().flatten() else {
            return Ok(false);
        };
        if local.change.hlc != entry.hlc {
            return Ok(false);
        }
        let (server, restart) = match entry.current {
            Some(c) => (c, None),
            None => {
                // Below any version: the server's, pulled again from the start, replaces it.
                let floor = Hlc::new(0, 0, self.store.clock().node())
                    .map_err(|e| SyncError::Store(Box::new(e)))?;
                let gone = Change {
                    collection: key.collection.clone(),
                    id: key.id.clone(),
                    hlc: floor,
                    deleted: true,
                    doc: None,
                    fields: None,
                    base: None,
                };
                (gone, Some(FROM_THE_START))
            }
        };
        let op = StoreOp::Put {
            change: Change {
                base: None,
                ..server
            },
            pending: false,
            expect: Some(entry.hlc),
        };
        let outcome = self.store.apply(&[op], restart).await.map_err(store_err)?;
        Ok(outcome == ApplyOutcome::Committed)
    }

    fn put_aside(
        &self,
        key: DocKey,
        hlc: Hlc,
        code: &str,
        message: String,
        current: Option<Change>,
    ) {
        self.aside.borrow_mut().insert(
            key.clone(),
            SetAside {
                key,
                hlc,
                code: code.to_string(),
                message,
                current,
            },
        );
    }

    /// Whether the row is set aside as it is (a newer edit of the document retries by itself).
    fn is_aside(&self, row: &PendingChange) -> bool {
        let key = DocKey::of(&row.change);
        let mut aside = self.aside.borrow_mut();
        match aside.get(&key) {
            Some(a) if a.hlc == row.change.hlc => true,
            Some(_) => {
                aside.remove(&key);
                false
            }
            None => false,
        }
    }

    async fn push_all(&self, run: &mut Run<'_>) -> Result<(), SyncError> {
        // Where this device has been syncing, named by every push: a server refuses the push when
        // the token is for another account's namespace (issue 13 item 3). A push never moves it.
        let cursor = self.store.cursor().await.map_err(store_err)?;
        let cursor = cursor.filter(|c| !c.is_empty());
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
            let (aside, rows): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| self.is_aside(r));
            self.requeue(&aside, run).await?;
            let mut queue: VecDeque<Vec<PendingChange>> =
                split_by_size(rows, self.config.max_body_bytes).into();
            while let Some(chunk) = queue.pop_front() {
                match self.push_chunk(&chunk, cursor.as_deref(), run).await {
                    Ok(()) => {}
                    Err(SyncError::Transport(TransportError::BadRequest {
                        status,
                        code,
                        message,
                    })) if refuses_rows(status, &code) => {
                        if chunk.len() > 1 {
                            // Narrow the refusal down to the change(s) it is about.
                            let mut first = chunk;
                            let second = first.split_off(first.len() / 2);
                            queue.push_front(second);
                            queue.push_front(first);
                        } else {
                            let row = &chunk[0];
                            let key = DocKey::of(&row.change);
                            let hlc = row.change.hlc.clone();
                            self.put_aside(key, hlc, &code, message, None);
                        }
                    }
                    Err(SyncError::Transport(TransportError::BadRequest { code, .. }))
                        if code == codes::CLOCK_AHEAD && !run.restamped =>
                    {
                        // The reply corrected the clock's offset; stamp what is too far ahead
                        // again and start the pass over.
                        run.restamped = true;
                        self.restamp().await?;
                        return Box::pin(self.push_all(run)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Moves set-aside rows to the end of the outbox (once per pass), so the outbox's bookkeeping
    /// can acknowledge every row after them.
    async fn requeue(&self, rows: &[PendingChange], run: &mut Run<'_>) -> Result<(), SyncError> {
        let ops: Vec<StoreOp> = rows
            .iter()
            .filter(|r| run.requeued.insert(DocKey::of(&r.change)))
            .map(|r| StoreOp::Requeue {
                key: DocKey::of(&r.change),
                expect: r.change.hlc.clone(),
            })
            .collect();
        if !ops.is_empty() {
            // A conflict means the document was edited meanwhile: that edit is pushed anyway.
            self.store.apply(&ops, None).await.map_err(store_err)?;
        }
        Ok(())
    }

    /// After `CLOCK_AHEAD` (the offset is corrected by then): every pending row stamped further
    /// ahead of corrected time than the server accepts gets a fresh stamp, in their old order,
    /// from a clock wound back to the corrected time, so later writes are sane too.
    async fn restamp(&self) -> Result<(), SyncError> {
        let clock = self.store.clock();
        let limit = clock.now_ms().saturating_add(clock.max_drift_ms() / 2);
        let mut far: Vec<PendingChange> = Vec::new();
        let mut after: Option<DocKey> = None;
        let mut highest_sane: Option<Hlc> = None;
        loop {
            let rows = self
                .store
                .pending(after.as_ref(), self.config.push_batch)
                .await
                .map_err(store_err)?;
            let Some(last) = rows.last() else { break };
            after = Some(DocKey::of(&last.change));
            let full = rows.len() >= self.config.push_batch;
            for r in rows {
                if r.change.hlc.wall_ms > limit {
                    far.push(r);
                } else if highest_sane.as_ref().is_none_or(|h| r.change.hlc > *h) {
                    highest_sane = Some(r.change.hlc.clone());
                }
            }
            if !full {
                break;
            }
        }
        if far.is_empty() {
            return Ok(());
        }
        // Back to the highest stamp the server accepts with room to spare, not to corrected
        // time: versions this device stamped up to there may already be on the server, and a
        // later edit must still sort after them.
        let ceiling = Hlc::new(limit, 0, clock.node()).ok();
        clock.rewind(highest_sane.max(ceiling).as_ref());
        // In outbox order where stamps are equal (one `bulkPut`): the sort is stable.
        crate::sort::sort_by(&mut far, |a, b| a.change.hlc.cmp(&b.change.hlc));
        let ops: Vec<StoreOp> = far
            .into_iter()
            .map(|r| {
                let hlc = clock.tick();
                let base = r.change.base.clone().filter(|b| *b < hlc);
                // The fields this edit wrote carry its old time: a field is never later than
                // its version, so they take the new stamp too.
                let fields = r.change.fields.clone().map(|mut f| {
                    for t in f.values_mut() {
                        if *t > hlc {
                            *t = hlc.clone();
                        }
                    }
                    f
                });
                StoreOp::Put {
                    expect: Some(r.change.hlc.clone()),
                    change: Change {
                        hlc,
                        base,
                        fields,
                        ..r.change
                    },
                    pending: true,
                }
            })
            .collect();
        // A conflict: a local write slipped in; the next sync stamps what is still too far ahead.
        self.store.apply(&ops, None).await.map_err(store_err)?;
        Ok(())
    }

    async fn push_chunk(
        &self,
        chunk: &[PendingChange],
        cursor: Option<&str>,
        run: &mut Run<'_>,
    ) -> Result<(), SyncError> {
        let clock = self.store.clock();
        let req = PushRequest {
            client_id: clock.node(),
            changes: chunk.iter().map(|p| self.to_push(p)).collect(),
            cursor: cursor.map(str::to_string),
        };
        let sent = clock.wall_ms();
        let resp = self.transport.push(&req).await;
        let resp = self.learn_time(resp, sent)?;
        validate_push(&req, &resp)?;
        let mut acked = Vec::new();
        let mut stale = Vec::new();
        for (c, r) in req.changes.iter().zip(resp.results) {
            match r.status {
                PushStatus::Applied => {
                    acked.push(Pushed {
                        key: DocKey::of(c),
                        hlc: c.hlc.clone(),
                    });
                    // Applied by an earlier push whose reply was lost, and replaced since by a
                    // version made on it: that version supersedes ours (settled by order after
                    // the ack, never offered to a resolver against it).
                    stale.extend(r.current);
                }
                PushStatus::Stale => stale.extend(r.current),
                PushStatus::Rejected => {
                    let (code, message) = match r.error {
                        Some(e) => (e.code, e.message),
                        None => ("REJECTED".to_string(), "refused by the server".to_string()),
                    };
                    self.put_aside(DocKey::of(c), c.hlc.clone(), &code, message, r.current);
                }
            }
        }
        self.store.ack_pushed(&acked).await.map_err(store_err)?;
        run.report.pushed += acked.len() as u64;
        run.progress.pushed += acked.len() as u64;
        (run.on_progress)(run.progress);
        if !stale.is_empty() {
            // Not in doubt (`from_pull` false): nothing is deferred.
            self.settle(&stale, None, false, run).await?;
        }
        Ok(())
    }

    /// Learns the clock offset from a reply's `serverTime`, error replies included (a
    /// `CLOCK_AHEAD` above all: the push after it is stamped with the corrected clock).
    fn learn_time<R: HasServerTime>(
        &self,
        reply: Result<R, TransportError>,
        sent: u64,
    ) -> Result<R, SyncError> {
        let clock = self.store.clock();
        let server_time = match &reply {
            Ok(r) => {
                if let Some(bound) = r.max_drift_ms() {
                    clock.set_max_drift_ms(bound);
                }
                Some(r.server_time())
            }
            Err(_) => self.transport.error_server_time(),
        };
        if let Some(t) = server_time {
            clock.observe_server_time(t, sent, clock.wall_ms());
        }
        Ok(reply?)
    }

    /// A pending change as pushed: with its base ([`SyncEngine::push_base`]) when it is an edit
    /// (a resync offers versions of an old server database, not edits).
    fn to_push(&self, p: &PendingChange) -> Change {
        let mut c = p.change.clone();
        c.base = match p.kind {
            PendingKind::Edit => self.push_base(&c),
            _ => None,
        };
        // A base at or after the edit's own HLC (an edit of a far-future version the clock
        // refused to adopt) would be refused as invalid: without it, the server's order applies
        // and the edit waits, pending, until the clock passes that version (see `plan`).
        if c.base.as_ref().is_some_and(|b| *b >= c.hlc) {
            c.base = None;
        }
        c
    }

    /// The base a pending edit `c` is pushed with: for a collection whose app resolves conflicts
    /// itself, the version it was made on ([`SyncEngine::edit_base`], a creation included); for
    /// `merge`, the version it was made on when the store recorded one; for `lww` none (the
    /// server's order is the rule).
    ///
    /// A merge edit needs its base: the server keeps whole versions, last writer wins, so a newer
    /// edit made without the current version would replace it and drop the fields only that
    /// version holds; when no replica holds them any more (the writer's store wiped, the device
    /// gone) they are lost. With the base the server answers `stale`, and the edit is joined with
    /// the current version and pushed again. A merge edit whose store recorded no base (a
    /// creation; the browser store records bases for custom collections only) is pushed without
    /// one, under the server's order, as before.
    fn push_base(&self, c: &Change) -> Option<Hlc> {
        match self.policies.get(&c.collection) {
            Policy::Custom(_) => self.edit_base(c),
            Policy::Merge => c.base.clone(),
            Policy::Lww => None,
        }
    }

    async fn pull_all(&self, run: &mut Run<'_>) -> Result<(), SyncError> {
        let clock = self.store.clock();
        let limit = self.config.pull_limit;
        let mut cursor = self.store.cursor().await.map_err(store_err)?;
        // An empty saved cursor means "from the start" (see [`SyncEngine::discard`]).
        cursor = cursor.filter(|c| !c.is_empty());
        let mut restarted = false;
        loop {
            let sent = clock.wall_ms();
            let page = self.transport.pull(cursor.as_deref(), limit).await;
            let page = match self.learn_time(page, sent) {
                Ok(p) => p,
                Err(SyncError::Transport(e)) => match cursor_lost(&e) {
                    Some(CursorLost::ServerLostData) if !run.resynced => {
                        // Another server database, or this one restored from an older copy:
                        // keep the outbox, offer it everything we hold, and read its feed from
                        // the start.
                        self.store.reset_for_resync().await.map_err(store_err)?;
                        run.resynced = true;
                        run.wrote = true;
                        cursor = None;
                        continue;
                    }
                    Some(CursorLost::Expired) if !restarted && cursor.is_some() => {
                        // The server no longer keeps history that old: read it all again (the
                        // outbox is kept; the saved cursor is replaced page by page).
                        restarted = true;
                        cursor = None;
                        continue;
                    }
                    _ => return Err(e.into()),
                },
                Err(e) => return Err(e),
            };
            validate_pull(&page, limit, cursor.as_deref())?;
            let moved = cursor.as_deref() != Some(page.cursor.as_str());
            if (!page.changes.is_empty() || moved)
                && !self
                    .settle(&page.changes, Some(&page.cursor), true, run)
                    .await?
            {
                break;
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
    /// refuses the call and the page is decided again. False: a version was deferred (see
    /// `Planned::deferred`), the page's cursor not saved, and the pull stops there.
    async fn settle(
        &self,
        remotes: &[Change],
        cursor: Option<&str>,
        from_pull: bool,
        run: &mut Run<'_>,
    ) -> Result<bool, SyncError> {
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
            in_doubt: from_pull && run.in_doubt,
        };
        let asks_app = remotes
            .iter()
            .any(|r| matches!(self.policies.get(&r.collection), Policy::Custom(_)));
        for _ in 0..self.config.max_apply_attempts {
            let mut planned: Option<Result<Planned, SyncError>> = None;
            let outcome = if asks_app {
                let loaded = self.store.load(&keys).await.map_err(store_err)?;
                let (ops, p) = self.plan(&page, &loaded).await?;
                let cursor = if p.deferred { None } else { cursor };
                if ops.is_empty() && cursor.is_none() {
                    return Ok(!p.deferred);
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
                    return Ok(!p.deferred);
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
        let mut deferred = false;
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
            let concurrent = local.pending.is_some() && self.concurrent(&local, remote);
            if concurrent && page.in_doubt && self.asks_app(&local, remote) {
                // Perhaps made on this very edit, whose push got no answer: the edit stays
                // pending, and its next push learns from the server which it is. The page's
                // cursor is not saved, so this version is pulled again after that push (whose
                // replayed reply may say only `applied`).
                deferred = true;
                continue;
            }
            if concurrent {
                conflicts.insert(DocKey::of(remote));
            }
            let decision = match self.decide(&local, remote).await {
                Ok(d) => d,
                Err(SyncError::Resolver { message, .. }) => {
                    // The app's resolver failed on this document: keep the local edit, pending,
                    // and set it aside; the rest of the page goes on. Its push (after a retry)
                    // meets the remote version again as stale and asks the resolver again.
                    self.put_aside(
                        DocKey::of(remote),
                        local.change.hlc.clone(),
                        RESOLVER_FAILED,
                        message,
                        None,
                    );
                    Decision::Keep
                }
                Err(e) => return Err(e),
            };
            match decision {
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
                        // cannot write after it yet. A pending edit stays pending (a later sync
                        // retries); a version the server already has gives way to the server's,
                        // or it would differ from it for good.
                        if local.pending.is_none() && remote.hlc > local.change.hlc {
                            view[i] = Some(LocalDoc {
                                change: remote.clone(),
                                pending: None,
                            });
                            applied += 1;
                        }
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
            deferred,
        };
        Ok((diff_ops(page.keys, loaded, view), planned))
    }

    /// Whether `remote` is a version the local one was not made on: a newer one, or, for a
    /// collection whose app resolves conflicts (the only ones whose edits carry a base), another
    /// device's version written after the base.
    fn concurrent(&self, local: &LocalDoc, remote: &Change) -> bool {
        if remote.hlc > local.change.hlc {
            return true;
        }
        if !matches!(self.policies.get(&remote.collection), Policy::Custom(_)) {
            return false;
        }
        let mut edit = local.change.clone();
        if local.pending == Some(PendingKind::Edit) {
            edit.base = self.edit_base(&edit);
        }
        made_without(&edit, &remote.hlc)
    }

    /// Whether settling `local` against `remote` would ask the app's resolver.
    fn asks_app(&self, local: &LocalDoc, remote: &Change) -> bool {
        local.pending == Some(PendingKind::Edit)
            && matches!(self.policies.get(&remote.collection), Policy::Custom(_))
    }

    /// The version a local edit was made on. A creation (no base) is made on nothing: the lowest
    /// HLC stands for that, so another device's creation of the same id is concurrent with it,
    /// on the server (`stale`) and here, and the app's resolver sees both.
    fn edit_base(&self, c: &Change) -> Option<Hlc> {
        match &c.base {
            Some(b) => Some(b.clone()),
            None => Hlc::new(0, 0, c.hlc.node.clone()).ok(),
        }
    }

    async fn decide(&self, local: &LocalDoc, remote: &Change) -> Result<Decision, SyncError> {
        match self.policies.get(&remote.collection) {
            Policy::Lww => Ok(decide_by_order(local, remote, false)),
            Policy::Merge => {
                let d = decide_by_order(local, remote, true);
                // A pending edit that holds every field of a version it was not made on (and is
                // newer) would be kept as it is, and its push, made without that version, is
                // refused as stale again and again: it is written again on top of it (same
                // content, a new HLC, that version as its base).
                if d != Decision::Keep || local.pending != Some(PendingKind::Edit) {
                    return Ok(d);
                }
                let mut edit = local.change.clone();
                edit.base = self.push_base(&edit);
                if !made_without(&edit, &remote.hlc) {
                    return Ok(d);
                }
                Ok(Decision::Write {
                    doc: if edit.deleted { None } else { edit.doc },
                    fields: edit.fields,
                })
            }
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
                    local: live_doc(&local.change).map_err(fail)?,
                    remote: live_doc(remote).map_err(fail)?,
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
    /// Pending edits may be on the server already (see `Run::in_doubt`).
    in_doubt: bool,
}

/// What a page's decisions mean for the sync's report.
struct Planned {
    applied: u64,
    conflicts: HashSet<DocKey>,
    wrote: bool,
    /// A remote version was left for after the next push (see `Page::in_doubt`): the page's
    /// cursor is not saved and the pull stops there.
    deferred: bool,
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

/// The document a resolver is shown (None: deleted).
fn live_doc(c: &Change) -> Result<Option<serde_json::Value>, String> {
    match &c.doc {
        Some(d) if !c.deleted => d
            .parse()
            .map(Some)
            .map_err(|e| format!("document {}/{}: {e}", c.collection, c.id)),
        _ => Ok(None),
    }
}

/// Whether a sync still pulls after its push failed with `e`: yes, unless the server cannot be
/// reached or does not let us in (the pull would fail the same), or the store failed.
fn pull_after(e: &SyncError) -> bool {
    !matches!(
        e,
        SyncError::Transport(
            TransportError::Network(_)
                | TransportError::Unauthorized { .. }
                | TransportError::NamespaceMismatch(_)
        ) | SyncError::Store(_)
            | SyncError::AlreadyRunning
    )
}

/// Whether a whole push refused with this 4xx may be about some of its changes only (so the batch
/// is narrowed down to them): not a refusal of the request itself (auth, a cursor, an endpoint,
/// a clock), and not a size the engine fixes by splitting.
fn refuses_rows(status: u16, code: &str) -> bool {
    (400..500).contains(&status)
        && !matches!(status, 401 | 403 | 404 | 405 | 408 | 409 | 410 | 429)
        && code != codes::CLOCK_AHEAD
        && code != codes::TOO_MANY_CHANGES
        && code != codes::BAD_CURSOR
}

/// How a pull's cursor was refused.
enum CursorLost {
    /// `CURSOR_EPOCH_MISMATCH` (another database) or `BAD_CURSOR` (ahead of the feed: restored
    /// from an older copy): what the server held may be gone, so everything is offered again.
    ServerLostData,
    /// `CURSOR_EXPIRED`: the data is there, the history that old is not.
    Expired,
}

fn cursor_lost(e: &TransportError) -> Option<CursorLost> {
    match e {
        TransportError::CursorEpochMismatch(_) => Some(CursorLost::ServerLostData),
        TransportError::BadRequest { code, .. } if code == codes::BAD_CURSOR => {
            Some(CursorLost::ServerLostData)
        }
        TransportError::BadRequest { code, .. } if code == codes::CURSOR_EXPIRED => {
            Some(CursorLost::Expired)
        }
        _ => None,
    }
}

/// A saved cursor meaning "pull from the start" (written by [`SyncEngine::discard`]).
const FROM_THE_START: &str = "";

/// Replies carrying the server's clock.
trait HasServerTime {
    fn server_time(&self) -> u64;
    fn max_drift_ms(&self) -> Option<u64>;
}

impl HasServerTime for crate::protocol::PushResponse {
    fn server_time(&self) -> u64 {
        self.server_time
    }
    fn max_drift_ms(&self) -> Option<u64> {
        self.max_drift_ms
    }
}

impl HasServerTime for crate::protocol::PullResponse {
    fn server_time(&self) -> u64 {
        self.server_time
    }
    fn max_drift_ms(&self) -> Option<u64> {
        self.max_drift_ms
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
