//! Serving concerns around the protocol: static files, CORS, graceful shutdown of the real binary.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_static_files_with_mime_types() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>demo</title>",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("pkg")).unwrap();
    std::fs::write(dir.path().join("pkg/ferrosync_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join("pkg/ferrosync.js"), "export {}").unwrap();
    std::fs::write(dir.path().join("manifest.webmanifest"), "{}").unwrap();
    let root = dir.path().to_path_buf();
    let s = TestServer::start_with(Backend::Sqlite, move |c| c.static_dir = Some(root)).await;
    for (path, mime) in [
        ("/", "text/html"),
        ("/index.html", "text/html"),
        ("/pkg/ferrosync_bg.wasm", "application/wasm"),
        ("/pkg/ferrosync.js", "text/javascript"),
        ("/manifest.webmanifest", "application/manifest+json"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(mime), "{path}: {ct}");
    }
    let r = s.http.get(s.url("/missing.js")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The API still answers in JSON next to the static files.
    let r = s
        .http
        .get(s.url("/v1/pull"))
        .bearer_auth("x")
        .send()
        .await
        .unwrap();
    assert_eq!(json_reply(r).await.0, StatusCode::OK);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_configured_origins_only() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.cors_origins = vec!["https://app.example".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, s.url("/v1/push"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    s.finish().await;

    // Dev auth without a list allows any origin (the demo, tests).
    let s = TestServer::start(Backend::Sqlite).await;
    let r = s
        .http
        .get(s.url("/v1/pull"))
        .bearer_auth("x")
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_shut_down_gracefully() {
    for signal in ["-TERM", "-INT"] {
        let db = FreshDb::new(Backend::Sqlite).await;
        let mut p = ServerProcess::spawn(&db.url, &[]).await;
        let http = reqwest::Client::new();
        let r = http.get(p.url("/healthz")).send().await.unwrap();
        assert_eq!(json_reply(r).await.0, StatusCode::OK);
        // An open event stream must not keep the server alive.
        let mut sse = SseReader::new(
            http.get(p.url("/v1/events"))
                .bearer_auth("t")
                .send()
                .await
                .unwrap(),
        );
        sse.next(Duration::from_secs(10)).await;
        let pid = p.child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(10), p.child.wait())
            .await
            .expect("server did not exit within 10 s of the signal")
            .unwrap();
        assert!(status.success(), "{signal}: exit status {status}");
        assert!(
            sse.next_inner().await.is_none(),
            "event stream ends with the server"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_flags_and_env_vars() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrosync-server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--database",
        "--static",
        "--auth",
        "--jwt-secret",
        "--max-drift-ms",
        "--max-body-bytes",
        "--cors-origins",
        "FERROSYNC_DATABASE",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    // A bad configuration fails at start with a message, not a panic.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrosync-server"))
        .args([
            "--auth",
            "jwt",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "sqlite::memory:",
        ])
        .env_remove("FERROSYNC_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--jwt-secret"));
}
