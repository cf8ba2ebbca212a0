//! An in-memory sync server with the reference server's rules (the push rule and checks from the
//! same core functions: [`crate::sync::push_rule`], [`crate::sync::validate`]; `server/src/store/plan.rs`,
//! `server/src/handlers.rs`, `docs/PROTOCOL.md` section 7): one feed per namespace (token),
//! last-write-wins by HLC, idempotent retries, the last push of each client replayed exactly, stale
//! replies carrying the current version (once per reply), lineages (an edit applied before whose reply was lost is
//! answered `applied` with what replaced it: [`crate::sync::lineage`]), cursors tied to an epoch (`400 BAD_CURSOR` for a malformed
//! one or one ahead of the feed, `409` for another epoch), pagination with a remaining count, drift,
//! shape and body-size checks, all-or-nothing pushes.
//!
//! Faults a real deployment can have are available on purpose: a restore from an older copy that
//! keeps the epoch ([`MemServer::restore_keeping_epoch`]: cursors run ahead of the head, positions
//! are reused), and rows the server refuses whatever the client does ([`MemServer::refuse`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use crate::hlc::DEFAULT_MAX_DRIFT_MS;
use crate::limits::MAX_PULL_LIMIT;
use crate::protocol::{codes, Change, PullResponse, PushRequest, PushResponse, PushResult};
use crate::sync::lineage::{lineage_after, Lineage};
use crate::sync::push_rule::{decide, reply, Carried, Verdict};
use crate::sync::store::DocKey;
use crate::sync::transport::TransportError;
use crate::sync::validate::check_push;

/// One namespace's data: the current version of each document and its position in the feed, and
/// the last push of each client with the reply it got (`ferrosync_client_pushes`: part of the
/// database, so a backup holds it too).
#[derive(Clone, Debug, Default)]
pub struct Namespace {
    docs: HashMap<DocKey, (Change, u64)>,
    feed: BTreeMap<u64, DocKey>,
    seq: u64,
    last_push: HashMap<String, LastPush>,
    /// Beside each current version, its lineage (`ferrosync_docs.lineage`; absent: the version
    /// alone).
    lineages: HashMap<DocKey, Lineage>,
}

/// A client's last push: its fingerprint (the canonical request, as the real server hashes it),
/// the results and the head it replied with.
#[derive(Clone, Debug)]
struct LastPush {
    fingerprint: String,
    results: Vec<PushResult>,
    head: u64,
}

/// Decides whether the server refuses a change on its own (a rule the client does not check):
/// `Some((status, code, message))` refuses the whole push, as the real server refuses a push
/// with one bad change.
pub type RefuseRule = Box<dyn Fn(&Change) -> Option<(u16, String, String)>>;

impl Namespace {
    fn write(&mut self, c: Change, lineage: Option<Lineage>) {
        let key = DocKey::of(&c);
        match lineage {
            Some(l) => self.lineages.insert(key.clone(), l),
            None => self.lineages.remove(&key),
        };
        if let Some((_, old)) = self.docs.get(&key) {
            self.feed.remove(old);
        }
        self.seq += 1;
        self.feed.insert(self.seq, key.clone());
        self.docs.insert(key, (c, self.seq));
    }

    /// Current versions in key order.
    pub fn docs(&self) -> Vec<Change> {
        let mut v: Vec<Change> = self.docs.values().map(|(c, _)| c.clone()).collect();
        v.sort_by(|a, b| DocKey::of(a).cmp(&DocKey::of(b)));
        v
    }

