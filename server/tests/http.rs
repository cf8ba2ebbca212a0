//! The sync protocol against a real database (SQLite always; PostgreSQL too when `DATABASE_URL` is
//! set at build time), through the server's router (`oneshot`, no socket), and over real HTTP
//! where the test is about the connection (a streamed body without a length).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::Method;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(
    push_pull_round_trip,
    pagination_reports_remaining,
    remaining_beyond_the_count_cap_is_an_upper_bound,
    retried_push_is_idempotent,
    stale_write_carries_current,
    a_change_made_on_an_older_base_is_stale,
    an_edit_applied_before_is_answered_applied_with_what_replaced_it,
    a_database_from_before_lineages_gains_them,
    tombstones_order_by_hlc,
    namespaces_are_isolated,
    bad_push_input_is_refused_and_changes_nothing,
    bad_pull_input_is_refused,
    unknown_routes_and_methods_are_json,
    missing_or_bad_token_is_401,
    jwt_sub_is_the_namespace,
    cursor_from_another_database_is_409,
    restart_keeps_epoch_and_data,
    clock_ahead_is_refused,
    oversized_body_is_413,
    concurrent_pushes_and_pulls_lose_nothing,
    healthz_answers,
);

async fn push_pull_round_trip(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("rt");
    let now = now_ms();
    let (st, r) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![
                    put(
                        "tasks",
                        "a",
                        &hlc(now, 0, "c1"),
                        json!({"title": "A", "n": 1, "nested": {"x": [1, 2]}}),
                    ),
                    put("tasks", "b", &hlc(now, 1, "c1"), json!({"title": "B"})),
                    put(
                        "notes",
                        "a",
                        &hlc(now, 2, "c1"),
                        json!({"text": "same id, other collection"}),
                    ),
                ],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        r["results"],
        json!([{"status": "applied"}, {"status": "applied"}, {"status": "applied"}])
    );
    assert!(r["cursor"].is_string());

    let (st, p) = s.pull(&t, None, None).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    let changes = p["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0]["collection"], "tasks");
    assert_eq!(changes[0]["id"], "a");
    assert_eq!(changes[0]["hlc"], hlc(now, 0, "c1"));
    assert_eq!(
        changes[0]["doc"],
        json!({"id": "a", "title": "A", "n": 1, "nested": {"x": [1, 2]}})
    );
    assert!(changes[0].get("deleted").is_none());
    assert_eq!(changes[2]["collection"], "notes");
    assert_eq!(p["hasMore"], false);
    assert_eq!(p["remaining"], 0);
    // The push reply's cursor is the feed head, which a full pull reaches too (its cursor adds
    // the check of the change there).
    let (position, check) = p["cursor"].as_str().unwrap().split_once('~').unwrap();
    assert_eq!(Some(position), r["cursor"].as_str());
    assert_eq!(check.len(), 8);

    // Nothing new: same cursor back, no changes.
    let cursor = p["cursor"].as_str().unwrap().to_string();
    let (_, p2) = s.pull(&t, Some(&cursor), None).await;
    assert_eq!(p2["changes"], json!([]));
    assert_eq!(p2["cursor"], cursor);

    // An update moves the document to the end of the feed; the old cursor yields just it.
    let (_, r) = s
        .push(
            &t,
            push_body(
                "c2",
                vec![put(
                    "tasks",
                    "a",
                    &hlc(now, 5, "c2"),
                    json!({"title": "A2"}),
                )],
            ),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "applied");
    let (_, p3) = s.pull(&t, Some(&cursor), None).await;
    let ch = p3["changes"].as_array().unwrap();
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0]["doc"]["title"], "A2");
    assert_eq!(ch[0]["hlc"], hlc(now, 5, "c2"));
    // merge-policy field clocks round-trip untouched.
    let fields = json!({"title": hlc(now, 6, "c1"), "n": hlc(now, 3, "c1")});
    let mut c = put(
        "tasks",
        "f",
        &hlc(now, 6, "c1"),
        json!({"title": "F", "n": 2}),
    );
    c["fields"] = fields.clone();
    let (st, _) = s.push(&t, push_body("c1", vec![c])).await;
    assert_eq!(st, StatusCode::OK);
    let (all, _) = s.pull_all(&t, None).await;
    let f = all.iter().find(|c| c["id"] == "f").unwrap();
    assert_eq!(f["fields"], fields);
    s.finish().await;
}

