//! Bearer tokens to namespaces. A namespace is the unit of isolation: every document row carries
//! one, and a request can only ever read or write its own.
//!
//! `--auth jwt` checks tokens with a shared secret (HS256, at least 32 bytes), a PEM public key
//! (RS256 or ES256) or a JWKS (file or URL, as identity providers publish them; a URL is fetched
//! again when its keys reach `--jwt-jwks-max-age`, and when a token names a key id it does not
//! hold, at most once per `--jwt-jwks-cooldown`). `exp` is required, `nbf` is honoured, and
//! `aud`/`iss` are checked when configured.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{AuthMode, Config};
use crate::error::ApiError;

/// Longest namespace (a dev token, or a JWT `sub`).
pub const MAX_NAMESPACE_LEN: usize = 256;
/// Shortest accepted HS256 secret (RFC 7518 section 3.2: at least the hash's size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Largest JWKS accepted from a URL (identity providers' sets are a few KiB).
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// Clock leeway for `exp` and `nbf`, in seconds.
const LEEWAY_S: u64 = 30;

pub enum Auth {
    Dev,
    Jwt(Box<JwtAuth>),
}

/// Who a request is: its namespace, and until when (the token's `exp`, in seconds since the Unix
/// epoch; `None` for dev tokens).
#[derive(Clone, Debug)]
pub struct Identity {
    pub namespace: String,
    pub expires_at: Option<u64>,
}

pub struct JwtAuth {
    keys: Keys,
    /// Audience and issuer checks and leeway; the algorithm is set per key.
    validation: Validation,
}

enum Keys {
    /// A secret or a PEM key: one key, one algorithm.
    Fixed(DecodingKey, Algorithm),
    Jwks(Jwks),
}

struct Jwks {
    /// A URL to fetch, or `None` for a file read at start.
    url: Option<String>,
    keys: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    /// When the URL was last fetched (no refetch storms on unknown `kid`s).
    fetched: tokio::sync::Mutex<Option<Instant>>,
    /// Least time between two fetches of the URL for unknown `kid`s.
    cooldown: Duration,
    /// Keys this old are fetched again (a withdrawn key stops verifying).
    max_age: Duration,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

impl Auth {
    /// Builds the authenticator from the flags; a missing or weak key is refused here, at start.
    pub async fn from_config(config: &Config) -> Result<Auth, String> {
        match config.auth {
            AuthMode::Dev => Ok(Auth::Dev),
            AuthMode::Jwt => Ok(Auth::Jwt(Box::new(JwtAuth::new(config).await?))),
        }
    }

    /// The namespace of a request (see [`Auth::identity`]).
    pub async fn namespace(
        &self,
        headers: &HeaderMap,
        fallback: Option<&str>,
    ) -> Result<String, ApiError> {
        Ok(self.identity(headers, fallback).await?.namespace)
    }

    /// Who a request is, from `Authorization: Bearer <token>`, or from `fallback` (the `token`
    /// query parameter, which only the event stream accepts because browsers' EventSource cannot
    /// set headers).
    pub async fn identity(
        &self,
        headers: &HeaderMap,
        fallback: Option<&str>,
    ) -> Result<Identity, ApiError> {
        let token = match headers.get(header::AUTHORIZATION) {
            Some(v) => {
                let v = v
                    .to_str()
                    .map_err(|_| unauthorized("Authorization header is not ASCII"))?;
                let (scheme, token) = v
                    .split_once(' ')
                    .ok_or_else(|| unauthorized("Authorization header must be `Bearer <token>`"))?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(unauthorized(
                        "Authorization header must be `Bearer <token>`",
                    ));
                }
                token.trim()
            }
            None => {
                fallback.ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?
            }
        };
        if token.is_empty() {
            return Err(unauthorized("empty bearer token"));
        }
        match self {
            Auth::Dev => {
                check_namespace(token)?;
                Ok(Identity {
                    namespace: token.to_string(),
                    expires_at: None,
                })
            }
            Auth::Jwt(jwt) => {
                let claims = jwt.decode(token).await?;
                check_namespace(&claims.sub)?;
                Ok(Identity {
                    namespace: claims.sub,
                    expires_at: Some(claims.exp),
                })
            }
        }
    }
}

