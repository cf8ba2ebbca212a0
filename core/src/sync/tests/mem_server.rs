//! The in-memory server behaves as the real one (`server/src/store/plan.rs`, `handlers.rs`): the
//! last push of each client replayed exactly, `400 BAD_CURSOR`, restores that keep the epoch.

use crate::protocol::Doc;
use serde_json::json;

use super::*;
use crate::hlc::Hlc;
use crate::protocol::{codes, PushRequest, PushStatus};
use crate::sync::TransportError;

fn change(id: &str, wall: u64, node: &str) -> Change {
    Change {
        collection: "t".into(),
        id: id.into(),
        hlc: Hlc::new(wall, 0, node).unwrap(),
        deleted: false,
        doc: Doc::some(json!({ "id": id, "w": wall })),
        fields: None,
        base: None,
    }
}

fn push(client: &str, changes: Vec<Change>) -> PushRequest {
    PushRequest {
        client_id: client.into(),
        changes,
        cursor: None,
    }
}

fn code_of(e: TransportError) -> (u16, String) {
    match e {
        TransportError::BadRequest { status, code, .. } => (status, code),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_last_push_of_a_client_is_replayed_exactly() {
    let w = World::new();
    let s = &w.server;
    let first = push("a", vec![change("x", START, "a")]);
    let r1 = s.push(Some(NS), &first).unwrap();
    assert_eq!(r1.results[0].status, PushStatus::Applied);
    // Another client writes x after it.
    let r2 = s
        .push(Some(NS), &push("b", vec![change("x", START + 5, "b")]))
        .unwrap();
    assert_eq!(r2.results[0].status, PushStatus::Applied);
    // a retries its push (reply lost): the same reply as then, not "stale", and nothing written.
    w.advance(10);
    let again = s.push(Some(NS), &first).unwrap();
    assert_eq!(again.results, r1.results);
    assert_eq!(again.cursor, r1.cursor);
    assert_eq!(again.server_time, START + 10, "a fresh serverTime");
    assert_eq!(s.seq(NS), 2);
    assert_eq!(s.replays(), 1);
    // A different push of a's is decided afresh (and replaces the remembered one).
    let other = push("a", vec![change("x", START + 1, "a")]);
    let r3 = s.push(Some(NS), &other).unwrap();
    assert_eq!(r3.results[0].status, PushStatus::Stale);
    let r4 = s.push(Some(NS), &first).unwrap();
    assert_eq!(
        r4.results[0].status,
        PushStatus::Stale,
        "only the last push is kept"
    );
}

#[test]
fn malformed_and_ahead_cursors_are_bad_cursor_and_other_epochs_409() {
    let w = World::new();
    let s = &w.server;
    s.push(Some(NS), &push("a", vec![change("x", START, "a")]))
        .unwrap();
    let epoch = s.epoch();
    for bad in ["x", "abc:1", &format!("{epoch}:x"), &format!("{epoch}:2")] {
        let e = s.pull(Some(NS), Some(bad), 10).unwrap_err();
        assert_eq!(code_of(e), (400, codes::BAD_CURSOR.to_string()), "{bad}");
    }
    assert!(s.pull(Some(NS), Some(&format!("{epoch}:1")), 10).is_ok());
    let other = "0123456789abcdef";
    assert!(matches!(
        s.pull(Some(NS), Some(&format!("{other}:1")), 10),
        Err(TransportError::CursorEpochMismatch(_))
    ));
}

#[test]
fn a_restore_keeping_the_epoch_puts_cursors_ahead_and_reuses_positions() {
    let w = World::new();
    let s = &w.server;
    s.push(Some(NS), &push("a", vec![change("x", START, "a")]))
        .unwrap();
    let backup = s.snapshot(NS);
    let late = push("a", vec![change("y", START + 1, "a")]);
    let r = s.push(Some(NS), &late).unwrap();
    let cursor = r.cursor.unwrap();
    let epoch = s.epoch();
    s.restore_keeping_epoch(vec![(NS.to_string(), backup)]);
    assert_eq!(s.epoch(), epoch);
    assert_eq!(s.seq(NS), 1);
    let e = s.pull(Some(NS), Some(&cursor), 10).unwrap_err();
    assert_eq!(code_of(e), (400, codes::BAD_CURSOR.to_string()));
    // The backup remembers a's push before it: the lost one is applied again, at position 2.
    let r = s.push(Some(NS), &late).unwrap();
    assert_eq!(r.results[0].status, PushStatus::Applied);
    assert_eq!(
        r.cursor.as_deref(),
        Some(cursor.as_str()),
        "position 2 reused"
    );
    assert_eq!(s.docs(NS).len(), 2);
}

#[test]
fn refused_rows_and_body_limit_refuse_the_whole_push() {
    let w = World::new();
    let s = &w.server;
    s.refuse(Some(Box::new(|c: &Change| {
        (c.id == "bad").then(|| (422, "RULE".to_string(), "no".to_string()))
    })));
    let e = s
        .push(
            Some(NS),
            &push(
                "a",
                vec![change("ok", START, "a"), change("bad", START, "a")],
            ),
        )
        .unwrap_err();
    assert_eq!(code_of(e), (422, "RULE".to_string()));
    assert!(s.docs(NS).is_empty(), "all or nothing");
    s.refuse(None);
    s.set_max_body_bytes(Some(200));
    let mut big = change("big", START, "a");
    big.doc = Doc::some(json!({ "id": "big", "blob": "x".repeat(300) }));
    let e = s.push(Some(NS), &push("a", vec![big])).unwrap_err();
    assert_eq!(code_of(e), (413, codes::PAYLOAD_TOO_LARGE.to_string()));
}