async fn pagination_reports_remaining(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("page");
    let now = now_ms();
    let changes: Vec<Value> = (0..25)
        .map(|i| {
            put(
                "items",
                &format!("i{i:02}"),
                &hlc(now, i, "c1"),
                json!({"i": i}),
            )
        })
        .collect();
    let (st, _) = s.push(&t, push_body("c1", changes)).await;
    assert_eq!(st, StatusCode::OK);

    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    loop {
        let (st, p) = s.pull(&t, cursor.as_deref(), Some(10)).await;
        assert_eq!(st, StatusCode::OK, "{p}");
        let n = p["changes"].as_array().unwrap().len();
        pages.push((n, p["hasMore"].as_bool().unwrap(), p["remaining"].as_u64()));
        seen.extend(
            p["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string()),
        );
        cursor = Some(p["cursor"].as_str().unwrap().to_string());
        if !p["hasMore"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(
        pages,
        vec![
            (10, true, Some(15)),
            (10, true, Some(5)),
            (5, false, Some(0))
        ]
    );
    let expected: Vec<String> = (0..25).map(|i| format!("i{i:02}")).collect();
    assert_eq!(
        seen, expected,
        "feed order is push order, nothing repeated or skipped"
    );
    s.finish().await;
}

async fn remaining_beyond_the_count_cap_is_an_upper_bound(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("many");
    let now = now_ms();
    for p in 0..11u32 {
        let changes: Vec<Value> = (0..1000)
            .map(|i| {
                put(
                    "items",
                    &format!("p{p}-{i}"),
                    &hlc(now, p * 1000 + i, "c1"),
                    json!({}),
                )
            })
            .collect();
        let (st, r) = s.push(&t, push_body("c1", changes)).await;
        assert_eq!(st, StatusCode::OK, "{r}");
    }
    // 11 000 documents: past the exact-count cap, `remaining` is head minus position, which is
    // exact here since no document was rewritten.
    let (_, p) = s.pull(&t, None, Some(100)).await;
    assert_eq!(p["remaining"], 10_900);
    // Rewrite 50 documents of the rest: the bound now overcounts by 50, never undercounts.
    let changes: Vec<Value> = (0..50)
        .map(|i| {
            put(
                "items",
                &format!("p5-{i}"),
                &hlc(now, 20_000 + i, "c1"),
                json!({"v": 2}),
            )
        })
        .collect();
    s.push(&t, push_body("c1", changes)).await;
    let (_, p) = s.pull(&t, None, Some(100)).await;
    assert_eq!(p["remaining"], 10_950);
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(all.len(), 11_000);
    // Below the cap the count is exact again.
    let (_, p) = s.pull(&t, None, Some(1000)).await;
    let mut cursor = p["cursor"].as_str().unwrap().to_string();
    for _ in 0..9 {
        let (_, p) = s.pull(&t, Some(&cursor), Some(1000)).await;
        cursor = p["cursor"].as_str().unwrap().to_string();
    }
    let (_, p) = s.pull(&t, Some(&cursor), Some(100)).await;
    assert_eq!(p["remaining"], 900);
    s.finish().await;
}

async fn retried_push_is_idempotent(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("retry");
    let now = now_ms();
    let body = push_body(
        "c1",
        vec![
            put("tasks", "a", &hlc(now, 0, "c1"), json!({"v": 1})),
            put("tasks", "b", &hlc(now, 1, "c1"), json!({"v": 1})),
        ],
    );
    let (_, first) = s.push(&t, body.clone()).await;
    // The reply was "lost": the same push again answers the same and writes nothing.
    let (st, again) = s.push(&t, body.clone()).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(again["results"], first["results"]);
    assert_eq!(again["cursor"], first["cursor"]);
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(all.len(), 2);

    // Another client overwrites `a`; the retry still answers exactly as the first time...
    let (_, other) = s
        .push(
            &t,
            push_body(
                "c2",
                vec![put("tasks", "a", &hlc(now, 9, "c2"), json!({"v": 2}))],
            ),
        )
        .await;
    assert_eq!(other["results"][0]["status"], "applied");
    let (_, late) = s.push(&t, body.clone()).await;
    assert_eq!(late["results"], first["results"]);
    assert_eq!(late["cursor"], first["cursor"]);
    // ...and changes nothing: the newer version stays.
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(all.len(), 2);
    let a = all.iter().find(|c| c["id"] == "a").unwrap();
    assert_eq!(a["doc"]["v"], 2);

    // The same change inside a different push (same collection, id, hlc) is applied again, unchanged.
    let (_, r) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![
                    put("tasks", "b", &hlc(now, 1, "c1"), json!({"v": 1})),
                    put("tasks", "c", &hlc(now, 2, "c1"), json!({"v": 1})),
                ],
            ),
        )
        .await;
    assert_eq!(
        r["results"],
        json!([{"status": "applied"}, {"status": "applied"}])
    );
    let (all2, _) = s.pull_all(&t, None).await;
    assert_eq!(all2.len(), 3);
    // `b` was not rewritten: it keeps its place before `a`'s update in the feed.
    let order: Vec<&str> = all2.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(order, vec!["b", "a", "c"]);
    s.finish().await;
}

/// `change` made on the version `base`.
fn with_base(mut change: Value, base: &str) -> Value {
    change["base"] = json!(base);
    change
}

async fn a_change_made_on_an_older_base_is_stale(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("base");
    let now = now_ms();
    let v0 = hlc(now - 30, 0, "c1");
    s.push(
        &t,
        push_body("c1", vec![put("tasks", "a", &v0, json!({"n": 0}))]),
    )
    .await;
    // c2 edits v0 (older clock), c3 edits v0 too (newer clock); c2 pushes first.
    let v2 = hlc(now - 20, 0, "c2");
    let (_, r) = s
        .push(
            &t,
            push_body(
                "c2",
                vec![with_base(put("tasks", "a", &v2, json!({"n": 2})), &v0)],
            ),
        )
        .await;
    assert_eq!(r["results"][0], json!({"status": "applied"}));
    let v3 = hlc(now - 10, 0, "c3");
    let (st, r) = s
        .push(
            &t,
            push_body(
                "c3",
                vec![with_base(put("tasks", "a", &v3, json!({"n": 3})), &v0)],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        r["results"][0]["status"], "stale",
        "newer, but not made on c2's version: {r}"
    );
    assert_eq!(
        r["results"][0]["current"],
        json!({"collection": "tasks", "id": "a", "hlc": v2, "doc": {"id": "a", "n": 2}})
    );
    // Without a base the same change wins by order (lww collections send none).
    let (_, r) = s
        .push(
            &t,
            push_body("c4", vec![put("tasks", "b", &v3, json!({"n": 3}))]),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "applied");
    // The resolution, made on c2's version, is taken; so is c3's next edit on top of its own.
    let v4 = hlc(now - 5, 0, "c3");
    let (_, r) = s
        .push(
            &t,
            push_body(
                "c3",
                vec![with_base(put("tasks", "a", &v4, json!({"n": 5})), &v2)],
            ),
        )
        .await;
    assert_eq!(r["results"][0], json!({"status": "applied"}));
    let v5 = hlc(now, 0, "c3");
    let (_, r) = s
        .push(
            &t,
            push_body(
                "c3",
                vec![with_base(put("tasks", "a", &v5, json!({"n": 6})), &v2)],
            ),
        )
        .await;
    assert_eq!(r["results"][0], json!({"status": "applied"}), "{r}");
    let (all, _) = s.pull_all(&t, None).await;
    let a = all.iter().find(|c| c["id"] == "a").unwrap();
    assert_eq!(a["doc"], json!({"id": "a", "n": 6}));
    assert!(a.get("base").is_none(), "pulls never carry a base: {a}");
    s.finish().await;
}

/// Issue 13 item 4: c1's E1 is applied but its reply is lost; c2 edits on E1, c3 on c2's
/// version; c1 pushes E1 again in a different push (no replay). The server recognises E1 in the
/// current version's lineage: `applied`, with the version that replaced it, never `stale` (a
/// stale E1 would be offered to c1's resolver against versions made on it). Another client
/// pushing c1's version, or c1 a version the server never had, still gets `stale`.
async fn an_edit_applied_before_is_answered_applied_with_what_replaced_it(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("lineage");
    let now = now_ms();
    let e0 = hlc(now - 50, 0, "c1");
    let e1 = hlc(now - 40, 0, "c1");
    let e2 = hlc(now - 30, 0, "c2");
    let e3 = hlc(now - 20, 0, "c3");
    let e1_change = with_base(put("tasks", "a", &e1, json!({"by": "c1"})), &e0);
    for (client, change) in [
        ("c1", put("tasks", "a", &e0, json!({"n": 0}))),
        ("c1", e1_change.clone()), // applied; suppose its reply is lost
        (
            "c2",
            with_base(put("tasks", "a", &e2, json!({"by": "c2"})), &e1),
        ),
        (
            "c3",
            with_base(put("tasks", "a", &e3, json!({"by": "c3"})), &e2),
        ),
    ] {
        let (_, r) = s.push(&t, push_body(client, vec![change])).await;
        assert_eq!(r["results"][0], json!({"status": "applied"}), "{r}");
    }
    let current =
        json!({"collection": "tasks", "id": "a", "hlc": e3, "doc": {"id": "a", "by": "c3"}});
    // c1 pushes E1 again with another change (so not a replay of its last push).
    let other = put("tasks", "b", &hlc(now - 10, 0, "c1"), json!({"n": 1}));
    let (_, r) = s
        .push(&t, push_body("c1", vec![e1_change.clone(), other]))
        .await;
    assert_eq!(
        r["results"][0],
        json!({"status": "applied", "current": current}),
        "{r}"
    );
    assert_eq!(r["results"][1], json!({"status": "applied"}));
    // Its retry is answered the same (the replay).
    let other = put("tasks", "b", &hlc(now - 10, 0, "c1"), json!({"n": 1}));
    let (_, again) = s
        .push(&t, push_body("c1", vec![e1_change.clone(), other]))
        .await;
    assert_eq!(again["results"], r["results"]);
    // Not for another client pushing c1's version, nor for a version of c1 the server never had.
    let never = hlc(now - 35, 0, "c1");
    for (client, change) in [
        ("c9", put("tasks", "a", &e1, json!({"by": "c1"}))),
        ("c1", with_base(put("tasks", "a", &never, json!({})), &e0)),
    ] {
        let (_, r) = s.push(&t, push_body(client, vec![change])).await;
        assert_eq!(r["results"][0]["status"], "stale", "{client}: {r}");
    }
    // The lineage is the server's own record: pulls carry the versions as before.
    let (all, _) = s.pull_all(&t, None).await;
    let a = all.iter().find(|c| c["id"] == "a").unwrap();
    assert_eq!(*a, current);
    s.finish().await;
}

/// A database created before `ferrosync_docs.lineage` existed (one document in it) is upgraded
/// when the server starts: the document is still there, and edits made on it from then on get
/// lineages.
async fn a_database_from_before_lineages_gains_them(b: Backend) {
    let db = FreshDb::new(b).await;
    let t = token("upgrade");
    let now = now_ms();
    let e0 = hlc(now - 50, 0, "c1");
    let old = format!(
        r#"CREATE TABLE ferrosync_namespaces (namespace TEXT PRIMARY KEY, head BIGINT NOT NULL);
        CREATE TABLE ferrosync_docs (namespace TEXT NOT NULL, collection TEXT NOT NULL,
            id TEXT NOT NULL, hlc TEXT NOT NULL, client_id TEXT NOT NULL, deleted BOOLEAN NOT NULL,
            doc TEXT, fields TEXT, seq BIGINT NOT NULL, PRIMARY KEY (namespace, collection, id));
        INSERT INTO ferrosync_namespaces VALUES ('{t}', 1);
        INSERT INTO ferrosync_docs VALUES ('{t}', 'tasks', 'a', '{e0}', 'c1', FALSE,
            '{{"id":"a","n":0}}', NULL, 1);"#
    );
    match b {
        Backend::Sqlite => {
            let path = sqlite_file(&db.url);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch(&old)
                .unwrap();
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::raw_sql(&old).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let s = TestServer::router_on(db, |_| {}).await;
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let e1 = hlc(now - 40, 0, "c1");
    let e2 = hlc(now - 30, 0, "c2");
    let e1_change = with_base(put("tasks", "a", &e1, json!({"by": "c1"})), &e0);
    for (client, change) in [
        ("c1", e1_change.clone()),
        (
            "c2",
            with_base(put("tasks", "a", &e2, json!({"by": "c2"})), &e1),
        ),
    ] {
        let (_, r) = s.push(&t, push_body(client, vec![change])).await;
        assert_eq!(r["results"][0], json!({"status": "applied"}), "{r}");
    }
    let other = put("tasks", "b", &hlc(now - 10, 0, "c1"), json!({}));
    let (_, r) = s.push(&t, push_body("c1", vec![e1_change, other])).await;
    assert_eq!(r["results"][0]["status"], "applied", "{r}");
    assert_eq!(r["results"][0]["current"]["hlc"], json!(e2), "{r}");
    s.finish().await;
}

async fn stale_write_carries_current(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("stale");
    let now = now_ms();
    s.push(
        &t,
        push_body(
            "c2",
            vec![put("tasks", "a", &hlc(now, 5, "c2"), json!({"who": "c2"}))],
        ),
    )
    .await;
    let (st, r) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![
                    put("tasks", "a", &hlc(now, 4, "c1"), json!({"who": "c1"})),
                    put("tasks", "z", &hlc(now, 4, "c1"), json!({"who": "c1"})),
                ],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["results"][0]["status"], "stale");
    assert_eq!(
        r["results"][0]["current"],
        json!({"collection": "tasks", "id": "a", "hlc": hlc(now, 5, "c2"), "doc": {"id": "a", "who": "c2"}})
    );
    assert_eq!(r["results"][1], json!({"status": "applied"}));

    // Equal wall time and counter: the higher client id wins, deterministically.
    let (_, r) = s
        .push(
            &t,
            push_body(
                "c3",
                vec![put("tasks", "a", &hlc(now, 5, "c3"), json!({"who": "c3"}))],
            ),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "applied");
    let (_, r) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![put("tasks", "a", &hlc(now, 5, "c1"), json!({"who": "c1"}))],
            ),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "stale");
    assert_eq!(r["results"][0]["current"]["doc"]["who"], "c3");
    let (all, _) = s.pull_all(&t, None).await;
    let a = all.iter().find(|c| c["id"] == "a").unwrap();
    assert_eq!(a["doc"]["who"], "c3");
    s.finish().await;
}

async fn tombstones_order_by_hlc(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("tomb");
    let now = now_ms();
    s.push(
        &t,
        push_body(
            "c1",
            vec![put("tasks", "a", &hlc(now, 10, "c1"), json!({"v": 1}))],
        ),
    )
    .await;
    // An older delete loses.
    let (_, r) = s
        .push(
            &t,
            push_body("c2", vec![del("tasks", "a", &hlc(now, 9, "c2"))]),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "stale");
    assert_eq!(r["results"][0]["current"]["doc"]["v"], 1);
    // A newer delete wins and is pulled as a tombstone.
    let (_, r) = s
        .push(
            &t,
            push_body("c2", vec![del("tasks", "a", &hlc(now, 11, "c2"))]),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "applied");
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(
        all,
        vec![json!({"collection": "tasks", "id": "a", "hlc": hlc(now, 11, "c2"), "deleted": true})]
    );
    // An update older than the delete loses to it; the reply carries the tombstone.
    let (_, r) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![put("tasks", "a", &hlc(now, 10, "c9"), json!({"v": 2}))],
            ),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "stale");
    assert_eq!(r["results"][0]["current"]["deleted"], true);
    assert!(r["results"][0]["current"].get("doc").is_none());
    // A newer update resurrects it.
    let (_, r) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![put("tasks", "a", &hlc(now, 12, "c1"), json!({"v": 3}))],
            ),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "applied");
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["doc"]["v"], 3);
    // Deleting a document the server never saw is stored as a tombstone too.
    let (_, r) = s
        .push(
            &t,
            push_body("c1", vec![del("tasks", "never", &hlc(now, 13, "c1"))]),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "applied");
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[1]["deleted"], true);
    s.finish().await;
}

