//! Bearer tokens to namespaces. A namespace is the unit of isolation: every document row carries
//! one, and a request can only ever read or write its own.

use axum::http::{header, HeaderMap};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::AuthMode;
use crate::error::ApiError;

/// Longest namespace (a dev token, or a JWT `sub`).
pub const MAX_NAMESPACE_LEN: usize = 256;

pub enum Auth {
    Dev,
    Jwt {
        key: Box<DecodingKey>,
        validation: Box<Validation>,
    },
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl Auth {
    pub fn new(mode: AuthMode, secret: Option<&str>) -> Result<Auth, String> {
        match mode {
            AuthMode::Dev => Ok(Auth::Dev),
            AuthMode::Jwt => {
                let secret = secret
                    .filter(|s| !s.is_empty())
                    .ok_or("--auth jwt needs --jwt-secret (or FERROSYNC_JWT_SECRET)")?;
                let mut validation = Validation::new(Algorithm::HS256);
                validation.set_required_spec_claims(&["exp", "sub"]);
                validation.leeway = 30;
                Ok(Auth::Jwt {
                    key: Box::new(DecodingKey::from_secret(secret.as_bytes())),
                    validation: Box::new(validation),
                })
            }
        }
    }

    /// The namespace of a request, from `Authorization: Bearer <token>`, or from `fallback` (the
    /// `token` query parameter, which only the event stream accepts because browsers' EventSource
    /// cannot set headers).
    pub fn namespace(
        &self,
        headers: &HeaderMap,
        fallback: Option<&str>,
    ) -> Result<String, ApiError> {
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
                Ok(token.to_string())
            }
            Auth::Jwt { key, validation } => {
                let data = jsonwebtoken::decode::<Claims>(token, key, validation)
                    .map_err(|e| unauthorized(&format!("invalid token: {e}")))?;
                check_namespace(&data.claims.sub)?;
                Ok(data.claims.sub)
            }
        }
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
