//! The sync methods of `Database` as JavaScript sees them: `status`, `onStatus`, `sync()`,
//! `pendingCount()`, `setToken()`, `retryRejected()`, `discardRejected()`, and their TypeScript
//! declarations. The work is done by the sync agent (src/sync).

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

use super::Database;
use crate::error::Error;
use crate::sync::{local_store, Agent, Report};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** How a collection settles a pending local change that meets a different remote version. */
export type ConflictPolicy<T extends DocumentShape = Document> = "lww" | "merge" | ConflictResolver<T>;

/**
 * Called with both versions (`null` = deleted) when a pending local edit meets a newer remote
 * version; returns the document to keep, or `null` to delete it. The answer is a new local write
 * that syncs back. Called outside any transaction: it may be async. Type it with the collection's
 * document type: `const resolve: ConflictResolver<Task> = (local, remote) => ...`.
 */
export type ConflictResolver<T extends DocumentShape = Document> = (local: T | null, remote: T | null) => T | null | Promise<T | null>;

/** A resolver for any document type (method syntax, so a `ConflictResolver<Task>` fits). */
type AnyConflictResolver = {
  resolve(local: DocumentShape | null, remote: DocumentShape | null): DocumentShape | null | Promise<DocumentShape | null>;
}["resolve"];

export interface CollectionOptions {
  /** `"lww"` (default): the later write wins whole; `"merge"`: each field's later write wins. */
  conflict?: "lww" | "merge" | AnyConflictResolver;
}

export interface SyncOptions {
  /** The server's API base, e.g. `"https://example.com/v1"`. */
  url: string;
  /** Bearer token; change it later with `db.setToken()`. */
  token?: string;
  /** Sync at least this often (default 30000; 0: no timer). */
  intervalMs?: number;
  /** How soon after a local write its push starts, in ms (default 100; a burst shares one push). */
  debounceMs?: number;
  /** Pull as soon as the server's event stream (`GET {url}/events`) announces changes (default true). */
  events?: boolean;
  /** First retry delay after a network or server failure, in ms (default 1000; grows with jitter). */
  backoffBaseMs?: number;
  /** Largest retry delay, in ms (default 300000). */
  backoffMaxMs?: number;
  /** Changes per pull request, 1 to 1000 (default 500). */
  pullLimit?: number;
  /** Changes per push request, 1 to 1000 (default 1000). */
  pushBatch?: number;
  /**
   * How long a conflict resolver may take, in ms (default 10000). A resolver that throws, rejects
   * or does not settle in time sets its document aside (see `SyncStatus.rejected`).
   */
  resolverTimeoutMs?: number;
}

export interface DatabaseOptions {
  /** Sync with a ferrosync server; without it the database stays local. */
  sync?: SyncOptions;
}

export interface SyncStatus {
  state: "idle" | "syncing" | "offline" | "error";
  /** Local changes not yet acknowledged by the server. */
  pending: number;
  /** When the last successful sync ended (ms since the epoch), or null. */
  lastSyncAt: number | null;
  /** Why the last sync failed (state "error"), or null. */
  error: { code: ErrorCode; message: string } | null;
  /** Documents pulled so far in the running (or last) sync, and how many remain when known. */
  progress: { pulled: number; remaining: number | null };
  /**
   * Local changes sync has set aside: the server refused that change alone (`code` is the
   * server's, e.g. "INVALID_CHANGE" or "PAYLOAD_TOO_LARGE"), or the collection's resolver threw
   * or timed out ("RESOLVER_FAILED"). Each stays in the database and pending, and is not pushed
   * again until `db.retryRejected(collection, id)`, a new local edit of the document, or
   * `db.discardRejected(collection, id)` (which restores the server's version). Every other
   * change keeps syncing.
   */
  rejected: RejectedChange[];
}

export interface RejectedChange {
  collection: string;
  id: string;
  code: string;
  message: string;
}

export interface SyncReport {
  /** Local changes the server acknowledged. */
  pushed: number;
  /** Remote changes applied locally. */
  pulled: number;
  /** Pending local changes that met a different remote version. */
  conflicts: number;
}

export type StatusCallback = (status: SyncStatus) => void;
"#;

fn aside_key(db: &Database, collection: &JsValue, id: &JsValue) -> Result<(String, String), Error> {
    let (Some(collection), Some(id)) = (collection.as_string(), id.as_string()) else {
        return Err(Error::InvalidOptions(
            "retryRejected/discardRejected expect (collection, id) as strings".into(),
        ));
    };
    db.store().check_collection(&collection)?;
    Ok((collection, id))
}

