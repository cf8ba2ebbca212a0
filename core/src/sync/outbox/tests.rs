//! The walk's bookkeeping alone; the whole store runs in `sync::tests` over `mem::MemTables`.

use super::*;
use crate::protocol::Change;

fn hlc(ms: u64) -> Hlc {
    Hlc::new(ms, 0, "n").unwrap()
}

fn row(c: &str, id: &str, ms: u64) -> OutboxRow {
    OutboxRow {
        change: Change {
            collection: c.into(),
            id: id.into(),
            hlc: hlc(ms),
            deleted: true,
            doc: None,
            fields: None,
            base: None,
        },
        kind: PendingKind::Edit,
        pend: hlc(ms).encode(),
    }
}

#[test]
fn a_watermark_moves_only_over_a_leading_run_of_handled_rows() {
    let mut w = Walk::default();
    assert_eq!(w.from(None), OutboxPos::Start);
    let rows = [
        row("a", "x", 1),
        row("a", "y", 2),
        row("a", "z", 3),
        row("b", "x", 4),
    ];
    w.handed(&rows, 10);
    let key = |r: &OutboxRow| DocKey::of(&r.change);
    w.handled(
        [
            (&key(&rows[0]), &rows[0].change.hlc),
            (&key(&rows[2]), &rows[2].change.hlc),
        ]
        .into_iter(),
    );
    // `y` is not acknowledged (set aside, or answered stale): the mark stops before it.
    assert_eq!(
        w.marks(),
        vec![Mark {
            collection: "a".into(),
            pend: rows[0].pend.clone(),
            id: "x".into()
        }]
    );
    assert_eq!(w.marks(), vec![], "a mark is handed out once");
    w.handled(
        [
            (&key(&rows[1]), &rows[1].change.hlc),
            (&key(&rows[3]), &rows[3].change.hlc),
        ]
        .into_iter(),
    );
    let marks = w.marks();
    assert_eq!(marks.len(), 2);
    assert_eq!(
        (marks[0].id.as_str(), marks[1].collection.as_str()),
        ("z", "b")
    );
}

#[test]
fn an_ack_of_an_older_version_does_not_count() {
    let mut w = Walk::default();
    let rows = [row("a", "x", 5)];
    w.handed(&rows, 10);
    w.handled([(&DocKey::new("a", "x"), &hlc(4))].into_iter());
    assert_eq!(w.marks(), vec![]);
}

#[test]
fn a_batch_continues_after_the_last_row_handed_out_only() {
    let mut w = Walk::default();
    let rows = [row("a", "x", 1), row("a", "y", 2)];
    let next = w.handed(&rows, 2).expect("a full batch reads ahead");
    assert_eq!(next.0, DocKey::new("a", "y"));
    let after = OutboxPos::After {
        collection: "a".into(),
        pend: rows[1].pend.clone(),
        id: "y".into(),
    };
    assert_eq!(next.1, after);
    assert_eq!(w.from(Some(&DocKey::new("a", "y"))), after);
    // A key this walk never handed out: the rest of its collection waits for the next pass.
    assert_eq!(
        w.from(Some(&DocKey::new("a", "q"))),
        OutboxPos::NextCollection("a".into())
    );
    assert!(
        w.handed(&rows[..1], 2).is_none(),
        "a short batch is the last"
    );
}

#[test]
fn a_version_restamped_leaves_its_old_place() {
    // Re-stamped lower (after `CLOCK_AHEAD`), it is queued at a new place above every place given
    // (`Places`), so the watermark may pass the old one.
    let mut w = Walk::default();
    let rows = [row("a", "x", 9)];
    w.handed(&rows, 10);
    let lower = Change {
        hlc: hlc(3),
        ..rows[0].change.clone()
    };
    w.settled(&[StoreOp::Put {
        change: lower,
        pending: true,
        expect: Some(hlc(9)),
    }]);
    assert_eq!(w.marks().len(), 1);
}

