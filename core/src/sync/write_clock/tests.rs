//! The write clock against a model of `_meta` shared by several tabs, under every interleaving of
//! writes (early and read-first), sync's stamps, place floors and rewinds, remote clocks
//! absorbed, wiped databases and wall-clock jumps.

use super::*;
use crate::hlc::DEFAULT_MAX_DRIFT_MS;
use crate::sync::outbox::clock_to_persist;
use proptest::prelude::*;

fn clock() -> WriteClock {
    WriteClock::new(HlcClock::new("n", DEFAULT_MAX_DRIFT_MS).unwrap())
}

fn hlc(wall_ms: u64, counter: u32) -> Hlc {
    Hlc::new(wall_ms, counter, "n").unwrap()
}

/// `_meta`'s clock and place floor.
#[derive(Default)]
struct Meta {
    clock: Option<Hlc>,
    place: Option<Hlc>,
}

impl Meta {
    /// Sync persists a rewound clock as `OutboxStore::plan` does: the floor it had kept stays, as
    /// the place floor.
    fn rewind(&mut self, to: &Hlc) {
        let places = Places::new(self.clock.as_ref(), self.place.as_ref());
        if let Some(f) = places.to_persist(Some(to)) {
            self.place = Some(f);
        }
        self.clock = Some(to.clone());
    }

