//! Deciding pushes, independent of the database: which changes win (last-write-wins by HLC, the
//! order defined once in `ferrosync_core::Hlc`), which rows must be written and with which feed
//! numbers. Several pushes committed together (group commit) are decided here one after another,
//! exactly as if each had its own transaction.

use std::collections::hash_map::{Entry, HashMap};

use ferrosync_core::protocol::{Change, PushResult};
use ferrosync_core::sync::lineage::{self, lineage_after, Lineage};
use ferrosync_core::sync::push_rule::{self, decide, Carried, Verdict};

use super::error::StoreError;
use super::rows::{Encoded, PushOutcome, StoredReply};

/// One push waiting to be applied.
#[derive(Clone, Debug)]
pub struct Job {
    pub namespace: String,
    pub client_id: String,
    /// Hex SHA-256 of the canonical request: equal for a retry of the same push.
    pub hash: String,
    pub changes: Vec<Change>,
    /// `changes` encoded for the database, one each, in order.
    pub encoded: Vec<Encoded>,
    /// Largest reply (the stale results' current versions) this push may get; a push of more than
    /// one change that would get more is refused before anything is written, so that a few bytes
    /// of stale changes cannot ask for megabytes of documents back.
    pub max_reply_bytes: usize,
}

/// `(namespace, collection, id)`.
pub type DocKey = (String, String, String);
/// `(namespace, client_id)`.
pub type ClientKey = (String, String);

/// What the database holds for the documents, namespaces and clients a group of jobs touches.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Feed heads of the namespaces (absent: 0).
    pub heads: HashMap<String, u64>,
    /// Each client's last push: its hash and what is needed to answer it again.
    pub replies: HashMap<ClientKey, (String, StoredReply)>,
    /// Current version of each document (absent: never written).
    pub current: HashMap<DocKey, Change>,
    /// The lineage stored beside a current version (absent: the version alone).
    pub lineages: HashMap<DocKey, Lineage>,
}

impl Loaded {
    /// Records a document's current version as read from the database, with its lineage.
    pub fn insert_current(&mut self, namespace: String, (change, l): (Change, Option<Lineage>)) {
        let key = (namespace, change.collection.clone(), change.id.clone());
        if let Some(l) = l {
            self.lineages.insert(key.clone(), l);
        }
        self.current.insert(key, change);
    }
}

/// A document version to store, with its new feed number. Borrows from the pushed jobs: a
/// group's documents are not copied on their way to the database.
#[derive(Debug, Clone)]
pub struct WriteRow<'a> {
    pub namespace: &'a String,
    pub client_id: &'a String,
    pub change: &'a Change,
    pub encoded: &'a Encoded,
    pub seq: u64,
    /// `ferrosync_docs.lineage`: JSON text, or none.
    pub lineage: Option<String>,
}

/// Everything a group of jobs writes, and what each job gets back.
#[derive(Debug, Default)]
pub struct GroupPlan<'a> {
    /// One per job, in order: a job refused for its reply's size writes nothing.
    pub outcomes: Vec<Result<PushOutcome, StoreError>>,
    /// The final version of each written document.
    pub rows: Vec<WriteRow<'a>>,
    /// New heads of the namespaces that moved.
    pub heads: Vec<(String, u64)>,
    /// The last push of each client in the group, remembered for retries.
    pub replies: Vec<(ClientKey, String, StoredReply)>,
}

impl GroupPlan<'_> {
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.heads.iter().map(|(ns, _)| ns.as_str())
    }
}

/// `(namespace, collection, id)`, borrowed.
type DocRef<'a> = (&'a str, &'a str, &'a str);

/// A document while a group is decided.
struct Doc<'a> {
    current: &'a Change,
    lineage: Option<Lineage>,
    /// Index in `rows` when this group writes the document.
    row: Option<usize>,
}

