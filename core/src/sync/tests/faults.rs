//! Seeded fault simulation (issue 13): three devices edit documents in three collections (lww,
//! merge, custom resolver) while the faults switched on in [`Faults`] hit them, and four properties
//! are checked:
//!
//! 1. after every step, every local version is on the server, superseded there, or pending
//!    (not checked while a server restore keeping its epoch is on: the server then forgets versions
//!    by design);
//! 2. a resolver is never offered a remote version made on top of the local one it is given;
//! 3. no acknowledged write is lost: for lww the newest write is final, for merge the final
//!    version is the join of every write, for the custom collection the final version descends from
//!    every version the server ever held (writes lost with a wiped store, never acknowledged, are
//!    left out);
//! 4. once the faults stop, every replica equals the server within [`K`] syncs each (the row the
//!    server always refuses aside: it stays pending).
//!
//! Each document version of the custom collection carries a tag (`_v`), and the simulation records
//! which versions each one was made on (app edits: the local version; resolutions: both sides), so
//! properties 2 and 3 can be judged without trusting the engine.
//!
//! `ci_faults` lists the faults run together; each `sim_*` test runs one fault alone, with
//! focused reproductions in `faults_repro.rs` and failing seeds pinned as regression tests.
//! `docs/TESTING.md` says how to run a longer simulation (`FERROSYNC_SIM_SEEDS`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use serde_json::{json, Map, Value};

use super::{value, AnyStore, NS, START};
use crate::hlc::{Hlc, HlcClock, DEFAULT_MAX_DRIFT_MS};
use crate::merge::{FieldState, DELETED_AT};
use crate::protocol::{Change, Doc};
use crate::sync::mem::{Fault, MemServer, MemTransport, Namespace};
use crate::sync::{
    with_timeout, Conflict, CustomResolver, DocKey, Policies, Policy, ResolverFuture, SyncClock,
    SyncConfig, SyncEngine, SyncError, SyncReport, DEFAULT_RESOLVER_TIMEOUT_MS,
};

/// Syncs per device after the faults stop within which every replica must equal the server.
pub(super) const K: usize = 3;

/// Faults, each switched on by its flag.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Faults {
    /// A document the server refuses whatever the client does (422 by a server-side rule, or alone
    /// over the body limit: 413).
    pub refused_row: bool,
    /// The custom resolver throws for one document.
    pub resolver_throws: bool,
    /// The custom resolver never settles for one document.
    pub resolver_hangs: bool,
    /// The server applies a push and the reply is lost.
    pub dropped_reply: bool,
    /// The tab is killed after the server applied its push (the sync is dropped mid-way).
    pub killed_mid_push: bool,
    /// One device's clock runs 2 h ahead from the start.
    pub clock_ahead: bool,
    /// Device clocks jump by +-1 h now and then.
    pub clock_jumps: bool,
    /// A device's database is wiped while a request is in flight (the engine keeps running).
    pub wiped_store: bool,
    /// The server is restored from an older copy that kept its epoch.
    pub restored_server: bool,
    /// Devices create the same ids in the custom collection without having seen each other's.
    pub create_create: bool,
    /// Pushes of 1-3 changes.
    pub small_batches: bool,
    /// Not a fault: the devices run the browser's outbox code (`OutboxStore` over `MemTables`,
    /// IndexedDB's layout in memory) instead of the simple in-memory store.
    pub layout: bool,
    /// Scenario, not a fault: no edits in the merge collection (wiped stores over the lww and
    /// custom collections alone; `sim_wiped_store_with_merge` adds merge edits).
    pub no_merge_edits: bool,
}

/// The faults today's engine survives with every property asserted (run in CI), on top of those
/// every run has (network errors, 5xx, edits while a request is in flight).
pub(super) fn ci_faults() -> Faults {
    Faults {
        small_batches: true,
        ..Faults::default()
    }
}

/// SplitMix64.
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DEVICES: usize = 3;
const IDS: u64 = 4;
const FIELDS: [&str; 3] = ["a", "b", "c"];
/// The id the server always refuses (in the lww collection).
const POISON: &str = "poison";
/// Ids of the custom collection the resolver throws for / never settles for.
const THROWS_FOR: &str = "c0-0";
const HANGS_FOR: &str = "c1-0";

/// What the simulation knows independently of the engine.
#[derive(Default)]
pub(super) struct Tracker {
    /// Custom collection: tag -> every tag it was made on (transitively).
    ancestors: HashMap<String, BTreeSet<String>>,
    next_tag: u64,
    /// Every version the server ever held (observed after each push), by key.
    on_server: BTreeMap<DocKey, Vec<Change>>,
    /// App writes (lww and merge), minus those lost with a wiped store.
    log: Vec<Logged>,
    /// Property violations, with the step they happened at.
    pub violations: Vec<String>,
    pub step: usize,
    /// Resolver faults are on (switched off when the faults stop).
    throws: bool,
    hangs: bool,
    pub resolutions: u64,
}

pub(super) fn tag_of(doc: Option<&Doc>) -> Option<String> {
    tag_in(doc.and_then(|d| d.parse().ok()).as_ref())
}

