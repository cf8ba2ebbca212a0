//! `--auth jwt` with an identity provider's keys: RS256 and ES256 tokens checked with a PEM public
//! key, a JWKS file, or a JWKS URL served by a small local identity provider (cached, fetched again
//! for an unknown `kid` at a bounded rate). Keys are real: generated per test by the `openssl`
//! command line tool, tokens signed with `jsonwebtoken`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use ferrosync_server::config::AuthMode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A generated key pair: the private key to sign with, the public key as a PEM file and as a JWK.
#[derive(Clone)]
struct Key {
    alg: Algorithm,
    kid: String,
    private_pem: Vec<u8>,
    public_pem: PathBuf,
    jwk: Value,
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line tool is needed to generate test keys");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// A new key pair in `dir` made by `openssl genpkey -algorithm <algorithm> -pkeyopt <option>`:
/// the private key file's name (PKCS#8 PEM) and the public key as a PEM file.
fn generate(dir: &Path, kid: &str, algorithm: &str, option: &str) -> (String, PathBuf) {
    let private = format!("{kid}.pem");
    let public = format!("{kid}.pub.pem");
    let args = [
        "genpkey",
        "-algorithm",
        algorithm,
        "-pkeyopt",
        option,
        "-out",
        &private,
    ];
    openssl(dir, &args);
    openssl(dir, &["pkey", "-in", &private, "-pubout", "-out", &public]);
    (private, dir.join(public))
}

/// A 2048-bit RSA key (public exponent 65537, openssl's default).
fn rsa_key(dir: &Path, kid: &str) -> Key {
    let (private, public_pem) = generate(dir, kid, "RSA", "rsa_keygen_bits:2048");
    let modulus = openssl(dir, &["rsa", "-in", &private, "-noout", "-modulus"]);
    let modulus = String::from_utf8(modulus).unwrap();
    let n = from_hex(modulus.trim().strip_prefix("Modulus=").unwrap());
    Key {
        alg: Algorithm::RS256,
        kid: kid.into(),
        private_pem: std::fs::read(dir.join(&private)).unwrap(),
        public_pem,
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&n), "e": "AQAB"}),
    }
}

/// An EC P-256 key.
fn ec_key(dir: &Path, kid: &str) -> Key {
    let (private, public_pem) = generate(dir, kid, "EC", "ec_paramgen_curve:P-256");
    // The DER public key ends with the uncompressed point: 0x04, x (32 bytes), y (32 bytes).
    let der = openssl(
        dir,
        &["pkey", "-in", &private, "-pubout", "-outform", "DER"],
    );
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4, "uncompressed point");
    Key {
        alg: Algorithm::ES256,
        kid: kid.into(),
        private_pem: std::fs::read(dir.join(&private)).unwrap(),
        public_pem,
        jwk: json!({"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256",
                    "x": b64(&point[1..33]), "y": b64(&point[33..])}),
    }
}

/// `key` signing under another `kid`.
fn named(key: &Key, kid: &str) -> Key {
    Key {
        kid: kid.into(),
        ..key.clone()
    }
}

fn jwks(keys: &[&Key]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

fn now_s() -> u64 {
    now_ms() / 1000
}

/// Claims that pass: a fresh `sub`, an hour to live, the audience and issuer the servers expect.
fn claims() -> Value {
    json!({"sub": token("idp"), "exp": now_s() + 3600, "iat": now_s(),
           "aud": AUD, "iss": ISS})
}

const AUD: &str = "ferrosync";
const ISS: &str = "https://id.example";

/// Signs `claims` with `key`, naming its `kid` in the header.
fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    let enc = match key.alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&key.private_pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&key.private_pem).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &enc).unwrap()
}

/// A JWT server with audience and issuer checks; `tweak` names the keys.
async fn server(tweak: impl FnOnce(&mut ferrosync_server::Config)) -> TestServer {
    TestServer::start_with(Backend::Sqlite, |c| {
        c.auth = AuthMode::Jwt;
        c.jwt_audience = vec![AUD.into()];
        c.jwt_issuer = vec![ISS.into()];
        tweak(c);
    })
    .await
}