/// Decides `jobs` in order on top of `loaded`, each change by core's push rule
/// ([`push_rule::decide`]: applied, seen again, superseded or stale), each job seeing the writes of
/// the jobs before it. A job whose hash equals its client's previous push is a retry: it writes
/// nothing and gets the previous statuses again, with today's current versions.
pub fn plan_group<'a>(jobs: &'a [Job], loaded: Loaded) -> GroupPlan<'a> {
    let Loaded {
        mut heads,
        mut replies,
        current: stored,
        mut lineages,
    } = loaded;
    // Each touched document: its current version (as stored, or as written earlier in this
    // group) and its row if this group writes it. Borrowed keys and versions, one hash lookup
    // per change: deciding a change allocates nothing.
    let mut docs: HashMap<DocRef<'_>, Doc<'_>> = stored
        .iter()
        .map(|((ns, coll, id), c)| {
            (
                (ns.as_str(), coll.as_str(), id.as_str()),
                Doc {
                    current: c,
                    lineage: lineages.remove(&(ns.clone(), coll.clone(), id.clone())),
                    row: None,
                },
            )
        })
        .collect();
    let mut rows: Vec<WriteRow<'a>> =
        Vec::with_capacity(jobs.iter().map(|j| j.changes.len()).sum());
    let mut moved: Vec<String> = Vec::new();
    let mut replied: Vec<ClientKey> = Vec::new();
    let mut outcomes = Vec::with_capacity(jobs.len());

    for job in jobs {
        let client_key = (job.namespace.clone(), job.client_id.clone());
        if let Some((hash, stored)) = replies.get(&client_key) {
            if *hash == job.hash {
                // A retry: the same statuses, with today's current versions (each still newer
                // than what was pushed), each document's once.
                let mut carried = Carried::default();
                let results = job
                    .changes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let key = (job.namespace.as_str(), c.collection.as_str(), c.id.as_str());
                        let verdict = if stored.superseded.contains(&(i as u32)) {
                            Verdict::Superseded
                        } else if stored.stale.contains(&(i as u32)) {
                            Verdict::Stale
                        } else {
                            Verdict::Write
                        };
                        let current = docs.get(&key).map(|d| d.current);
                        carrying(verdict, current, key, &mut carried)
                    })
                    .collect();
                outcomes.push(Ok(PushOutcome {
                    results,
                    head: stored.head,
                }));
                continue;
            }
        }
        if job.changes.len() > 1 {
            let bytes = reply_bytes(job, &docs, job.max_reply_bytes);
            if bytes > job.max_reply_bytes {
                outcomes.push(Err(StoreError::ReplyTooLarge(format!(
                    "the current versions this push would get back exceed {} bytes; push fewer changes at once",
                    job.max_reply_bytes
                ))));
                continue;
            }
        }
        let head = heads.entry(job.namespace.clone()).or_insert(0);
        let mut results = Vec::with_capacity(job.changes.len());
        let mut carried = Carried::default();
        let mut stale_at = Vec::new();
        let mut superseded_at = Vec::new();
        let mut wrote = false;
        for (i, (c, encoded)) in job.changes.iter().zip(&job.encoded).enumerate() {
            let key = (job.namespace.as_str(), c.collection.as_str(), c.id.as_str());
            let (doc, lineage) = match docs.entry(key) {
                Entry::Occupied(e) => {
                    let doc = e.into_mut();
                    let verdict =
                        decide(c, &job.client_id, Some(doc.current), doc.lineage.as_ref());
                    match verdict {
                        Verdict::Write => {}
                        Verdict::Seen => {
                            results.push(push_rule::reply(verdict, None));
                            continue;
                        }
                        Verdict::Superseded | Verdict::Stale => {
                            let at = if verdict == Verdict::Stale {
                                &mut stale_at
                            } else {
                                &mut superseded_at
                            };
                            at.push(i as u32);
                            results.push(carrying(verdict, Some(doc.current), key, &mut carried));
                            continue;
                        }
                    }
                    let lineage = lineage_after(c, Some(doc.current), doc.lineage.as_ref());
                    (doc, lineage)
                }
                Entry::Vacant(e) => {
                    let doc = e.insert(Doc {
                        current: c,
                        lineage: None,
                        row: None,
                    });
                    (doc, None)
                }
            };
            *head += 1;
            let row = WriteRow {
                namespace: &job.namespace,
                client_id: &job.client_id,
                change: c,
                encoded,
                seq: *head,
                lineage: lineage.as_ref().map(lineage::encode),
            };
            match doc.row {
                // Written earlier in this group: only the final version is stored.
                Some(i) => rows[i] = row,
                None => {
                    doc.row = Some(rows.len());
                    rows.push(row);
                }
            }
            doc.current = c;
            doc.lineage = lineage;
            wrote = true;
            results.push(push_rule::reply(Verdict::Write, None));
        }
        if wrote && !moved.contains(&job.namespace) {
            moved.push(job.namespace.clone());
        }
        let outcome = PushOutcome {
            results,
            head: *head,
        };
        if !replied.contains(&client_key) {
            replied.push(client_key.clone());
        }
        let stored = StoredReply {
            head: *head,
            stale: stale_at,
            superseded: superseded_at,
        };
        replies.insert(client_key, (job.hash.clone(), stored));
        outcomes.push(Ok(outcome));
    }

    GroupPlan {
        outcomes,
        rows,
        heads: moved
            .into_iter()
            .map(|ns| {
                let h = heads[&ns];
                (ns, h)
            })
            .collect(),
        replies: replied
            .into_iter()
            .filter_map(|k| replies.remove(&k).map(|(h, o)| (k, h, o)))
            .collect(),
    }
}

