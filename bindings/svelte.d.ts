import type { Collection, Database, DocumentShape, Query, SyncStatus } from "../web/ferrosync.js";

/** A readable store (the Svelte store contract): use it as `$store` in components. */
export interface Readable<T> {
  /** Calls `run` at once with the current value, then after every change; returns the unsubscriber. */
  subscribe(this: void, run: (value: T) => void, invalidate?: () => void): () => void;
}

/**
 * The live result of `collection.find(query)`: `undefined` until the first result, then every
 * change. The first subscriber starts the live query, the last one leaving stops it. A query error
 * (`INVALID_QUERY`, ...) is thrown by `subscribe`; a later run's failure (`STORAGE_ERROR`, ...) is
 * reported as an uncaught error (the store contract has no error channel) and the last value stays.
 * After `db.close()` the last value stays; use `ferrosync/observable` for `error`/`complete`.
 */
export function liveQuery<T extends DocumentShape>(collection: Collection<T>, query?: NoInfer<Query<T>>): Readable<T[] | undefined>;

/** The live document with this id: `undefined` until known, `null` while there is none. */
export function liveDocument<T extends DocumentShape>(collection: Collection<T>, id: string): Readable<T | null | undefined>;

/** The live sync status of `db` (`null` for a database opened without `sync`). */
export function syncStatus(db: Database): Readable<SyncStatus | null>;
