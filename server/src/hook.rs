//! The app's own rules on every push: a hook the server asks before commit, for each pushed
//! change, to accept it, refuse it (a code and a message the client sets the row aside with), or
//! replace its document (normalize). Configured as an HTTP endpoint (`--push-hook URL`), or, for
//! an app that embeds the server as a library, any [`PushHook`] implementation.
//!
//! A replaced document is stored with a new HLC just above the pushed one whose node is
//! [`HOOK_NODE`], so it wins over the writer's own copy (which carries the pushed HLC) and comes
//! back to every device on its next pull, the writer included, while a genuinely later edit from
//! anywhere still wins over it.
//!
//! The hook is called outside the database transaction: it may be slow, and a slow hook must not
//! hold the namespace's write lock. A hook that fails, times out or answers nonsense refuses the
//! whole push with 503 `HOOK_UNAVAILABLE` (nothing stored; the client retries later).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use ferrosync_core::hlc::{Hlc, MAX_COUNTER};
use ferrosync_core::protocol::{Change, Doc, ErrorDetail, PushRequest, PushResult, PushStatus};
use ferrosync_core::sync::validate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// The node of the HLCs the server gives documents the hook replaced. Not a client: a client
/// pushing with this id is refused while a hook is configured.
pub const HOOK_NODE: &str = "ferrosync-hook";

/// What the hook is asked: one push, as the server received it after its own checks.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRequest {
    pub namespace: String,
    /// The JWT's claims (already verified) with `--auth jwt`; `null` with `--auth dev`.
    pub claims: Value,
    pub client_id: String,
    pub changes: Vec<Change>,
}

/// The hook's answer for one change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase", deny_unknown_fields)]
pub enum Verdict {
    Accept,
    /// Refuse the change; the client sets it aside with this code and message.
    Reject {
        code: String,
        message: String,
    },
    /// Store this document instead (same id), for example normalized.
    Replace {
        doc: Value,
    },
}

/// The HTTP hook's reply body: one verdict per change, in order.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookReply {
    pub results: Vec<Verdict>,
}

pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Verdict>, String>> + Send + 'a>>;

/// The app's rules. `Err` (a reason for the log) makes the push fail with 503.
pub trait PushHook: Send + Sync + 'static {
    fn check<'a>(&'a self, request: &'a HookRequest) -> HookFuture<'a>;
}

/// The hook as an HTTP endpoint: `POST url` with a [`HookRequest`], answered by a [`HookReply`].
pub struct HttpHook {
    url: String,
    client: reqwest::Client,
}

impl HttpHook {
    pub fn new(url: &str, timeout: Duration) -> Result<HttpHook, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("--push-hook {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("--push-hook {url:?}: use an http or https URL"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpHook {
            url: url.to_string(),
            client,
        })
    }
}

impl PushHook for HttpHook {
    fn check<'a>(&'a self, request: &'a HookRequest) -> HookFuture<'a> {
        Box::pin(async move {
            let reply = self
                .client
                .post(&self.url)
                .json(request)
                .send()
                .await
                .map_err(|e| format!("calling the hook: {e}"))?;
            let status = reply.status();
            if !status.is_success() {
                return Err(format!("the hook answered HTTP {status}"));
            }
            let body = reply
                .bytes()
                .await
                .map_err(|e| format!("reading the hook's reply: {e}"))?;
            let parsed: HookReply = serde_json::from_slice(&body)
                .map_err(|e| format!("the hook's reply is not {{\"results\": [...]}}: {e}"))?;
            Ok(parsed.results)
        })
    }
}

/// Where the hook refused changes of a push: one slot per pushed change, `None` for a kept one
/// (its result comes from the store).
pub struct Refusals {
    slots: Vec<Option<ErrorDetail>>,
}