/// `verdict`'s result, carrying the document's current version unless this reply already does.
fn carrying<'a>(
    verdict: Verdict,
    current: Option<&Change>,
    key: DocRef<'a>,
    carried: &mut Carried<DocRef<'a>>,
) -> PushResult {
    let current = current.filter(|_| verdict.carries_current() && carried.first(key));
    push_rule::reply(verdict, current)
}

/// The bytes of current versions `job` would get back, decided as [`plan_group`] decides (by the
/// same [`decide`]), counted until `cap` is passed.
fn reply_bytes(job: &Job, docs: &HashMap<DocRef<'_>, Doc<'_>>, cap: usize) -> usize {
    let mut written: HashMap<DocRef<'_>, &Change> = HashMap::new();
    let mut carried = Carried::default();
    let mut bytes = 0;
    for c in &job.changes {
        let key = (job.namespace.as_str(), c.collection.as_str(), c.id.as_str());
        let current = written
            .get(&key)
            .copied()
            .or_else(|| docs.get(&key).map(|d| d.current));
        // Superseded or stale both carry the current version: the lineage does not matter here.
        match decide(c, &job.client_id, current, None) {
            Verdict::Seen => {}
            Verdict::Write => {
                written.insert(key, c);
            }
            Verdict::Superseded | Verdict::Stale => {
                if let Some(cur) = current.filter(|_| carried.first(key)) {
                    bytes += serde_json::to_vec(cur).map_or(0, |v| v.len());
                    if bytes > cap {
                        return bytes;
                    }
                }
            }
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosync_core::protocol::PushStatus;
    use ferrosync_core::Hlc;
    use serde_json::json;

    fn ch(id: &str, wall: u64, node: &str, deleted: bool) -> Change {
        Change {
            collection: "t".into(),
            id: id.into(),
            hlc: Hlc::new(wall, 0, node).unwrap(),
            deleted,
            doc: (!deleted).then(|| json!({"id": id, "w": wall}).into()),
            fields: None,
            base: None,
        }
    }

    fn job(ns: &str, client: &str, hash: &str, changes: Vec<Change>) -> Job {
        Job {
            namespace: ns.into(),
            client_id: client.into(),
            hash: hash.into(),
            encoded: changes.iter().map(crate::store::rows::encode).collect(),
            changes,
            max_reply_bytes: usize::MAX,
        }
    }

    /// The statuses job `i` got back, in order.
    fn statuses(p: &GroupPlan<'_>, i: usize) -> Vec<PushStatus> {
        p.outcomes[i]
            .as_ref()
            .unwrap()
            .results
            .iter()
            .map(|r| r.status.clone())
            .collect()
    }

    fn key(ns: &str, id: &str) -> DocKey {
        (ns.into(), "t".into(), id.into())
    }

    #[test]
    fn lww_with_ties_and_tombstones() {
        let mut loaded = Loaded::default();
        loaded.heads.insert("n".into(), 7);
        loaded
            .current
            .insert(key("n", "a"), ch("a", 10, "x", false));
        loaded.current.insert(key("n", "b"), ch("b", 10, "x", true));
        let jobs = [job(
            "n",
            "c",
            "h1",
            vec![
                ch("a", 9, "z", true),   // older delete loses
                ch("a", 10, "x", false), // same version: idempotent
                ch("a", 10, "y", false), // same wall, higher node wins
                ch("b", 11, "x", false), // newer update beats tombstone
                ch("c", 1, "x", false),
                ch("c", 2, "x", true), // same push, later delete wins
            ],
        )];
        let p = plan_group(&jobs, loaded);
        use PushStatus::*;
        let s = statuses(&p, 0);
        assert_eq!(s, vec![Stale, Applied, Applied, Applied, Applied, Applied]);
        assert_eq!(
            p.outcomes[0].as_ref().unwrap().results[0]
                .current
                .as_ref()
                .unwrap()
                .hlc
                .node,
            "x"
        );
        let w: Vec<_> = p
            .rows
            .iter()
            .map(|r| {
                (
                    r.change.id.as_str(),
                    r.change.hlc.node.as_str(),
                    r.change.deleted,
                    r.seq,
                )
            })
            .collect();
        // `c` was written twice (seq 10, then 11): only its final version is stored.
        assert_eq!(
            w,
            vec![
                ("a", "y", false, 8),
                ("b", "x", false, 9),
                ("c", "x", true, 11)
            ]
        );
        assert_eq!(p.outcomes[0].as_ref().unwrap().head, 11);
        assert_eq!(p.heads, vec![("n".to_string(), 11)]);
    }

    #[test]
    fn a_change_made_without_seeing_the_current_version_is_stale_whatever_the_order() {
        let with_base = |id: &str, wall: u64, node: &str, base: (u64, &str)| Change {
            base: Some(Hlc::new(base.0, 0, base.1).unwrap()),
            ..ch(id, wall, node, false)
        };
        let mut loaded = Loaded::default();
        // Current versions: `a` by node y (made after x's 5), `b` at its base, `c` by the pusher.
        for (id, wall, node) in [("a", 6, "y"), ("b", 5, "x"), ("c", 6, "z")] {
            loaded
                .current
                .insert(key("n", id), ch(id, wall, node, false));
        }
        let jobs = [job(
            "n",
            "z",
            "h1",
            vec![
                with_base("a", 9, "z", (5, "x")), // newer, but not made on y's 6: stale
                with_base("b", 9, "z", (5, "x")), // made on the current version: applied
                with_base("c", 9, "z", (5, "x")), // current is z's own (acknowledged) edit
                with_base("d", 9, "z", (5, "x")), // nothing stored: applied
            ],
        )];
        let p = plan_group(&jobs, loaded);
        use PushStatus::*;
        let s = statuses(&p, 0);
        assert_eq!(s, vec![Stale, Applied, Applied, Applied]);
        let current = p.outcomes[0].as_ref().unwrap().results[0]
            .current
            .as_ref()
            .unwrap();
        assert_eq!((current.hlc.wall_ms, current.hlc.node.as_str()), (6, "y"));
        assert_eq!(current.base, None, "a stored version has no base");
        assert_eq!(p.rows.len(), 3);
    }

    #[test]
    fn jobs_in_a_group_see_each_other_and_retries_replay() {
        let mut loaded = Loaded::default();
        let earlier = PushOutcome {
            results: vec![push_rule::reply(Verdict::Write, None)],
            head: 3,
        };
        let stored = StoredReply {
            head: 3,
            stale: vec![],
            superseded: vec![],
        };
        loaded
            .replies
            .insert(("n".into(), "c1".into()), ("old".into(), stored));
        let jobs = [
            job("n", "c1", "old", vec![ch("a", 1, "c1", false)]), // retry of the stored push
            job("n", "c1", "h2", vec![ch("a", 5, "c1", false)]),
            job("m", "c2", "h3", vec![ch("a", 1, "c2", false)]), // other namespace
            job("n", "c2", "h4", vec![ch("a", 4, "c2", false)]), // loses to job 2
            job("n", "c1", "h2", vec![ch("a", 5, "c1", false)]), // retry within the group
        ];
        let p = plan_group(&jobs, loaded);
        let o: Vec<&PushOutcome> = p.outcomes.iter().map(|o| o.as_ref().unwrap()).collect();
        assert_eq!(*o[0], earlier);
        assert_eq!(o[1].head, 1);
        assert_eq!(o[2].head, 1);
        assert_eq!(o[3].results[0].status, PushStatus::Stale);
        assert_eq!(o[4], o[1]);
        assert_eq!(p.rows.len(), 2);
        let mut replies: Vec<_> = p
            .replies
            .iter()
            .map(|(k, h, _)| (k.0.as_str(), k.1.as_str(), h.as_str()))
            .collect();
        replies.sort();
        assert_eq!(
            replies,
            vec![("m", "c2", "h3"), ("n", "c1", "h2"), ("n", "c2", "h4")]
        );
    }

    #[test]
    fn a_current_version_is_sent_once_per_push_and_replies_are_capped() {
        let mut loaded = Loaded::default();
        loaded
            .current
            .insert(key("n", "a"), ch("a", 10, "x", false));
        loaded
            .current
            .insert(key("n", "b"), ch("b", 10, "x", false));
        let many = (0..5).map(|i| ch("a", 1 + i, "z", false)).collect();
        let mut capped = job(
            "n",
            "z",
            "h2",
            vec![ch("a", 1, "z", false), ch("b", 1, "z", false)],
        );
        capped.max_reply_bytes = 100;
        let jobs = [job("n", "z", "h1", many), capped];
        let p = plan_group(&jobs, loaded);
        let first = p.outcomes[0].as_ref().unwrap();
        let carried: Vec<bool> = first.results.iter().map(|r| r.current.is_some()).collect();
        assert_eq!(carried, vec![true, false, false, false, false]);
        assert!(matches!(p.outcomes[1], Err(StoreError::ReplyTooLarge(_))));
        assert!(p.rows.is_empty());
        assert_eq!(p.replies.len(), 1);
        assert_eq!(p.replies[0].2.stale, vec![0, 1, 2, 3, 4]);
    }

    /// The server's plan and the in-memory server decide every push alike (both call core's
    /// `push_rule`; this pins that neither wraps it differently): the same statuses, the same
    /// current versions carried, the same heads and the same stored documents, over random pushes
    /// of three clients on three documents with ties, deletes, bases (some made on the stored
    /// version, some not), re-sync offers of other nodes' stamps, and retries.
    mod agree_with_mem_server {
        use super::*;
        use ferrosync_core::protocol::PushRequest;
        use ferrosync_core::sync::mem::MemServer;
        use proptest::prelude::*;

        const NOW: u64 = 1_700_000_000_000;

        /// `(id, wall, node, deleted, base)`: indexes into small sets, so versions collide often.
        type Gen = (usize, u64, usize, bool, Option<(u64, usize)>);

        fn change(client: usize, (id, wall, node, deleted, base): Gen) -> Change {
            let hlc = |w: u64, n: usize| Hlc::new(NOW - 1_000 + w, 0, format!("c{n}")).unwrap();
            // An edit with a base is stamped by its pusher and made after its base (else the
            // push is refused before the rule is reached).
            let base = base.filter(|(w, _)| *w < wall);
            let node = if base.is_some() { client } else { node };
            let id = ["a", "b", "c"][id];
            Change {
                collection: "t".into(),
                id: id.into(),
                hlc: hlc(wall, node),
                deleted,
                doc: (!deleted).then(|| json!({"id": id, "w": wall}).into()),
                fields: None,
                base: base.map(|(w, n)| hlc(w, n)),
            }
        }

        fn pushes() -> impl Strategy<Value = Vec<(usize, Vec<Gen>)>> {
            let one = (
                0..3usize,
                1..8u64,
                0..3usize,
                any::<bool>(),
                proptest::option::of((0..8u64, 0..3usize)),
            );
            prop::collection::vec((0..3usize, prop::collection::vec(one, 1..5)), 1..12)
        }

        fn seq_of(cursor: &str) -> u64 {
            cursor.rsplit(':').next().unwrap().parse().unwrap()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            #[test]
            fn plan_and_mem_server_agree(steps in pushes()) {
                let mem = MemServer::new(|| NOW);
                let mut db = Loaded::default();
                let mut last: Option<PushRequest> = None;
                for (i, (client, gens)) in steps.into_iter().enumerate() {
                    let changes: Vec<Change> = gens.into_iter().map(|g| change(client, g)).collect();
                    let mut req = PushRequest {
                        client_id: format!("c{client}"),
                        changes,
                        cursor: None,
                    };
                    // Now and then, the previous push again (a retry whose reply was lost).
                    if i % 4 == 3 {
                        if let Some(prev) = last.clone() {
                            req = prev;
                        }
                    }
                    last = Some(req.clone());
                    let from_mem = mem.push(Some("n"), &req).expect("a valid push");
                    let hash = serde_json::to_string(&req).unwrap();
                    let jobs = [job("n", &req.client_id, &hash, req.changes.clone())];
                    let loaded = Loaded {
                        heads: db.heads.clone(),
                        replies: db.replies.clone(),
                        current: db.current.clone(),
                        lineages: db.lineages.clone(),
                    };
                    let retry = db
                        .replies
                        .get(&("n".to_string(), req.client_id.clone()))
                        .is_some_and(|(h, _)| *h == hash);
                    let plan = plan_group(&jobs, loaded);
                    let outcome = plan.outcomes[0].as_ref().unwrap();
                    prop_assert_eq!(seq_of(from_mem.cursor.as_deref().unwrap()), outcome.head);
                    prop_assert_eq!(from_mem.results.len(), outcome.results.len());
                    for (m, p) in from_mem.results.iter().zip(&outcome.results) {
                        prop_assert_eq!(&m.status, &p.status);
                        // A retry's reply: the mem server replays the one it sent, the real one
                        // carries today's current versions.
                        if !retry {
                            prop_assert_eq!(&m.current, &p.current);
                        }
                    }
                    for row in &plan.rows {
                        let key = key("n", &row.change.id);
                        match row.lineage.as_deref().and_then(lineage::decode) {
                            Some(l) => db.lineages.insert(key.clone(), l),
                            None => db.lineages.remove(&key),
                        };
                        db.current.insert(key, Change { base: None, ..row.change.clone() });
                    }
                    db.heads.extend(plan.heads.iter().cloned());
                    for (k, h, r) in plan.replies {
                        db.replies.insert(k, (h, r));
                    }
                }
                let mut stored: Vec<Change> = db.current.into_values().collect();
                stored.sort_by(|a, b| a.id.cmp(&b.id));
                prop_assert_eq!(mem.docs("n"), stored);
            }
        }
    }
}
