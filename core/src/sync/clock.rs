//! The client's clock for sync: an [`HlcClock`] fed with wall time corrected by the server's clock.
//!
//! A device whose clock is an hour behind would stamp every write an hour in the past and would see
//! every honest remote timestamp as an hour in the future (refused by the drift check). Each server
//! reply carries `serverTime`; the offset to it is applied to every reading of the wall clock, for
//! local writes and for drift checks alike, so such a device behaves like a correct one.

use std::cell::{Cell, RefCell};

use crate::hlc::{Hlc, HlcClock, HlcError};

/// Shared by the local store (stamping writes) and the sync engine (observing remote times).
/// Interior mutability, no `Send`: one per database, on one thread.
pub struct SyncClock {
    hlc: RefCell<HlcClock>,
    offset_ms: Cell<i64>,
    wall: Box<dyn Fn() -> u64>,
    rewinds: Cell<u64>,
    /// A remote timestamp was observed since [`SyncClock::take_observed`] last asked.
    observed: Cell<bool>,
}

impl SyncClock {
    /// `wall` reads the device clock in ms since the epoch (`Date.now()` in the browser).
    pub fn new(clock: HlcClock, wall: impl Fn() -> u64 + 'static) -> Self {
        SyncClock {
            hlc: RefCell::new(clock),
            offset_ms: Cell::new(0),
            wall: Box::new(wall),
            rewinds: Cell::new(0),
            observed: Cell::new(false),
        }
    }

    /// This client's id (the node of its HLCs).
    pub fn node(&self) -> String {
        self.hlc.borrow().node().to_string()
    }

    /// The device's wall clock, uncorrected (for measuring round trips).
    pub fn wall_ms(&self) -> u64 {
        (self.wall)()
    }

    /// Wall time corrected by the last known offset to the server's clock.
    pub fn now_ms(&self) -> u64 {
        let w = self.wall_ms() as i128 + self.offset_ms.get() as i128;
        w.clamp(0, crate::hlc::MAX_WALL_MS as i128) as u64
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.get()
    }

    /// Restores a persisted offset (e.g. at open, before the first reply).
    pub fn set_offset_ms(&self, offset: i64) {
        self.offset_ms.set(offset);
    }

    /// Learns the offset from a reply's `serverTime`. The server read its clock at some moment
    /// between `sent_wall` and `received_wall` (device wall times), so every offset that puts
    /// `serverTime` inside that window explains the reply. The current offset is kept while it
    /// does, and otherwise moved the least distance that does. Taking the midpoint instead moved
    /// the offset by up to half of each round trip: two devices on one clock stamped that far
    /// apart, and a later write could lose to an earlier one.
    pub fn observe_server_time(&self, server_time: u64, sent_wall: u64, received_wall: u64) {
        let (first, last) = (sent_wall.min(received_wall), sent_wall.max(received_wall));
        let st = server_time as i128;
        let lowest = st - last as i128;
        let highest = st - first as i128;
        let off = (self.offset_ms.get() as i128)
            .clamp(lowest, highest)
            .clamp(i64::MIN as i128, i64::MAX as i128);
        self.offset_ms.set(off as i64);
    }

    /// A new timestamp for a local write, after everything issued or observed.
    pub fn tick(&self) -> Hlc {
        let now = self.now_ms();
        self.hlc.borrow_mut().tick(now)
    }

    /// Absorbs a remote timestamp, unless it is further ahead of corrected time than the drift bound
    /// (then it is refused and the clock is unchanged).
    pub fn observe(&self, remote: &Hlc) -> Result<(), HlcError> {
        self.observed.set(true);
        let now = self.now_ms();
        self.hlc.borrow_mut().observe(remote, now)
    }

    /// The last timestamp issued or observed (persist it to restore the clock).
    pub fn last(&self) -> Hlc {
        self.hlc.borrow().last()
    }

    pub fn restore(&self, last: &Hlc) {
        self.hlc.borrow_mut().restore(last);
    }

    /// Whether a remote timestamp was observed since the last call (the next persisted clock must
    /// show it: [`crate::sync::outbox::clock_to_persist`]).
    pub fn take_observed(&self) -> bool {
        self.observed.replace(false)
    }

    /// The drift bound: remote times further ahead of corrected time are refused.
    pub fn max_drift_ms(&self) -> u64 {
        self.hlc.borrow().max_drift_ms()
    }

    /// Adopts the server's drift bound (its replies advertise it).
    pub fn set_max_drift_ms(&self, bound: u64) {
        self.hlc.borrow_mut().set_max_drift_ms(bound);
    }

