//! Hybrid logical clocks: the one total order of writes shared by every client and the server.
//!
//! An [`Hlc`] is `(wall milliseconds, counter, node)`. Its string form is fixed width in the first two
//! parts (`wwwwwwwwwwww-cccccc-node`, lower-case hex), so comparing two encoded strings byte by byte
//! gives the same answer as comparing the values: JS, Rust, SQLite and PostgreSQL all agree on the
//! order without decoding. The node (client id) breaks ties, so two different writers never produce
//! equal timestamps and last-write-wins is deterministic everywhere.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest wall time that fits the 12 hex digit field (year 10889).
pub const MAX_WALL_MS: u64 = 0xFFFF_FFFF_FFFF;
/// Largest counter that fits the 6 hex digit field.
pub const MAX_COUNTER: u32 = 0xFF_FFFF;
/// Longest node id accepted.
pub const MAX_NODE_LEN: usize = 64;
/// Default bound on how far a remote timestamp may run ahead of our wall clock before it is refused.
pub const DEFAULT_MAX_DRIFT_MS: u64 = 60_000;

/// A hybrid logical clock timestamp. Ordered by wall time, then counter, then node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hlc {
    pub wall_ms: u64,
    pub counter: u32,
    pub node: String,
}

/// Why a timestamp or node id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlcError {
    #[error(
        "malformed HLC timestamp {0:?}: expected wwwwwwwwwwww-cccccc-node (hex, hex, node id)"
    )]
    Malformed(String),
    #[error("invalid node id {0:?}: 1-64 characters of A-Z a-z 0-9 _ -")]
    InvalidNode(String),
    #[error(
        "HLC timestamp {remote} is {ahead_ms} ms ahead of the local clock (limit {limit_ms} ms)"
    )]
    TooFarAhead {
        remote: String,
        ahead_ms: u64,
        limit_ms: u64,
    },
    #[error("HLC overflow: wall clock beyond year 10889")]
    Overflow,
}

/// Checks a node (client) id: short, URL- and filename-safe, no separator ambiguity.
pub fn validate_node(node: &str) -> Result<(), HlcError> {
    let ok = !node.is_empty()
        && node.len() <= MAX_NODE_LEN
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(HlcError::InvalidNode(node.to_string()))
    }
}

impl Hlc {
    pub fn new(wall_ms: u64, counter: u32, node: impl Into<String>) -> Result<Self, HlcError> {
        let node = node.into();
        validate_node(&node)?;
        if wall_ms > MAX_WALL_MS || counter > MAX_COUNTER {
            return Err(HlcError::Overflow);
        }
        Ok(Hlc {
            wall_ms,
            counter,
            node,
        })
    }

    /// The encoded, order-preserving string form.
    pub fn encode(&self) -> String {
        format!("{:012x}-{:06x}-{}", self.wall_ms, self.counter, self.node)
    }

    /// The form a record stores for `own`'s database: without the node when the node is `own`
    /// (`wwwwwwwwwwww-cccccc`, 19 characters), else [`Hlc::encode`]. Every record carries one or
    /// two stamps, and the 17 characters of node each cost reads measurably (docs/BENCHMARKS.md,
    /// "Lean stamps"). Two short forms order like their HLCs (same node); a short form sorts
    /// before every long form with the same time, so stamps of one node must differ in time, as
    /// a clock's and `outbox::Places`' do.
    pub fn stored(&self, own: &str) -> String {
        if self.node == own {
            format!("{:012x}-{:06x}", self.wall_ms, self.counter)
        } else {
            self.encode()
        }
    }

    /// Reads a [`Hlc::stored`] form (either form) back for the database of node `own`.
    pub fn from_stored(s: &str, own: &str) -> Result<Hlc, HlcError> {
        if s.len() == STORED_SHORT_LEN {
            format!("{s}-{own}").parse()
        } else {
            s.parse()
        }
    }
}

/// Length of a stored stamp without its node (see [`Hlc::stored`]); a full one is longer.
pub const STORED_SHORT_LEN: usize = 19;

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:012x}-{:06x}-{}",
            self.wall_ms, self.counter, self.node
        )
    }
}

impl FromStr for Hlc {
    type Err = HlcError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || HlcError::Malformed(s.chars().take(100).collect());
        let b = s.as_bytes();
        if b.len() < 21 || b[12] != b'-' || b[19] != b'-' {
            return Err(bad());
        }
        let is_hex = |x: &[u8]| {
            x.iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        };
        if !is_hex(&b[..12]) || !is_hex(&b[13..19]) {
            return Err(bad());
        }
        let wall_ms = u64::from_str_radix(&s[..12], 16).map_err(|_| bad())?;
        let counter = u32::from_str_radix(&s[13..19], 16).map_err(|_| bad())?;
        let node = &s[20..];
        validate_node(node).map_err(|_| bad())?;
        Ok(Hlc {
            wall_ms,
            counter,
            node: node.to_string(),
        })
    }
}

