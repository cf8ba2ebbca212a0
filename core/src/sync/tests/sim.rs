//! Seeded randomized simulation: three devices (one with its clock an hour behind) edit the same
//! documents in three collections (lww, merge, custom) while going offline and online, losing
//! replies after the server applied them, getting 5xx, editing while a push or a pull is in flight,
//! and living through server resets. After final syncs every device must hold exactly the server's
//! data, and that data must be what the policies promise: for lww the newest version ever written,
//! for merge the join of every version ever written.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Map, Value};

use super::*;
use crate::merge::FieldState;
use crate::sync::mem::{Fault, Namespace};
use crate::sync::{Conflict, ResolverFuture, RetryClass};

/// SplitMix64: small, seedable, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const COLLECTIONS: [&str; 3] = ["lww", "mrg", "cus"];
const IDS: u64 = 5;
const FIELDS: [&str; 3] = ["a", "b", "c"];

/// The custom policy of the simulation: the remote document with the local edit's fields on top;
/// an edit beats a delete on either side.
fn overlay(c: &Conflict) -> Option<Value> {
    match (&c.local, &c.remote) {
        (Some(l), Some(r)) => {
            let mut out = r.clone();
            for (k, v) in l.as_object().unwrap() {
                out[k] = v.clone();
            }
            Some(out)
        }
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

fn policies() -> Policies {
    Policies::new(Policy::Lww).with("mrg", Policy::Merge).with(
        "cus",
        Policy::Custom(Rc::new(|c: Conflict| {
            let out = overlay(&c);
            Box::pin(async move { Ok(out) }) as ResolverFuture
        })),
    )
}

type Log = Rc<RefCell<Vec<Change>>>;

/// A random app write on `store`, recorded in `log`.
fn random_edit(store: &AnyStore, rng: &mut Rng, log: &Log) {
    let coll = COLLECTIONS[rng.below(3) as usize];
    let id = format!("x{}", rng.below(IDS));
    let current = store
        .get(coll, &id)
        .filter(|c| !c.deleted)
        .and_then(|c| super::value(c.doc));
    let field = FIELDS[rng.below(3) as usize];
    let doc = match rng.below(10) {
        0..=5 => {
            let mut d = current.unwrap_or_else(|| Value::Object(Map::new()));
            d[field] = json!(rng.below(100));
            Some(d)
        }
        6 => current.map(|mut d| {
            d.as_object_mut().unwrap().remove(field);
            d
        }),
        7 | 8 => None,
        _ => Some(json!({ field: rng.below(100) })),
    };
    let c = store.write(coll, &id, doc);
    log.borrow_mut().push(c);
}

#[derive(Debug, Default)]
struct Stats {
    edits: u64,
    syncs_ok: u64,
    syncs_failed: u64,
    conflicts: u64,
    resets: u64,
    final_rounds: u64,
}

fn simulate(seed: u64, steps: usize) -> Stats {
    let w = World::new();
    let devs = [
        w.device("d0", 0, policies()),
        w.device("d1", 0, policies()),
        w.device("slow", -3_600_000, policies()),
    ];
    let mut rng = Rng(seed);
    let log: Log = Rc::default();
    let mut stats = Stats::default();
    let mut backup: Option<Namespace> = None;
    for _ in 0..steps {
        w.advance(rng.below(3000));
        let d = &devs[rng.below(3) as usize];
        match rng.below(100) {
            0..=54 => {
                random_edit(&d.store, &mut rng, &log);
                stats.edits += 1;
            }
            55..=89 => {
                match rng.below(12) {
                    0 => d.net().fail_next(Fault::Network),
                    1 => d.net().fail_next(Fault::Status(503)),
                    2 => d.net().fail_next(Fault::DropReply),
                    3 => {
                        d.net().fail_next(Fault::Pass);
                        d.net().fail_next(Fault::DropReply);
                    }
                    4 | 5 => {
                        // Edits while the push is in flight.
                        let (store, log) = (d.store.clone(), log.clone());
                        let mut r = Rng(rng.next());
                        d.net()
                            .on_push(Some(Box::new(move || random_edit(&store, &mut r, &log))));
                    }
                    6 => {
                        // Edits while a pull page is in flight.
                        let (store, log) = (d.store.clone(), log.clone());
                        let mut r = Rng(rng.next());
                        d.net()
                            .on_pull(Some(Box::new(move || random_edit(&store, &mut r, &log))));
                    }
                    _ => {}
                }
                match d.sync() {
                    Ok(r) => {
                        stats.syncs_ok += 1;
                        stats.conflicts += r.conflicts;
                    }
                    Err(e) => {
                        assert_eq!(e.retry_class(), RetryClass::Backoff, "seed {seed}: {e}");
                        stats.syncs_failed += 1;
                    }
                }
                d.net().clear_faults();
                d.net().on_push(None);
                d.net().on_pull(None);
                if rng.below(8) == 0 {
                    backup = Some(w.server.snapshot(NS));
                }
            }
            90..=97 => {
                let off = rng.below(2) == 0;
                d.net().set_offline(off);
            }
            _ => {
                if rng.below(4) == 0 {
                    // The server is reset, or restored from an older backup.
                    let restored = match (rng.below(2), &backup) {
                        (0, Some(b)) => vec![(NS.to_string(), b.clone())],
                        _ => vec![],
                    };
                    w.server.reset(restored);
                    stats.resets += 1;
                }
            }
        }
    }

    // Everyone back online; sync until a whole round moves nothing.
    for d in &devs {
        d.net().set_offline(false);
        d.net().clear_faults();
    }
    let mut quiet = false;
    for round in 0..20 {
        stats.final_rounds = round + 1;
        quiet = true;
        for d in &devs {
            let r = d
                .sync()
                .unwrap_or_else(|e| panic!("seed {seed}: final sync failed: {e}"));
            if r.pushed > 0 || r.pulled > 0 || r.more || d.store.pending_count() > 0 {
                quiet = false;
            }
        }
        if quiet {
            break;
        }
    }
    assert!(quiet, "seed {seed}: no quiescence after 20 rounds");

    let server = server_all(&w);
    for d in &devs {
        assert_eq!(
            d.all(),
            server,
            "seed {seed}: device {} differs from the server",
            d.store.sync_clock().node()
        );
        assert_eq!(d.store.pending_count(), 0);
    }
    let mut by_key: BTreeMap<DocKey, Vec<Change>> = BTreeMap::new();
    for c in log.borrow().iter() {
        by_key.entry(DocKey::of(c)).or_default().push(c.clone());
    }
    for (key, versions) in &by_key {
        let fin = server
            .get(key)
            .unwrap_or_else(|| panic!("seed {seed}: {key:?} lost"));
        match key.collection.as_str() {
            "lww" => {
                let newest = versions.iter().max_by(|a, b| a.hlc.cmp(&b.hlc)).unwrap();
                assert_eq!(
                    fin, newest,
                    "seed {seed}: lww {key:?} is not the newest write"
                );
            }
            "mrg" => {
                let join = versions
                    .iter()
                    .map(FieldState::of)
                    .reduce(|a, b| a.join(&b))
                    .unwrap();
                assert_eq!(
                    FieldState::of(fin),
                    join,
                    "seed {seed}: merge {key:?} is not the join of all writes"
                );
            }
            _ => {}
        }
    }
    assert_eq!(
        server.len(),
        by_key.len(),
        "seed {seed}: the server holds only written documents"
    );
    stats
}

#[test]
fn three_devices_converge_under_random_failures() {
    let mut total = Stats::default();
    for seed in 0..40u64 {
        let s = simulate(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xFE77, 600);
        total.edits += s.edits;
        total.syncs_ok += s.syncs_ok;
        total.syncs_failed += s.syncs_failed;
        total.conflicts += s.conflicts;
        total.resets += s.resets;
        total.final_rounds = total.final_rounds.max(s.final_rounds);
    }
    println!("simulation totals over 40 seeds: {total:?}");
    // The simulation must actually exercise what it claims to.
    assert!(total.conflicts > 100, "{total:?}");
    assert!(total.syncs_failed > 100, "{total:?}");
    assert!(total.resets > 10, "{total:?}");
}
