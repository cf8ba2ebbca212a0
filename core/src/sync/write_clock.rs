//! The clock of local writes, and the bound of it kept in the database (`_meta` `clock`).
//!
//! Every write transaction reads the persisted clock and stamps above it; IndexedDB serializes
//! readwrite transactions over `_meta`, so writes from every tab sharing the database are ordered.
//! Writing the clock back after every write cost one request per single put (7-10% of it,
//! docs/BENCHMARKS.md). So what is persisted is a *bound*: a value at or above every stamp given
//! under it, set [`AHEAD_MS`] ahead of the wall clock.
//!
//! - While the persisted clock is still the bound this instance wrote, nobody wrote since (another
//!   writer would have stamped above the bound and persisted its own), so this instance stamps
//!   from its own clock and writes nothing to `_meta`.
//! - Once a stamp passes the bound, or the persisted clock is another writer's (another tab, the
//!   sync engine, an older version), the stamp is taken above what is persisted, as before, and a
//!   new bound is written with it.
//!
//! A burst of writes from one tab writes the clock once per [`AHEAD_MS`] instead of once per
//! write; a write after an idle moment writes it as before. Other writers stamp at most
//! [`AHEAD_MS`] ahead of the wall clock, far inside the drift bound (`DEFAULT_MAX_DRIFT_MS`).
//!
//! Outbox places ([`Places`]) keep their rule: above every place given before. Their floor is
//! the persisted clock and place floor, except that under this instance's own bound the bound is
//! replaced by the last place this instance gave (the bound is above it, but placing rows above
//! the bound would move every row out of its write's order and persist a place each time).
//!
//! Another writer's bound can equal this instance's only after the persisted clock went down: sync
//! wound it back (`CLOCK_AHEAD`), or the database was wiped. A rewind persists the highest clock it
//! replaced as the place floor, so a bound is this instance's only while the place floor is below
//! it; a wipe is seen by every instance as a new lineage, and forgets the bound
//! ([`WriteClock::forget`]).

use crate::hlc::{Hlc, HlcClock, MAX_WALL_MS};
use crate::sync::outbox::Places;

/// How far ahead of the wall clock a persisted bound is set.
pub const AHEAD_MS: u64 = 100;

/// One instance's write clock and the bound it last persisted.
#[derive(Debug, Clone)]
pub struct WriteClock {
    clock: HlcClock,
    /// The bound this instance last persisted (None: none yet, or forgotten).
    own: Option<Hlc>,
    /// The last place this instance gave (the outbox floor under its own bound).
    last_place: Option<Hlc>,
}

/// What one write transaction stamps and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    pub hlc: Hlc,
    /// The outbox place of the rows the write queues.
    pub place: Hlc,
    /// The clock to persist (None: the persisted one stays).
    pub clock: Option<Hlc>,
    /// The place floor to persist (None: the persisted one stays).
    pub floor: Option<Hlc>,
    now_ms: u64,
}

impl WriteClock {
    pub fn new(clock: HlcClock) -> Self {
        WriteClock {
            clock,
            own: None,
            last_place: None,
        }
    }

    /// The clock itself, for sync to absorb remote stamps into.
    pub fn clock_mut(&mut self) -> &mut HlcClock {
        &mut self.clock
    }

    /// Winds the clock back to `to` (sync, after the server refused stamps that ran ahead of its
    /// clock) and forgets the bound, so the next write stamps above what is persisted.
    pub fn rewind(&mut self, to: &Hlc) {
        self.clock.wind_back(Some(to));
        self.forget();
    }

    /// Forgets the bound (the database was wiped): the next write stamps above what is persisted.
    pub fn forget(&mut self) {
        self.own = None;
        self.last_place = None;
    }

    /// Whether the persisted clock is still this instance's bound, untouched since.
    fn owns(&self, persisted: Option<&Hlc>, stored: Option<&Hlc>) -> bool {
        persisted.is_some()
            && persisted == self.own.as_ref()
            && stored.is_none_or(|s| Some(s) < persisted)
    }

    fn places(&self, persisted: Option<&Hlc>, stored: Option<&Hlc>) -> Places {
        if self.owns(persisted, stored) {
            Places::new(self.last_place.as_ref(), stored)
        } else {
            Places::new(persisted, stored)
        }
    }

    /// One write's stamp, from the persisted clock and place floor its transaction read.
    pub fn stamp(&mut self, persisted: Option<&Hlc>, stored: Option<&Hlc>, now_ms: u64) -> Stamp {
        if let (false, Some(p)) = (self.owns(persisted, stored), persisted) {
            self.clock.restore(p);
        }
        let hlc = self.clock.tick(now_ms);
        self.settle(persisted, stored, hlc, now_ms)
    }

    /// A small write's stamp, issued before its transaction's read of the persisted values comes
    /// back (one round trip less): what [`WriteClock::stamp`] gives when the read shows this
    /// instance's own bound and no newer place floor. [`WriteClock::confirm`] then tells whether it
    /// stands; when it does not, the write is stamped again with [`WriteClock::stamp`], whose
    /// stamp is above this one, so whenever this one wrote a clock, that one writes one too.
    pub fn early(&mut self, now_ms: u64) -> Stamp {
        let hlc = self.clock.tick(now_ms);
        let clock = match &self.own {
            Some(own) if hlc <= *own => None,
            _ => Some(bound(&hlc, now_ms)),
        };
        Stamp {
            place: hlc.clone(),
            hlc,
            clock,
            floor: None,
            now_ms,
        }
    }

    /// Whether `early` stands against what its transaction read: then the bookkeeping moves as
    /// [`WriteClock::stamp`]'s would, and what is still to write beside what `early` issued is
    /// returned (clock, place floor: rare, when another writer wrote since). `None`: it does not
    /// stand, the write must be stamped again.
    pub fn confirm(
        &mut self,
        early: &Stamp,
        persisted: Option<&Hlc>,
        stored: Option<&Hlc>,
    ) -> Option<(Option<Hlc>, Option<Hlc>)> {
        let above = self.owns(persisted, stored) || persisted.is_none_or(|p| *p < early.hlc);
        if !above || self.places(persisted, stored).next(&early.hlc) != early.hlc {
            return None;
        }
        let settled = self.settle(persisted, stored, early.hlc.clone(), early.now_ms);
        let clock = settled.clock.filter(|c| Some(c) != early.clock.as_ref());
        Some((clock, settled.floor))
    }

    fn settle(
        &mut self,
        persisted: Option<&Hlc>,
        stored: Option<&Hlc>,
        hlc: Hlc,
        now_ms: u64,
    ) -> Stamp {
        let mut places = self.places(persisted, stored);
        let place = places.next(&hlc);
        let clock = match &self.own {
            Some(own) if self.owns(persisted, stored) && hlc <= *own => None,
            _ => Some(bound(&hlc, now_ms)),
        };
        let floor = places.to_persist(clock.as_ref().or(persisted));
        if let Some(c) = &clock {
            self.own = Some(c.clone());
        }
        self.last_place = Some(place.clone());
        Stamp {
            hlc,
            place,
            clock,
            floor,
            now_ms,
        }
    }
}

/// The bound persisted with `hlc`: [`AHEAD_MS`] ahead of the wall clock, and never below `hlc`.
fn bound(hlc: &Hlc, now_ms: u64) -> Hlc {
    let ahead = Hlc {
        wall_ms: now_ms.saturating_add(AHEAD_MS).min(MAX_WALL_MS),
        counter: 0,
        node: hlc.node.clone(),
    };
    ahead.max(hlc.clone())
}

#[cfg(test)]
mod tests;
