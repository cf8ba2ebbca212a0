//! When to sync, and who: one [`Agent`] per `Database` instance with `sync` configured.
//!
//! Every instance queues for the database's Web Lock (`lock.rs`). The holder leads: it runs the
//! engine, on these triggers:
//! - open; the `online` event; the page becoming visible; the interval (`intervalMs`);
//! - shortly after a local write (debounced; writes of other tabs arrive over `tabs.rs`);
//! - an event-stream notice that the server's feed moved past our cursor (`events.rs`);
//! - `db.sync()`, here or in another tab (answered over the channel);
//! - `db.setToken()`.
//!
//! Nothing runs while offline (`navigator.onLine` false; status `offline`). After a failure core's
//! [`RetryClass`](ferrosync_core::sync::RetryClass) decides: network, 5xx and garbled replies retry with exponential backoff and
//! jitter; 401/403 stop automatic syncs until the token changes; a refused request or a failing
//! resolver waits for the next local write or `db.sync()`. The others follow: they forward their
//! writes and `db.sync()` calls to the leader and mirror its status; when the leader goes away the
//! browser hands the lock to the next instance in line, which takes over.
//!
//! Those decisions are core's [`Plan`] (pure, tested natively); the task here does the IO: it
//! turns messages into the plan's inputs, sleeps until the time it names, runs the engine, answers
//! `db.sync()` calls and keeps the status.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ferrosync_core::by_name::ByName;
use ferrosync_core::sync::schedule::{self as plan, Activity, Input, Next, Outcome, Plan, Timing};
use ferrosync_core::sync::{
    DocKey, Policies, Progress, SyncConfig, SyncEngine, SyncError, SyncReport, Transport,
};
use futures::channel::{mpsc, oneshot};
use futures::future::Either;
use futures::{FutureExt, StreamExt};

use super::events;
use super::local_store::{self, IdbLocal, SyncMeta};
use super::lock;
use super::options::SyncOptions;
use super::status::{Rejected, State, Status, StatusCell, StatusError};
use super::tabs::{Channel, Report, TabMsg};
use super::time::{now_ms, sleep};
use super::transport::{Endpoint, HttpTransport};
use super::triggers::{self, BrowserEvent};
use crate::error::Error;
use crate::store::Store;

type Reply = oneshot::Sender<Result<Report, Error>>;

/// A `db.sync()` forwarded to the leader fails with `SYNC_BUSY` after this long without an answer.
const FORWARD_TIMEOUT_MS: f64 = 120_000.0;

/// What the agent's task reacts to.
enum Msg {
    /// A local write committed through this instance.
    Wrote,
    Browser(BrowserEvent),
    /// The event stream announced the feed at this cursor.
    Poke(Option<String>),
    /// `db.sync()` on this instance.
    Sync(Reply),
    /// `db.setToken()`; `forward`: tell the other instances too.
    Token {
        forward: bool,
    },
    /// `db.retryRejected()` / `db.discardRejected()` on this instance.
    Aside(AsideOp),
    Tab(TabMsg),
}

/// Retry (or discard) a change sync set aside.
#[derive(Clone, Debug)]
struct AsideOp {
    key: DocKey,
    discard: bool,
}

/// Shared by the `Database` (API calls) and the agent's task.
struct Shared {
    name: String,
    options: SyncOptions,
    endpoint: Rc<Endpoint>,
    status: StatusCell,
    tx: mpsc::UnboundedSender<Msg>,
    close: RefCell<Option<oneshot::Sender<()>>>,
    #[cfg(feature = "test-hooks")]
    forced_offline: Cell<bool>,
    leader: Cell<bool>,
    channel: RefCell<Option<Channel>>,
}

impl Shared {
    fn online(&self) -> bool {
        #[cfg(feature = "test-hooks")]
        if self.forced_offline.get() {
            return false;
        }
        triggers::navigator_online()
    }

    fn send(&self, msg: Msg) {
        let _ = self.tx.unbounded_send(msg);
    }

    fn post(&self, msg: &TabMsg) {
        if let Some(c) = &*self.channel.borrow() {
            c.post(msg);
        }
    }