    /// Winds the clock back to corrected time (or `floor`, if later): after the server refused
    /// stamps that ran ahead (`CLOCK_AHEAD`), new stamps must be sane again. Only for that case:
    /// everywhere else the clock only moves forward.
    pub fn rewind(&self, floor: Option<&Hlc>) {
        self.hlc.borrow_mut().wind_back(floor);
        self.rewinds.set(self.rewinds.get() + 1);
    }

    /// How many times [`SyncClock::rewind`] ran (a store whose write clock is separate follows).
    pub fn rewinds(&self) -> u64 {
        self.rewinds.get()
    }
}

impl std::fmt::Debug for SyncClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncClock")
            .field("last", &self.last())
            .field("offset_ms", &self.offset_ms.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn offset_corrects_a_slow_device() {
        let wall = Rc::new(Cell::new(1_000_000u64));
        let w = wall.clone();
        let c = SyncClock::new(HlcClock::new("slow", 60_000).unwrap(), move || w.get());
        let remote = Hlc::new(1_000_000 + 3_600_000, 0, "fast").unwrap();
        assert!(
            c.observe(&remote).is_err(),
            "an hour ahead of the raw clock"
        );
        // The server read its clock between 999_990 and 1_000_010 (device time): the device is
        // at least 3_600_000 behind, and that is what is learnt.
        c.observe_server_time(1_000_000 + 3_600_000 + 10, 999_990, 1_000_010);
        assert_eq!(c.offset_ms(), 3_600_000);
        c.observe(&remote).unwrap();
        assert!(c.tick() > remote);
        wall.set(1_000_500);
        assert_eq!(c.now_ms(), 1_000_500 + 3_600_000);
    }

    fn clock() -> SyncClock {
        SyncClock::new(HlcClock::new("n", 60_000).unwrap(), || 1_000_000)
    }

    #[test]
    fn a_slow_round_trip_does_not_move_a_correct_clock() {
        // The midpoint rule learnt +300 here: the request waited 600 ms before the server read
        // its clock, on the same clock as the device.
        let c = clock();
        c.observe_server_time(1_000_600, 1_000_000, 1_000_610);
        assert_eq!(c.offset_ms(), 0);
        c.observe_server_time(1_000_005, 1_000_000, 1_000_610);
        assert_eq!(c.offset_ms(), 0);
    }

    #[test]
    fn an_offset_moves_only_as_far_as_a_reply_requires() {
        let c = clock();
        // The device is ahead: the server read 1_000 before the request left.
        c.observe_server_time(9_000, 10_000, 10_040);
        assert_eq!(c.offset_ms(), -1_000);
        // A later reply that -1_000 still explains (server time within the window) keeps it.
        c.observe_server_time(19_020, 20_000, 20_040);
        assert_eq!(c.offset_ms(), -1_000);
        // One that it does not explains moves it to the window's nearer edge.
        c.observe_server_time(29_500, 30_000, 30_040);
        assert_eq!(c.offset_ms(), -540);
    }

    proptest::proptest! {
        /// Whatever the delays either side of the server's reading, a device on the server's
        /// clock learns no offset, and a device `skew` ms off learns one that puts its corrected
        /// clock within one round trip of the server's.
        #[test]
        fn learnt_offsets_stay_within_a_round_trip(
            skew in -100_000i64..100_000,
            trips in proptest::collection::vec((0u64..5_000, 0u64..2_000, 0u64..2_000), 1..20),
        ) {
            let device = Rc::new(Cell::new(0u64));
            let d = device.clone();
            let right = SyncClock::new(HlcClock::new("r", 60_000).unwrap(), || 0);
            let off = SyncClock::new(HlcClock::new("s", 60_000).unwrap(), move || d.get());
            let mut server = 1_000_000u64;
            for (gap, before, after) in trips {
                server += gap;
                let sent = server;
                let read = server + before;
                let received = read + after;
                server = received;
                right.observe_server_time(read, sent, received);
                proptest::prop_assert_eq!(right.offset_ms(), 0);
                let dev = |t: u64| (t as i64 - skew) as u64;
                device.set(dev(received));
                off.observe_server_time(read, dev(sent), dev(received));
                let error = off.now_ms() as i64 - received as i64;
                proptest::prop_assert!(
                    error.abs() <= (received - sent) as i64,
                    "corrected clock {} ms off after a {} ms round trip",
                    error,
                    received - sent
                );
            }
        }
    }

    #[test]
    fn a_device_clock_stepping_back_mid_request_is_no_panic() {
        let c = clock();
        // received before sent (the device clock was set back during the request).
        c.observe_server_time(5_000, 6_000, 4_000);
        assert_eq!(c.offset_ms(), 0);
        c.observe_server_time(u64::MAX, 0, 0);
        assert_eq!(c.offset_ms(), i64::MAX);
        c.observe_server_time(0, u64::MAX, u64::MAX);
        assert!(c.offset_ms() < 0);
    }
}
