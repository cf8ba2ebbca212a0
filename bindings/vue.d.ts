import type { InjectionKey, MaybeRefOrGetter, Ref } from "vue";
import type { Collection, Database, DocumentShape, Query, SyncStatus } from "../web/ferrosync.js";

/** The injection key of the database (`app.provide(DatabaseKey, db)` provides it app-wide). */
export const DatabaseKey: InjectionKey<Database>;

/** Makes `db` available to `useDatabase()` in this component's descendants. */
export function provideDatabase(db: Database): void;

/** The provided database; throws without one. */
export function useDatabase(): Database;

/**
 * The live result of `collection.find(query)` as a read-only ref: `undefined` until the first
 * result, then every change. `collection` and `query` may be refs or getters; the live query
 * restarts when the query's content changes and stops with the effect scope (the component, or an
 * `effectScope()`). A query error (`INVALID_QUERY`, ...) goes to Vue's error handling; a later
 * run's failure (`STORAGE_ERROR`, ...) is thrown where the ref is read (a render: Vue's error
 * handling) until a later run succeeds. After `db.close()` the last result stays.
 */
export function useLiveQuery<T extends DocumentShape>(
  collection: MaybeRefOrGetter<Collection<T>>,
  query?: MaybeRefOrGetter<NoInfer<Query<T>> | undefined>,
): Readonly<Ref<T[] | undefined>>;

/** The live document with this id as a read-only ref: `undefined` until known, `null` while there is none. */
export function useDocument<T extends DocumentShape>(
  collection: MaybeRefOrGetter<Collection<T>>,
  id: MaybeRefOrGetter<string>,
): Readonly<Ref<T | null | undefined>>;

/** The live sync status of `db` (default: the provided database) as a read-only ref; `null` without sync. */
export function useSyncStatus(db?: Database): Readonly<Ref<SyncStatus | null>>;