    /// Commits one write the way `src/store/write.rs` issues it, early (puts issued before the
    /// read comes back) or read-first. Returns the stamp and place it committed, and whether it
    /// wrote the clock.
    fn write(&mut self, wc: &mut WriteClock, early: bool, now: u64) -> (Hlc, Hlc, bool) {
        if early {
            let e = wc.early(now);
            match wc.confirm(&e, self.clock.as_ref(), self.place.as_ref()) {
                Some((clock, floor)) => {
                    let wrote = e.clock.is_some() || clock.is_some();
                    self.clock = clock.or(e.clock.clone()).or(self.clock.take());
                    self.place = floor.or(self.place.take());
                    return (e.hlc, e.place, wrote);
                }
                None => {
                    let s = wc.stamp(self.clock.as_ref(), self.place.as_ref(), now);
                    // Early's clock put is in the same transaction, before the second one.
                    assert!(
                        e.clock.is_none() || s.clock.is_some(),
                        "early wrote a clock the re-stamp does not replace"
                    );
                    let wrote = e.clock.is_some() || s.clock.is_some();
                    self.clock = s.clock.or(e.clock).or(self.clock.take());
                    self.place = s.floor.or(self.place.take());
                    return (s.hlc, s.place, wrote);
                }
            }
        }
        let s = wc.stamp(self.clock.as_ref(), self.place.as_ref(), now);
        let wrote = s.clock.is_some();
        self.clock = s.clock.or(self.clock.take());
        self.place = s.floor.or(self.place.take());
        (s.hlc, s.place, wrote)
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A local write from tab `.0`, early or read-first.
    Write(usize, bool),
    /// Sync stamps a local version (a re-stamped edit) with its own clock, restored from `_meta`,
    /// and queues it, persisting the clock as `OutboxStore::plan` does.
    SyncStamp,
    /// Sync queues a row at an old version (a requeue): a place above the floor, persisted
    /// without touching the clock.
    SyncRequeue,
    /// Sync absorbed a remote version this far ahead of the wall clock and persisted it.
    Remote(u64),
    /// Tab `.0` winds its clock back this far behind the wall clock (`CLOCK_AHEAD`), persisting it.
    Rewind(usize, u64),
    /// The database is wiped and recreated empty.
    Wipe,
    /// The wall clock moves (backwards too).
    Time(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3, any::<bool>()).prop_map(|(t, e)| Op::Write(t, e)),
        1 => Just(Op::SyncStamp),
        1 => Just(Op::SyncRequeue),
        1 => (0u64..2_000).prop_map(Op::Remote),
        1 => (0usize..3, 0u64..5_000).prop_map(|(t, b)| Op::Rewind(t, b)),
        1 => Just(Op::Wipe),
        4 => (-200i64..400).prop_map(Op::Time),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every local stamp is above every earlier one (since the last rewind or wipe) and above
    /// every remote version absorbed, whichever tab wrote it; every outbox place is above every
    /// earlier one (since the last wipe); the persisted clock is never below a stamp given; and
    /// no stamp runs more than `AHEAD_MS` ahead of the latest wall time.
    #[test]
    fn stamps_and_places_stay_ordered(ops in prop::collection::vec(op(), 1..120)) {
        let mut tabs = [clock(), clock(), clock()];
        let mut meta = Meta::default();
        let mut now: u64 = 1_000_000;
        let mut latest_now = now;
        let mut top_stamp: Option<Hlc> = None;
        let mut top_place: Option<Hlc> = None;
        let mut sync = HlcClock::new("n", DEFAULT_MAX_DRIFT_MS).unwrap();
        for op in ops {
            match op {
                Op::Write(t, early) => {
                    let (h, place, _) = meta.write(&mut tabs[t], early, now);
                    prop_assert!(top_stamp.as_ref().is_none_or(|top| *top < h), "stamp {h} not above {top_stamp:?}");
                    prop_assert!(top_place.as_ref().is_none_or(|top| *top < place), "place {place} not above {top_place:?}");
                    prop_assert!(place >= h);
                    prop_assert!(meta.clock.as_ref().is_some_and(|c| *c >= h), "persisted {:?} below stamp {h}", meta.clock);
                    prop_assert!(h.wall_ms <= latest_now + AHEAD_MS, "stamp {h} ran ahead of {latest_now}");
                    top_stamp = Some(h);
                    top_place = Some(place);
                }
                Op::SyncStamp => {
                    if let Some(c) = &meta.clock {
                        sync.restore(c);
                    }
                    let h = sync.tick(now);
                    let mut places = Places::new(meta.clock.as_ref(), meta.place.as_ref());
                    let place = places.next(&h);
                    if let Some(c) = clock_to_persist(meta.clock.as_ref(), &h, false, true) {
                        meta.clock = Some(c);
                    }
                    if let Some(f) = places.to_persist(meta.clock.as_ref()) {
                        meta.place = Some(f);
                    }
                    prop_assert!(top_stamp.as_ref().is_none_or(|top| *top < h), "sync stamp {h} not above {top_stamp:?}");
                    prop_assert!(top_place.as_ref().is_none_or(|top| *top < place));
                    top_stamp = Some(h);
                    top_place = Some(place);
                }
                Op::SyncRequeue => {
                    let mut places = Places::new(meta.clock.as_ref(), meta.place.as_ref());
                    let place = places.next(&hlc(1, 0));
                    if let Some(f) = places.to_persist(meta.clock.as_ref()) {
                        meta.place = Some(f);
                    }
                    prop_assert!(top_place.as_ref().is_none_or(|top| *top < place));
                    top_place = Some(place);
                }
                Op::Remote(ahead) => {
                    let r = hlc(now + ahead, 0);
                    latest_now = latest_now.max(now + ahead);
                    if let Some(c) = clock_to_persist(meta.clock.as_ref(), &r, false, true) {
                        meta.clock = Some(c);
                    }
                    top_stamp = top_stamp.max(Some(r));
                }
                Op::Rewind(t, back) => {
                    let to = hlc(now.saturating_sub(back), 1);
                    tabs[t].rewind(&to);
                    sync.restore(&to);
                    meta.rewind(&to);
                    top_stamp = Some(to);
                }
                Op::Wipe => {
                    // Every tab sees the new lineage when it reopens the database.
                    tabs.iter_mut().for_each(WriteClock::forget);
                    meta = Meta::default();
                    top_stamp = None;
                    top_place = None;
                    sync = HlcClock::new("n", DEFAULT_MAX_DRIFT_MS).unwrap();
                }
                Op::Time(dt) => {
                    now = now.saturating_add_signed(dt);
                    latest_now = latest_now.max(now);
                }
            }
        }
    }
}

/// A burst of single writes from one tab writes the clock once per `AHEAD_MS`, not once per write.
#[test]
fn a_burst_writes_the_clock_once_per_bound() {
    for early in [true, false] {
        let (mut wc, mut meta) = (clock(), Meta::default());
        let mut writes = 0;
        for i in 0..1_000u64 {
            let (_, _, wrote) = meta.write(&mut wc, early, 5_000 + i);
            writes += wrote as u32;
        }
        assert!(
            writes <= 1_000 / AHEAD_MS as u32 + 1,
            "{writes} clock writes (early: {early})"
        );
    }
}

/// Writes far apart write the clock each time, and an early write issues it with its puts: no
/// second round trip.
#[test]
fn sporadic_writes_issue_the_clock_up_front() {
    let (mut wc, mut meta) = (clock(), Meta::default());
    for i in 0..10u64 {
        let e = wc.early(10_000 + i * 1_000);
        assert!(e.clock.is_some());
        let rest = wc.confirm(&e, meta.clock.as_ref(), meta.place.as_ref());
        assert_eq!(rest, Some((None, None)));
        meta.clock = e.clock;
    }
}

/// Another tab's write (a clock that is not this tab's bound) is stamped above, with a clock
/// write, even when the early stamp is below it.
#[test]
fn another_writer_is_seen() {
    let (mut a, mut b, mut meta) = (clock(), clock(), Meta::default());
    let (ha, _, _) = meta.write(&mut a, true, 1_000);
    let (hb, _, wrote) = meta.write(&mut b, true, 1_000);
    assert!(hb > ha && wrote);
    // `a`'s own clock is behind `b`'s bound: its early stamp does not stand, and it re-stamps.
    let e = a.early(1_001);
    assert_eq!(
        a.confirm(&e, meta.clock.as_ref(), meta.place.as_ref()),
        None
    );
    let s = a.stamp(meta.clock.as_ref(), meta.place.as_ref(), 1_001);
    assert!(s.hlc > *meta.clock.as_ref().unwrap() && s.clock.is_some());
}

/// After a rewind the persisted clock goes back, and later writes follow it rather than the
/// bound: the bound is never pushed above a place floor left by the rewind.
#[test]
fn a_rewind_keeps_the_clock_back() {
    let (mut wc, mut meta) = (clock(), Meta::default());
    for i in 0..5 {
        meta.write(&mut wc, true, 100_000 + i);
    }
    let top_place = meta.clock.clone().unwrap();
    let to = hlc(50_000, 0);
    wc.rewind(&to);
    meta.rewind(&to);
    let (h, place, _) = meta.write(&mut wc, false, 50_000);
    assert!(
        h > to && h.wall_ms < 60_000,
        "stamp {h} follows the rewound clock"
    );
    assert!(place > top_place, "place {place} above every earlier one");
    assert!(
        meta.clock.as_ref().unwrap().wall_ms < 60_000,
        "clock stays back: {:?}",
        meta.clock
    );
    assert_eq!(
        meta.place.as_ref(),
        Some(&place),
        "the place floor is persisted"
    );
}