async fn namespaces_are_isolated(b: Backend) {
    let s = TestServer::router(b).await;
    let ta = token("alice");
    let tb = token("bob");
    let now = now_ms();
    s.push(
        &ta,
        push_body(
            "ca",
            vec![put(
                "tasks",
                "x",
                &hlc(now, 5, "ca"),
                json!({"owner": "alice"}),
            )],
        ),
    )
    .await;
    let (all_b, _) = s.pull_all(&tb, None).await;
    assert!(all_b.is_empty(), "bob sees nothing of alice's");
    // Bob writes the same id with an older clock: in his namespace it is simply new.
    let (_, r) = s
        .push(
            &tb,
            push_body(
                "cb",
                vec![put(
                    "tasks",
                    "x",
                    &hlc(now, 1, "cb"),
                    json!({"owner": "bob"}),
                )],
            ),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "applied");
    let (all_a, _) = s.pull_all(&ta, None).await;
    assert_eq!(all_a.len(), 1);
    assert_eq!(all_a[0]["doc"]["owner"], "alice");
    let (all_b, _) = s.pull_all(&tb, None).await;
    assert_eq!(all_b.len(), 1);
    assert_eq!(all_b[0]["doc"]["owner"], "bob");
    // Bob deletes "x": only his copy goes.
    s.push(
        &tb,
        push_body("cb", vec![del("tasks", "x", &hlc(now, 9, "cb"))]),
    )
    .await;
    let (all_a, _) = s.pull_all(&ta, None).await;
    assert_eq!(all_a[0]["doc"]["owner"], "alice");
    s.finish().await;
}

