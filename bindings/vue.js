// ferrosync/vue: composables returning shallow refs, released with the effect scope (component or
// effectScope()) that created them.
import { computed, inject, onScopeDispose, provide, shallowRef, toValue, watch } from "vue";
import { documentQuery, firstOf, identity, queryKey, startStatus, startWatch } from "./source.js";

/** The injection key of the database given to `provideDatabase`. */
export const DatabaseKey = Symbol("ferrosync.database");

/** Makes `db` available to `useDatabase()` in this component's descendants (or app-wide via `app.provide`). */
export function provideDatabase(db) {
  provide(DatabaseKey, db);
}

/** The database given to `provideDatabase` (or `app.provide(DatabaseKey, db)`) above this component. */
export function useDatabase() {
  const db = inject(DatabaseKey, null);
  if (db === null) {
    throw new Error("ferrosync/vue: useDatabase() needs provideDatabase(db) or app.provide(DatabaseKey, db) above this component");
  }
  return db;
}

function live(collection, query, map) {
  const result = shallowRef(undefined);
  // A later run's failure: thrown where the ref is read (a render: Vue's error handling,
  // onErrorCaptured / app.config.errorHandler); a later successful run clears it.
  const failure = shallowRef(undefined);
  let stop = null;
  const release = () => {
    if (stop !== null) {
      const s = stop;
      stop = null;
      s();
    }
  };
  // Restart only when the collection or the query's content changes (refs and getters followed).
  // (A setup function runs once, so the collection object itself names it here.)
  const key = computed(() => {
    const c = toValue(collection);
    return `${identity(c)}\u0000${queryKey(c, toValue(query))}`;
  });
  watch(
    key,
    () => {
      release();
      result.value = undefined;
      failure.value = undefined;
      const c = toValue(collection);
      const q = toValue(query);
      stop = startWatch(
        c,
        q === undefined ? undefined : JSON.parse(JSON.stringify(q)),
        (docs) => {
          failure.value = undefined;
          result.value = map ? map(docs) : docs;
        },
        (error) => {
          failure.value = error;
        },
      );
    },
    { immediate: true },
  );
  onScopeDispose(release);
  // Read-only to the app, and the documents stay plain objects (no reactive proxies).
  return computed(() => {
    if (failure.value !== undefined) throw failure.value;
    return result.value;
  });
}

/**
 * The live result of `collection.find(query)` as a read-only ref: `undefined` until the first
 * result. `collection` and `query` may be refs or getters; the live query restarts when the query's
 * content changes and stops when the effect scope (usually the component) is disposed.
 */
export function useLiveQuery(collection, query) {
  return live(collection, query);
}

/** The live document with this id as a read-only ref: `undefined` until known, `null` while there is none. */
export function useDocument(collection, id) {
  return live(collection, () => documentQuery(toValue(id)), firstOf);
}

/** The live sync status of `db` (default: `useDatabase()`) as a read-only ref. */
export function useSyncStatus(db) {
  const database = db ?? useDatabase();
  const status = shallowRef(database.status);
  const stop = startStatus(database, (s) => {
    status.value = s;
  });
  status.value = database.status;
  onScopeDispose(stop);
  return computed(() => status.value);
}
