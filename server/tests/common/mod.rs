//! Test harness: the server over a fresh database (a temporary SQLite file, or a fresh schema in
//! the PostgreSQL database named by `DATABASE_URL`), reached either through its router alone
//! (`TestServer::router`: each request is `oneshot`, no socket) or as a real server on
//! 127.0.0.1:0 with a real HTTP client (`TestServer::start`: for what is about connections).

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use ferrosync_server::{Config, Handle, Server};
use http_body_util::BodyExt as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tower::ServiceExt as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database: its URL and what keeps it alive.
pub struct FreshDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

impl FreshDb {
    pub async fn new(backend: Backend) -> FreshDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}/sub/dir/test.db", dir.path().display());
                FreshDb {
                    url,
                    backend,
                    _dir: Some(dir),
                    schema: None,
                }
            }
            Backend::Postgres => {
                let base = std::env::var("DATABASE_URL")
                    .expect("DATABASE_URL must be set for PostgreSQL tests");
                let schema = format!("fs_test_{:016x}", rand::random::<u64>());
                let pool = sqlx::PgPool::connect(&base)
                    .await
                    .expect("connect to DATABASE_URL");
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&pool)
                    .await
                    .expect("create schema");
                pool.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                FreshDb {
                    url: format!("{base}{sep}options[search_path]={schema}"),
                    backend,
                    _dir: None,
                    schema: Some(schema),
                }
            }
        }
    }

    /// A database the test made itself (e.g. a restored copy): nothing is dropped with it.
    pub fn existing(url: String, backend: Backend) -> FreshDb {
        FreshDb {
            url,
            backend,
            _dir: None,
            schema: None,
        }
    }

    /// The PostgreSQL schema the server's tables live in.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Drops the PostgreSQL schema (the SQLite directory goes with the value).
    pub async fn drop_schema(&self) {
        if let Some(schema) = &self.schema {
            let base = std::env::var("DATABASE_URL").unwrap();
            if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        }
    }
}

pub struct TestServer {
    /// `http://127.0.0.1:port` of a server on a socket; empty for a router.
    pub base: String,
    pub db: FreshDb,
    pub http: reqwest::Client,
    transport: Transport,
}

