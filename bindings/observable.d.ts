import type { Collection, Database, DocumentShape, Query, SyncStatus } from "../web/ferrosync.js";

declare global {
  interface SymbolConstructor {
    /** Defined by Observable polyfills (`symbol-observable`); RxJS declares it the same way. */
    readonly observable: symbol;
  }
}

export interface Observer<T> {
  next(value: T): void;
  error(err: unknown): void;
  complete(): void;
}

export interface Unsubscribable {
  unsubscribe(): void;
  /** True after `unsubscribe()`, `error` or `complete` (also when `subscribe` itself failed). */
  readonly closed: boolean;
}

/**
 * A live value honouring the Observable contract: `subscribe` starts one live query (its current
 * value arrives asynchronously, then every change), returns `{ unsubscribe }`. Errors go to
 * `error` (a `FerrosyncError`: `INVALID_QUERY` when subscribing, `STORAGE_ERROR` when a later run
 * of the query fails, ...); the subscription ends there: its live query is stopped and nothing
 * follows (subscribe again to retry). A live query (`liveQuery`, `liveDocument`) calls `complete`
 * when its database is closed (`db.close()`) or deleted; `syncStatus` never completes. Works with
 * `rxjs.from(o)`, Svelte's `$o` and anything that accepts `Symbol.observable`/`"@@observable"`.
 */
export interface Observable<T> {
  subscribe(observer?: Partial<Observer<T>> | ((value: T) => void) | null): Unsubscribable;
  [Symbol.observable](): Observable<T>;
  "@@observable"(): Observable<T>;
}

/** The results of `collection.watch(query, ...)` as an Observable. */
export function liveQuery<T extends DocumentShape>(collection: Collection<T>, query?: NoInfer<Query<T>>): Observable<T[]>;

/** The document with this id, `null` while there is none, as an Observable. */
export function liveDocument<T extends DocumentShape>(collection: Collection<T>, id: string): Observable<T | null>;

/** `db.status` now and after every change (`null` for a database opened without `sync`). */
export function syncStatus(db: Database): Observable<SyncStatus | null>;

/**
 * A debug counter shared by every binding (`ferrosync/observable`, `/react`, `/vue`, `/svelte`):
 * `open` subscriptions (live queries and status) opened through them and not yet closed, how many
 * were `opened` in all, and how many were `stillActive` after their `unsubscribe()` (always 0).
 * After an app unmounts everything, `open` is 0.
 */
export function subscriptionStats(): { open: number; opened: number; stillActive: number };