/// A pull with `token`: its status and JSON reply (`json_reply` checks it is JSON).
async fn pull(s: &TestServer, token: &str) -> (StatusCode, Value) {
    s.pull(token, None, None).await
}

async fn accepted(s: &TestServer, token: &str) {
    let (st, r) = pull(s, token).await;
    assert_eq!(st, StatusCode::OK, "{r}");
}

async fn refused(s: &TestServer, token: &str, why: &str) {
    let (st, r) = pull(s, token).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{why}: {r}");
    assert_eq!(r["error"]["code"], "UNAUTHORIZED", "{why}: {r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{why}: {r}"
    );
}

/// Base64url JSON segments, for tokens a signing library would not make.
fn segment(v: &Value) -> String {
    b64(v.to_string().as_bytes())
}

/// An HS256 token whose HMAC key is `secret` (for the alg-confusion attack, the public key's bytes).
fn hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_are_checked_with_a_pem_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(dir.path(), "rsa1");
    let ec = ec_key(dir.path(), "ec1");
    let other_rsa = rsa_key(dir.path(), "rsa2");
    let other_ec = ec_key(dir.path(), "ec2");
    for (key, stranger, other_kind) in [(&rsa, &other_rsa, &ec), (&ec, &other_ec, &rsa)] {
        let s = server(|c| c.jwt_public_key = Some(key.public_pem.clone())).await;
        let t = sign(key, &claims());
        accepted(&s, &t).await;
        // The token's `sub` is its namespace: what it writes, it reads back; another `sub` does not.
        let now = now_ms();
        let one = put("t", "a", &hlc(now, 0, "c1"), json!({}));
        let (st, r) = s.push(&t, push_body("c1", vec![one])).await;
        assert_eq!(st, StatusCode::OK, "{r}");
        assert_eq!(s.pull_all(&t, None).await.0.len(), 1);
        assert!(s.pull_all(&sign(key, &claims()), None).await.0.is_empty());
        refuses_forgeries(&s, key, stranger, other_kind).await;
        s.finish().await;
    }
}