fn agent(db: &Database) -> Result<&Agent, Error> {
    db.store().check_open()?;
    db.sync_agent().ok_or(Error::SyncNotConfigured)
}

/// A running `onStatus` subscription.
#[wasm_bindgen]
pub struct StatusSubscription {
    agent: Option<Agent>,
    id: u32,
}

#[wasm_bindgen]
impl StatusSubscription {
    /// Stops the callbacks.
    pub fn unsubscribe(&mut self) {
        if let Some(a) = self.agent.take() {
            a.status_cell().unsubscribe(self.id);
        }
    }
}

fn report_js(r: &Report) -> JsValue {
    let o = Object::new();
    let _ = Reflect::set(&o, &"pushed".into(), &JsValue::from_f64(r.pushed as f64));
    let _ = Reflect::set(&o, &"pulled".into(), &JsValue::from_f64(r.pulled as f64));
    let _ = Reflect::set(
        &o,
        &"conflicts".into(),
        &JsValue::from_f64(r.conflicts as f64),
    );
    o.into()
}

#[wasm_bindgen]
impl Database {
    /// What sync is doing (`null` when the database was opened without `sync`).
    #[wasm_bindgen(getter, unchecked_return_type = "SyncStatus | null")]
    pub fn status(&self) -> JsValue {
        match self.sync_agent() {
            Some(a) => a.status().to_js(),
            None => JsValue::NULL,
        }
    }

    /// Calls `callback` with the new status after every change of it, until `unsubscribe()`.
    #[wasm_bindgen(js_name = onStatus)]
    pub fn on_status(
        &self,
        #[wasm_bindgen(unchecked_param_type = "StatusCallback")] callback: JsValue,
    ) -> Result<StatusSubscription, JsValue> {
        let f: Function = callback
            .dyn_into()
            .map_err(|_| Error::InvalidOptions("onStatus expects a callback function".into()))?;
        self.store().check_open()?;
        Ok(match self.sync_agent() {
            Some(a) => StatusSubscription {
                id: a.status_cell().subscribe(f),
                agent: Some(a.clone()),
            },
            // Without sync the status never changes.
            None => StatusSubscription { agent: None, id: 0 },
        })
    }

    /// Syncs now (pushes pending changes, pulls the server's), through whichever tab syncs this
    /// database. Rejects with `SYNC_OFFLINE` while offline, or with the failure's code.
    #[wasm_bindgen(unchecked_return_type = "Promise<SyncReport>")]
    pub fn sync(&self) -> Promise {
        let request = match agent(self) {
            Ok(a) => a.sync(),
            Err(e) => return Promise::reject(&e.into()),
        };
        future_to_promise(async move {
            let report = request.await?;
            Ok(report_js(&report))
        })
    }

    /// Local changes not yet acknowledged by the server (with or without `sync`).
    #[wasm_bindgen(js_name = pendingCount, unchecked_return_type = "Promise<number>")]
    pub fn pending_count(&self) -> Promise {
        let store = self.store().clone();
        future_to_promise(async move {
            let n = local_store::pending_count(&store).await?;
            Ok(JsValue::from_f64(n as f64))
        })
    }

    /// Replaces the bearer token (after a 401/403 this resumes syncing at once).
    #[wasm_bindgen(js_name = setToken)]
    pub fn set_token(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] token: JsValue,
    ) -> Result<(), JsValue> {
        let token = token.as_string().ok_or_else(|| {
            Error::InvalidOptions("setToken expects the token as a string".into())
        })?;
        agent(self)?.set_token(&token);
        Ok(())
    }

    /// Pushes a set-aside change (`status.rejected`) again, and syncs. Resolves once the
    /// request is handed to the syncing instance; the outcome shows in `status`.
    #[wasm_bindgen(js_name = retryRejected)]
    pub fn retry_rejected(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Result<(), JsValue> {
        let (collection, id) = aside_key(self, &collection, &id)?;
        agent(self)?.aside(&collection, &id, false);
        Ok(())
    }

    /// Drops the local edit of a set-aside change (`status.rejected`): the document goes back to
    /// the server's version (absent if the server never had it) at the sync that follows.
    #[wasm_bindgen(js_name = discardRejected)]
    pub fn discard_rejected(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Result<(), JsValue> {
        let (collection, id) = aside_key(self, &collection, &id)?;
        agent(self)?.aside(&collection, &id, true);
        Ok(())
    }

    /// Test hook: behave as if `navigator.onLine` were false (true) for this instance only.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    #[wasm_bindgen(js_name = _setOfflineForTest, skip_typescript)]
    pub fn set_offline_for_test(&self, offline: bool) -> Result<(), JsValue> {
        agent(self)?.force_offline(offline);
        Ok(())
    }
}