impl Refusals {
    /// The refused positions, for the retry fingerprint (a retry refused the same way replays).
    pub fn fingerprint_suffix(&self) -> String {
        let refused: Vec<String> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|e| format!("{i}:{}", e.code)))
            .collect();
        refused.join(",")
    }

    /// Puts the store's results for the kept changes back among the refusals.
    pub fn merge(self, stored: Vec<PushResult>) -> Result<Vec<PushResult>, ApiError> {
        let kept = self.slots.iter().filter(|s| s.is_none()).count();
        if stored.len() != kept {
            return Err(ApiError::Internal(format!(
                "the store answered {} results for {kept} changes",
                stored.len(),
            )));
        }
        let mut stored = stored.into_iter();
        Ok(self
            .slots
            .into_iter()
            .filter_map(|slot| match slot {
                Some(error) => Some(PushResult {
                    status: PushStatus::Rejected,
                    current: None,
                    error: Some(error),
                }),
                None => stored.next(),
            })
            .collect())
    }
}

/// Asks `hook` about `req` and applies its verdicts: the changes to store (accepted, replaced),
/// and where the refused ones were.
pub async fn screen(
    hook: &dyn PushHook,
    metrics: &Metrics,
    namespace: &str,
    headers: &HeaderMap,
    req: PushRequest,
) -> Result<(PushRequest, Refusals), ApiError> {
    if req.client_id == HOOK_NODE {
        return Err(ApiError::BadRequest(format!(
            "clientId {HOOK_NODE:?} is reserved for documents the push hook replaced"
        )));
    }
    if req.changes.is_empty() {
        return Ok((req, Refusals { slots: Vec::new() }));
    }
    let request = HookRequest {
        namespace: namespace.to_string(),
        claims: claims(headers),
        client_id: req.client_id,
        changes: req.changes,
    };
    metrics.hook_calls.fetch_add(1, Relaxed);
    let started = Instant::now();
    let answered = hook.check(&request).await;
    metrics
        .hook_seconds
        .observe(started.elapsed().as_secs_f64());
    let verdicts = answered.and_then(|v| {
        if v.len() == request.changes.len() {
            Ok(v)
        } else {
            Err(format!(
                "the hook answered {} verdicts for {} changes",
                v.len(),
                request.changes.len()
            ))
        }
    });
    let verdicts = match verdicts {
        Ok(v) => v,
        Err(reason) => {
            metrics.hook_failures.fetch_add(1, Relaxed);
            return Err(ApiError::HookUnavailable(reason));
        }
    };
    let HookRequest {
        client_id, changes, ..
    } = request;
    let mut kept = Vec::with_capacity(changes.len());
    let mut slots = Vec::with_capacity(changes.len());
    for (i, (change, verdict)) in changes.into_iter().zip(verdicts).enumerate() {
        match verdict {
            Verdict::Accept => {
                kept.push(change);
                slots.push(None);
            }
            Verdict::Reject { code, message } => {
                metrics.changes_rejected.fetch_add(1, Relaxed);
                slots.push(Some(refusal(i, code, message).inspect_err(|_| {
                    metrics.hook_failures.fetch_add(1, Relaxed);
                })?));
            }
            Verdict::Replace { doc } => {
                kept.push(replaced(i, change, doc).inspect_err(|_| {
                    metrics.hook_failures.fetch_add(1, Relaxed);
                })?);
                slots.push(None);
            }
        }
    }
    Ok((
        PushRequest {
            client_id,
            changes: kept,
            cursor: None,
        },
        Refusals { slots },
    ))
}

/// A refusal's code must be a stable name (`A-Z 0-9 _`, at most 64); the message is capped.
fn refusal(i: usize, code: String, message: String) -> Result<ErrorDetail, ApiError> {
    let ok = (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(ApiError::HookUnavailable(format!(
            "the hook refused changes[{i}] with code {:?}: codes are 1-64 of A-Z, 0-9, _",
            code.chars().take(80).collect::<String>()
        )));
    }
    Ok(ErrorDetail {
        code,
        message: message.chars().take(1000).collect(),
    })
}

