//! The push rule, written once: what a server does with one pushed change given the document's
//! current version. The reference server (`server/src/store/plan.rs`, for a group of pushes on
//! SQLite or PostgreSQL) and the in-memory server ([`crate::sync::mem`]) both call [`decide`] and
//! build their replies with [`reply`]; docs/PROTOCOL.md section 7 states the rule.
//!
//! - No current version, or the change wins (a higher HLC, and not made without seeing the
//!   current version): [`Verdict::Write`].
//! - The same HLC as the current version: the same write seen again (a retry, or a re-sync offer
//!   of the version the server already holds): [`Verdict::Seen`], applied, nothing written.
//! - It loses (older, or made without seeing the current version: [`crate::merge::made_without`],
//!   whatever the order): [`Verdict::Stale`], the reply carries the current version for the
//!   client to settle; unless this server applied it before (its reply was lost) and the current
//!   version was made on it ([`crate::sync::lineage::applied_before`]): [`Verdict::Superseded`],
//!   applied, with what replaced it.
//!
//! Deletes are ordinary versions (tombstones): a delete beats an older update and loses to a
//! newer one. Deciding allocates nothing, so the server's group commit keeps its speed.

use crate::merge::made_without;
use crate::protocol::{Change, PushResult, PushStatus};
use crate::sync::lineage::{applied_before, Lineage};

/// What becomes of one pushed change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Store it as the document's current version (its lineage: `lineage::lineage_after`).
    Write,
    /// The current version itself: applied, nothing written, the feed does not move.
    Seen,
    /// Applied by an earlier push and replaced since by a version made on it: applied, carrying
    /// that version.
    Superseded,
    /// Loses to the current version: stale, carrying it.
    Stale,
}

impl Verdict {
    /// The status the client is told.
    pub fn status(self) -> PushStatus {
        match self {
            Verdict::Stale => PushStatus::Stale,
            Verdict::Write | Verdict::Seen | Verdict::Superseded => PushStatus::Applied,
        }
    }

    /// Whether the reply carries the document's current version (once per reply: [`Carried`]).
    pub fn carries_current(self) -> bool {
        matches!(self, Verdict::Superseded | Verdict::Stale)
    }
}

/// Decides `change`, pushed by `client_id`, against the document's `current` version (none: never
/// written) and the lineage stored beside it.
pub fn decide(
    change: &Change,
    client_id: &str,
    current: Option<&Change>,
    lineage: Option<&Lineage>,
) -> Verdict {
    let Some(cur) = current else {
        return Verdict::Write;
    };
    if cur.hlc == change.hlc {
        return Verdict::Seen;
    }
    if !loses_to(change, cur) {
        return Verdict::Write;
    }
    if applied_before(change, client_id, cur, lineage) {
        Verdict::Superseded
    } else {
        Verdict::Stale
    }
}

/// Whether `change` loses to `current` (a different version): older, or made without seeing it.
fn loses_to(change: &Change, current: &Change) -> bool {
    current.hlc > change.hlc || made_without(change, &current.hlc)
}

/// The documents whose current version a reply already carries: a reply carries each once, so a
/// push of many stale edits of one document does not get its current version back many times.
#[derive(Debug)]
pub struct Carried<K>(Vec<K>);

impl<K> Default for Carried<K> {
    fn default() -> Self {
        Carried(Vec::new())
    }
}

impl<K: PartialEq> Carried<K> {
    /// True the first time `key` is offered (the reply carries its current version now).
    pub fn first(&mut self, key: K) -> bool {
        if self.0.contains(&key) {
            return false;
        }
        self.0.push(key);
        true
    }
}