async fn bad_push_input_is_refused_and_changes_nothing(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("bad");
    let now = now_ms();
    let h = hlc(now, 0, "c1");
    let ok = put("tasks", "ok", &h, json!({"v": 1}));
    let long_id = "x".repeat(257);
    let many: Vec<Value> = (0..1001)
        .map(|i| put("tasks", &format!("m{i}"), &h, json!({})))
        .collect();
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed JSON", "{\"clientId\": \"c1\", \"changes\": [".into(), "BAD_REQUEST"),
        ("not JSON at all", "hello".into(), "BAD_REQUEST"),
        ("empty body", "".into(), "BAD_REQUEST"),
        ("top level not an object", "[1,2]".into(), "BAD_REQUEST"),
        ("changes wrong type", json!({"clientId": "c1", "changes": "x"}).to_string(), "BAD_REQUEST"),
        ("missing clientId", json!({"changes": []}).to_string(), "BAD_REQUEST"),
        ("unknown top-level field", json!({"clientId": "c1", "changes": [], "extra": 1}).to_string(), "BAD_REQUEST"),
        ("unknown change field", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": h, "doc": {"id": "a"}, "colour": 1})]).to_string(), "BAD_REQUEST"),
        ("id wrong type", push_body("c1", vec![json!({"collection": "tasks", "id": 5, "hlc": h, "doc": {"id": 5}})]).to_string(), "BAD_REQUEST"),
        ("deleted wrong type", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": h, "deleted": "yes"})]).to_string(), "BAD_REQUEST"),
        ("malformed hlc", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": "yesterday", "doc": {"id": "a"}})]).to_string(), "BAD_REQUEST"),
        ("upper-case hlc", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": h.to_uppercase(), "doc": {"id": "a"}})]).to_string(), "BAD_REQUEST"),
        ("bad clientId", push_body("c 1", vec![ok.clone()]).to_string(), "BAD_REQUEST"),
        ("bad collection name", push_body("c1", vec![ok.clone(), put("1tasks", "a", &h, json!({}))]).to_string(), "INVALID_CHANGE"),
        ("collection with slash", push_body("c1", vec![put("a/b", "a", &h, json!({}))]).to_string(), "INVALID_CHANGE"),
        ("collection too long", push_body("c1", vec![put(&"t".repeat(65), "a", &h, json!({}))]).to_string(), "INVALID_CHANGE"),
        ("empty id", push_body("c1", vec![ok.clone(), put("tasks", "", &h, json!({}))]).to_string(), "INVALID_CHANGE"),
        ("id too long", push_body("c1", vec![put("tasks", &long_id, &h, json!({}))]).to_string(), "INVALID_CHANGE"),
        ("id with control char", push_body("c1", vec![put("tasks", "a\nb", &h, json!({}))]).to_string(), "INVALID_CHANGE"),
        ("doc not an object", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": h, "doc": [1]})]).to_string(), "INVALID_CHANGE"),
        ("doc a string", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": h, "doc": "a"})]).to_string(), "INVALID_CHANGE"),
        ("doc.id differs", push_body("c1", vec![ok.clone(), json!({"collection": "tasks", "id": "a", "hlc": h, "doc": {"id": "b"}})]).to_string(), "INVALID_CHANGE"),
        ("doc without id", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": h, "doc": {"v": 1}})]).to_string(), "INVALID_CHANGE"),
        ("doc missing", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": h})]).to_string(), "INVALID_CHANGE"),
        ("base not older than hlc", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": h, "base": h, "doc": {"id": "a"}})]).to_string(), "INVALID_CHANGE"),
        ("malformed base", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": h, "base": "then", "doc": {"id": "a"}})]).to_string(), "BAD_REQUEST"),
        ("delete with doc", push_body("c1", vec![json!({"collection": "tasks", "id": "a", "hlc": h, "deleted": true, "doc": {"id": "a"}})]).to_string(), "INVALID_CHANGE"),
        ("too many changes", push_body("c1", many).to_string(), "TOO_MANY_CHANGES"),
    ];
    for (what, body, code) in &cases {
        let (st, r) = s.push_raw(&t, body.clone()).await;
        assert!(
            st.is_client_error() && st != StatusCode::UNAUTHORIZED,
            "{what}: {st} {r}"
        );
        assert_eq!(st, StatusCode::BAD_REQUEST, "{what}: {r}");
        assert_eq!(r["error"]["code"], *code, "{what}: {r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(!msg.is_empty(), "{what}: empty message");
    }
    // Messages say what was wrong and where.
    let (_, r) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![
                    ok.clone(),
                    json!({"collection": "tasks", "id": "a", "hlc": h, "doc": {"id": "q"}}),
                ],
            ),
        )
        .await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("changes[1]"),
        "{r}"
    );
    let (_, r) = s
        .push_raw(
            &t,
            json!({"clientId": "c1", "changes": [], "extra": 1}).to_string(),
        )
        .await;
    assert!(
        r["error"]["message"].as_str().unwrap().contains("extra"),
        "{r}"
    );

    // All or nothing: the valid change that came with invalid ones was not stored.
    let (all, _) = s.pull_all(&t, None).await;
    assert!(all.is_empty(), "refused pushes changed something: {all:?}");
    // An empty push is fine and changes nothing.
    let (st, r) = s.push(&t, push_body("c1", vec![])).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["results"], json!([]));
    // Exactly the limit is accepted.
    let limit: Vec<Value> = (0..1000)
        .map(|i| put("tasks", &format!("m{i}"), &hlc(now, i, "c1"), json!({})))
        .collect();
    let (st, r) = s.push(&t, push_body("c1", limit)).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    s.finish().await;
}

async fn bad_pull_input_is_refused(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("badpull");
    let now = now_ms();
    let (_, r) = s
        .push(
            &t,
            push_body("c1", vec![put("tasks", "a", &hlc(now, 0, "c1"), json!({}))]),
        )
        .await;
    let good = r["cursor"].as_str().unwrap().to_string();
    let (epoch, seq) = good.split_once(':').unwrap();
    assert_eq!(seq, "1");
    let get = |q: String| {
        let s = &s;
        let t = t.clone();
        async move {
            s.request(Method::GET, &format!("/v1/pull?{q}"), Some(&t), Vec::new())
                .await
        }
    };
    for (q, code) in [
        ("cursor=garbage".to_string(), "BAD_CURSOR"),
        (format!("cursor={epoch}:abc"), "BAD_CURSOR"),
        (format!("cursor={epoch}:-1"), "BAD_CURSOR"),
        (format!("cursor={epoch}:99"), "BAD_CURSOR"),
        ("limit=0".to_string(), "BAD_REQUEST"),
        ("limit=1001".to_string(), "BAD_REQUEST"),
        ("limit=ten".to_string(), "BAD_REQUEST"),
        ("limit=-5".to_string(), "BAD_REQUEST"),
        ("since=5".to_string(), "BAD_REQUEST"),
    ] {
        let (st, r) = get(q.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {r}");
        assert_eq!(r["error"]["code"], code, "{q}: {r}");
    }
    let (st, r) = get(format!("cursor={good}&limit=1000")).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    s.finish().await;
}

async fn unknown_routes_and_methods_are_json(b: Backend) {
    let s = TestServer::router(b).await;
    let (st, body) = s
        .request(Method::GET, "/v1/nope", Some("x"), Vec::new())
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    let (st, body) = s
        .request(Method::GET, "/v1/push", Some("x"), Vec::new())
        .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
    let (st, _) = s.request(Method::GET, "/elsewhere", None, Vec::new()).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.finish().await;
}

async fn missing_or_bad_token_is_401(b: Backend) {
    let s = TestServer::router(b).await;
    let body = push_body(
        "c1",
        vec![put("tasks", "a", &hlc(now_ms(), 0, "c1"), json!({}))],
    );
    let body = serde_json::to_vec(&body).unwrap();
    let json = ("content-type", "application/json");
    let reqs = [
        (Method::POST, "/v1/push", vec![json], body.clone()),
        (
            Method::POST,
            "/v1/push",
            vec![json, ("authorization", "Basic dXNlcjpwYXNz")],
            body.clone(),
        ),
        (
            Method::POST,
            "/v1/push",
            vec![json, ("authorization", "Bearer ")],
            body.clone(),
        ),
        (
            Method::POST,
            "/v1/push",
            vec![json, ("authorization", "Bearer two words")],
            body.clone(),
        ),
        (Method::GET, "/v1/pull", vec![], Vec::new()),
        (Method::GET, "/v1/events", vec![], Vec::new()),
    ];
    for (method, path, headers, body) in reqs {
        let (st, headers, body) = s.send(method, path, &headers, body).await;
        let (st, r) = json_of(st, &headers, &body);
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{r}");
        assert_eq!(r["error"]["code"], "UNAUTHORIZED");
    }
    // Refused before anything was stored: a valid token sees an empty namespace... and so does
    // the literal namespace "two" of the malformed header.
    for t in ["two", "dXNlcjpwYXNz"] {
        let (all, _) = s.pull_all(t, None).await;
        assert!(all.is_empty());
    }
    s.finish().await;
}

fn jwt(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn jwt_sub_is_the_namespace(b: Backend) {
    let secret = "test-secret-0123456789-0123456789";
    let s = TestServer::router_with(b, |c| {
        c.auth = ferrosync_server::config::AuthMode::Jwt;
        c.jwt_secret = Some(secret.into());
    })
    .await;
    let exp = now_ms() / 1000 + 3600;
    let sub = token("user");
    let t1 = jwt(secret, json!({"sub": sub, "exp": exp}));
    let t2 = jwt(secret, json!({"sub": sub, "exp": exp, "device": "phone"}));
    let other = jwt(secret, json!({"sub": token("other"), "exp": exp}));
    let now = now_ms();
    let (st, r) = s
        .push(
            &t1,
            push_body("c1", vec![put("tasks", "a", &hlc(now, 0, "c1"), json!({}))]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let (all, _) = s.pull_all(&t2, None).await;
    assert_eq!(all.len(), 1, "two tokens with one sub share a namespace");
    let (all, _) = s.pull_all(&other, None).await;
    assert!(all.is_empty());
    // In jwt mode a raw namespace is not a token.
    for bad in [
        sub.clone(),
        jwt("wrong-secret", json!({"sub": sub, "exp": exp})),
        jwt(secret, json!({"sub": sub, "exp": now_ms() / 1000 - 3600})),
        jwt(secret, json!({"exp": exp})),
        jwt(secret, json!({"sub": sub})),
    ] {
        let (st, r) = s.pull(&bad, None, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{r}");
        assert_eq!(r["error"]["code"], "UNAUTHORIZED");
    }
    s.finish().await;
}

async fn cursor_from_another_database_is_409(b: Backend) {
    let s1 = TestServer::router(b).await;
    let s2 = TestServer::router(b).await;
    let t = token("epoch");
    let now = now_ms();
    s1.push(
        &t,
        push_body("c1", vec![put("tasks", "a", &hlc(now, 0, "c1"), json!({}))]),
    )
    .await;
    let (_, p) = s1.pull(&t, None, None).await;
    let cursor = p["cursor"].as_str().unwrap();
    let (st, r) = s2.pull(&t, Some(cursor), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{r}");
    assert_eq!(r["error"]["code"], "CURSOR_EPOCH_MISMATCH");
    // Starting over (no cursor) works.
    let (st, _) = s2.pull(&t, None, None).await;
    assert_eq!(st, StatusCode::OK);
    s1.finish().await;
    s2.finish().await;
}

async fn restart_keeps_epoch_and_data(b: Backend) {
    let s = TestServer::router(b).await;
    let t = token("restart");
    let now = now_ms();
    s.push(
        &t,
        push_body(
            "c1",
            vec![put("tasks", "a", &hlc(now, 0, "c1"), json!({"v": 1}))],
        ),
    )
    .await;
    let (_, p) = s.pull(&t, None, None).await;
    let cursor = p["cursor"].as_str().unwrap().to_string();
    let db = s.stop().await;
    let s = TestServer::router_on(db, |_| {}).await;
    let (st, p) = s.pull(&t, Some(&cursor), None).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["changes"], json!([]));
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["doc"]["v"], 1);
    s.finish().await;
}

async fn clock_ahead_is_refused(b: Backend) {
    let s = TestServer::router_with(b, |c| c.max_drift_ms = 60_000).await;
    let t = token("clock");
    let now = now_ms();
    let (st, r) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![
                    put("tasks", "ok", &hlc(now, 0, "c1"), json!({})),
                    put("tasks", "future", &hlc(now + 3_600_000, 0, "c1"), json!({})),
                ],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["error"]["code"], "CLOCK_AHEAD");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("changes[1]"));
    let server_time = r["serverTime"].as_u64().unwrap();
    assert!(server_time.abs_diff(now) < 10_000);
    let (all, _) = s.pull_all(&t, None).await;
    assert!(all.is_empty());
    // Within the bound is fine.
    let (st, _) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![put("tasks", "soon", &hlc(now + 30_000, 0, "c1"), json!({}))],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    s.finish().await;
}

async fn oversized_body_is_413(b: Backend) {
    let s = TestServer::start_with(b, |c| c.max_body_bytes = 4096).await;
    let t = token("big");
    let now = now_ms();
    let body = push_body(
        "c1",
        vec![put(
            "tasks",
            "a",
            &hlc(now, 0, "c1"),
            json!({"blob": "x".repeat(5000)}),
        )],
    );
    let (st, r) = s.push(&t, body.clone()).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert_eq!(r["error"]["code"], "PAYLOAD_TOO_LARGE");
    // Without a Content-Length (chunked), the limit holds too.
    let bytes = body.to_string().into_bytes();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let stream = futures::stream::iter(chunks);
    let (st, r) = s.push_raw(&t, reqwest::Body::wrap_stream(stream)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    let (all, _) = s.pull_all(&t, None).await;
    assert!(all.is_empty());
    let (st, _) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![put(
                    "tasks",
                    "a",
                    &hlc(now, 0, "c1"),
                    json!({"blob": "x".repeat(100)}),
                )],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    s.finish().await;
}

/// Writers push concurrently (new documents and updates of shared ones) while readers follow the
/// feed with cursors. Every reader must end with exactly the final version of every document: a
/// feed number that became visible out of order would make a reader skip a version for ever.
async fn concurrent_pushes_and_pulls_lose_nothing(b: Backend) {
    let s = Arc::new(TestServer::router(b).await);
    let t = token("conc");
    let writers = 8;
    let pushes_per_writer = 30;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut readers = Vec::new();
    for _ in 0..3 {
        let s = s.clone();
        let t = t.clone();
        let done = done.clone();
        readers.push(tokio::spawn(async move {
            let mut view: HashMap<(String, String), String> = HashMap::new();
            let mut cursor: Option<String> = None;
            let mut last_round = false;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let (st, p) = s.pull(&t, cursor.as_deref(), Some(7)).await;
                assert_eq!(st, StatusCode::OK, "{p}");
                for c in p["changes"].as_array().unwrap() {
                    let key = (
                        c["collection"].as_str().unwrap().to_string(),
                        c["id"].as_str().unwrap().to_string(),
                    );
                    let h = c["hlc"].as_str().unwrap().to_string();
                    if let Some(old) = view.get(&key) {
                        assert!(
                            h > *old,
                            "feed delivered an older version after a newer one"
                        );
                    }
                    view.insert(key, h);
                }
                cursor = Some(p["cursor"].as_str().unwrap().to_string());
                if !p["hasMore"].as_bool().unwrap() {
                    if last_round {
                        return view;
                    }
                    last_round = finished;
                }
            }
        }));
    }

    let mut tasks = Vec::new();
    for w in 0..writers {
        let s = s.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let node = format!("w{w}");
            // Counters within one wall time keep each writer's HLCs increasing.
            let wall = now_ms();
            let mut clock = 0u32;
            let mut acked: Vec<(String, String, String)> = Vec::new();
            for p in 0..pushes_per_writer {
                let mut changes = Vec::new();
                // Own new documents...
                for k in 0..3 {
                    clock += 1;
                    changes.push(put(
                        "items",
                        &format!("{node}-{p}-{k}"),
                        &hlc(wall, clock, &node),
                        json!({"p": p}),
                    ));
                }
                // ...and updates to documents every writer touches.
                clock += 1;
                changes.push(put(
                    "shared",
                    &format!("s{}", p % 5),
                    &hlc(wall, clock, &node),
                    json!({"by": node}),
                ));
                let (st, r) = s.push(&t, push_body(&node, changes.clone())).await;
                assert_eq!(st, StatusCode::OK, "{r}");
                for (c, res) in changes.iter().zip(r["results"].as_array().unwrap()) {
                    if res["status"] == "applied" {
                        acked.push((
                            c["collection"].as_str().unwrap().to_string(),
                            c["id"].as_str().unwrap().to_string(),
                            c["hlc"].as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);

    // The final state, read from scratch.
    let (all, _) = s.pull_all(&t, None).await;
    let mut fin: HashMap<(String, String), String> = HashMap::new();
    for c in &all {
        let key = (
            c["collection"].as_str().unwrap().to_string(),
            c["id"].as_str().unwrap().to_string(),
        );
        assert!(
            fin.insert(key, c["hlc"].as_str().unwrap().to_string())
                .is_none(),
            "document listed twice"
        );
    }
    assert_eq!(fin.len(), writers * pushes_per_writer * 3 + 5);
    // Every acknowledged write is there, or was overtaken by a newer one.
    for (c, id, h) in &acked {
        let cur = fin
            .get(&(c.clone(), id.clone()))
            .expect("acknowledged document missing");
        assert!(cur >= h, "acknowledged {c}/{id}@{h} lost to older {cur}");
    }
    for r in readers {
        let view = r.await.unwrap();
        let wrong: Vec<_> = fin
            .iter()
            .filter(|(k, h)| view.get(*k) != Some(*h))
            .map(|(k, h)| format!("{}/{} final {h}, reader has {:?}", k.0, k.1, view.get(k)))
            .collect();
        assert!(
            wrong.is_empty() && view.len() == fin.len(),
            "a reader following the feed missed {} versions, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }
    Arc::try_unwrap(s)
        .ok()
        .expect("server still shared")
        .finish()
        .await;
}

async fn healthz_answers(b: Backend) {
    let s = TestServer::router(b).await;
    let (st, body) = s.request(Method::GET, "/healthz", None, Vec::new()).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    s.finish().await;
}

/// A SQLite database whose write lock another connection holds past the busy time-out: the push
/// is refused with 503 `UNAVAILABLE` and a `Retry-After`, nothing is written, and the same push
/// succeeds once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_sqlite_is_503_with_retry_after() {
    let s = TestServer::router_with(Backend::Sqlite, |c| c.sqlite_busy_timeout_ms = 200).await;
    let t = token("busy");
    let other = rusqlite::Connection::open(sqlite_file(&s.db.url)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let push = push_body(
        "c1",
        vec![put("tasks", "a", &hlc(now_ms(), 0, "c1"), json!({}))],
    );
    let auth = format!("Bearer {t}");
    let (st, headers, body) = s
        .send(
            Method::POST,
            "/v1/push",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            serde_json::to_vec(&push).unwrap(),
        )
        .await;
    let (st, r) = json_of(st, &headers, &body);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{r}");
    assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
    let retry = headers.get("retry-after").map(|v| v.to_str().unwrap());
    assert!(
        retry.is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n > 0)),
        "{retry:?}"
    );
    other.execute_batch("COMMIT").unwrap();
    let (all, _) = s.pull_all(&t, None).await;
    assert!(all.is_empty(), "a refused push wrote {all:?}");
    let (st, r) = s.push(&t, push).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["results"][0]["status"], "applied", "{r}");
    s.finish().await;
}