/// The change with the hook's document, stamped just above the pushed HLC (see the module doc).
fn replaced(i: usize, mut change: Change, doc: Value) -> Result<Change, ApiError> {
    let bad = |why: String| {
        ApiError::HookUnavailable(format!(
            "the hook replaced changes[{i}] with an invalid document: {why}"
        ))
    };
    if let Some(why) = validate::doc_fault(&doc, &change.id) {
        return Err(bad(why));
    }
    let hlc = above(&change.hlc).map_err(bad)?;
    if let Some(fields) = change.fields.as_mut() {
        // Every field of the hook's version is as new as the version.
        fields.clear();
        if let Some(obj) = doc.as_object() {
            for k in obj.keys().filter(|k| k.as_str() != "id") {
                fields.insert(k.clone(), hlc.clone());
            }
        }
    }
    change.hlc = hlc;
    change.deleted = false;
    change.doc = Some(Doc::from_value(&doc));
    Ok(change)
}

/// The smallest HLC of [`HOOK_NODE`] above `h`.
fn above(h: &Hlc) -> Result<Hlc, String> {
    let (wall, counter) = if h.counter < MAX_COUNTER {
        (h.wall_ms, h.counter + 1)
    } else {
        (h.wall_ms + 1, 0)
    };
    Hlc::new(wall, counter, HOOK_NODE).map_err(|e| e.to_string())
}

/// The bearer token's claims when it is a JWT (already verified by the auth layer), else null.
fn claims(headers: &HeaderMap) -> Value {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, t)| t.trim());
    let Some(token) = token.filter(|t| t.matches('.').count() == 2) else {
        return Value::Null;
    };
    let mut validation = jsonwebtoken::Validation::default();
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(&[]),
        &validation,
    )
    .map(|d| d.claims)
    .unwrap_or(Value::Null)
}

/// The configured hook, if any.
pub type SharedHook = Option<Arc<dyn PushHook>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_versions_sort_just_above_the_pushed_one() {
        let h: Hlc = "018bcfe56800-000005-c1".parse().unwrap();
        let a = above(&h).unwrap();
        assert!(a > h);
        assert_eq!(a.encode(), "018bcfe56800-000006-ferrosync-hook");
        let later: Hlc = "018bcfe56801-000000-c2".parse().unwrap();
        assert!(later > a, "a later edit elsewhere still wins");
        let full = Hlc::new(7, MAX_COUNTER, "c1").unwrap();
        assert_eq!(above(&full).unwrap(), Hlc::new(8, 0, HOOK_NODE).unwrap());
    }

    #[test]
    fn a_replacement_is_held_to_the_pushed_documents_rules() {
        let change: Change = serde_json::from_str(
            r#"{"collection":"tasks","id":"a","hlc":"018bcfe56800-000005-c1","doc":{"id":"a"}}"#,
        )
        .unwrap();
        let why = |doc: Value| match replaced(3, change.clone(), doc) {
            Err(ApiError::HookUnavailable(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(why(serde_json::json!({"id": "b"})).contains("differs from the change's id"));
        assert!(why(serde_json::json!({"x": 1})).contains("must include its id"));
        assert!(why(serde_json::json!({"id": "a", "$x": 1})).contains("changes[3]"));
        let kept = replaced(3, change.clone(), serde_json::json!({"id": "a", "n": 1})).unwrap();
        assert!(kept.hlc > change.hlc);
    }

    #[test]
    fn verdicts_parse() {
        let r: HookReply = serde_json::from_str(
            r#"{"results":[{"action":"accept"},{"action":"reject","code":"TOO_LONG","message":"m"},{"action":"replace","doc":{"id":"a"}}]}"#,
        )
        .unwrap();
        assert_eq!(r.results.len(), 3);
        assert!(serde_json::from_str::<HookReply>(r#"{"results":[{"action":"maybe"}]}"#).is_err());
        assert!(refusal(0, "bad code".into(), "m".into()).is_err());
        assert!(refusal(0, "TITLE_TOO_LONG".into(), "m".into()).is_ok());
    }
}