impl Ord for Hlc {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.wall_ms, self.counter, self.node.as_str()).cmp(&(
            other.wall_ms,
            other.counter,
            other.node.as_str(),
        ))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for Hlc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A node's clock. Wall time is passed in by the caller, so the clock is deterministic under test and
/// the browser and server each supply their own `Date.now()`/`SystemTime`.
#[derive(Clone, Debug)]
pub struct HlcClock {
    node: String,
    wall_ms: u64,
    counter: u32,
    max_drift_ms: u64,
}

impl HlcClock {
    /// A fresh clock for `node`, refusing remote times more than `max_drift_ms` ahead of local wall time.
    pub fn new(node: impl Into<String>, max_drift_ms: u64) -> Result<Self, HlcError> {
        let node = node.into();
        validate_node(&node)?;
        Ok(HlcClock {
            node,
            wall_ms: 0,
            counter: 0,
            max_drift_ms,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn max_drift_ms(&self) -> u64 {
        self.max_drift_ms
    }

    pub fn set_max_drift_ms(&mut self, bound: u64) {
        self.max_drift_ms = bound;
    }

    /// The last timestamp issued or observed (for persisting the clock across restarts).
    pub fn last(&self) -> Hlc {
        Hlc {
            wall_ms: self.wall_ms,
            counter: self.counter,
            node: self.node.clone(),
        }
    }

    /// Winds the clock back to `to` (none: to its start), as a fresh clock restored to it: only
    /// for sync's `CLOCK_AHEAD` rewind; everywhere else the clock only moves forward.
    pub fn wind_back(&mut self, to: Option<&Hlc>) {
        (self.wall_ms, self.counter) = to.map_or((0, 0), |t| (t.wall_ms, t.counter));
    }

    /// Restores a persisted state: the clock never issues a timestamp at or below `last`.
    pub fn restore(&mut self, last: &Hlc) {
        if (last.wall_ms, last.counter) > (self.wall_ms, self.counter) {
            self.wall_ms = last.wall_ms;
            self.counter = last.counter;
        }
    }

    /// Issues a new timestamp, strictly greater than every one issued or observed before.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        if now_ms > self.wall_ms {
            self.wall_ms = now_ms.min(MAX_WALL_MS);
            self.counter = 0;
        } else if self.counter < MAX_COUNTER {
            self.counter += 1;
        } else {
            // Counter exhausted within one millisecond: borrow the next millisecond.
            self.wall_ms += 1;
            self.counter = 0;
        }
        self.last()
    }

    /// Absorbs a remote timestamp so later local writes order after it. A timestamp further ahead of
    /// `now_ms` than the drift bound is refused and leaves the clock untouched: a device with a broken
    /// clock must not drag everyone's clock (and every future conflict) with it.
    pub fn observe(&mut self, remote: &Hlc, now_ms: u64) -> Result<(), HlcError> {
        check_drift(remote, now_ms, self.max_drift_ms)?;
        if (remote.wall_ms, remote.counter) > (self.wall_ms, self.counter) {
            self.wall_ms = remote.wall_ms;
            self.counter = remote.counter;
        }
        Ok(())
    }
}

/// Refuses a timestamp more than `limit_ms` ahead of `now_ms` (used by the server on every push too).
pub fn check_drift(remote: &Hlc, now_ms: u64, limit_ms: u64) -> Result<(), HlcError> {
    let ahead = remote.wall_ms.saturating_sub(now_ms);
    if ahead > limit_ms {
        return Err(HlcError::TooFarAhead {
            remote: remote.encode(),
            ahead_ms: ahead,
            limit_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stored_form_drops_only_the_own_node_and_reads_back() {
        let own = Hlc::new(0x18c_0000_0001, 0x2a, "c0ffee").unwrap();
        let other = Hlc::new(0x18c_0000_0001, 0x2a, "b0b").unwrap();
        assert_eq!(own.stored("c0ffee"), "018c00000001-00002a");
        assert_eq!(other.stored("c0ffee"), other.encode());
        for h in [&own, &other] {
            assert_eq!(&Hlc::from_stored(&h.stored("c0ffee"), "c0ffee").unwrap(), h);
        }
        // A malformed short form is refused like any other.
        assert!(Hlc::from_stored("018c00000001x00002a", "c0ffee").is_err());
        assert!(Hlc::from_stored("018c0000000g-00002a", "c0ffee").is_err());
    }

    proptest! {
        /// Stored forms of one database's stamps order as the stamps do, in either form, as long
        /// as stamps with the same time are one stamp (one node's clock never repeats a time).
        #[test]
        fn stored_forms_order_like_their_stamps(
            a in (0u64..4, 0u32..4, prop::bool::ANY),
            b in (0u64..4, 0u32..4, prop::bool::ANY),
            other in "[a-z]{1,3}",
        ) {
            let own = "ownnode";
            prop_assume!((a.0, a.1) != (b.0, b.1));
            let mk = |(w, c, mine): (u64, u32, bool)| {
                Hlc::new(w, c, if mine { own.to_string() } else { other.clone() }).unwrap()
            };
            let (ha, hb) = (mk(a), mk(b));
            prop_assert_eq!(ha.stored(own).cmp(&hb.stored(own)), ha.cmp(&hb));
        }
    }

    #[test]
    fn encode_parse_round_trip() {
        let h = Hlc::new(1_700_000_000_000, 42, "client-1").unwrap();
        let s = h.encode();
        assert_eq!(s, "018bcfe56800-00002a-client-1");
        assert_eq!(s.parse::<Hlc>().unwrap(), h);
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "abc",
            "018bcfe56800-00002a-",
            "018bcfe56800_00002a-x",
            "018BCFE56800-00002a-x",
            "018bcfe56800-00002a-a b",
        ] {
            assert!(s.parse::<Hlc>().is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn tick_is_monotonic_even_when_wall_clock_goes_back() {
        let mut c = HlcClock::new("a", DEFAULT_MAX_DRIFT_MS).unwrap();
        let t1 = c.tick(1000);
        let t2 = c.tick(900);
        let t3 = c.tick(1000);
        assert!(t1 < t2 && t2 < t3);
    }

    #[test]
    fn observe_refuses_far_future() {
        let mut c = HlcClock::new("a", 60_000).unwrap();
        c.tick(1000);
        let far = Hlc::new(1000 + 3_600_000, 0, "b").unwrap();
        assert!(matches!(
            c.observe(&far, 1000),
            Err(HlcError::TooFarAhead { .. })
        ));
        assert_eq!(c.last().wall_ms, 1000);
        let near = Hlc::new(1000 + 30_000, 5, "b").unwrap();
        c.observe(&near, 1000).unwrap();
        assert!(c.tick(1000) > near);
    }

    #[test]
    fn slow_clock_orders_after_what_it_saw() {
        // A device an hour behind cannot check drift against its own wall clock (every honest remote
        // timestamp looks an hour in the future), so callers pass wall time corrected by the offset to
        // the server's clock (`serverTime` in replies). Then it absorbs and writes after what it saw.
        let mut slow = HlcClock::new("slow", 60_000).unwrap();
        let remote = Hlc::new(10_000_000, 3, "fast").unwrap();
        let local_wall = 10_000_000 - 3_600_000;
        assert!(slow.observe(&remote, local_wall).is_err());
        let offset = 3_600_000;
        slow.observe(&remote, local_wall + offset).unwrap();
        assert!(slow.tick(local_wall + offset) > remote);
    }

    proptest! {
        #[test]
        fn string_order_matches_value_order(
            a in (0u64..=MAX_WALL_MS, 0u32..=MAX_COUNTER, "[a-z0-9_-]{1,8}"),
            b in (0u64..=MAX_WALL_MS, 0u32..=MAX_COUNTER, "[a-z0-9_-]{1,8}"),
        ) {
            let ha = Hlc::new(a.0, a.1, a.2).unwrap();
            let hb = Hlc::new(b.0, b.1, b.2).unwrap();
            prop_assert_eq!(ha.cmp(&hb), ha.encode().cmp(&hb.encode()));
            prop_assert_eq!(ha.encode().parse::<Hlc>().unwrap(), ha);
        }

        #[test]
        fn ticks_strictly_increase(walls in proptest::collection::vec(0u64..5000, 1..200)) {
            let mut c = HlcClock::new("n", DEFAULT_MAX_DRIFT_MS).unwrap();
            let mut prev: Option<Hlc> = None;
            for w in walls {
                let t = c.tick(w);
                if let Some(p) = &prev { prop_assert!(t > *p); }
                prev = Some(t);
            }
        }
    }
}