/// How requests reach the server.
enum Transport {
    /// A real server on a socket.
    Tcp(Server),
    /// The router alone, each request through `oneshot`.
    Router {
        router: axum::Router,
        handle: Handle,
    },
    Stopped,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let db = FreshDb::new(backend).await;
        Self::start_on(db, tweak).await
    }

    /// A server over an existing database (e.g. to restart on the same one).
    pub async fn start_on(db: FreshDb, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let config = test_config(&db, tweak);
        let server = ferrosync_server::start(config)
            .await
            .expect("server starts");
        TestServer {
            base: format!("http://{}", server.addr),
            db,
            http: http_client(),
            transport: Transport::Tcp(server),
        }
    }

    /// The server's router over a fresh database, without a socket.
    pub async fn router(backend: Backend) -> TestServer {
        Self::router_with(backend, |_| {}).await
    }

    pub async fn router_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let db = FreshDb::new(backend).await;
        Self::router_on(db, tweak).await
    }

    /// The router over an existing database (e.g. to reopen the same one).
    pub async fn router_on(db: FreshDb, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let config = test_config(&db, tweak);
        let handle = ferrosync_server::open(&config, None)
            .await
            .expect("server opens");
        TestServer {
            base: String::new(),
            db,
            http: http_client(),
            transport: Transport::Router {
                router: ferrosync_server::router(handle.state().clone()),
                handle,
            },
        }
    }

    pub fn url(&self, path: &str) -> String {
        assert!(
            matches!(self.transport, Transport::Tcp(_)),
            "a router has no URL: use request() or send(), or TestServer::start"
        );
        format!("{}{}", self.base, path)
    }

    /// One request (`path` with its query), over the socket or through the router: the reply's
    /// status, headers and body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        match &self.transport {
            Transport::Tcp(_) => {
                let mut r = self.http.request(method.clone(), self.url(path));
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                if method != Method::GET {
                    r = r.body(body);
                }
                let r = r.send().await.expect("request");
                let (status, headers) = (r.status(), r.headers().clone());
                (
                    status,
                    headers,
                    r.bytes().await.expect("reply body").to_vec(),
                )
            }
            Transport::Router { router, .. } => {
                let mut r = Request::builder().method(method).uri(path);
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                let reply = router
                    .clone()
                    .oneshot(r.body(Body::from(body)).expect("request"))
                    .await
                    .expect("the router answers");
                let (parts, body) = reply.into_parts();
                let bytes = body.collect().await.expect("reply body").to_bytes();
                (parts.status, parts.headers, bytes.to_vec())
            }
            Transport::Stopped => panic!("the server is stopped"),
        }
    }

    /// [`TestServer::send`] with `token` as bearer (if any); the reply checked as JSON.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if method == Method::POST {
            headers.push(("content-type", "application/json"));
        }
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let (status, headers, body) = self.send(method, path, &headers, body).await;
        json_of(status, &headers, &body)
    }

    pub async fn push(&self, token: &str, body: Value) -> (StatusCode, Value) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, body) = self
            .request(Method::POST, "/v1/push", Some(token), bytes)
            .await;
        if status.is_success() {
            serde_json::from_value::<ferrosync_core::protocol::PushResponse>(body.clone())
                .unwrap_or_else(|e| panic!("push reply is not a core PushResponse: {e}: {body}"));
        }
        (status, body)
    }

    /// A push of any body; a streamed one (no Content-Length) needs a socket.
    pub async fn push_raw(
        &self,
        token: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let body: reqwest::Body = body.into();
        if let Transport::Tcp(_) = self.transport {
            let r = self
                .http
                .post(self.url("/v1/push"))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("push request");
            return json_reply(r).await;
        }
        let bytes = body
            .as_bytes()
            .expect("a streamed body needs a socket: use TestServer::start")
            .to_vec();
        self.request(Method::POST, "/v1/push", Some(token), bytes)
            .await
    }

    pub async fn pull(
        &self,
        token: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> (StatusCode, Value) {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        let query = serde_urlencoded::to_string(&q).unwrap();
        let path = if query.is_empty() {
            "/v1/pull".to_string()
        } else {
            format!("/v1/pull?{query}")
        };
        let (status, body) = self
            .request(Method::GET, &path, Some(token), Vec::new())
            .await;
        if status.is_success() {
            // Every pull reply is exactly the core crate's PullResponse (which rejects unknown fields).
            serde_json::from_value::<ferrosync_core::protocol::PullResponse>(body.clone())
                .unwrap_or_else(|e| panic!("pull reply is not a core PullResponse: {e}: {body}"));
        }
        (status, body)
    }

    /// Pulls every page from `cursor`; returns the changes and the final cursor.
    pub async fn pull_all(&self, token: &str, cursor: Option<&str>) -> (Vec<Value>, String) {
        let mut cursor = cursor.map(str::to_string);
        let mut all = Vec::new();
        loop {
            let (st, body) = self.pull(token, cursor.as_deref(), Some(1000)).await;
            assert_eq!(st, StatusCode::OK, "{body}");
            all.extend(body["changes"].as_array().unwrap().iter().cloned());
            cursor = Some(body["cursor"].as_str().unwrap().to_string());
            if !body["hasMore"].as_bool().unwrap() {
                return (all, cursor.unwrap());
            }
        }
    }

    pub async fn stop(mut self) -> FreshDb {
        match std::mem::replace(&mut self.transport, Transport::Stopped) {
            Transport::Tcp(server) => server.shutdown().await,
            Transport::Router { handle, .. } => handle.close().await,
            Transport::Stopped => {}
        }
        self.db
    }

    /// Stops the server and drops its database.
    pub async fn finish(self) {
        let db = self.stop().await;
        db.drop_schema().await;
    }
}