    /// Changes the status; the leader also tells the other instances.
    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        let before = self.status.get();
        self.status.update(f);
        let after = self.status.get();
        if self.leader.get() && after != before {
            self.post(&TabMsg::Status { status: after });
        }
    }

    /// The state word, from what is known (core's [`plan::activity`]).
    fn settle_state(&self, syncing: bool) {
        let online = self.online();
        self.set_status(|s| {
            s.state = match plan::activity(syncing, online, s.error.is_some()) {
                Activity::Syncing => State::Syncing,
                Activity::Offline => State::Offline,
                Activity::Error => State::Error,
                Activity::Idle => State::Idle,
            };
        });
    }
}

/// The sync side of one `Database` instance (clones share it).
#[derive(Clone)]
pub struct Agent {
    shared: Rc<Shared>,
}

impl Agent {
    /// Reads the saved sync state (so the clock correction applies to the very first write), then
    /// starts the agent's task, which queues for leadership.
    pub async fn start(
        store: Store,
        options: SyncOptions,
        policies: Policies,
    ) -> Result<Agent, Error> {
        let local = local_store::open(store.clone(), options.clock_skew_ms)?;
        let last_sync_at = local.restore().await?;
        let endpoint = Rc::new(Endpoint::new(&options.url, &options.token));
        let (tx, rx) = mpsc::unbounded();
        let (close_tx, close_rx) = oneshot::channel();
        let shared = Rc::new(Shared {
            name: store.name().to_string(),
            options,
            endpoint,
            status: StatusCell::default(),
            tx,
            close: RefCell::new(Some(close_tx)),
            #[cfg(feature = "test-hooks")]
            forced_offline: Cell::new(false),
            leader: Cell::new(false),
            channel: RefCell::new(None),
        });
        let tab_tx = shared.tx.clone();
        *shared.channel.borrow_mut() = Channel::open(&shared.name, move |m| {
            let _ = tab_tx.unbounded_send(Msg::Tab(m));
        });
        shared.set_status(|s| {
            s.last_sync_at = last_sync_at;
            s.state = if shared.online() {
                State::Idle
            } else {
                State::Offline
            }
        });
        let task = Task {
            shared: shared.clone(),
            local: Rc::new(local),
            policies,
            rx,
            close_rx: close_rx.fuse(),
        };
        crate::env::spawn(task.run());
        Ok(Agent { shared })
    }

    pub fn status(&self) -> Status {
        self.shared.status.get()
    }

    pub fn status_cell(&self) -> &StatusCell {
        &self.shared.status
    }

    /// A sync now (through the leader, wherever it runs). The request is queued at once, so it
    /// is handled together with anything queued before it (e.g. going online).
    pub fn sync(&self) -> impl std::future::Future<Output = Result<Report, Error>> {
        let (tx, rx) = oneshot::channel();
        self.shared.send(Msg::Sync(tx));
        let name = self.shared.name.clone();
        async move { rx.await.unwrap_or(Err(Error::DatabaseClosed(name))) }
    }

    /// What the store calls after every committed local write: schedules a push.
    pub fn write_notifier(&self) -> Rc<dyn Fn()> {
        let tx = self.shared.tx.clone();
        Rc::new(move || {
            let _ = tx.unbounded_send(Msg::Wrote);
        })
    }

    /// Pushes a set-aside change again (`discard`: drops its local edit instead), in whichever
    /// instance syncs; a sync follows at once.
    pub fn aside(&self, collection: &str, id: &str, discard: bool) {
        self.shared.send(Msg::Aside(AsideOp {
            key: DocKey::new(collection, id),
            discard,
        }));
    }

    pub fn set_token(&self, token: &str) {
        *self.shared.endpoint.token.borrow_mut() = token.to_string();
        self.shared.send(Msg::Token { forward: true });
    }

    /// Test hook: behave as if `navigator.onLine` were false for this instance only.
    #[cfg(feature = "test-hooks")]
    pub fn force_offline(&self, offline: bool) {
        self.shared.forced_offline.set(offline);
        self.shared.send(Msg::Browser(if offline {
            BrowserEvent::Offline
        } else {
            BrowserEvent::Online
        }));
    }

    /// Stops syncing: pending `db.sync()` calls fail at once; an in-flight sync is left to end by
    /// itself, its result ignored (its next store call fails: the database is closed; nothing is
    /// half-written, every store call is one transaction), then the lock is released.
    pub fn close(&self) {
        if let Some(tx) = self.shared.close.borrow_mut().take() {
            let _ = tx.send(());
        }
        self.shared.status.clear();
    }
}