fn tag_in(doc: Option<&Value>) -> Option<String> {
    doc.and_then(|d| d.get("_v"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl Tracker {
    fn new_tag(&mut self, parents: &[String]) -> String {
        self.next_tag += 1;
        let tag = format!("v{}", self.next_tag);
        let mut anc = BTreeSet::new();
        for p in parents {
            anc.insert(p.clone());
            if let Some(a) = self.ancestors.get(p) {
                anc.extend(a.iter().cloned());
            }
        }
        self.ancestors.insert(tag.clone(), anc);
        tag
    }

    /// Whether version `tag` was made (directly or not) on version `on`.
    fn made_on(&self, tag: &str, on: &str) -> bool {
        self.ancestors.get(tag).is_some_and(|a| a.contains(on))
    }

    fn observe_server(&mut self, server: &MemServer) {
        for c in server.docs(NS) {
            let seen = self.on_server.entry(DocKey::of(&c)).or_default();
            if !seen.iter().any(|s| s.hlc == c.hlc) {
                seen.push(c);
            }
        }
    }

    /// Merge edit `c` reduced to the fields it wrote (those at its own stamp) that the server held
    /// at that stamp (a join made on it reached the server), or `None` if none did (or its delete
    /// did not).
    fn acknowledged_fields(&self, c: &Change) -> Option<Change> {
        let key = DocKey::of(c);
        let fields = c.fields.as_ref()?;
        let own: Vec<&String> = fields
            .iter()
            .filter(|(_, at)| **at == c.hlc)
            .map(|(f, _)| f)
            .collect();
        let lost: Vec<String> = own
            .iter()
            .filter(|f| !self.field_was_on_server(&key, f, &c.hlc))
            .map(|f| f.to_string())
            .collect();
        if lost.len() == own.len() || (c.deleted && lost.iter().any(|f| f == DELETED_AT)) {
            return None;
        }
        let mut out = c.clone();
        for f in &lost {
            if let Some(m) = out.fields.as_mut() {
                m.remove(f);
            }
            if let Some(Value::Object(mut d)) = out.doc.as_ref().and_then(|d| d.parse().ok()) {
                d.remove(f);
                out.doc = Doc::some(Value::Object(d));
            }
        }
        Some(out)
    }

    /// Whether the server ever held field `field` of `key` at stamp `at`.
    fn field_was_on_server(&self, key: &DocKey, field: &str, at: &Hlc) -> bool {
        self.on_server.get(key).is_some_and(|v| {
            v.iter()
                .any(|s| s.fields.as_ref().and_then(|f| f.get(field)) == Some(at))
        })
    }

    fn was_on_server(&self, c: &Change) -> bool {
        self.on_server
            .get(&DocKey::of(c))
            .is_some_and(|v| v.iter().any(|s| s.hlc == c.hlc))
    }
}

type Track = Rc<RefCell<Tracker>>;

/// An app write, with how many re-stamps its device's store had made before it: a re-stamp
/// (`MemStore::restamps`) only moves versions made before it.
#[derive(Clone)]
struct Logged {
    change: Change,
    restamps_before: usize,
}

impl Logged {
    /// Logs `write`, just made by `store`.
    fn of(store: &AnyStore, write: Change) -> Logged {
        Logged {
            change: write,
            restamps_before: store.restamps().len(),
        }
    }
}

/// The simulation's resolver: the remote document with the local edit's fields on top, under a new
/// tag made on both. Checks property 2 on every call. Bounded by core's time-out over simulated
/// time, as the browser bounds a JS resolver.
fn resolver(track: Track, time: Rc<Cell<u64>>) -> Policy {
    let app: CustomResolver = Rc::new(move |c: Conflict| {
        let mut t = track.borrow_mut();
        t.resolutions += 1;
        let (lt, rt) = (tag_in(c.local.as_ref()), tag_in(c.remote.as_ref()));
        if let (Some(l), Some(r)) = (&lt, &rt) {
            if l == r || t.made_on(r, l) {
                let step = t.step;
                t.violations.push(format!(
                    "step {step}: property 2: resolver for {}/{} offered remote {r} made on top of local {l}",
                    c.collection, c.id
                ));
            }
        }
        if t.throws && c.id == THROWS_FOR {
            return Box::pin(async { Err("resolver threw".to_string()) }) as ResolverFuture;
        }
        if t.hangs && c.id == HANGS_FOR {
            return Box::pin(std::future::pending()) as ResolverFuture;
        }
        let mut out = c.remote.clone().unwrap_or_else(|| json!({}));
        if let Some(l) = c.local.as_ref().and_then(Value::as_object) {
            for (k, v) in l {
                out[k] = v.clone();
            }
        }
        let parents: Vec<String> = lt.into_iter().chain(rt).collect();
        out["_v"] = json!(t.new_tag(&parents));
        Box::pin(async move { Ok(Some(out)) }) as ResolverFuture
    });
    Policy::Custom(with_timeout(
        app,
        DEFAULT_RESOLVER_TIMEOUT_MS,
        super::sim_sleep(time),
    ))
}

type Action = Rc<RefCell<Option<Box<dyn FnMut()>>>>;

/// Polls a sync to its end, or until `killed` is set (the tab dies: the sync is dropped where it
/// stands), or until a poll budget runs out (stuck). Each poll that waits costs 50 ms of simulated
/// time (requests take time; a time-out in the engine can fire): the budget is 200 s.
pub(super) fn drive(
    fut: impl Future<Output = Result<SyncReport, SyncError>>,
    time: &Cell<u64>,
    killed: &Cell<bool>,
) -> Ran {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..4_000 {
        if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            return Ran::Done(r);
        }
        if killed.get() {
            return Ran::Killed;
        }
        time.set(time.get() + 50);
    }
    Ran::Hung
}

pub(super) struct SimDevice {
    pub name: String,
    pub store: AnyStore,
    pub engine: SyncEngine<AnyStore, MemTransport>,
    pub skew: Rc<Cell<i64>>,
    /// Runs once in the next push's flight (after the server applied it).
    on_push: Action,
    on_pull: Action,
    /// Set by a fault: the tab dies, its running sync is dropped where it stands.
    killed: Rc<Cell<bool>>,
}

/// How a driven sync ended.
#[derive(Debug)]
pub(super) enum Ran {
    Done(Result<SyncReport, SyncError>),
    /// The tab was killed mid-sync.
    Killed,
    /// Still not finished after the poll budget (a hanging resolver): stuck.
    Hung,
}

pub(super) struct Sim {
    pub time: Rc<Cell<u64>>,
    pub server: MemServer,
    pub devices: Vec<SimDevice>,
    pub track: Track,
    pub faults: Faults,
    pub trace: Vec<String>,
    /// The server copy a restore goes back to.
    snapshot: Option<Namespace>,
    /// Custom-collection ids each device created so far.
    created: [u64; DEVICES],
    /// The server was restored keeping its epoch (the operator's `rotate-epoch` is still due).
    restored: bool,
}

impl Sim {
    pub fn new(faults: Faults, rng: &mut Rng) -> Sim {
        let time = Rc::new(Cell::new(START));
        let t = time.clone();
        let server = MemServer::new(move || t.get());
        let track: Track = Rc::default();
        {
            let mut tr = track.borrow_mut();
            tr.throws = faults.resolver_throws;
            tr.hangs = faults.resolver_hangs;
        }
        if faults.refused_row {
            if rng.below(2) == 0 {
                server.refuse(Some(Box::new(|c: &Change| {
                    (c.id == POISON).then(|| {
                        (
                            422,
                            "RULE_VIOLATION".to_string(),
                            "refused by a server rule".to_string(),
                        )
                    })
                })));
            } else {
                // A document alone over the body limit.
                server.set_max_body_bytes(Some(16 * 1024));
            }
        }
        let policies = Policies::new(Policy::Lww)
            .with("mrg", Policy::Merge)
            .with("cus", resolver(track.clone(), time.clone()));
        let mut devices = Vec::new();
        for i in 0..DEVICES {
            let name = format!("d{i}");
            let skew = Rc::new(Cell::new(if faults.clock_ahead && i == 2 {
                7_200_000
            } else {
                0
            }));
            let (t, s) = (time.clone(), skew.clone());
            let clock = SyncClock::new(
                HlcClock::new(&name, DEFAULT_MAX_DRIFT_MS).unwrap(),
                move || (t.get() as i64 + s.get()) as u64,
            );
            let store = AnyStore::new(faults.layout, clock);
            store.track_fields("mrg");
            let transport = MemTransport::new(server.clone(), NS);
            let on_push: Action = Rc::default();
            let on_pull: Action = Rc::default();
            let killed = Rc::new(Cell::new(false));
            {
                let (a, tr, sv) = (on_push.clone(), track.clone(), server.clone());
                transport.on_push(Some(Box::new(move || {
                    tr.borrow_mut().observe_server(&sv);
                    let act = a.borrow_mut().take();
                    if let Some(mut f) = act {
                        f();
                    }
                })));
                let a = on_pull.clone();
                transport.on_pull(Some(Box::new(move || {
                    let act = a.borrow_mut().take();
                    if let Some(mut f) = act {
                        f();
                    }
                })));
            }
            let config = SyncConfig {
                push_batch: if faults.small_batches {
                    1 + rng.below(3) as usize
                } else {
                    SyncConfig::default().push_batch
                },
                ..SyncConfig::default()
            };
            let engine =
                SyncEngine::new(store.clone(), transport, policies.clone()).with_config(config);
            devices.push(SimDevice {
                name,
                store,
                engine,
                skew,
                on_push,
                on_pull,
                killed,
            });
        }
        Sim {
            time,
            server,
            devices,
            track,
            faults,
            trace: Vec::new(),
            snapshot: None,
            created: [0; DEVICES],
            restored: false,
        }
    }

    fn note(&mut self, what: String) {
        let step = self.track.borrow().step;
        self.trace.push(format!("{step}: {what}"));
    }

    /// Runs one sync of device `d` to its end, killed, or stuck.
    pub fn sync(&self, d: usize) -> Ran {
        let dev = &self.devices[d];
        dev.killed.set(false);
        drive(dev.engine.sync_once(&mut |_| {}), &self.time, &dev.killed)
    }

    /// A random app write on device `d`.
    fn edit(&mut self, d: usize, rng: &mut Rng) {
        let dev = &self.devices[d];
        let store = dev.store.clone();
        let pick = rng.below(10);
        let (coll, id) = match pick {
            0..=3 => ("lww", format!("x{}", rng.below(IDS))),
            // Merge and custom: edit a document this device holds, or create one under a new id
            // (with create-create, also a shared id it does not hold: a blind write, which loses
            // what only the server held, for both policies).
            4..=6 if self.faults.no_merge_edits => ("lww", format!("x{}", rng.below(IDS))),
            4..=6 => match self.pick_id(d, "mrg", rng) {
                Some(id) => ("mrg", id),
                None => return,
            },
            _ => match self.pick_id(d, "cus", rng) {
                Some(id) => ("cus", id),
                None => return,
            },
        };
        let (coll, id) = if self.faults.refused_row && d == 0 && rng.below(25) == 0 {
            ("lww", POISON.to_string())
        } else {
            (coll, id)
        };
        let current = store.get(coll, &id);
        let live = current
            .as_ref()
            .filter(|c| !c.deleted)
            .and_then(|c| value(c.doc.clone()));
        let field = FIELDS[rng.below(3) as usize];
        let doc = if coll == "cus" {
            // Never deleted (a tombstone has no tag): "gone" marks a delete.
            let mut d = live.unwrap_or_else(|| json!({}));
            match rng.below(4) {
                0 => d["gone"] = json!(true),
                _ => d[field] = json!(rng.below(100)),
            }
            let parents: Vec<String> = tag_of(current.as_ref().and_then(|c| c.doc.as_ref()))
                .into_iter()
                .collect();
            d["_v"] = json!(self.track.borrow_mut().new_tag(&parents));
            Some(d)
        } else if id == POISON {
            Some(json!({ "blob": "p".repeat(20_000) }))
        } else {
            match rng.below(10) {
                0..=5 => {
                    let mut d = live.unwrap_or_else(|| Value::Object(Map::new()));
                    d[field] = json!(rng.below(100));
                    Some(d)
                }
                6 => live.map(|mut d| {
                    d.as_object_mut().unwrap().remove(field);
                    d
                }),
                7 | 8 => None,
                _ => Some(json!({ field: rng.below(100) })),
            }
        };
        let c = store.write(coll, &id, doc);
        self.note(format!(
            "{} writes {coll}/{id} {}",
            self.devices[d].name, c.hlc
        ));
        if coll != "cus" && id != POISON {
            self.track.borrow_mut().log.push(Logged::of(&store, c));
        }
    }

    /// An id of `coll` for device `d` to write: one it holds, a new one nobody used, or (with
    /// create-create) a shared one it does not hold. `None`: skip this edit.
    fn pick_id(&mut self, d: usize, coll: &str, rng: &mut Rng) -> Option<String> {
        let store = &self.devices[d].store;
        let held: Vec<String> = store
            .docs()
            .into_iter()
            .filter(|c| c.collection == coll)
            .map(|c| c.id)
            .collect();
        if self.faults.create_create && rng.below(4) == 0 {
            let id = format!("s{}", rng.below(2));
            return store.get(coll, &id).is_none().then_some(id);
        }
        if !held.is_empty() && rng.below(4) != 0 {
            return Some(held[rng.below(held.len() as u64) as usize].clone());
        }
        self.created[d] += 1;
        Some(format!("c{d}-{}", self.created[d] - 1))
    }

    /// Property 1: every local version is on the server (same or newer version there) or pending.
    fn check_local_versions(&self) {
        if self.faults.restored_server {
            return;
        }
        let server: BTreeMap<DocKey, Change> = self
            .server
            .docs(NS)
            .into_iter()
            .map(|c| (DocKey::of(&c), c))
            .collect();
        let mut t = self.track.borrow_mut();
        let step = t.step;
        for dev in &self.devices {
            for c in dev.store.docs() {
                if dev.store.is_pending(&c.collection, &c.id) {
                    continue;
                }
                let k = DocKey::of(&c);
                let ok = server.get(&k).is_some_and(|s| s.hlc >= c.hlc);
                if !ok {
                    t.violations.push(format!(
                        "step {step}: property 1: {} holds {}/{} {} not pending and not on the server (server: {:?})",
                        dev.name,
                        c.collection,
                        c.id,
                        c.hlc,
                        server.get(&k).map(|s| s.hlc.to_string())
                    ));
                }
            }
        }
    }

    /// A wipe of device `d`'s store: its writes the server never got are gone with it.
    ///
    /// A merge edit can reach the server without its own version ever being there: the push of
    /// it is answered `stale` and the edit joined with the server's version into a new version
    /// (made by the engine, never logged) that is pushed instead. Its fields are then on the
    /// server at the edit's stamps, and they stay after the wipe. So a merge edit whose version
    /// the server never held keeps the fields it wrote (those at its own stamp) that the server
    /// held at that stamp, and only the others are lost with the store.
    fn wipe(track: &Track, server: &MemServer, store: &AnyStore) {
        let node = store.sync_clock().node();
        let mut t = track.borrow_mut();
        t.observe_server(server);
        let log = std::mem::take(&mut t.log);
        let mut kept = Vec::new();
        for mut w in log {
            if w.change.hlc.node != node || t.was_on_server(&w.change) {
                kept.push(w);
            } else if w.change.collection == "mrg" {
                if let Some(c) = t.acknowledged_fields(&w.change) {
                    w.change = c;
                    kept.push(w);
                }
            }
        }
        t.log = kept;
        store.wipe();
    }

    /// One random step with faults.
    fn step(&mut self, rng: &mut Rng) {
        self.time.set(self.time.get() + rng.below(3000));
        let d = rng.below(DEVICES as u64) as usize;
        match rng.below(100) {
            0..=49 => self.edit(d, rng),
            50..=89 => {
                let dev = &self.devices[d];
                let net = dev.engine.transport();
                match rng.below(10) {
                    0 => net.fail_next(Fault::Network),
                    1 => net.fail_next(Fault::Status(503)),
                    2 if self.faults.dropped_reply => {
                        net.fail_next(Fault::Pass);
                        net.fail_next(Fault::DropReply);
                    }
                    3 if self.faults.dropped_reply => net.fail_next(Fault::DropReply),
                    4 if self.faults.killed_mid_push => {
                        let k = dev.killed.clone();
                        *dev.on_push.borrow_mut() = Some(Box::new(move || k.set(true)));
                    }
                    5 | 6 if self.faults.wiped_store => {
                        let (tr, sv, st) =
                            (self.track.clone(), self.server.clone(), dev.store.clone());
                        let slot = if rng.below(2) == 0 {
                            &dev.on_push
                        } else {
                            &dev.on_pull
                        };
                        *slot.borrow_mut() = Some(Box::new(move || Self::wipe(&tr, &sv, &st)));
                    }
                    7 => {
                        // An edit while a request is in flight.
                        let (st, tr) = (dev.store.clone(), self.track.clone());
                        let n = rng.next();
                        *dev.on_pull.borrow_mut() = Some(Box::new(move || {
                            let c = st.write(
                                "lww",
                                &format!("x{}", n % IDS),
                                Some(json!({"f": n % 7})),
                            );
                            tr.borrow_mut().log.push(Logged::of(&st, c));
                        }));
                    }
                    _ => {}
                }
                let ran = self.sync(d);
                let dev = &self.devices[d];
                dev.engine.transport().clear_faults();
                *dev.on_push.borrow_mut() = None;
                *dev.on_pull.borrow_mut() = None;
                let what = match &ran {
                    Ran::Done(Ok(r)) => format!("ok {r:?}"),
                    Ran::Done(Err(e)) => format!("failed {}: {e}", e.code()),
                    other => format!("{other:?}"),
                };
                if let Ran::Hung = ran {
                    let step = self.track.borrow().step;
                    self.track.borrow_mut().violations.push(format!(
                        "step {step}: sync of {} never finished",
                        self.devices[d].name
                    ));
                }
                let wiped = self.devices[d].store.wipes();
                self.note(format!(
                    "{} syncs: {what} (wipes so far {wiped})",
                    self.devices[d].name
                ));
            }
            90..=94 => {
                if self.faults.clock_jumps {
                    let dev = &self.devices[d];
                    let jump: i64 = if rng.below(2) == 0 {
                        3_600_000
                    } else {
                        -3_600_000
                    };
                    let s = (dev.skew.get() + jump).clamp(-3_600_000, 3_600_000);
                    dev.skew.set(s);
                    self.note(format!("{} clock skew now {s} ms", dev.name));
                }
            }
            95..=97 => {
                if self.faults.restored_server && rng.below(3) == 0 {
                    self.snapshot = Some(self.server.snapshot(NS));
                }
            }
            _ => {
                if self.faults.restored_server {
                    if let Some(b) = self.snapshot.clone() {
                        self.server.restore_keeping_epoch(vec![(NS.to_string(), b)]);
                        self.restored = true;
                        self.note("server restored from an older copy, same epoch".into());
                    }
                }
            }
        }
    }
}

/// Outcome of one seed.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Stats {
    pub edits: u64,
    pub final_syncs: u64,
    pub final_failed: u64,
    pub wipes: u64,
    pub resolutions: u64,
}

/// Runs one seed: `steps` random steps with `faults`, then the faults stop and every device syncs
/// up to [`K`] times. Returns the violations found (with the trace tail), or stats.
pub(super) fn run(seed: u64, steps: usize, faults: Faults) -> Result<Stats, String> {
    let mut rng = Rng(seed);
    let mut sim = Sim::new(faults, &mut rng);
    let mut stats = Stats::default();
    for step in 0..steps {
        sim.track.borrow_mut().step = step;
        sim.step(&mut rng);
        sim.check_local_versions();
        if !sim.track.borrow().violations.is_empty() {
            break;
        }
    }
    // The faults stop. What fails by its nature keeps failing: the refused row stays refused, the
    // resolver keeps throwing / hanging for its document (those documents stay set aside).
    sim.track.borrow_mut().step = steps;
    if sim.restored {
        // A restore that kept the epoch ends with `rotate-epoch` (docs/OPERATIONS.md): until then
        // a device behind the restored head may follow reused positions. The cursor's check
        // catches most (`positions_reused_after_a_restore_keeping_the_epoch_are_not_skipped`),
        // but not a position whose document was written again since: without this, 29 seeds in
        // 500 skip a change (147 without the check).
        sim.server.rotate_epoch();
        sim.note("the operator rotates the epoch".into());
    }
    let mut converged = false;
    if sim.track.borrow().violations.is_empty() {
        for _round in 0..K {
            for d in 0..DEVICES {
                let ran = sim.sync(d);
                stats.final_syncs += 1;
                if !matches!(ran, Ran::Done(Ok(_))) {
                    stats.final_failed += 1;
                }
                if let Ran::Hung = ran {
                    sim.track.borrow_mut().violations.push(format!(
                        "after the faults: a sync of {} never finished",
                        sim.devices[d].name
                    ));
                }
                sim.note(format!("final: {} syncs: {ran:?}", sim.devices[d].name));
            }
            sim.check_local_versions();
            if replicas_equal(&sim) {
                converged = true;
                break;
            }
        }
    }
    let mut violations = sim.track.borrow().violations.clone();
    if violations.is_empty() && !converged {
        violations.push(format!(
            "property 4: replicas differ from the server after {K} syncs each: {}",
            differences(&sim)
        ));
    }
    if violations.is_empty() {
        violations.extend(lost_writes(&sim));
    }
    if !violations.is_empty() {
        let tail: Vec<&String> = sim
            .trace
            .iter()
            .rev()
            .take(
                std::env::var("FERROSYNC_SIM_TRACE")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(30),
            )
            .collect();
        let tail: Vec<&String> = tail.into_iter().rev().collect();
        return Err(format!(
            "seed {seed:#x} faults {faults:?}:\n  {}\ntrace tail:\n  {}",
            violations.join("\n  "),
            tail.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    let t = sim.track.borrow();
    stats.edits = sim.trace.iter().filter(|s| s.contains(" writes ")).count() as u64;
    stats.wipes = sim.devices.iter().map(|d| d.store.wipes()).sum();
    stats.resolutions = t.resolutions;
    Ok(stats)
}

/// The documents that stay set aside by their nature (refused by the server, or their resolver
/// fails) are left out of the comparison of replicas; every other one must converge.
fn without_poison(docs: Vec<Change>) -> BTreeMap<DocKey, Change> {
    docs.into_iter()
        .filter(|c| {
            c.id != POISON
                && !(c.collection == "cus" && [THROWS_FOR, HANGS_FOR].contains(&c.id.as_str()))
        })
        .map(|c| (DocKey::of(&c), c))
        .collect()
}

fn replicas_equal(sim: &Sim) -> bool {
    let server = without_poison(sim.server.docs(NS));
    sim.devices
        .iter()
        .all(|d| without_poison(d.store.docs()) == server)
}

fn differences(sim: &Sim) -> String {
    let server = without_poison(sim.server.docs(NS));
    let mut out = Vec::new();
    for d in &sim.devices {
        let local = without_poison(d.store.docs());
        for k in server.keys().chain(local.keys()).collect::<BTreeSet<_>>() {
            let (s, l) = (server.get(k), local.get(k));
            if s != l {
                out.push(format!(
                    "{} {}/{}: local {:?} pending {} vs server {:?}",
                    d.name,
                    k.collection,
                    k.id,
                    l.map(|c| c.hlc.to_string()),
                    d.store.is_pending(&k.collection, &k.id),
                    s.map(|c| c.hlc.to_string())
                ));
            }
        }
    }
    out.truncate(6);
    for d in &sim.devices {
        for a in d.engine.set_aside() {
            out.push(format!("{} set aside {:?}", d.name, a));
        }
    }
    out.join("; ")
}

/// Property 3.
fn lost_writes(sim: &Sim) -> Vec<String> {
    if sim.faults.restored_server {
        return Vec::new(); // a restore forgets acknowledged writes by design
    }
    let t = sim.track.borrow();
    let server = without_poison(sim.server.docs(NS));
    let mut out = Vec::new();
    // A write re-stamped after CLOCK_AHEAD is that write at its new time.
    //
    // The re-stamped version need not be the app's write itself: a pending merge edit joined
    // with a pulled version is a new local version (stamped after the edit) carrying the edit's
    // field stamps, and that version is what gets re-stamped. The re-stamp lowers every field
    // stamp past the new stamp to the new stamp (ARCHITECTURE.md, "After 422 CLOCK_AHEAD"; a
    // field is never later than its version), so the edit's fields reach the server at the new
    // stamp, and a later edit of the field elsewhere rightly sorts after them (seed
    // 0x5384af8beb9a9948: d0's edit of `b` stamped 1 h ahead, joined with d2's version, then
    // re-stamped; d1 then edited `b` and won). The merge policy promises the join of the writes
    // as they were acknowledged, so the record follows that path too: an earlier write of the
    // device to the document (made before the re-stamp, its version among those the re-stamped
    // one descends from) gets the new stamp on each field the re-stamp lowered to it (the field
    // holds exactly the new stamp), unless the server already held the field at the write's own
    // stamp (then that stamp was acknowledged as it was, and stays).
    let mut log = t.log.clone();
    for d in &sim.devices {
        let node = d.store.sync_clock().node();
        for (i, (old, new)) in d.store.restamps().into_iter().enumerate() {
            let key = DocKey::of(&new);
            let moved = log.iter_mut().filter(|w| {
                w.restamps_before <= i && w.change.hlc.node == node && DocKey::of(&w.change) == key
            });
            for w in moved {
                if w.change.hlc == old {
                    w.change = new.clone();
                    continue;
                }
                if w.change.hlc > old {
                    continue;
                }
                let Some(fields) = w.change.fields.as_mut() else {
                    continue;
                };
                for (f, at) in fields.iter_mut() {
                    let lowered = new.fields.as_ref().and_then(|n| n.get(f)) == Some(&new.hlc);
                    if *at > new.hlc && lowered && !t.field_was_on_server(&key, f, at) {
                        *at = new.hlc.clone();
                    }
                }
            }
        }
    }
    let log: Vec<Change> = log.into_iter().map(|w| w.change).collect();
    // A device's later edit of a document supersedes its earlier ones, whatever their stamps:
    // after a clock rewind (CLOCK_AHEAD) the later edit may carry the lower stamp. So each
    // device's last edit of each document counts.
    let mut last: BTreeMap<(DocKey, String), &Change> = BTreeMap::new();
    for c in &log {
        last.insert((DocKey::of(c), c.hlc.node.clone()), c);
    }
    let mut by_key: BTreeMap<DocKey, Vec<&Change>> = BTreeMap::new();
    for ((key, _), c) in last {
        by_key.entry(key).or_default().push(c);
    }
    for (key, versions) in &by_key {
        let Some(fin) = server.get(key) else {
            out.push(format!("property 3: {key:?} written but not on the server"));
            continue;
        };
        match key.collection.as_str() {
            "lww" => {
                let newest = versions.iter().max_by(|a, b| a.hlc.cmp(&b.hlc)).unwrap();
                if fin.hlc != newest.hlc {
                    out.push(format!(
                        "property 3: lww {key:?}: final {} is not the newest write {}",
                        fin.hlc, newest.hlc
                    ));
                }
            }
            "mrg" => {
                let join = versions
                    .iter()
                    .map(|c| FieldState::of(c))
                    .reduce(|a, b| a.join(&b))
                    .unwrap();
                if FieldState::of(fin) != join {
                    out.push(format!(
                        "property 3: merge {key:?}: final {:?} is not the join of every write {:?}",
                        FieldState::of(fin),
                        join
                    ));
                }
            }
            _ => {}
        }
    }
    for (key, seen) in &t.on_server {
        if key.collection != "cus" {
            continue;
        }
        let Some(fin) = server.get(key) else { continue };
        let Some(ft) = tag_of(fin.doc.as_ref()) else {
            continue;
        };
        for v in seen {
            let Some(vt) = tag_of(v.doc.as_ref()) else {
                continue;
            };
            if vt != ft && !t.made_on(&ft, &vt) {
                out.push(format!(
                    "property 3: cus {}: acknowledged version {vt} ({}) lost: final {ft} ({}) was not made on it",
                    key.id, v.hlc, fin.hlc
                ));
            }
        }
    }
    out.truncate(6);
    out
}

/// Seeds for CI, or `FERROSYNC_SIM_SEEDS` of them for a longer run.
pub(super) fn seeds(default: u64) -> u64 {
    std::env::var("FERROSYNC_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn run_many(faults: Faults, default_seeds: u64, steps: usize) -> (Stats, Vec<String>) {
    let mut total = Stats::default();
    let mut failures = Vec::new();
    for i in 0..seeds(default_seeds) {
        let seed = i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5133;
        match run(seed, steps, faults) {
            Ok(s) => {
                total.edits += s.edits;
                total.final_syncs += s.final_syncs;
                total.final_failed += s.final_failed;
                total.wipes += s.wipes;
                total.resolutions += s.resolutions;
            }
            Err(e) => failures.push(e),
        }
    }
    (total, failures)
}

fn assert_survives(faults: Faults, default_seeds: u64, steps: usize) -> Stats {
    let (total, failures) = run_many(faults, default_seeds, steps);
    assert!(
        failures.is_empty(),
        "{} of {} seeds broke a property; first:\n{}",
        failures.len(),
        seeds(default_seeds),
        failures[0]
    );
    total
}

#[test]
fn every_property_holds_under_the_faults_the_engine_survives() {
    let total = assert_survives(ci_faults(), 200, 150);
    println!("fault simulation, CI faults, totals: {total:?}");
    // The run must exercise what it claims to.
    assert!(total.resolutions > 100, "{total:?}");
}

/// The same faults over the browser's outbox code: positions, watermarks, rows awaiting an ack,
/// the batch read ahead and the persisted clock (`OutboxStore` over `MemTables`).
#[test]
fn every_property_holds_on_the_browser_outbox() {
    let faults = Faults {
        layout: true,
        ..ci_faults()
    };
    let total = assert_survives(faults, 200, 150);
    println!("fault simulation, CI faults, browser outbox, totals: {total:?}");
    assert!(total.resolutions > 100, "{total:?}");
}

/// Every fault of the `sim_*` tests, one at a time, over the browser's outbox code.
#[test]
fn every_fault_on_the_browser_outbox() {
    let one = |set: fn(&mut Faults)| {
        let mut f = Faults {
            layout: true,
            ..ci_faults()
        };
        set(&mut f);
        f
    };
    let sets: [(&str, Faults); 10] = [
        ("wiped_store", one(|f| f.wiped_store = true)),
        ("refused_row", one(|f| f.refused_row = true)),
        ("resolver_throws", one(|f| f.resolver_throws = true)),
        ("resolver_hangs", one(|f| f.resolver_hangs = true)),
        ("dropped_reply", one(|f| f.dropped_reply = true)),
        ("killed_mid_push", one(|f| f.killed_mid_push = true)),
        ("clock_ahead", one(|f| f.clock_ahead = true)),
        ("clock_jumps", one(|f| f.clock_jumps = true)),
        ("restored_server", one(|f| f.restored_server = true)),
        ("create_create", one(|f| f.create_create = true)),
    ];
    let mut broken = Vec::new();
    for (name, faults) in sets {
        let (total, failures) = run_many(faults, 100, 150);
        println!(
            "browser outbox, {name}: {total:?}, {} failed",
            failures.len()
        );
        if let Some(first) = failures.first() {
            broken.push(format!(
                "{name}: {} seeds failed; first:\n{first}",
                failures.len()
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n\n"));
}

/// Found by the browser-outbox simulation at 1,000 seeds (4 seeds of `clock_jumps` fail; 100
/// pass): the outbox place of a pending version (`pend`) is its HLC, and the clock can be wound
/// back (`CLOCK_AHEAD`) below a watermark already saved from a place stamped ahead. Here d0's merge
/// edit, stamped 1 h ahead, is joined after a stale reply (its old place, 1 h ahead, becomes mrg's
/// watermark), then re-stamped after `CLOCK_AHEAD`: its new place is below that watermark, so the
/// store no longer counts it pending and it never reaches the server (property 1). A local write
/// made after the rewind, or a row requeued then, lands below the mark the same way. The simple
/// `MemStore` (one outbox row per document) cannot show it. Fixed by outbox places that never go
/// back when the clock does (`outbox::Places`).
#[test]
fn sim_clock_jumps_on_the_browser_outbox_seed_0x829e040f92fbec1d() {
    let faults = Faults {
        layout: true,
        clock_jumps: true,
        ..ci_faults()
    };
    if let Err(e) = run(0x829e_040f_92fb_ec1d, 150, faults) {
        panic!("{e}");
    }
}

/// Item 6 natively: stores wiped while a request is in flight, the engine running on. Over the
/// lww and custom collections (with merge edits, see `sim_wiped_store_with_merge`).
#[test]
fn every_property_holds_with_stores_wiped_mid_sync() {
    let total = assert_survives(
        Faults {
            wiped_store: true,
            no_merge_edits: true,
            ..ci_faults()
        },
        200,
        150,
    );
    println!("fault simulation, wiped stores, totals: {total:?}");
    assert!(total.wipes > 200, "{total:?}");
}

/// Item 6 with merge edits too. Broke property 3 (21 seeds in 200) before merge edits were
/// pushed with their base: a wiped device's field edit the server held was replaced whole by
/// another device's newer edit made without it
/// (`a_merge_edit_made_without_the_current_version_does_not_replace_it`).
#[test]
fn sim_wiped_store_with_merge() {
    assert_survives(
        Faults {
            wiped_store: true,
            ..ci_faults()
        },
        200,
        150,
    );
}

/// A seed that broke property 3 only in the simulation's record: d2's merge edit of `c` was
/// answered `stale`, joined with d0's version into a new version pushed instead, and then d2's
/// store was wiped. The record dropped the edit as never on the server (its own version never
/// was), yet its field reached the server in the join and rightly stays.
#[test]
fn sim_wiped_store_with_merge_seed_0x2a2fa48a7b66b9db() {
    let faults = Faults {
        wiped_store: true,
        ..ci_faults()
    };
    if let Err(e) = run(0x2a2f_a48a_7b66_b9db, 150, faults) {
        panic!("{e}");
    }
}

#[test]
fn sim_refused_row() {
    assert_survives(
        Faults {
            refused_row: true,
            ..ci_faults()
        },
        200,
        150,
    );
}

#[test]
fn sim_resolver_throws() {
    assert_survives(
        Faults {
            resolver_throws: true,
            ..ci_faults()
        },
        200,
        150,
    );
}

#[test]
fn sim_resolver_hangs() {
    assert_survives(
        Faults {
            resolver_hangs: true,
            ..ci_faults()
        },
        200,
        150,
    );
}

#[test]
fn sim_dropped_reply() {
    assert_survives(
        Faults {
            dropped_reply: true,
            ..ci_faults()
        },
        200,
        150,
    );
}

/// A seed that broke property 4 (1 in 2000): a pull after a push whose reply was lost skipped
/// another device's version of an edit in doubt and saved the cursor past it; the retried push was
/// answered from the server's replay (`applied`, nothing newer), so that version was never pulled.
#[test]
fn sim_dropped_reply_seed_0xdc1fdaef7b4e4eb6() {
    let faults = Faults {
        dropped_reply: true,
        ..ci_faults()
    };
    if let Err(e) = run(0xdc1f_daef_7b4e_4eb6, 150, faults) {
        panic!("{e}");
    }
}

#[test]
fn sim_killed_mid_push() {
    assert_survives(
        Faults {
            killed_mid_push: true,
            ..ci_faults()
        },
        200,
        150,
    );
}

#[test]
fn sim_clock_ahead() {
    assert_survives(
        Faults {
            clock_ahead: true,
            ..ci_faults()
        },
        200,
        150,
    );
}

/// A seed that broke property 3 (1 in 200): device d0's merge edit, stamped 1 h ahead (its clock
/// had jumped back to true time with the server offset still learned at -1 h), was joined with a
/// pulled version into a new local version and then re-stamped after `CLOCK_AHEAD`; a later edit
/// of the same field by d1 sorts after the re-stamped field and wins.
#[test]
fn sim_clock_jumps_seed_0x5384af8beb9a9948() {
    let faults = Faults {
        clock_jumps: true,
        ..ci_faults()
    };
    if let Err(e) = run(0x5384_af8b_eb9a_9948, 150, faults) {
        panic!("{e}");
    }
}

#[test]
fn sim_clock_jumps() {
    assert_survives(
        Faults {
            clock_jumps: true,
            ..ci_faults()
        },
        200,
        150,
    );
}

/// Restores keeping the epoch while devices run (cursors ahead of the head: `BAD_CURSOR`; positions
/// reused), then the operator's `rotate-epoch` when the faults stop, after which every replica must
/// equal the server.
#[test]
fn sim_restored_server() {
    assert_survives(
        Faults {
            restored_server: true,
            ..ci_faults()
        },
        200,
        150,
    );
}

#[test]
fn sim_create_create() {
    assert_survives(
        Faults {
            create_create: true,
            ..ci_faults()
        },
        200,
        150,
    );
}