/// The result for a change decided `verdict`: `current` is the version to carry (none when the
/// verdict carries nothing or the reply already carries it). A stored version is sent without
/// its `base` (the question its writer asked this server, not part of the version).
pub fn reply(verdict: Verdict, current: Option<&Change>) -> PushResult {
    PushResult {
        status: verdict.status(),
        current: current
            .filter(|_| verdict.carries_current())
            .map(|c| Change {
                base: None,
                ..c.clone()
            }),
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::sync::lineage::lineage_after;
    use serde_json::json;

    fn v(wall: u64, node: &str, base: Option<(u64, &str)>, deleted: bool) -> Change {
        Change {
            collection: "t".into(),
            id: "a".into(),
            hlc: Hlc::new(wall, 0, node).unwrap(),
            deleted,
            doc: (!deleted).then(|| json!({"id": "a", "w": wall}).into()),
            fields: None,
            base: base.map(|(w, n)| Hlc::new(w, 0, n).unwrap()),
        }
    }

    /// What, pushed change, pusher, current version, its lineage, verdict.
    type Case<'a> = (
        &'a str,
        Change,
        &'a str,
        Option<&'a Change>,
        Option<&'a Lineage>,
        Verdict,
    );

    /// The rule as a table: pushed change, pusher, current version, lineage's extra writer entry.
    #[test]
    fn the_rule_as_a_table() {
        use Verdict::*;
        let y6 = v(6, "y", None, false);
        let y7 = v(7, "y", None, false);
        // y's 6 made on z's 5: its lineage holds z's 5.
        let y6_on_z5 = v(6, "y", Some((5, "z")), false);
        let z5 = v(5, "z", None, false);
        let lineage_y6 = lineage_after(&y6_on_z5, Some(&z5), None);
        assert!(lineage_y6.is_some());
        let cases: &[Case] = &[
            (
                "nothing stored",
                v(1, "z", None, false),
                "z",
                None,
                None,
                Write,
            ),
            (
                "nothing stored, a delete",
                v(1, "z", None, true),
                "z",
                None,
                None,
                Write,
            ),
            ("newer", v(7, "z", None, false), "z", Some(&y6), None, Write),
            (
                "newer delete beats an update",
                v(7, "z", None, true),
                "z",
                Some(&y6),
                None,
                Write,
            ),
            (
                "same hlc: seen",
                v(6, "y", None, false),
                "y",
                Some(&y6),
                None,
                Seen,
            ),
            (
                "same hlc offered by another node",
                v(6, "y", None, false),
                "z",
                Some(&y6),
                None,
                Seen,
            ),
            ("older", v(5, "z", None, false), "z", Some(&y6), None, Stale),
            (
                "older delete loses",
                v(5, "z", None, true),
                "z",
                Some(&y6),
                None,
                Stale,
            ),
            (
                "same wall, lower node",
                v(6, "x", None, false),
                "x",
                Some(&y6),
                None,
                Stale,
            ),
            (
                "same wall, higher node",
                v(6, "zz", None, false),
                "zz",
                Some(&y6),
                None,
                Write,
            ),
            (
                "newer, made on the current version",
                v(9, "z", Some((6, "y")), false),
                "z",
                Some(&y6),
                None,
                Write,
            ),
            (
                "newer, made without the current version",
                v(9, "z", Some((5, "x")), false),
                "z",
                Some(&y6),
                None,
                Stale,
            ),
            (
                "newer over the pusher's own version, other base",
                v(9, "y", Some((5, "x")), false),
                "y",
                Some(&y6),
                None,
                Write,
            ),
            (
                "applied before, replaced by a version made on it",
                v(5, "z", None, false),
                "z",
                Some(&y6_on_z5),
                lineage_y6.as_ref(),
                Superseded,
            ),
            (
                "in the lineage, but pushed by another client",
                v(5, "z", None, false),
                "q",
                Some(&y6_on_z5),
                lineage_y6.as_ref(),
                Stale,
            ),
            (
                "lineage beside another version is not believed",
                v(5, "z", None, false),
                "z",
                Some(&y7),
                lineage_y6.as_ref(),
                Stale,
            ),
            (
                "another version of the lineage's writer",
                v(4, "z", None, false),
                "z",
                Some(&y6_on_z5),
                lineage_y6.as_ref(),
                Stale,
            ),
        ];
        for (what, change, client, current, lineage, want) in cases {
            assert_eq!(decide(change, client, *current, *lineage), *want, "{what}");
        }
    }

    #[test]
    fn replies_carry_the_current_version_without_its_base_and_once() {
        let cur = v(6, "y", Some((5, "z")), false);
        let stale = reply(Verdict::Stale, Some(&cur));
        assert_eq!(stale.status, PushStatus::Stale);
        let carried = stale.current.unwrap();
        assert_eq!((carried.hlc, carried.base), (cur.hlc.clone(), None));
        let superseded = reply(Verdict::Superseded, Some(&cur));
        assert_eq!(superseded.status, PushStatus::Applied);
        assert!(superseded.current.is_some());
        for verdict in [Verdict::Write, Verdict::Seen] {
            let r = reply(verdict, Some(&cur));
            assert_eq!((r.status, r.current), (PushStatus::Applied, None));
        }
        let mut once = Carried::default();
        assert!(once.first(("t", "a")));
        assert!(once.first(("t", "b")));
        assert!(!once.first(("t", "a")));
    }
}