    /// The feed position of the last write.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

struct State {
    epoch: String,
    epochs_made: u64,
    namespaces: HashMap<String, Namespace>,
    revoked: HashSet<String>,
    wall: Box<dyn Fn() -> u64>,
    max_drift_ms: u64,
    max_body_bytes: Option<usize>,
    refuse: Option<RefuseRule>,
    push_sizes: Vec<usize>,
    replays: u64,
}

/// Cloning gives another handle to the same server.
#[derive(Clone)]
pub struct MemServer {
    state: Rc<RefCell<State>>,
}

/// A cursor: `<epoch>.<namespace tag>:<seq>`, the real server's layout (a pull's adds the
/// position's check, see [`position_check`]).
fn cursor_at(epoch: &str, namespace: &str, seq: u64) -> String {
    format!("{epoch}.{}:{seq}", namespace_tag(epoch, namespace))
}

/// The feed's tag in cursors (FNV-1a of `<epoch>:<namespace>`; the real server uses SHA-256).
fn namespace_tag(epoch: &str, namespace: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in epoch.bytes().chain([b':']).chain(namespace.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// What a pull's cursor says was at its position (`~<check>` after the position, as the real
/// server's: FNV-1a here, SHA-256 there): a restore that kept the epoch reuses positions.
fn position_check(c: &Change) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let hlc = c.hlc.encode();
    for part in [c.collection.as_str(), c.id.as_str(), hlc.as_str()] {
        for b in part.bytes().chain([0]) {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    format!("{h:08x}")
}

/// The position of a client's cursor in `namespace`'s feed of database `epoch` and the check of
/// the change it names, or why not: as the real server, malformed is `BAD_CURSOR`, another
/// epoch 409, another namespace 403.
fn parse_cursor<'a>(
    raw: &'a str,
    epoch: &str,
    namespace: &str,
) -> Result<(u64, Option<&'a str>), TransportError> {
    let bad = || refuse(400, codes::BAD_CURSOR, format!("malformed cursor {raw:?}"));
    let (head, rest) = raw.split_once(':').ok_or_else(bad)?;
    let (seq, check) = match rest.split_once('~') {
        Some((seq, check)) => (seq, Some(check)),
        None => (rest, None),
    };
    let seq: u64 = seq.parse().map_err(|_| bad())?;
    let (e, tag) = match head.split_once('.') {
        Some((e, t)) => (e, Some(t)),
        None => (head, None),
    };
    if e.len() != 16 || !e.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    if e != epoch {
        return Err(TransportError::CursorEpochMismatch(format!(
            "cursor of epoch {e}, server is epoch {epoch}"
        )));
    }
    if tag.is_some_and(|t| t != namespace_tag(epoch, namespace)) {
        return Err(another_namespace());
    }
    Ok((seq, check))
}

fn another_namespace() -> TransportError {
    TransportError::NamespaceMismatch("cursor belongs to another namespace".into())
}

fn refuse(status: u16, code: &str, message: String) -> TransportError {
    TransportError::BadRequest {
        status,
        code: code.to_string(),
        message,
    }
}

impl MemServer {
    /// `wall` is the server's clock (ms since the epoch): its `serverTime`, and the drift bound's base.
    pub fn new(wall: impl Fn() -> u64 + 'static) -> Self {
        MemServer {
            state: Rc::new(RefCell::new(State {
                epoch: epoch_name(1),
                epochs_made: 1,
                namespaces: HashMap::new(),
                revoked: HashSet::new(),
                wall: Box::new(wall),
                max_drift_ms: DEFAULT_MAX_DRIFT_MS,
                max_body_bytes: None,
                refuse: None,
                push_sizes: Vec::new(),
                replays: 0,
            })),
        }
    }

    fn namespace_of(st: &State, token: Option<&str>) -> Result<String, TransportError> {
        match token {
            Some(t) if !t.is_empty() && !st.revoked.contains(t) => Ok(t.to_string()),
            _ => Err(TransportError::Unauthorized {
                status: 401,
                message: "missing or invalid bearer token".into(),
            }),
        }
    }

    /// `POST /v1/push`.
    pub fn push(
        &self,
        token: Option<&str>,
        req: &PushRequest,
    ) -> Result<PushResponse, TransportError> {
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        let ns_name = Self::namespace_of(st, token)?;
        // The canonical request: what the real server hashes to recognise a retry.
        let fingerprint = serde_json::to_string(req)
            .map_err(|e| refuse(400, codes::BAD_REQUEST, e.to_string()))?;
        if let Some(max) = st.max_body_bytes {
            if fingerprint.len() > max {
                return Err(refuse(
                    413,
                    codes::PAYLOAD_TOO_LARGE,
                    format!("body of {} bytes, limit {max}", fingerprint.len()),
                ));
            }
        }
        let now = (st.wall)();
        // The reference server's checks, from the same function.
        check_push(req, now, st.max_drift_ms)
            .map_err(|e| refuse(e.status(), e.code(), e.to_string()))?;
        if let Some(rule) = &st.refuse {
            for (i, c) in req.changes.iter().enumerate() {
                if let Some((status, code, message)) = rule(c) {
                    return Err(refuse(status, &code, format!("changes[{i}]: {message}")));
                }
            }
        }
        if let Some(raw) = &req.cursor {
            // As the real server: a push naming this database's cursor of another namespace is
            // another account's device (nothing stored); anything else about the cursor is for
            // the device's next pull to find out.
            if let Err(e @ TransportError::NamespaceMismatch(_)) =
                parse_cursor(raw, &st.epoch, &ns_name)
            {
                return Err(e);
            }
        }
        let fingerprint = {
            let mut stored = req.clone();
            stored.cursor = None;
            serde_json::to_string(&stored)
                .map_err(|e| refuse(400, codes::BAD_REQUEST, e.to_string()))?
        };
        let ns = st.namespaces.entry(ns_name.clone()).or_default();
        if let Some(last) = ns.last_push.get(&req.client_id) {
            if last.fingerprint == fingerprint {
                // A retry whose reply was lost: the same reply, nothing written.
                let reply = PushResponse {
                    results: last.results.clone(),
                    cursor: Some(cursor_at(&st.epoch, &ns_name, last.head)),
                    server_time: now,
                    max_drift_ms: None,
                };
                st.replays += 1;
                return Ok(reply);
            }
        }
        st.push_sizes.push(req.changes.len());
        let mut results = Vec::with_capacity(req.changes.len());
        let mut carried = Carried::default();
        for c in &req.changes {
            // The reference server's rule, from the same function.
            let key = DocKey::of(c);
            let current = ns.docs.get(&key).map(|(cur, _)| cur);
            let lineage = ns.lineages.get(&key);
            let verdict = decide(c, &req.client_id, current, lineage);
            if verdict == Verdict::Write {
                let lineage = lineage_after(c, current, lineage);
                // The base is a question to this server, not part of the version.
                ns.write(
                    Change {
                        base: None,
                        ..c.clone()
                    },
                    lineage,
                );
                results.push(reply(verdict, None));
                continue;
            }
            let current = current.filter(|_| verdict.carries_current() && carried.first(key));
            results.push(reply(verdict, current));
        }
        let seq = ns.seq;
        ns.last_push.insert(
            req.client_id.clone(),
            LastPush {
                fingerprint,
                results: results.clone(),
                head: seq,
            },
        );
        let cursor = cursor_at(&st.epoch, &ns_name, seq);
        Ok(PushResponse {
            results,
            cursor: Some(cursor),
            server_time: now,
            max_drift_ms: None,
        })
    }

    /// `GET /v1/pull`.
    pub fn pull(
        &self,
        token: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<PullResponse, TransportError> {
        let st = self.state.borrow();
        let ns_name = Self::namespace_of(&st, token)?;
        let (after, check) = match cursor {
            None | Some("") => (0, None),
            Some(raw) => parse_cursor(raw, &st.epoch, &ns_name)?,
        };
        let limit = limit.clamp(1, MAX_PULL_LIMIT);
        let empty = Namespace::default();
        let ns = st.namespaces.get(&ns_name).unwrap_or(&empty);
        if after > ns.seq {
            // As the real server: a position this feed never reached (a restored database that
            // kept its epoch, or a forged cursor).
            return Err(refuse(
                400,
                codes::BAD_CURSOR,
                format!(
                    "cursor {after} is ahead of this server's feed (head {})",
                    ns.seq
                ),
            ));
        }
        let there = ns
            .feed
            .get(&after)
            .map(|key| position_check(&ns.docs[key].0));
        if let (Some(mine), Some(there)) = (check, &there) {
            if mine != there {
                return Err(TransportError::CursorEpochMismatch(format!(
                    "cursor names a change no longer at position {after} (restored)"
                )));
            }
        }
        let mut changes = Vec::new();
        let mut last = after;
        for (seq, key) in ns.feed.range(after + 1..).take(limit) {
            changes.push(ns.docs[key].0.clone());
            last = *seq;
        }
        let remaining = ns.feed.range(last + 1..).count() as u64;
        let check = match changes.last() {
            Some(c) => Some(position_check(c)),
            None => check.map(str::to_string),
        };
        let at = cursor_at(&st.epoch, &ns_name, last);
        Ok(PullResponse {
            changes,
            cursor: match check {
                Some(c) => format!("{at}~{c}"),
                None => at,
            },
            has_more: remaining > 0,
            remaining: Some(remaining),
            server_time: (st.wall)(),
            max_drift_ms: None,
        })
    }

    /// The current versions of a namespace, in key order.
    pub fn docs(&self, namespace: &str) -> Vec<Change> {
        self.state
            .borrow()
            .namespaces
            .get(namespace)
            .map(Namespace::docs)
            .unwrap_or_default()
    }

    /// A copy of a namespace (a backup).
    pub fn snapshot(&self, namespace: &str) -> Namespace {
        self.state
            .borrow()
            .namespaces
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }

    /// Replaces the database (reset, or restored from backups) under a new epoch.
    pub fn reset(&self, restored: Vec<(String, Namespace)>) {
        let mut st = self.state.borrow_mut();
        st.epochs_made += 1;
        st.epoch = epoch_name(st.epochs_made);
        st.namespaces = restored.into_iter().collect();
    }

    /// Replaces the database with an older copy of it that kept its epoch, as restoring a backup
    /// of the whole database does (the epoch lives in `ferrosync_meta`, inside the backup): cursors
    /// handed out since run ahead of the restored head, and the positions after it are reused by
    /// new writes. Each client's last push is the one the backup remembers.
    pub fn restore_keeping_epoch(&self, restored: Vec<(String, Namespace)>) {
        self.state.borrow_mut().namespaces = restored.into_iter().collect();
    }

    /// A new epoch over the same data, as `ferrosync-server rotate-epoch` (the step
    /// `docs/OPERATIONS.md` puts after any restore that kept the epoch): every cursor handed out
    /// before is answered `409`, so every device reads the feed from the start.
    pub fn rotate_epoch(&self) {
        let mut st = self.state.borrow_mut();
        st.epochs_made += 1;
        st.epoch = epoch_name(st.epochs_made);
    }

    /// The server's clock now: the `serverTime` every reply carries, error replies included.
    pub fn server_time(&self) -> u64 {
        (self.state.borrow().wall)()
    }

    /// The server's epoch (the part of every cursor before the colon).
    pub fn epoch(&self) -> String {
        self.state.borrow().epoch.clone()
    }

    /// Refuses every push holding a change `rule` picks (a server-side rule, or a document over
    /// the body limit), whatever the client does; `None` lifts it.
    pub fn refuse(&self, rule: Option<RefuseRule>) {
        self.state.borrow_mut().refuse = rule;
    }

    /// Pushes whose JSON body is over `max` bytes get `413 PAYLOAD_TOO_LARGE`.
    pub fn set_max_body_bytes(&self, max: Option<usize>) {
        self.state.borrow_mut().max_body_bytes = max;
    }

    /// Pushes answered from a client's remembered last push (retries whose reply was lost).
    pub fn replays(&self) -> u64 {
        self.state.borrow().replays
    }

    /// Refuses `token` from now on (401).
    pub fn revoke(&self, token: &str) {
        self.state.borrow_mut().revoked.insert(token.to_string());
    }

    /// Stores a version bypassing every check (to model data written by a broken client).
    pub fn inject(&self, namespace: &str, change: Change) {
        self.state
            .borrow_mut()
            .namespaces
            .entry(namespace.to_string())
            .or_default()
            .write(change, None);
    }

    /// Sizes of the pushes accepted so far.
    pub fn push_sizes(&self) -> Vec<usize> {
        self.state.borrow().push_sizes.clone()
    }

    pub fn seq(&self, namespace: &str) -> u64 {
        self.state
            .borrow()
            .namespaces
            .get(namespace)
            .map_or(0, |n| n.seq)
    }
}

fn epoch_name(n: u64) -> String {
    // Distinct, 16 hex digits like the real server's random epochs.
    format!("{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
