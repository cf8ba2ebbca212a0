//! `Database.open({ sync: {...}, collections: { x: { conflict } } })`, read and checked.

use ferrosync_core::by_name::ByName;
use ferrosync_core::limits::{MAX_PULL_LIMIT, MAX_PUSH_CHANGES};
use ferrosync_core::sync::{Backoff, Policies, Policy};
use js_sys::{Function, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::resolver::js_resolver;
use crate::error::{Error, Result};

/// Sync every 30 s unless told otherwise (events and writes usually sync much sooner).
pub const DEFAULT_INTERVAL_MS: f64 = 30_000.0;
/// How long after a local write the push starts (writes in a burst share one push).
pub const DEFAULT_DEBOUNCE_MS: f64 = 100.0;
/// How long a conflict resolver may take before its document is set aside.
pub const DEFAULT_RESOLVER_TIMEOUT_MS: f64 =
    ferrosync_core::sync::DEFAULT_RESOLVER_TIMEOUT_MS as f64;

/// The `sync` option.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// API base, e.g. `https://example.com/v1`.
    pub url: String,
    pub token: String,
    /// 0 turns the timer off.
    pub interval_ms: f64,
    pub debounce_ms: f64,
    /// Listen to the server's event stream (`/events`).
    pub events: bool,
    pub backoff: Backoff,
    pub pull_limit: Option<usize>,
    pub push_batch: Option<usize>,
    /// Test hook (`clockSkewMs`, with the `test-hooks` feature only): pretend this device's clock
    /// is off by this much; 0 otherwise.
    pub clock_skew_ms: f64,
}

/// How long a resolver may take (`sync.resolverTimeoutMs`), also for a database without `sync`.
pub fn resolver_timeout_ms(v: Option<&JsValue>) -> Result<f64> {
    match v.filter(|v| v.is_object()) {
        Some(v) => Ok(number(v, "resolverTimeoutMs", 1.0, 86_400_000.0)?
            .unwrap_or(DEFAULT_RESOLVER_TIMEOUT_MS)),
        None => Ok(DEFAULT_RESOLVER_TIMEOUT_MS),
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidOptions(msg.into())
}

fn get(o: &JsValue, key: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn number(o: &JsValue, key: &str, min: f64, max: f64) -> Result<Option<f64>> {
    let v = get(o, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.is_finite() && n >= min && n <= max => Ok(Some(n)),
        _ => Err(bad(format!(
            "sync.{key} must be a number from {} to {}, got {}",
            min as i64,
            max as i64,
            describe(&v)
        ))),
    }
}

fn describe(v: &JsValue) -> String {
    if let Some(s) = v.as_string() {
        return format!("the string {s:?}");
    }
    js_sys::JSON::stringify(v)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| format!("{v:?}"))
}

const ALLOWED: &[&str] = &[
    "url",
    "token",
    "intervalMs",
    "debounceMs",
    "events",
    "backoffBaseMs",
    "backoffMaxMs",
    "pullLimit",
    "pushBatch",
    "resolverTimeoutMs",
];

/// Test hooks accepted in `sync` by test builds (the `test-hooks` feature) only.
#[cfg(feature = "test-hooks")]
const TEST_HOOKS: &[&str] = &["clockSkewMs"];
#[cfg(not(feature = "test-hooks"))]
const TEST_HOOKS: &[&str] = &[];

/// Reads `sync` (`None` when absent: a local-only database).
pub fn sync_options(v: Option<&JsValue>) -> Result<Option<SyncOptions>> {
    let Some(v) = v.filter(|v| !v.is_undefined() && !v.is_null()) else {
        return Ok(None);
    };
    if !v.is_object() || js_sys::Array::is_array(v) || v.is_function() {
        return Err(bad(format!(
            "sync must be an object like {{ url, token }}, got {}",
            describe(v)
        )));
    }
    for k in Object::keys(v.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
    {
        if !ALLOWED.contains(&k.as_str()) && !TEST_HOOKS.contains(&k.as_str()) {
            return Err(bad(format!(
                "unknown option {k:?} in sync (allowed: url, token, intervalMs, debounceMs, \
                 events, backoffBaseMs, backoffMaxMs, pullLimit, pushBatch, resolverTimeoutMs)"
            )));
        }
    }
    let url = get(v, "url")
        .as_string()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://") || u.starts_with('/'))
        .ok_or_else(|| {
            bad("sync.url must be the server's API base as a string, e.g. \"https://example.com/v1\"")
        })?;
    let token_v = get(v, "token");
    let token = if token_v.is_undefined() || token_v.is_null() {
        String::new()
    } else {
        token_v.as_string().ok_or_else(|| {
            bad(format!(
                "sync.token must be a string, got {}",
                describe(&token_v)
            ))
        })?
    };
    let events = match get(v, "events") {
        e if e.is_undefined() => true,
        e => e.as_bool().ok_or_else(|| {
            bad(format!(
                "sync.events must be a boolean, got {}",
                describe(&e)
            ))
        })?,
    };
    let day = 86_400_000.0;
    let base = Backoff::default();
    let backoff = Backoff {
        base_ms: number(v, "backoffBaseMs", 1.0, day)?.map_or(base.base_ms, |n| n as u64),
        max_ms: number(v, "backoffMaxMs", 1.0, day)?.map_or(base.max_ms, |n| n as u64),
    };
    Ok(Some(SyncOptions {
        url,
        token,
        interval_ms: number(v, "intervalMs", 0.0, day)?.unwrap_or(DEFAULT_INTERVAL_MS),
        debounce_ms: number(v, "debounceMs", 0.0, 60_000.0)?.unwrap_or(DEFAULT_DEBOUNCE_MS),
        events,
        backoff,
        pull_limit: number(v, "pullLimit", 1.0, MAX_PULL_LIMIT as f64)?.map(|n| n as usize),
        push_batch: number(v, "pushBatch", 1.0, MAX_PUSH_CHANGES as f64)?.map(|n| n as usize),
        #[cfg(feature = "test-hooks")]
        clock_skew_ms: number(v, "clockSkewMs", -10.0 * 365.0 * day, 10.0 * 365.0 * day)?
            .unwrap_or(0.0),
        #[cfg(not(feature = "test-hooks"))]
        clock_skew_ms: 0.0,
    }))
}

/// Reads each collection's `conflict` option: `"lww"` (default), `"merge"`, or a resolver function.
pub fn policies(conflicts: &ByName<JsValue>, resolver_timeout_ms: f64) -> Result<Policies> {
    let mut p = Policies::new(Policy::Lww);
    for (collection, v) in conflicts {
        let policy = if let Some(f) = v.dyn_ref::<Function>() {
            Policy::Custom(js_resolver(f.clone(), resolver_timeout_ms))
        } else {
            match v.as_string().as_deref() {
                Some("lww") => Policy::Lww,
                Some("merge") => Policy::Merge,
                _ => {
                    return Err(bad(format!(
                        "collections.{collection}.conflict must be \"lww\", \"merge\" or a function (local, remote) => doc | null, got {}",
                        describe(v)
                    )))
                }
            }
        };
        p.set(collection.clone(), policy);
    }
    Ok(p)
}
