//! The `/v1` endpoints and the health check.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrosync_core::limits::{DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT};
use ferrosync_core::protocol::{PushRequest, PushResponse, PushStatus};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clock::now_ms;
use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::hook;
use crate::state::AppState;
use crate::validate::{check_push, parse_json, read_body_within};
use crate::wire::pull_reply;

/// `POST /v1/push`: applies a batch of changes all or nothing (after the push hook, if any).
pub async fn push(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PushResponse>, ApiError> {
    let namespace = s.auth.namespace(&headers, None).await?;
    let bytes = read_body_within(&headers, body, s.max_body_bytes, s.body_read_timeout).await?;
    let mut req: PushRequest = parse_json(&bytes)?;
    check_push(&req, now_ms(), s.max_drift_ms)?;
    // Where the device has been syncing: not part of the push as stored (nor of its replay's
    // fingerprint, since a pull may move it between a push and its retry).
    if let Some(cursor) = req.cursor.take() {
        Cursor::check_pushed(&cursor, s.store.epoch(), &namespace)?;
    }
    let (req, refusals) = match &s.hook {
        Some(h) => {
            let (kept, refusals) =
                hook::screen(h.as_ref(), &s.metrics, &namespace, &headers, req).await?;
            (kept, Some(refusals))
        }
        None => (req, None),
    };
    // The same client sending the same changes again is a retry whose reply was lost. Hashed
    // in one piece: serde writes in many small pieces, each a call into the hasher otherwise.
    let mut canonical = serde_json::to_vec(&req).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(r) = &refusals {
        // What the hook refused is part of the push as stored.
        canonical.extend_from_slice(format!("|refused:{}", r.fingerprint_suffix()).as_bytes());
    }
    let hash: String = Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    drop(canonical);
    let pushed = s
        .store
        .push_with(&namespace, &req.client_id, hash, req.changes, s.limits);
    // Past the deadline the push may still commit: its retry is then answered by the replay.
    let outcome = tokio::time::timeout(s.push_timeout, pushed)
        .await
        .map_err(|_| {
            ApiError::Busy(format!(
                "the push did not complete within {} ms; retry it (a retry of the same push is answered as the first)",
                s.push_timeout.as_millis()
            ))
        })??;
    let cursor = Cursor::at(s.store.epoch(), &namespace, outcome.head);
    for r in &outcome.results {
        match r.status {
            PushStatus::Applied => s.metrics.changes_applied.fetch_add(1, Relaxed),
            PushStatus::Stale => s.metrics.changes_stale.fetch_add(1, Relaxed),
            PushStatus::Rejected => 0,
        };
    }
    let results = match refusals {
        Some(refusals) => refusals.merge(outcome.results)?,
        None => outcome.results,
    };
    Ok(Json(PushResponse {
        results,
        cursor: Some(cursor.encode()),
        server_time: now_ms(),
        max_drift_ms: Some(s.max_drift_ms),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PullParams {
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/pull?cursor=&limit=`: the namespace's changes after the cursor, in feed order.
pub async fn pull(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let namespace = s.auth.namespace(&headers, None).await?;
    let params: PullParams = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let limit = match params.limit.as_deref() {
        None | Some("") => DEFAULT_PULL_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PULL_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "limit must be an integer from 1 to {MAX_PULL_LIMIT}, got {:?}",
                    l.chars().take(40).collect::<String>()
                )))
            }
        },
    };
    let cursor = Cursor::parse(params.cursor.as_deref(), s.store.epoch(), &namespace)?;
    let page = s
        .store
        .pull_within(&namespace, cursor.seq, limit, s.limits.max_page_bytes)
        .await?;
    if cursor.seq > page.head {
        return Err(ApiError::BadCursor(
            "cursor is ahead of this server's feed: pass back a cursor this server returned".into(),
        ));
    }
    cursor.check_position(page.check_at_after.as_deref())?;
    // After the page: a purge that committed before the page was read is seen here.
    if cursor.seq > 0 && cursor.seq < s.store.expiry_floor(&namespace).await? {
        s.metrics.cursors_expired.fetch_add(1, Relaxed);
        return Err(ApiError::CursorExpired(
            "cursor is older than this server's history (deletes since were compacted away): \
             discard it and pull from the start, keeping pending changes"
                .into(),
        ));
    }
    let next = match page.last_seq {
        Some(seq) => Cursor {
            seq,
            check: page.last_check,
            ..cursor
        },
        None => cursor,
    };
    let body = pull_reply(
        page.changes,
        &next.encode(),
        page.has_more,
        page.remaining,
        now_ms(),
        Some(s.max_drift_ms),
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /healthz`: 200 when the database answers.
pub async fn healthz(State(s): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    s.store.ping().await.map_err(ApiError::Unavailable)?;
    Ok(Json(json!({ "status": "ok", "serverTime": now_ms() })))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see docs/PROTOCOL.md".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("method not allowed for this endpoint".into())
}