#[test]
fn a_place_is_the_writes_hlc_while_the_clock_is_ahead_of_every_place() {
    let mut places = Places::new(Some(&hlc(5)), None);
    assert_eq!(places.next(&hlc(6)), hlc(6));
    assert_eq!(places.next(&hlc(7)), hlc(7));
    // The clock persisted with them is the highest place: nothing more to keep.
    assert_eq!(places.to_persist(Some(&hlc(7))), None);
}

#[test]
fn a_place_never_goes_back_when_the_clock_does() {
    // Wound back from 9 to 3: the rows queued now go above 9, one after another.
    let mut places = Places::new(Some(&hlc(9)), None);
    let first = places.next(&hlc(3));
    let second = places.next(&hlc(3));
    let third = places.next(&hlc(4));
    assert!(
        hlc(9) < first && first < second && second < third,
        "{first} {second} {third}"
    );
    assert!(cmp_str(&hlc(9).encode(), &first.encode()).is_lt());
    // The clock persisted is the rewound one: the floor is kept beside it.
    assert_eq!(places.to_persist(Some(&hlc(3))), Some(third.clone()));
    // Read back with the rewound clock, it still puts the next rows above it...
    let mut later = Places::new(Some(&hlc(3)), Some(&third));
    assert!(later.next(&hlc(4)) > third);
    // ... until the clock passes it: then places are HLCs again, and the floor is not rewritten.
    let mut passed = Places::new(Some(&hlc(12)), Some(&third));
    assert_eq!(passed.next(&hlc(13)), hlc(13));
    assert_eq!(passed.to_persist(Some(&hlc(13))), None);
    let unchanged = Places::new(Some(&hlc(3)), Some(&third));
    assert_eq!(unchanged.to_persist(Some(&hlc(3))), None);
}

#[test]
fn places_stored_without_their_node_never_tie() {
    // A floor with the write's time but another node (a floor persisted by an older version, or
    // a remote stamp): by the full order the write's HLC is above it, but a record stores the
    // place without its node, so the place must be later in time. It keeps the write's node.
    let floor = Hlc::new(9, 4, "a").unwrap();
    let write = Hlc::new(9, 4, "n").unwrap();
    assert!(write > floor);
    let mut places = Places::new(Some(&floor), None);
    let place = places.next(&write);
    assert_eq!(place, Hlc::new(9, 5, "n").unwrap());
    assert!(cmp_str(&floor.stored("n"), &place.stored("n")).is_lt());
    // The next write at that time goes after it again.
    let next = places.next(&Hlc::new(9, 5, "n").unwrap());
    assert_eq!(next, Hlc::new(9, 6, "n").unwrap());
}

#[test]
fn the_place_after_the_largest_counter_moves_to_the_next_millisecond() {
    let top = Hlc::new(7, crate::hlc::MAX_COUNTER, "n").unwrap();
    let mut places = Places::new(Some(&top), None);
    assert_eq!(places.next(&hlc(1)), hlc(8));
}

#[test]
fn places_compare_as_indexeddb_compares_strings() {
    // U+FF5E sorts before U+10000 in UTF-8 but after it in UTF-16 (a surrogate pair).
    assert!(cmp_place(("\u{ff5e}", "a"), ("\u{10000}", "a")).is_gt());
    assert!(is_pending(Some("2"), "a", Some(("1", "z"))));
    assert!(!is_pending(Some("1"), "a", Some(("1", "a"))));
    assert!(!is_pending(None, "a", None));
    let cols = vec!["a".to_string(), "b".into(), "c".into()];
    assert_eq!(
        OutboxPos::NextCollection("a".into()).collections(&cols),
        &cols[1..]
    );
    let after = OutboxPos::After {
        collection: "b".into(),
        pend: "p".into(),
        id: "i".into(),
    };
    assert_eq!(after.collections(&cols), &cols[1..]);
    assert_eq!(after.start_in("b", None), Some(("p", "i")));
    assert_eq!(after.start_in("c", Some(("m", "n"))), Some(("m", "n")));
}