/// What a server checking tokens with `key` must refuse: a signature by `stranger` (a key of the
/// same kind), a token of `other_kind`'s algorithm, HS256 "signed" with the public key's bytes
/// (alg confusion), `alg: none`, and a payload changed after signing.
async fn refuses_forgeries(s: &TestServer, key: &Key, stranger: &Key, other_kind: &Key) {
    refused(s, &sign(stranger, &claims()), "signed by another key").await;
    refused(s, &sign(other_kind, &claims()), "the other algorithm").await;
    let pem = std::fs::read(&key.public_pem).unwrap();
    let confused = hs256(&pem, Some(&key.kid), &claims());
    refused(s, &confused, "HS256 signed with the public key").await;
    let header = json!({"alg": "none", "typ": "JWT", "kid": key.kid});
    let none = format!("{}.{}.", segment(&header), segment(&claims()));
    refused(s, &none, "alg none").await;
    let good = sign(key, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let mut tampered = claims();
    tampered["sub"] = json!("someone-else");
    let forged = format!("{}.{}.{}", parts[0], segment(&tampered), parts[2]);
    refused(s, &forged, "payload changed after signing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_early_and_foreign_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(dir.path(), "rsa1");
    let s = server(|c| c.jwt_public_key = Some(rsa.public_pem.clone())).await;
    accepted(&s, &sign(&rsa, &claims())).await;
    let cases: Vec<(&str, Value)> = vec![
        ("expired", json!({"exp": now_s() - 120})),
        ("nbf an hour ahead", json!({"nbf": now_s() + 3600})),
        ("wrong aud", json!({"aud": "another-app"})),
        ("wrong iss", json!({"iss": "https://evil.example"})),
        ("aud list without ours", json!({"aud": ["a", "b"]})),
    ];
    for (why, change) in cases {
        let mut c = claims();
        for (k, v) in change.as_object().unwrap() {
            c[k] = v.clone();
        }
        refused(&s, &sign(&rsa, &c), why).await;
    }
    for missing in ["exp", "sub", "aud", "iss"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(missing);
        refused(&s, &sign(&rsa, &c), &format!("no {missing}")).await;
    }
    // Within the documented leeway of 30 s, `nbf` just ahead and `exp` just past are accepted.
    let mut c = claims();
    c["nbf"] = json!(now_s() + 5);
    accepted(&s, &sign(&rsa, &c)).await;
    let mut c = claims();
    c["aud"] = json!(["other", AUD]);
    accepted(&s, &sign(&rsa, &c)).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_file_holds_several_keys_named_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(dir.path(), "rsa1");
    let ec = ec_key(dir.path(), "ec1");
    let stranger = rsa_key(dir.path(), "rsa2");
    // Beside them, keys a provider may also publish, which must neither verify nor spoil the set:
    // one for encryption, one marked for another algorithm, one of a kind or curve not supported.
    let mut enc = rsa_key(dir.path(), "enc1");
    enc.jwk["use"] = json!("enc");
    enc.jwk.as_object_mut().unwrap().remove("alg");
    let mut rs512 = rsa_key(dir.path(), "rs512");
    rs512.jwk["alg"] = json!("RS512");
    let mut set: Value = serde_json::from_str(&jwks(&[&rsa, &ec, &enc, &rs512])).unwrap();
    let keys = set["keys"].as_array_mut().unwrap();
    keys.push(json!({"kty": "OKP", "crv": "X448", "kid": "okp1", "x": "AAAA"}));
    keys.push(
        json!({"kty": "EC", "crv": "P-521", "alg": "ES512", "kid": "p521", "x": "AA", "y": "AA"}),
    );
    keys.push(json!({"kty": "oct", "kid": "hmac", "k": b64(b"0123456789abcdef0123456789abcdef")}));
    keys.push(json!({"kty": "RSA", "n": rsa.jwk["n"], "e": "AQAB"}));
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, set.to_string()).unwrap();
    let s = server(|c| c.jwt_jwks = Some(path.display().to_string())).await;

    accepted(&s, &sign(&rsa, &claims())).await;
    accepted(&s, &sign(&ec, &claims())).await;
    refused(&s, &sign(&enc, &claims()), "a key published for encryption").await;
    refused(&s, &sign(&rs512, &claims()), "a key published for RS512").await;
    refused(
        &s,
        &hs256(b"0123456789abcdef0123456789abcdef", Some("hmac"), &claims()),
        "a symmetric key in the JWKS",
    )
    .await;
    refused(&s, &sign(&stranger, &claims()), "a kid the JWKS lacks").await;
    // Under each key's own `kid`: another key of its kind, the other kind, HS256 with its bytes.
    let imposter_rsa = rsa_key(dir.path(), "rsa3");
    let imposter_ec = ec_key(dir.path(), "ec3");
    refuses_forgeries(&s, &rsa, &named(&imposter_rsa, "rsa1"), &named(&ec, "rsa1")).await;
    refuses_forgeries(&s, &ec, &named(&imposter_ec, "ec1"), &named(&rsa, "ec1")).await;
    let mut nokid = Header::new(Algorithm::RS256);
    nokid.kid = None;
    let t = jsonwebtoken::encode(
        &nokid,
        &claims(),
        &EncodingKey::from_rsa_pem(&rsa.private_pem).unwrap(),
    )
    .unwrap();
    refused(&s, &t, "no kid").await;
    let mut c = claims();
    c["exp"] = json!(now_s() - 120);
    refused(&s, &sign(&ec, &c), "expired ES256").await;
    s.finish().await;
}

/// A local identity provider: serves a JWKS (replaceable, for key rotation) and counts fetches.
struct Idp {
    url: String,
    body: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl Idp {
    async fn start(body: String) -> Idp {
        let body = Arc::new(Mutex::new(body));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (b, f) = (body.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (b, f) = (b.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let text = b.lock().unwrap().clone();
                    ([("content-type", "application/json")], text)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Idp { url, body, fetches }
    }

    fn publish(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// Tokens naming `n` random key ids, sent at once; every one is refused.
async fn spray(s: &TestServer, key: &Key, n: usize) {
    let tokens: Vec<String> = (0..n)
        .map(|_| {
            let kid = format!("{:016x}-spray", rand::random::<u64>());
            sign(&named(key, &kid), &claims())
        })
        .collect();
    let replies =
        futures::future::join_all(tokens.iter().map(|t| async move { pull(s, t).await })).await;
    for (st, r) in replies {
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{r}");
        assert_eq!(r["error"]["code"], "UNAUTHORIZED", "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_is_cached_and_fetched_again_for_a_new_kid_at_a_bounded_rate() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = rsa_key(dir.path(), "k1");
    let k2 = ec_key(dir.path(), "k2");
    let k3 = rsa_key(dir.path(), "k3");
    let idp = Idp::start(jwks(&[&k1])).await;
    let cooldown = Duration::from_secs(3);
    let s = server(|c| {
        c.jwt_jwks = Some(idp.url.clone());
        c.jwt_jwks_cooldown = cooldown;
    })
    .await;
    assert_eq!(idp.fetches(), 1, "fetched once at start");

    // Cached: known keys cost no fetch.
    for _ in 0..10 {
        accepted(&s, &sign(&k1, &claims())).await;
    }
    assert_eq!(idp.fetches(), 1, "a known kid is served from the cache");

    // Key rotation: the provider publishes k2; the first token naming it makes the server fetch.
    idp.publish(jwks(&[&k1, &k2]));
    tokio::time::sleep(cooldown + Duration::from_millis(200)).await;
    accepted(&s, &sign(&k2, &claims())).await;
    assert_eq!(idp.fetches(), 2, "an unknown kid fetches the JWKS again");
    accepted(&s, &sign(&k1, &claims())).await;
    accepted(&s, &sign(&k2, &claims())).await;
    assert_eq!(idp.fetches(), 2);

    // An attacker spraying random kids right after a fetch causes none.
    spray(&s, &k1, 60).await;
    assert_eq!(
        idp.fetches(),
        2,
        "random kids within the cool-down fetch nothing"
    );
    // After the cool-down, a spray causes one fetch, however many tokens it sends.
    tokio::time::sleep(cooldown + Duration::from_millis(200)).await;
    spray(&s, &k1, 60).await;
    assert_eq!(
        idp.fetches(),
        3,
        "a spray fetches at most once per cool-down"
    );
    // Known keys still work meanwhile, without fetches.
    accepted(&s, &sign(&k1, &claims())).await;
    assert_eq!(idp.fetches(), 3);

    // A key published during the cool-down is picked up once it ends.
    idp.publish(jwks(&[&k2, &k3]));
    refused(&s, &sign(&k3, &claims()), "within the cool-down").await;
    assert_eq!(idp.fetches(), 3);
    tokio::time::sleep(cooldown + Duration::from_millis(200)).await;
    accepted(&s, &sign(&k3, &claims())).await;
    assert_eq!(idp.fetches(), 4);
    // k1 left the provider's set, so it left the cache with that fetch.
    refused(&s, &sign(&k1, &claims()), "a key the provider withdrew").await;

    // The provider failing keeps the keys already held.
    idp.publish("not json".into());
    tokio::time::sleep(cooldown + Duration::from_millis(200)).await;
    spray(&s, &k1, 5).await;
    assert_eq!(idp.fetches(), 5);
    accepted(&s, &sign(&k3, &claims())).await;
    accepted(&s, &sign(&k2, &claims())).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_provider_withdrew_stops_verifying_once_the_cache_is_old() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = rsa_key(dir.path(), "k1");
    let k2 = ec_key(dir.path(), "k2");
    let idp = Idp::start(jwks(&[&k1, &k2])).await;
    let max_age = Duration::from_secs(3);
    let s = server(|c| {
        c.jwt_jwks = Some(idp.url.clone());
        c.jwt_jwks_max_age = max_age;
    })
    .await;
    accepted(&s, &sign(&k1, &claims())).await;
    // The provider withdraws k1 (say it leaked); no token names an unknown kid.
    idp.publish(jwks(&[&k2]));
    accepted(&s, &sign(&k1, &claims())).await;
    assert_eq!(idp.fetches(), 1, "within its age the cache is used as is");
    tokio::time::sleep(max_age + Duration::from_millis(200)).await;
    // Requests at once after the cache aged: one of them fetches, none waits on the others.
    let tokens: Vec<String> = (0..8).map(|_| sign(&k2, &claims())).collect();
    let replies = futures::future::join_all(tokens.iter().map(|t| pull(&s, t))).await;
    assert!(replies.iter().all(|(st, _)| *st == StatusCode::OK));
    assert_eq!(idp.fetches(), 2, "an old cache is fetched again once");
    refused(&s, &sign(&k1, &claims()), "a withdrawn key").await;
    accepted(&s, &sign(&k2, &claims())).await;
    assert_eq!(idp.fetches(), 2);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_jwks_timings_are_safe_ones() {
    let c = ferrosync_server::Config::for_database("sqlite://unused.db");
    assert!(
        c.jwt_jwks_cooldown >= Duration::from_secs(10),
        "{:?}",
        c.jwt_jwks_cooldown
    );
    assert!(
        c.jwt_jwks_max_age <= Duration::from_secs(3600) && c.jwt_jwks_max_age > c.jwt_jwks_cooldown,
        "{:?}",
        c.jwt_jwks_max_age
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_https_url_is_fetched_over_tls() {
    // Most identity providers publish their JWKS over https: the server must speak TLS to them.
    // A plain listener records the first byte the server sends (0x16 opens a TLS handshake).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut b = [0u8; 1];
        sock.read_exact(&mut b).await.unwrap();
        b[0]
    });
    let db = FreshDb::new(Backend::Sqlite).await;
    let mut c = ferrosync_server::Config::for_database(db.url.clone());
    c.auth = AuthMode::Jwt;
    c.jwt_jwks = Some(format!("https://{addr}/jwks.json"));
    let e = ferrosync_server::start(c)
        .await
        .err()
        .expect("the handshake with a plain socket fails, so the server refuses to start");
    assert!(e.to_string().contains("JWKS"), "{e}");
    let byte = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the server never connected to the https JWKS URL")
        .unwrap();
    assert_eq!(byte, 0x16, "the server did not open a TLS handshake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_sources_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let start = |tweak: Box<dyn FnOnce(&mut ferrosync_server::Config)>| async move {
        let db = FreshDb::new(Backend::Sqlite).await;
        let mut c = ferrosync_server::Config::for_database(db.url.clone());
        c.auth = AuthMode::Jwt;
        tweak(&mut c);
        ferrosync_server::start(c)
            .await
            .err()
            .expect("refused at start")
            .to_string()
    };
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let e = start(Box::new(move |c| c.jwt_public_key = Some(junk))).await;
    assert!(e.contains("--jwt-public-key"), "{e}");
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"keys": []}"#).unwrap();
    let e = start(Box::new(move |c| {
        c.jwt_jwks = Some(empty.display().to_string())
    }))
    .await;
    assert!(e.contains("JWKS"), "{e}");
    let e = start(Box::new(|c| {
        c.jwt_jwks = Some("/nonexistent/jwks.json".into())
    }))
    .await;
    assert!(e.contains("--jwt-jwks"), "{e}");
    // A JWKS URL answering with endless bytes is cut off.
    let rsa_big = rsa_key(dir.path(), "big");
    let idp = Idp::start(format!("{}{}", jwks(&[&rsa_big]), " ".repeat(2 << 20))).await;
    let url = idp.url.clone();
    let e = start(Box::new(move |c| c.jwt_jwks = Some(url))).await;
    assert!(e.contains("larger than"), "{e}");
    let rsa = rsa_key(dir.path(), "rsa1");
    let e = start(Box::new(move |c| {
        c.jwt_public_key = Some(rsa.public_pem);
        c.jwt_secret = Some("0123456789abcdef0123456789abcdef".into());
    }))
    .await;
    assert!(e.contains("exactly one"), "{e}");
}