fn random_id() -> String {
    crate::env::random::<8>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn report_of(r: &SyncReport) -> Report {
    Report {
        pushed: r.pushed,
        pulled: r.pulled,
        conflicts: r.conflicts,
    }
}

fn status_error(e: &Error) -> StatusError {
    StatusError {
        code: e.code().to_string(),
        message: e.to_string(),
    }
}

/// Someone waiting for the next sync's outcome.
enum Waiter {
    Here(Reply),
    /// A `db.sync()` of another instance, by request id.
    Tab(String),
}

struct Task {
    shared: Rc<Shared>,
    local: Rc<IdbLocal>,
    policies: Policies,
    rx: mpsc::UnboundedReceiver<Msg>,
    close_rx: futures::future::Fuse<oneshot::Receiver<()>>,
}

/// The leader's state besides the engine: the plan, and what it decided for.
struct Leading {
    plan: Plan,
    /// Everyone waiting for the next run's outcome (as many as the plan counts).
    waiters: Vec<Waiter>,
    /// Retries and discards of set-aside changes, done before the next sync.
    aside: Vec<AsideOp>,
    stream: Option<events::Subscription>,
}

impl Task {
    async fn run(mut self) {
        let tx = self.shared.tx.clone();
        let _listeners = triggers::listen(move |ev| {
            let _ = tx.unbounded_send(Msg::Browser(ev));
        });
        self.refresh_pending().await;
        self.shared.post(&TabMsg::Hello);

        // Follower until the lock is ours.
        // By call id: the calls other tabs forwarded and this one has not answered yet.
        let mut forwarded: ByName<Reply> = ByName::new();
        let waiting = lock::request(&format!("ferrosync-sync:{}", self.shared.name));
        let mut granted = Box::pin(waiting.granted()).fuse();
        let held = loop {
            let next = futures::select! {
                g = granted => Either::Left(g),
                m = self.rx.next() => Either::Right(m),
                _ = &mut self.close_rx => Either::Right(None),
            };
            match next {
                Either::Left(g) => break g,
                Either::Right(None) => {
                    for (_, r) in forwarded.drain() {
                        let _ = r.send(Err(Error::DatabaseClosed(self.shared.name.clone())));
                    }
                    return;
                }
                Either::Right(Some(m)) => self.follow(m, &mut forwarded).await,
            }
        };
        let Some(held) = held else {
            return;
        };
        self.shared.leader.set(true);
        self.shared.post(&TabMsg::Leader);
        self.shared.post(&TabMsg::Status {
            status: self.shared.status.get(),
        });
        let waiters = forwarded.into_values().map(Waiter::Here).collect();
        self.lead(waiters).await;
        self.shared.leader.set(false);
        drop(held);
    }

    async fn refresh_pending(&self) {
        if let Ok(n) = self.local.pending_count().await {
            self.shared.set_status(|s| s.pending = n);
        }
    }

    /// One message while another instance leads.
    async fn follow(&mut self, msg: Msg, forwarded: &mut ByName<Reply>) {
        let shared = self.shared.clone();
        match msg {
            Msg::Wrote => {
                shared.post(&TabMsg::Wrote);
                self.refresh_pending().await;
            }
            Msg::Sync(reply) => {
                if !shared.online() {
                    let _ = reply.send(Err(Error::SyncOffline));
                    return;
                }
                let id = random_id();
                shared.post(&TabMsg::Sync { id: id.clone() });
                forwarded.insert(id.clone(), reply);
                // Never wait forever for a leader that does not answer (a frozen tab).
                let tx = shared.tx.clone();
                crate::env::spawn(async move {
                    sleep(FORWARD_TIMEOUT_MS).await;
                    let _ = tx.unbounded_send(Msg::Tab(TabMsg::Synced {
                        id,
                        report: None,
                        error: Some(StatusError {
                            code: crate::error::codes::SYNC_BUSY.into(),
                            message: "the tab that syncs this database did not answer in time"
                                .into(),
                        }),
                    }));
                });
            }
            Msg::Token { forward } => {
                if forward {
                    shared.post(&TabMsg::Token {
                        token: shared.endpoint.token.borrow().clone(),
                    });
                }
            }
            Msg::Aside(op) => shared.post(&TabMsg::Aside {
                collection: op.key.collection,
                id: op.key.id,
                discard: op.discard,
            }),
            Msg::Browser(_) => shared.settle_state(false),
            Msg::Poke(_) => {}
            Msg::Tab(t) => match t {
                TabMsg::Synced { id, report, error } => {
                    if let Some(reply) = forwarded.remove(&id) {
                        let result = match (report, error) {
                            (Some(r), None) => Ok(r),
                            (_, e) => Err(remote_error(e.unwrap_or(StatusError {
                                code: String::new(),
                                message: "the syncing instance gave no answer".into(),
                            }))),
                        };
                        let _ = reply.send(result);
                    }
                }
                TabMsg::Status { status } => shared.status.update(|s| *s = status),
                TabMsg::Leader => {
                    for id in forwarded.keys() {
                        shared.post(&TabMsg::Sync { id: id.clone() });
                    }
                }
                TabMsg::Token { token } => {
                    *shared.endpoint.token.borrow_mut() = token;
                }
                TabMsg::Clock { offset_ms } => self.local.adopt_offset(offset_ms),
                TabMsg::Wrote | TabMsg::Sync { .. } | TabMsg::Hello | TabMsg::Aside { .. } => {}
            },
        }
    }

    async fn lead(&mut self, waiters: Vec<Waiter>) {
        let local = self.local.clone();
        let transport = HttpTransport::new(self.shared.endpoint.clone());
        let mut config = SyncConfig::default();
        if let Some(n) = self.shared.options.pull_limit {
            config.pull_limit = n;
        }
        if let Some(n) = self.shared.options.push_batch {
            config.push_batch = n;
        }
        let engine =
            SyncEngine::new(local.clone(), transport, self.policies.clone()).with_config(config);
        let options = &self.shared.options;
        let timing = Timing {
            interval_ms: options.interval_ms,
            debounce_ms: options.debounce_ms,
            backoff: options.backoff,
        };
        let mut plan = Plan::lead(timing, now_ms());
        // Calls forwarded to us while we followed: accepted then.
        for _ in &waiters {
            plan.request(true);
        }
        let mut lead = Leading {
            plan,
            waiters,
            aside: Vec::new(),
            stream: None,
        };
        let shared = self.shared.clone();
        loop {
            let now = now_ms();
            let next = lead.plan.next(now, shared.online());
            if next == Next::RefuseWaiting {
                // Offline: answer waiters now instead of letting them hang.
                for w in lead.waiters.drain(..) {
                    answer(&shared, w, Err(Error::SyncOffline));
                }
            }
            shared.settle_state(false);
            let msg = match next {
                Next::RefuseWaiting => continue,
                Next::Run => None,
                Next::WakeAt(t) => {
                    let wake = sleep(t - now).fuse();
                    futures::pin_mut!(wake);
                    futures::select! {
                        m = self.rx.next() => Some(m),
                        _ = wake => None,
                        _ = &mut self.close_rx => Some(None),
                    }
                }
                Next::Wait => futures::select! {
                    m = self.rx.next() => Some(m),
                    _ = &mut self.close_rx => Some(None),
                },
            };
            if let Some(m) = msg {
                let Some(m) = m else { break };
                let mut wrote = self.plan_msg(m, &mut lead);
                // Take everything already queued before deciding anything.
                while let Ok(m) = self.rx.try_recv() {
                    wrote |= self.plan_msg(m, &mut lead);
                }
                if wrote {
                    self.refresh_pending().await;
                }
                for op in std::mem::take(&mut lead.aside) {
                    if op.discard {
                        if let Err(e) = engine.discard(&op.key).await {
                            let err = Error::from(e);
                            shared.set_status(|s| s.error = Some(status_error(&err)));
                        }
                    } else {
                        engine.retry(&op.key);
                    }
                    show_rejected(&shared, &engine);
                }
                continue;
            }

            // Run one sync.
            let running: Vec<Waiter> = std::mem::take(&mut lead.waiters);
            lead.plan.started();
            shared.set_status(|s| s.progress = Default::default());
            shared.settle_state(true);
            let shared2 = shared.clone();
            let mut on_progress = move |p: Progress| {
                if shared2.close.borrow().is_none() {
                    return; // closed: nobody to tell
                }
                shared2.set_status(|s| {
                    s.progress.pulled = p.pulled;
                    s.progress.remaining = p.remaining;
                })
            };
            let sync = engine.sync_once(&mut on_progress).fuse();
            futures::pin_mut!(sync);
            let result = futures::select! {
                r = sync => Some(r),
                _ = &mut self.close_rx => None,
            };
            let Some(result) = result else {
                closing(&shared, running);
                // Let the abandoned sync run to its end rather than drop it mid-request: its next
                // store call fails at once (the database is closed), while a request future
                // dropped before its request ends leaves IndexedDB calling freed handlers (an
                // uncaught error in the page).
                let _ = sync.await;
                break;
            };
            let end = now_ms();
            shared.post(&TabMsg::Clock {
                offset_ms: local.offset_ms(),
            });
            let outcome = match result {
                Ok(report) => {
                    let stream = lead.plan.ended(
                        end,
                        Outcome::Done { more: report.more },
                        js_sys::Math::random(),
                    );
                    let _ = local.save_sync_end(end as u64).await;
                    shared.set_status(|s| {
                        s.error = None;
                        s.last_sync_at = Some(end as u64);
                    });
                    self.stream_to(stream, &mut lead.stream);
                    Ok(report_of(&report))
                }
                Err(e) => {
                    let stream = lead.plan.ended(
                        end,
                        Outcome::Failed(e.retry_class()),
                        js_sys::Math::random(),
                    );
                    self.stream_to(stream, &mut lead.stream);
                    let err = Error::from(e);
                    shared.set_status(|s| s.error = Some(status_error(&err)));
                    Err(err)
                }
            };
            // The status is final (state, pending, rejected) before anyone hears the outcome.
            show_rejected(&shared, &engine);
            self.refresh_pending().await;
            shared.settle_state(false);
            for w in running {
                answer(&shared, w, outcome.clone());
            }
        }
        closing(&shared, lead.waiters);
    }

    fn subscribe(&self) -> Option<events::Subscription> {
        let tx = self.shared.tx.clone();
        let token = self.shared.endpoint.token.borrow().clone();
        events::subscribe(&self.shared.endpoint.base, &token, move |cursor| {
            let _ = tx.unbounded_send(Msg::Poke(cursor));
        })
    }

    /// Does what the plan says about the event stream.
    fn stream_to(&self, action: Option<plan::Stream>, stream: &mut Option<events::Subscription>) {
        match action {
            Some(plan::Stream::Open)
                if self.shared.options.events && stream.as_ref().is_none_or(|s| !s.is_alive()) =>
            {
                *stream = self.subscribe();
            }
            Some(plan::Stream::Close) => *stream = None,
            Some(plan::Stream::Open) | None => {}
        }
    }

    /// Folds one message into the plan; true when the outbox may have changed.
    fn plan_msg(&self, msg: Msg, lead: &mut Leading) -> bool {
        let shared = &self.shared;
        let now = now_ms();
        let input = match msg {
            Msg::Wrote | Msg::Tab(TabMsg::Wrote) => {
                lead.plan.handle(now, Input::Wrote);
                return true;
            }
            Msg::Sync(reply) => {
                if lead.plan.request(shared.online()) {
                    lead.waiters.push(Waiter::Here(reply));
                } else {
                    let _ = reply.send(Err(Error::SyncOffline));
                }
                return false;
            }
            Msg::Tab(TabMsg::Sync { id }) => {
                if lead.plan.request(shared.online()) {
                    lead.waiters.push(Waiter::Tab(id));
                } else {
                    answer(shared, Waiter::Tab(id), Err(Error::SyncOffline));
                }
                return false;
            }
            Msg::Browser(BrowserEvent::Online) => Input::Online,
            Msg::Browser(BrowserEvent::Offline) => return false,
            Msg::Browser(BrowserEvent::Visible) => Input::Visible,
            Msg::Poke(cursor) => {
                let known = self.local.known_cursor().flatten();
                Input::poke(cursor.as_deref(), known.as_deref())
            }
            Msg::Token { forward } => {
                if forward {
                    shared.post(&TabMsg::Token {
                        token: shared.endpoint.token.borrow().clone(),
                    });
                }
                Input::TokenChanged
            }
            Msg::Tab(TabMsg::Token { token }) => {
                *shared.endpoint.token.borrow_mut() = token;
                Input::TokenChanged
            }
            Msg::Aside(op) => {
                lead.aside.push(op);
                Input::Aside
            }
            Msg::Tab(TabMsg::Aside {
                collection,
                id,
                discard,
            }) => {
                lead.aside.push(AsideOp {
                    key: DocKey::new(collection, id),
                    discard,
                });
                Input::Aside
            }
            Msg::Tab(TabMsg::Hello) => {
                shared.post(&TabMsg::Status {
                    status: shared.status.get(),
                });
                shared.post(&TabMsg::Clock {
                    offset_ms: self.local.offset_ms(),
                });
                return false;
            }
            Msg::Tab(
                TabMsg::Synced { .. }
                | TabMsg::Status { .. }
                | TabMsg::Leader
                | TabMsg::Clock { .. },
            ) => return false,
        };
        let stream = lead.plan.handle(now, input);
        self.stream_to(stream, &mut lead.stream);
        false
    }
}

/// An error another instance reported, with its code kept when it is one of ours.
fn remote_error(e: StatusError) -> Error {
    let code = crate::error::codes::known(&e.code).unwrap_or(crate::error::codes::SYNC_BUSY);
    Error::SyncRemote {
        code,
        message: e.message,
    }
}

/// This instance stops leading (closed): its own `db.sync()` calls fail with `DATABASE_CLOSED`;
/// other instances' are left unanswered, and they send them again to the next leader (its
/// `Leader` message), so closing the syncing tab never fails another tab's `db.sync()`.
fn closing(shared: &Shared, waiters: Vec<Waiter>) {
    for w in waiters {
        if let Waiter::Here(reply) = w {
            let _ = reply.send(Err(Error::DatabaseClosed(shared.name.clone())));
        }
    }
}

/// The engine's set-aside changes, into the status.
fn show_rejected<S, T: Transport>(shared: &Shared, engine: &SyncEngine<S, T>)
where
    S: ferrosync_core::sync::LocalStore,
{
    let rejected: Vec<Rejected> = engine
        .set_aside()
        .into_iter()
        .map(|a| Rejected {
            collection: a.key.collection,
            id: a.key.id,
            code: a.code,
            message: a.message,
        })
        .collect();
    shared.set_status(|s| s.rejected = rejected);
}

fn answer(shared: &Shared, w: Waiter, result: Result<Report, Error>) {
    match w {
        Waiter::Here(reply) => {
            let _ = reply.send(result);
        }
        Waiter::Tab(id) => {
            let (report, error) = match result {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(status_error(&e))),
            };
            shared.post(&TabMsg::Synced { id, report, error });
        }
    }
}