impl JwtAuth {
    async fn new(config: &Config) -> Result<JwtAuth, String> {
        let secret = config.jwt_secret.as_deref().filter(|s| !s.is_empty());
        let sources = [
            secret.is_some(),
            config.jwt_public_key.is_some(),
            config.jwt_jwks.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(
                "--auth jwt needs exactly one of --jwt-secret, --jwt-public-key or --jwt-jwks"
                    .into(),
            );
        }
        let keys = if let Some(secret) = secret {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "--jwt-secret is {} bytes; HS256 needs at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)",
                    secret.len()
                ));
            }
            Keys::Fixed(
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            )
        } else if let Some(path) = &config.jwt_public_key {
            let pem = std::fs::read(path)
                .map_err(|e| format!("--jwt-public-key {}: {e}", path.display()))?;
            if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                Keys::Fixed(k, Algorithm::RS256)
            } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                Keys::Fixed(k, Algorithm::ES256)
            } else {
                return Err(format!(
                    "--jwt-public-key {}: not a PEM RSA or EC public key",
                    path.display()
                ));
            }
        } else {
            let source = config.jwt_jwks.clone().unwrap_or_default();
            let jwks = Jwks {
                url: (source.starts_with("https://") || source.starts_with("http://"))
                    .then(|| source.clone()),
                keys: RwLock::new(HashMap::new()),
                fetched: tokio::sync::Mutex::new(None),
                cooldown: config.jwt_jwks_cooldown,
                max_age: config.jwt_jwks_max_age,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| e.to_string())?,
            };
            let text = match &jwks.url {
                Some(url) => jwks.fetch(url).await?,
                None => std::fs::read_to_string(&source)
                    .map_err(|e| format!("--jwt-jwks {source}: {e}"))?,
            };
            jwks.load(&text)?;
            *jwks.fetched.lock().await = Some(Instant::now());
            Keys::Jwks(jwks)
        };
        let mut validation = Validation::new(Algorithm::HS256);
        let mut required = vec!["exp", "sub"];
        validation.leeway = LEEWAY_S;
        validation.validate_nbf = true;
        if config.jwt_audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&config.jwt_audience);
            required.push("aud");
        }
        if !config.jwt_issuer.is_empty() {
            validation.set_issuer(&config.jwt_issuer);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(JwtAuth { keys, validation })
    }

    async fn decode(&self, token: &str) -> Result<Claims, ApiError> {
        let invalid = |e: jsonwebtoken::errors::Error| unauthorized(&format!("invalid token: {e}"));
        let (key, alg) = match &self.keys {
            Keys::Fixed(k, alg) => (k.clone(), *alg),
            Keys::Jwks(jwks) => {
                let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
                let kid = header
                    .kid
                    .ok_or_else(|| unauthorized("invalid token: no `kid` in its header"))?;
                jwks.key(&kid).await?
            }
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(invalid)
    }
}

impl Jwks {
    /// The JWKS at `url`, at most [`MAX_JWKS_BYTES`] of it.
    async fn fetch(&self, url: &str) -> Result<String, String> {
        let fail = |e: &dyn std::fmt::Display| format!("JWKS {url}: {e}");
        let mut r = self.http.get(url).send().await.map_err(|e| fail(&e))?;
        if !r.status().is_success() {
            return Err(fail(&format!("HTTP {}", r.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| fail(&e))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(fail(&format!("larger than {MAX_JWKS_BYTES} bytes")));
            }
        }
        String::from_utf8(body).map_err(|e| fail(&e))
    }

    /// Replaces the keys with the signing RS256 and ES256 keys of `text`. Other keys (another
    /// algorithm or curve, `use: enc`, a kind this library does not know) are skipped, not fatal:
    /// identity providers publish several kinds side by side.
    fn load(&self, text: &str) -> Result<(), String> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let set: RawSet = serde_json::from_str(text).map_err(|e| format!("JWKS: {e}"))?;
        let mut keys = HashMap::new();
        for raw in set.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
                continue;
            };
            let Some(kid) = &jwk.common.key_id else {
                continue;
            };
            if matches!(
                jwk.common.public_key_use,
                Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
            ) {
                continue;
            }
            let (alg, named) = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    (Algorithm::ES256, KeyAlgorithm::ES256)
                }
                _ => continue,
            };
            if jwk.common.key_algorithm.is_some_and(|a| a != named) {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(&jwk) {
                keys.insert(kid.clone(), (key, alg));
            }
        }
        if keys.is_empty() {
            return Err("JWKS holds no RS256 or ES256 key with a `kid`".into());
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    /// Fetches and loads the URL; a failure keeps the keys held (the provider may be down for a
    /// moment; refusing every token meanwhile would take the whole service down with it).
    async fn refresh(&self, url: &str) {
        if let Err(e) = self.fetch(url).await.and_then(|t| self.load(&t)) {
            tracing::warn!(error = %e, "JWKS refresh failed; keeping the old keys");
        }
    }

    fn get(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }

    /// The key named `kid`. From a URL: keys older than the maximum age are fetched again first
    /// (by one request; the others meanwhile use the keys held), and an unknown `kid` makes the
    /// URL be fetched again at most once per cool-down.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), ApiError> {
        if let Some(url) = &self.url {
            if let Ok(mut fetched) = self.fetched.try_lock() {
                if fetched.is_none_or(|at| at.elapsed() >= self.max_age) {
                    *fetched = Some(Instant::now());
                    self.refresh(url).await;
                }
            }
        }
        if let Some(k) = self.get(kid) {
            return Ok(k);
        }
        if let Some(url) = &self.url {
            let mut fetched = self.fetched.lock().await;
            if let Some(k) = self.get(kid) {
                return Ok(k);
            }
            if fetched.is_none_or(|at| at.elapsed() >= self.cooldown) {
                *fetched = Some(Instant::now());
                self.refresh(url).await;
                if let Some(k) = self.get(kid) {
                    return Ok(k);
                }
            }
        }
        Err(unauthorized(&format!(
            "invalid token: unknown key id {:?}",
            kid.chars().take(80).collect::<String>()
        )))
    }
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::Unauthorized(msg.to_string())
}

fn check_namespace(ns: &str) -> Result<(), ApiError> {
    let ok = !ns.is_empty()
        && ns.len() <= MAX_NAMESPACE_LEN
        && ns.chars().all(|c| !c.is_control() && !c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(unauthorized(&format!(
            "namespace (token or `sub`) must be 1-{MAX_NAMESPACE_LEN} bytes without spaces or control characters"
        )))
    }
}
