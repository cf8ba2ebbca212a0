//! `/v1/events`: Server-Sent Events announcing new changes, within one process and, on PostgreSQL,
//! across processes sharing the database.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

both_backends!(event_follows_push, events_are_per_namespace);

const WAIT: Duration = Duration::from_secs(10);

async fn event_follows_push(b: Backend) {
    let s = TestServer::start(b).await;
    let t = token("sse");
    let now = now_ms();
    // Header auth...
    let r = s
        .http
        .get(s.url("/v1/events"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let mut by_header = SseReader::new(r);
    // ...and the `token` query parameter, for browsers' EventSource.
    let r = s
        .http
        .get(s.url("/v1/events"))
        .query(&[("token", &t)])
        .send()
        .await
        .unwrap();
    let mut by_query = SseReader::new(r);

    for sse in [&mut by_header, &mut by_query] {
        let first = sse.next(WAIT).await;
        assert_eq!(first.event, "changes");
        assert!(
            first.data["cursor"].as_str().unwrap().ends_with(":0"),
            "{:?}",
            first.data
        );
        assert!(first.data["serverTime"].is_u64());
    }
    let (st, r) = s
        .push(
            &t,
            push_body("c1", vec![put("tasks", "a", &hlc(now, 0, "c1"), json!({}))]),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    for sse in [&mut by_header, &mut by_query] {
        let e = sse.next(WAIT).await;
        assert_eq!(e.data["cursor"], r["cursor"]);
    }
    // A push that changes nothing (a retry) announces nothing; the next real one does.
    s.push(
        &t,
        push_body("c1", vec![put("tasks", "a", &hlc(now, 0, "c1"), json!({}))]),
    )
    .await;
    let (_, r2) = s
        .push(
            &t,
            push_body("c1", vec![put("tasks", "b", &hlc(now, 1, "c1"), json!({}))]),
        )
        .await;
    let e = by_header.next(WAIT).await;
    assert_eq!(e.data["cursor"], r2["cursor"]);
    // The announced cursor is the position a pull catches up to (a pull's cursor adds the
    // check of the change there: clients compare positions, PROTOCOL.md section 9).
    let (_, p) = s.pull(&t, None, None).await;
    let pulled = p["cursor"].as_str().unwrap();
    assert_eq!(
        pulled.split_once('~').map(|(c, _)| c),
        e.data["cursor"].as_str()
    );
    drop(by_query);
    s.finish().await;
}

async fn events_are_per_namespace(b: Backend) {
    let s = TestServer::start(b).await;
    let ta = token("sse-a");
    let tb = token("sse-b");
    let now = now_ms();
    let r = s
        .http
        .get(s.url("/v1/events"))
        .bearer_auth(&ta)
        .send()
        .await
        .unwrap();
    let mut a = SseReader::new(r);
    a.next(WAIT).await;
    // Bob's push is not announced to Alice.
    s.push(
        &tb,
        push_body("c1", vec![put("tasks", "x", &hlc(now, 0, "c1"), json!({}))]),
    )
    .await;
    let (_, r) = s
        .push(
            &ta,
            push_body("c1", vec![put("tasks", "y", &hlc(now, 1, "c1"), json!({}))]),
        )
        .await;
    let e = a.next(WAIT).await;
    assert_eq!(
        e.data["cursor"], r["cursor"],
        "the first event after Bob's push is Alice's own"
    );
    s.finish().await;
}

/// Two server processes on one PostgreSQL: a push through one reaches the event streams of both,
/// and a pull through the other sees it.
#[cfg(ferrosync_pg)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_events_on_postgres() {
    let db = FreshDb::new(Backend::Postgres).await;
    let p1 = ServerProcess::spawn(&db.url, &[]).await;
    let p2 = ServerProcess::spawn(&db.url, &[]).await;
    let http = reqwest::Client::new();
    let t = token("procs");
    let mut on1 = SseReader::new(
        http.get(p1.url("/v1/events"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    );
    let mut on2 = SseReader::new(
        http.get(p2.url("/v1/events"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    );
    on1.next(WAIT).await;
    on2.next(WAIT).await;

    let now = now_ms();
    let push = |url: String, id: &'static str, counter: u32| {
        let http = http.clone();
        let t = t.clone();
        async move {
            let r = http
                .post(url)
                .bearer_auth(&t)
                .json(&push_body(
                    "c1",
                    vec![put("tasks", id, &hlc(now, counter, "c1"), json!({}))],
                ))
                .send()
                .await
                .unwrap();
            json_reply(r).await.1
        }
    };
    let r = push(p1.url("/v1/push"), "a", 0).await;
    assert_eq!(
        on2.next(WAIT).await.data["cursor"],
        r["cursor"],
        "process 2 hears process 1's push"
    );
    assert_eq!(
        on1.next(WAIT).await.data["cursor"],
        r["cursor"],
        "process 1 hears its own push"
    );
    let r = push(p2.url("/v1/push"), "b", 1).await;
    assert_eq!(
        on1.next(WAIT).await.data["cursor"],
        r["cursor"],
        "and the other way round"
    );
    assert_eq!(on2.next(WAIT).await.data["cursor"], r["cursor"]);

    let pulled = http
        .get(p2.url("/v1/pull"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let (_, p) = json_reply(pulled).await;
    let ids: Vec<&str> = p["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["a", "b"]);
    drop((on1, on2, p1, p2));
    db.drop_schema().await;
}