/// Maps the engine's failure to the library's error (and so to a JS `Error` with a `code`).
impl From<SyncError> for Error {
    fn from(e: SyncError) -> Error {
        use ferrosync_core::sync::TransportError as T;
        match e {
            SyncError::Transport(t) => match t {
                T::Network(m) => Error::SyncNetwork(m),
                T::Server {
                    status, message, ..
                } => Error::SyncServer(format!("HTTP {status}: {message}")),
                T::Unauthorized { status, message } => {
                    Error::SyncUnauthorized(format!("HTTP {status}: {message}"))
                }
                T::NamespaceMismatch(m) => Error::SyncNamespaceMismatch(m),
                T::CursorEpochMismatch(m) => Error::SyncServer(format!(
                    "the server database changed twice during one sync: {m}"
                )),
                T::BadRequest {
                    status,
                    code,
                    message,
                } => Error::SyncRefused(format!("HTTP {status} {code}: {message}")),
                T::Malformed(m) => Error::SyncMalformedReply(m),
            },
            SyncError::Store(inner) => match inner.downcast::<Error>() {
                Ok(e) => *e,
                Err(other) => Error::storage("SyncStore", other.to_string()),
            },
            SyncError::Resolver {
                collection,
                id,
                message,
            } => Error::SyncResolver(format!(
                "the conflict resolver of {collection:?} failed for document {id:?}: {message}"
            )),
            e @ (SyncError::Busy | SyncError::AlreadyRunning) => Error::SyncBusy(e.to_string()),
        }
    }
}
