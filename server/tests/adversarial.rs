//! The server under hostile and unlucky clients (issue 15): one test per finding. Each drives the
//! real server over a real socket; the slow-client cases write raw bytes to a `TcpStream`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

both_backends!(
    amplification_push_gets_a_small_reply,
    a_reply_above_its_cap_is_refused_before_anything_is_written,
    pull_pages_stop_at_a_byte_budget,
    fields_times_are_bounded_by_the_change,
    document_rules_of_core_apply,
    an_edit_with_a_base_is_stamped_by_its_client,
    another_writers_version_is_only_offered_from_the_past,
    a_resync_offers_other_writers_versions_to_a_new_database,
    a_cursor_from_another_namespace_is_refused,
);

/// A document with one `size`-byte field.
fn big(size: usize) -> Value {
    json!({ "title": "x".repeat(size) })
}

async fn amplification_push_gets_a_small_reply(b: Backend) {
    let s = TestServer::start(b).await;
    let t = token("amp");
    let now = now_ms();
    let (st, _) = s
        .push(
            &t,
            push_body("c1", vec![put("t", "a", &hlc(now, 5, "c1"), big(100_000))]),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // 1000 stale changes to the same document: each older than the stored version.
    let changes: Vec<Value> = (0..1000)
        .map(|i| put("t", "a", &hlc(now - 10_000, i, "c2"), json!({})))
        .collect();
    let body = push_body("c2", changes);
    let r = s
        .http
        .post(s.url("/v1/push"))
        .bearer_auth(&t)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.bytes().await.unwrap();
    assert!(
        text.len() < 200_000,
        "reply of {} bytes for an 81 KB push",
        text.len()
    );
    let reply: Value = serde_json::from_slice(&text).unwrap();
    let results = reply["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| r["status"] == "stale"));
    assert_eq!(
        results
            .iter()
            .filter(|r| r.get("current").is_some())
            .count(),
        1,
        "the current version is sent once"
    );
    // The retry is answered the same, from a replay record that keeps no document copy.
    let (st, again) = s.push(&t, body).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(again["results"], reply["results"]);
    if b == Backend::Sqlite {
        let conn = rusqlite::Connection::open(sqlite_file(&s.db.url)).unwrap();
        let len: i64 = conn
            .query_row(
                "SELECT max(length(reply)) FROM ferrosync_client_pushes WHERE namespace = ?1",
                [&t],
                |r| r.get(0),
            )
            .unwrap();
        assert!(len < 20_000, "replay record of {len} bytes");
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'ferrosync_client_pushes'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
    }
    s.finish().await;
}

async fn a_reply_above_its_cap_is_refused_before_anything_is_written(b: Backend) {
    let s = TestServer::start_with(b, |c| c.max_reply_bytes = 150_000).await;
    let t = token("cap");
    let now = now_ms();
    for id in ["a", "b"] {
        let (st, _) = s
            .push(
                &t,
                push_body("c1", vec![put("t", id, &hlc(now, 5, "c1"), big(100_000))]),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
    }
    let old = hlc(now - 10_000, 0, "c2");
    let (st, r) = s
        .push(
            &t,
            push_body(
                "c2",
                vec![
                    put("t", "new", &old, json!({})),
                    put("t", "a", &old, json!({})),
                    put("t", "b", &old, json!({})),
                ],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert_eq!(r["error"]["code"], "PAYLOAD_TOO_LARGE");
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(all.len(), 2, "the refused push wrote nothing");
    // One document's current version always comes, whatever its size.
    let (st, r) = s
        .push(&t, push_body("c2", vec![put("t", "a", &old, json!({}))]))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert!(r["results"][0]["current"].is_object());
    s.finish().await;
}

async fn pull_pages_stop_at_a_byte_budget(b: Backend) {
    let s = TestServer::start_with(b, |c| c.max_page_bytes = 250_000).await;
    let t = token("page");
    let now = now_ms();
    let changes: Vec<Value> = (0..5)
        .map(|i| put("t", &format!("d{i}"), &hlc(now, i, "c1"), big(100_000)))
        .collect();
    assert_eq!(s.push(&t, push_body("c1", changes)).await.0, StatusCode::OK);
    let (st, page) = s.pull(&t, None, Some(1000)).await;
    assert_eq!(st, StatusCode::OK);
    let n = page["changes"].as_array().unwrap().len();
    assert!((1..=2).contains(&n), "{n} documents of 100 KB in one page");
    assert_eq!(page["hasMore"], true);
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(all.len(), 5);
    // A document larger than the budget still comes, alone.
    let (st, _) = s
        .push(
            &t,
            push_body(
                "c1",
                vec![put("t", "huge", &hlc(now, 9, "c1"), big(400_000))],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let cursor = page["cursor"].as_str().unwrap();
    let (rest, _) = s.pull_all(&t, Some(cursor)).await;
    assert!(rest.iter().any(|c| c["id"] == "huge"));
    s.finish().await;
}

async fn fields_times_are_bounded_by_the_change(b: Backend) {
    let s = TestServer::start(b).await;
    let t = token("fields");
    let now = now_ms();
    let mut far = put("t", "a", &hlc(now, 0, "c1"), json!({"title": "x"}));
    far["fields"] = json!({ "title": "ffffffffffff-ffffff-c1" });
    let mut later = put("t", "b", &hlc(now, 0, "c1"), json!({"title": "x"}));
    later["fields"] = json!({ "title": hlc(now + 1, 0, "c1") });
    let mut deleted = put("t", "c", &hlc(now, 0, "c1"), json!({"title": "x"}));
    deleted["fields"] = json!({ "$deleted": hlc(now + 5_000, 0, "c1") });
    let mut reserved = put("t", "d", &hlc(now, 0, "c1"), json!({"title": "x"}));
    reserved["fields"] = json!({ "$x": hlc(now, 0, "c1") });
    for (i, c) in [far, later, deleted, reserved].into_iter().enumerate() {
        let (st, r) = s.push(&t, push_body("c1", vec![c.clone()])).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "case {i}: {r}");
        assert_eq!(r["error"]["code"], "INVALID_CHANGE", "case {i}: {r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.contains("changes[0]") && msg.contains("t/"), "{msg}");
    }
    // Field times at or before the change's are how merge collections write.
    let mut ok = put("t", "e", &hlc(now, 3, "c1"), json!({"title": "x"}));
    ok["fields"] = json!({ "title": hlc(now, 3, "c1"), "$deleted": hlc(now - 5, 0, "c9") });
    let (st, r) = s.push(&t, push_body("c1", vec![ok])).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    s.finish().await;
}

async fn document_rules_of_core_apply(b: Backend) {
    let s = TestServer::start(b).await;
    let t = token("docrules");
    let now = now_ms();
    let mut deep = json!(1);
    for _ in 0..110 {
        deep = json!({ "a": deep });
    }
    for (i, doc) in [
        json!({"$set": 1}),
        json!({"$deleted": "ffffffffffff-ffffff-c1"}),
        json!({"meta": {"tags": [{"$gt": 1}]}}),
        json!({"deep": deep}),
    ]
    .into_iter()
    .enumerate()
    {
        let c = put("t", "a", &hlc(now, 0, "c1"), doc);
        let (st, r) = s.push(&t, push_body("c1", vec![c])).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "case {i}: {r}");
        assert_eq!(r["error"]["code"], "INVALID_CHANGE", "case {i}: {r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains("t/a"),
            "{r}"
        );
    }
    let (all, _) = s.pull_all(&t, None).await;
    assert!(all.is_empty());
    s.finish().await;
}

async fn an_edit_with_a_base_is_stamped_by_its_client(b: Backend) {
    let s = TestServer::start(b).await;
    let t = token("node");
    let now = now_ms();
    // c9 claims c1's node on an edit with a base: the base rule would exempt it.
    let mut c = put("t", "a", &hlc(now, 1, "c1"), json!({}));
    c["base"] = json!(hlc(now, 0, "c2"));
    let (st, r) = s.push(&t, push_body("c9", vec![c.clone()])).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{r}");
    assert_eq!(r["error"]["code"], "INVALID_CHANGE");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("changes[0] (t/a)") && msg.contains("clientId"),
        "{msg}"
    );
    let (st, r) = s.push(&t, push_body("c1", vec![c])).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    s.finish().await;
}

/// A change stamped with another writer's node is a re-sync offer of a version that writer made
/// (PROTOCOL.md 6.x): accepted only from the past. A forger cannot claim a stamp the writer has yet
/// to make, so it cannot get there first and leave the writer's own push "applied" but not stored.
async fn another_writers_version_is_only_offered_from_the_past(b: Backend) {
    let s = TestServer::start(b).await;
    let t = token("offer");
    let now = now_ms();
    // m pushes a version ahead of time (within the drift bound) under its own node: allowed, and
    // every device that pulls it moves its clock there, so c1's next stamp is predictable.
    let (st, r) = s
        .push(
            &t,
            push_body(
                "m",
                vec![put("t", "x", &hlc(now + 30_000, 0, "m"), json!({}))],
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    // m claims c1's predictable next stamp, on a document c1 is about to write.
    let forged = put("t", "y", &hlc(now + 30_000, 1, "c1"), json!({"by": "m"}));
    let fine = put("t", "z", &hlc(now, 0, "m"), json!({}));
    for changes in [vec![forged.clone()], vec![fine.clone(), forged.clone()]] {
        let at = changes.len() - 1;
        let (st, r) = s.push(&t, push_body("m", changes)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{r}");
        assert_eq!(r["error"]["code"], "INVALID_CHANGE");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("changes[{at}] (t/y)"))
                && msg.contains("\"c1\"")
                && msg.contains("clientId"),
            "{msg}"
        );
    }
    let (all, _) = s.pull_all(&t, None).await;
    assert_eq!(all.len(), 1, "a refused push stores nothing: {all:?}");
    // c1 itself makes that stamp, and it is stored as c1 wrote it.
    let mine = put("t", "y", &hlc(now + 30_000, 1, "c1"), json!({"by": "c1"}));
    let (st, r) = s.push(&t, push_body("c1", vec![mine])).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["results"][0]["status"], "applied", "{r}");
    let (all, _) = s.pull_all(&t, None).await;
    let y = all.iter().find(|c| c["id"] == "y").unwrap();
    assert_eq!(y["doc"]["by"], "c1");
    // A delete under another node is held to the same rule.
    let (st, r) = s
        .push(
            &t,
            push_body("m", vec![del("t", "y", &hlc(now + 30_000, 2, "c1"))]),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{r}");
    s.finish().await;
}

/// A device whose server lost its database offers the new one every version it holds, stamped by
/// whoever wrote them: the new database ends with the same versions, stamps and nodes.
async fn a_resync_offers_other_writers_versions_to_a_new_database(b: Backend) {
    let old = TestServer::start(b).await;
    let t = token("resync");
    let now = now_ms();
    for (client, id, wall) in [("c1", "a", now - 5_000), ("c2", "b", now - 4_000)] {
        let (st, r) = old
            .push(
                &t,
                push_body(
                    client,
                    vec![put("t", id, &hlc(wall, 0, client), json!({"by": client}))],
                ),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{r}");
    }
    let (held, _) = old.pull_all(&t, None).await;
    assert_eq!(held.len(), 2);
    old.finish().await;

    let new = TestServer::start(b).await;
    // c3 held both, plus a version of its own.
    let mut offer = held.clone();
    offer.push(put("t", "c", &hlc(now, 0, "c3"), json!({"by": "c3"})));
    let (st, r) = new.push(&t, push_body("c3", offer)).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    for res in r["results"].as_array().unwrap() {
        assert_eq!(res["status"], "applied", "{r}");
    }
    let (got, _) = new.pull_all(&t, None).await;
    let stamps = |cs: &[Value]| {
        let mut v: Vec<(String, String)> = cs
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    c["hlc"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let mut want = stamps(&held);
    want.push(("c".into(), hlc(now, 0, "c3")));
    assert_eq!(stamps(&got), want);
    new.finish().await;
}

async fn a_cursor_from_another_namespace_is_refused(b: Backend) {
    let s = TestServer::start(b).await;
    let (ta, tb) = (token("nsa"), token("nsb"));
    let now = now_ms();
    for (t, n) in [(&ta, 5), (&tb, 2)] {
        let changes = (0..n)
            .map(|i| put("t", &format!("d{i}"), &hlc(now, i, "c1"), json!({})))
            .collect();
        assert_eq!(s.push(t, push_body("c1", changes)).await.0, StatusCode::OK);
    }
    let (_, cursor_a) = s.pull_all(&ta, None).await;
    // Issue 13 item 3: a device that synced with account A and now holds B's token. Its cursor is
    // refused with its own code (not BAD_CURSOR, which a client answers by re-syncing from the
    // start: it would offer A's documents to B).
    let (st, r) = s.pull(&tb, Some(&cursor_a), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{r}");
    assert_eq!(r["error"]["code"], "NAMESPACE_MISMATCH");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another namespace"),
        "{r}"
    );
    // A push that says where its device has been syncing (`cursor`) is refused the same way,
    // before anything of it is stored.
    let mut body = push_body(
        "c9",
        vec![put("t", "from-a", &hlc(now, 9, "c9"), json!({"secret": 1}))],
    );
    body["cursor"] = json!(cursor_a);
    let (st, r) = s.push(&tb, body.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{r}");
    assert_eq!(r["error"]["code"], "NAMESPACE_MISMATCH");
    let (docs, _) = s.pull_all(&tb, None).await;
    assert!(
        docs.iter().all(|c| c["id"] != "from-a"),
        "nothing of the refused push is stored: {docs:?}"
    );
    // The same push in its own namespace (cursor A, token A) is stored.
    assert_eq!(s.push(&ta, body).await.0, StatusCode::OK);
    // Its own cursor still works, and so do the push reply's and the event stream's.
    let (_, cursor_b) = s.pull_all(&tb, None).await;
    assert_eq!(s.pull(&tb, Some(&cursor_b), None).await.0, StatusCode::OK);
    let mut own = push_body("c9", vec![]);
    own["cursor"] = json!(cursor_b);
    assert_eq!(s.push(&tb, own).await.0, StatusCode::OK);
    s.finish().await;
}

// ---- Slow and idle clients (SQLite; the connection handling does not depend on the database) ----

/// Reads until the server closes the connection; how long that took and what it sent.
async fn until_closed(sock: &mut TcpStream, limit: Duration) -> (Duration, String) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "connection still open after {limit:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&got).into_owned(),
    )
}

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_cut_off() {
    let s = TestServer::start_with(Backend::Sqlite, |c| c.header_read_timeout_ms = 500).await;
    let mut sock = TcpStream::connect(addr(&s)).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (took, _) = until_closed(&mut sock, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(400), "{took:?}");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_cut_off() {
    let s = TestServer::start_with(Backend::Sqlite, |c| c.body_read_timeout_ms = 500).await;
    let mut sock = TcpStream::connect(addr(&s)).await.unwrap();
    sock.write_all(
        b"POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer slow\r\n\
          Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
    )
    .await
    .unwrap();
    let (_, reply) = until_closed(&mut sock, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"REQUEST_TIMEOUT\""), "{reply}");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let s = TestServer::start_with(Backend::Sqlite, |c| c.header_read_timeout_ms = 500).await;
    let mut sock = TcpStream::connect(addr(&s)).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (took, reply) = until_closed(&mut sock, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(took >= Duration::from_millis(400), "{took:?}");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_beside_300_half_open_connections() {
    // Default deadlines: the half-open connections stay for the whole test.
    let s = TestServer::start(Backend::Sqlite).await;
    let mut held = Vec::new();
    for i in 0..300 {
        let mut sock = TcpStream::connect(addr(&s)).await.unwrap();
        let part: &[u8] = if i % 2 == 0 {
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        } else {
            b"POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer h\r\nContent-Length: 100000\r\n\r\n{"
        };
        sock.write_all(part).await.unwrap();
        held.push(sock);
    }
    let started = Instant::now();
    let r = reqwest::Client::new()
        .get(s.url("/healthz"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("/healthz within 1 s");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(held);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.max_event_streams = 3;
        c.max_event_streams_per_namespace = 2;
    })
    .await;
    let open = |t: String| {
        let s = &s;
        async move {
            s.http
                .get(s.url("/v1/events"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
        }
    };
    let (ta, tb, tc) = (token("ea"), token("eb"), token("ec"));
    let mut kept = vec![
        SseReader::new(open(ta.clone()).await),
        SseReader::new(open(ta.clone()).await),
    ];
    let (st, r) = json_reply(open(ta.clone()).await).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{r}");
    assert_eq!(r["error"]["code"], "TOO_MANY_STREAMS");
    kept.push(SseReader::new(open(tb).await));
    let (st, r) = json_reply(open(tc.clone()).await).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{r}");
    assert_eq!(r["error"]["code"], "UNAVAILABLE");
    // A stream that ends gives its place back.
    drop(kept.pop());
    let mut again = None;
    for _ in 0..50 {
        let r = open(tc.clone()).await;
        if r.status() == StatusCode::OK {
            again = Some(SseReader::new(r));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the freed place was never given back");
    s.finish().await;
}

// ---- Event streams: token expiry, per-namespace wake-ups ----

fn jwt(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn jwt_server(c: &mut ferrosync_server::Config) {
    c.auth = ferrosync_server::config::AuthMode::Jwt;
    c.jwt_secret = Some(SECRET.into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_token_expires() {
    let s = TestServer::start_with(Backend::Sqlite, jwt_server).await;
    let exp = now_ms() / 1000 + 2;
    let t = jwt(SECRET, json!({"sub": token("exp"), "exp": exp}));
    let r = s
        .http
        .get(s.url("/v1/events"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(r);
    sse.next(Duration::from_secs(5)).await;
    let ended = tokio::time::timeout(Duration::from_secs(6), async {
        while sse.next_inner().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "stream outlived its token");
    assert!(now_ms() / 1000 >= exp);
    s.finish().await;
}

#[tokio::test]
async fn notices_wake_only_their_namespace() {
    use ferrosync_server::events::{Events, Notice};
    let events = Events::new();
    let mut a = events.subscribe("a");
    events.publish(Notice {
        namespace: Some("b".into()),
        head: 1,
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(100), a.recv())
            .await
            .is_err(),
        "a notice for namespace b woke a stream of namespace a"
    );
    events.publish(Notice {
        namespace: Some("a".into()),
        head: 2,
    });
    let n = tokio::time::timeout(Duration::from_secs(1), a.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.head, 2);
    // "Anything may have changed" reaches every stream.
    events.publish(Notice {
        namespace: None,
        head: 0,
    });
    let n = tokio::time::timeout(Duration::from_secs(1), a.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(n.namespace.is_none());
}

// ---- JWT ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_audience_issuer_and_not_before() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        jwt_server(c);
        c.jwt_audience = vec!["ferrosync".into()];
        c.jwt_issuer = vec!["https://id.example".into()];
    })
    .await;
    let now = now_ms() / 1000;
    let sub = token("aud");
    let good =
        json!({"sub": sub, "exp": now + 600, "aud": "ferrosync", "iss": "https://id.example"});
    let pull = |t: String| {
        let s = &s;
        async move {
            let r = s
                .http
                .get(s.url("/v1/pull"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            json_reply(r).await
        }
    };
    assert_eq!(pull(jwt(SECRET, good.clone())).await.0, StatusCode::OK);
    for (name, patch) in [
        ("wrong aud", json!({"aud": "other"})),
        ("no aud", json!({"aud": null})),
        ("wrong iss", json!({"iss": "https://evil.example"})),
        ("nbf in an hour", json!({"nbf": now + 3600})),
    ] {
        let mut claims = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let (st, r) = pull(jwt(SECRET, claims)).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{name}: {r}");
    }
    s.finish().await;
}

#[tokio::test]
async fn short_jwt_secrets_are_refused_at_start() {
    let db = FreshDb::new(Backend::Sqlite).await;
    let mut c = ferrosync_server::Config::for_database(db.url.clone());
    c.auth = ferrosync_server::config::AuthMode::Jwt;
    c.jwt_secret = Some("x".into());
    let e = ferrosync_server::start(c).await.err().expect("refused");
    assert!(e.to_string().contains("32 bytes"), "{e}");
}

// ---- Safe defaults ----

#[tokio::test]
async fn dev_auth_on_a_public_address_needs_an_explicit_flag() {
    let db = FreshDb::new(Backend::Sqlite).await;
    let mut c = ferrosync_server::Config::for_database(db.url.clone());
    c.listen = "0.0.0.0:0".parse().unwrap();
    let e = ferrosync_server::start(c.clone())
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("--allow-dev-auth"), "{e}");
    c.allow_dev_auth = true;
    let server = ferrosync_server::start(c)
        .await
        .expect("starts when allowed");
    server.shutdown().await;
}

#[test]
fn database_url_secrets_are_redacted() {
    use ferrosync_server::store::redact;
    for (url, secret) in [
        ("postgres://u:hunter2@db/x", "hunter2"),
        ("postgres://db/x?password=hunter2", "hunter2"),
        (
            "postgres://db/x?user=u&password=hunter2&sslmode=require",
            "hunter2",
        ),
        ("postgres://db/x?sslpassword=hunter2", "hunter2"),
        ("postgres://u:p%40ss@db/x", "p%40ss"),
    ] {
        let r = redact(url);
        assert!(!r.contains(secret), "{url} -> {r}");
        assert!(r.contains("db/x"), "{url} -> {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_never_include_dotfiles_and_fallbacks_are_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "SECRET=1").unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".git/config"), "x").unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>hi</p>").unwrap();
    let path = dir.path().to_path_buf();
    let s = TestServer::start_with(Backend::Sqlite, move |c| c.static_dir = Some(path)).await;
    let get = |p: &'static str| {
        let s = &s;
        async move { s.http.get(s.url(p)).send().await.unwrap() }
    };
    assert_eq!(get("/index.html").await.status(), StatusCode::OK);
    for p in ["/.env", "/.git/config", "/%2eenv", "/v1/", "/v1"] {
        let (st, r) = json_reply(get(p).await).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{p}: {r}");
        assert_eq!(r["error"]["code"], "NOT_FOUND", "{p}");
    }
    let r = s.http.post(s.url("/index.html")).send().await.unwrap();
    let (st, r) = json_reply(r).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "{r}");
    s.finish().await;
}

// ---- PostgreSQL: a namespace whose lock is held elsewhere ----

#[cfg(ferrosync_pg)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_namespace_lock_delays_only_its_namespace() {
    let s = TestServer::start_with(Backend::Postgres, |c| {
        c.db_connections = 16;
        c.pg_lock_timeout_ms = 1_000;
    })
    .await;
    let now = now_ms();
    let frozen = token("frozen");
    let one = |i: u32| push_body("c1", vec![put("t", "a", &hlc(now, i, "c1"), json!({}))]);
    assert_eq!(s.push(&frozen, one(0)).await.0, StatusCode::OK);
    // Another process (frozen, or behind a half-open connection) holds the namespace's head row.
    let pool = sqlx::PgPool::connect(&s.db.url).await.unwrap();
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT head FROM ferrosync_namespaces WHERE namespace = $1 FOR UPDATE")
        .bind(&frozen)
        .execute(&mut *holder)
        .await
        .unwrap();
    let blocked = {
        let (http, url, frozen, body) = (s.http.clone(), s.url("/v1/push"), frozen.clone(), one(1));
        tokio::spawn(async move {
            let started = Instant::now();
            let r = http
                .post(url)
                .bearer_auth(frozen)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut slowest = Duration::ZERO;
    for n in 0..12 {
        let t = token(&format!("free{n}"));
        let started = Instant::now();
        let (st, r) = s.push(&t, one(2)).await;
        assert_eq!(st, StatusCode::OK, "{r}");
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(900),
        "an unrelated namespace waited {slowest:?}"
    );
    let (st, took) = blocked.await.unwrap();
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_secs(5), "{took:?}");
    holder.rollback().await.unwrap();
    pool.close().await;
    assert_eq!(s.push(&frozen, one(1)).await.0, StatusCode::OK);
    s.finish().await;
}