pub async fn json_reply(r: reqwest::Response) -> (StatusCode, Value) {
    let (status, headers) = (r.status(), r.headers().clone());
    let bytes = r.bytes().await.expect("reply body");
    json_of(status, &headers, &bytes)
}

/// A reply that must be JSON with a `serverTime`, as every reply of the server is.
pub fn json_of(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> (StatusCode, Value) {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = String::from_utf8_lossy(body);
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("non-JSON reply ({status}, {ct}): {e}: {text}"));
    assert!(
        ct.starts_with("application/json"),
        "content-type {ct} for {text}"
    );
    assert!(
        body["serverTime"].is_u64(),
        "reply without serverTime: {body}"
    );
    (status, body)
}

fn test_config(db: &FreshDb, tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::for_database(db.url.clone());
    config.db_connections = 8;
    tweak(&mut config);
    config
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The file of a `sqlite://` test database.
pub fn sqlite_file(url: &str) -> std::path::PathBuf {
    match ferrosync_server::store::url::parse_sqlite(url).expect("a SQLite URL") {
        ferrosync_server::store::url::SqliteUrl::File(path) => path,
        ferrosync_server::store::url::SqliteUrl::Memory => panic!("{url} is in memory"),
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An encoded HLC.
pub fn hlc(wall_ms: u64, counter: u32, node: &str) -> String {
    format!("{wall_ms:012x}-{counter:06x}-{node}")
}

pub fn put(collection: &str, id: &str, hlc: &str, doc: Value) -> Value {
    let mut doc = doc;
    doc["id"] = json!(id);
    json!({ "collection": collection, "id": id, "hlc": hlc, "doc": doc })
}

pub fn del(collection: &str, id: &str, hlc: &str) -> Value {
    json!({ "collection": collection, "id": id, "hlc": hlc, "deleted": true })
}

pub fn push_body(client: &str, changes: Vec<Value>) -> Value {
    json!({ "clientId": client, "changes": changes })
}

/// A random namespace token, so tests never share data by accident.
pub fn token(name: &str) -> String {
    format!("{name}-{:08x}", rand::random::<u32>())
}

/// Generates one `#[tokio::test]` per backend for each `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        #[cfg(ferrosync_pg)]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Reads Server-Sent Events from a streaming response.
pub struct SseReader {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

/// One event: its `event:` name and its `data:` parsed as JSON.
#[derive(Debug)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
}

impl SseReader {
    pub fn new(r: reqwest::Response) -> SseReader {
        assert_eq!(r.status(), StatusCode::OK);
        let ct = r
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        SseReader {
            stream: Box::pin(r.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event (comments such as keep-alives are skipped), or panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> SseEvent {
        tokio::time::timeout(timeout, self.next_inner())
            .await
            .expect("no event within the timeout")
            .expect("event stream ended")
    }

    /// The next event, or `None` when the stream ends.
    pub async fn next_inner(&mut self) -> Option<SseEvent> {
        use futures::StreamExt;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf[..end].to_string();
                self.buf.drain(..end + 2);
                let mut event = String::from("message");
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if !data.is_empty() {
                    return Some(SseEvent {
                        event,
                        data: serde_json::from_str(&data).expect("event data is JSON"),
                    });
                }
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                Some(Err(e)) => panic!("event stream failed: {e}"),
                None => return None,
            }
        }
    }
}

/// A `ferrosync-server` child process (the real binary), killed when dropped.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub base: String,
}

impl ServerProcess {
    pub async fn spawn(database_url: &str, extra: &[&str]) -> ServerProcess {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrosync-server"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--database",
                database_url,
                "--log-format",
                "json",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn ferrosync-server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let v: Value = match serde_json::from_str(&line) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if let Some(addr) = v["fields"]["addr"].as_str() {
                    return addr.to_string();
                }
            }
            panic!("server exited before listening");
        })
        .await
        .expect("server did not start listening in time");
        // Keep draining its logs so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ServerProcess {
            child,
            base: format!("http://{addr}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}
