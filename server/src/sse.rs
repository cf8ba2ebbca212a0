//! `GET /v1/events`: a Server-Sent Events stream of "this namespace has changes up to cursor N",
//! so online clients pull at once instead of waiting for a timer. Notices are hints: a client that
//! misses one still gets everything on its next pull.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::events::{Notice, RecvError, Subscription};
use crate::state::AppState;
use crate::stream_slots::StreamSlot;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventParams {
    /// For browsers' EventSource, which cannot send an Authorization header.
    token: Option<String>,
}

struct StreamState {
    app: Arc<AppState>,
    namespace: String,
    rx: Subscription,
    shutdown: watch::Receiver<bool>,
    /// Head last announced; `None` before the first event.
    sent: Option<u64>,
    /// When the token expires: the stream ends then (the client reconnects with a fresh one).
    expires: Option<tokio::time::Instant>,
    /// The stream's place among the open ones, given back when it ends.
    _slot: StreamSlot,
}

pub async fn events(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let params: EventParams = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let who = app.auth.identity(&headers, params.token.as_deref()).await?;
    let slot = app.streams.take(&who.namespace)?;
    let namespace = who.namespace;
    let expires = who.expires_at.map(|exp| {
        let left = (exp * 1000).saturating_sub(now_ms());
        tokio::time::Instant::now() + Duration::from_millis(left)
    });
    // Subscribe before reading the head, so nothing committed in between is missed.
    let rx = app.events.subscribe(&namespace);
    let shutdown = app.shutdown.clone();
    let state = StreamState {
        app,
        namespace,
        rx,
        shutdown,
        sent: None,
        expires,
        _slot: slot,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let head = next_head(&mut st).await?;
        st.sent = Some(head);
        let cursor = Cursor::at(st.app.store.epoch(), &st.namespace, head);
        let data = json!({ "cursor": cursor.encode(), "serverTime": now_ms() });
        let event = Event::default().event("changes").data(data.to_string());
        Some((Ok(event), st))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Waits for the next head worth announcing; `None` ends the stream (shutdown or database gone).
async fn next_head(st: &mut StreamState) -> Option<u64> {
    if st.sent.is_none() {
        return read_head(st).await;
    }
    let expires = st.expires;
    let expired = async move {
        match expires {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    loop {
        if *st.shutdown.borrow() {
            return None;
        }
        let head = tokio::select! {
            _ = st.shutdown.changed() => return None,
            () = &mut expired => return None,
            notice = st.rx.recv() => match notice {
                Ok(Notice { namespace: Some(_), head }) => head,
                // Unknown or missed notices: look at the database.
                Ok(Notice { namespace: None, .. }) | Err(RecvError::Lagged(_)) => read_head(st).await?,
                Err(RecvError::Closed) => return None,
            },
        };
        if Some(head) > st.sent {
            return Some(head);
        }
    }
}

async fn read_head(st: &StreamState) -> Option<u64> {
    match st.app.store.head(&st.namespace).await {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "event stream ended: cannot read the feed head");
            None
        }
    }
}
