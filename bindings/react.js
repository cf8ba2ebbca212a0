// ferrosync/react: hooks over useSyncExternalStore, so a render never mixes two results (no
// tearing under concurrent rendering), plus a provider for the database.
import { createContext, createElement, useContext, useMemo, useRef, useSyncExternalStore } from "react";
import { documentQuery, firstOf, identity, queryKey, querySource, startWatch, statusSource } from "./source.js";

const DatabaseContext = createContext(null);

/** Makes `database` available to `useDatabase()`, `useCollection()` and `useSyncStatus()` below it. */
export function FerrosyncProvider({ database, children }) {
  return createElement(DatabaseContext.Provider, { value: database }, children);
}

/** The database of the nearest `<FerrosyncProvider>`. */
export function useDatabase() {
  const db = useContext(DatabaseContext);
  if (db === null || db === undefined) {
    throw new Error("ferrosync/react: useDatabase() needs a <FerrosyncProvider database={db}> above this component");
  }
  return db;
}

/** `db.collection(name)` of the provider's database, the same object on every render. */
export function useCollection(name) {
  const db = useDatabase();
  return useMemo(() => db.collection(name), [db, name]);
}

// Suspense: the first result of a query is fetched by a short watch outside any component (a
// suspended component keeps no state), then handed to the component's own source when it renders.
const pending = new Map();
const KEEP_MS = 5000;

function firstResult(collection, query, key) {
  let entry = pending.get(key);
  if (entry === undefined) {
    entry = { status: "pending", value: undefined, error: undefined, promise: undefined };
    entry.promise = new Promise((resolve) => {
      const settle = (status, value, error) => {
        Object.assign(entry, { status, value, error });
        setTimeout(() => {
          if (pending.get(key) === entry) pending.delete(key);
        }, KEEP_MS);
        resolve();
      };
      let stop = null;
      let done = false;
      try {
        const first = (status, value, error) => {
          if (done) return;
          done = true;
          settle(status, value, error);
          // Called from inside a watch callback: stop after it returns.
          queueMicrotask(() => stop?.());
        };
        stop = startWatch(
          collection,
          query,
          (docs) => first("done", docs),
          (error) => first("error", undefined, error),
        );
      } catch (error) {
        settle("error", undefined, error);
      }
    });
    pending.set(key, entry);
  }
  if (entry.status === "pending") throw entry.promise;
  if (entry.status === "error") throw entry.error;
  return entry.value;
}

function useSource(key, create) {
  const ref = useRef(null);
  if (ref.current === null || ref.current.key !== key) {
    ref.current = { key, source: create() };
  }
  const { source } = ref.current;
  const state = useSyncExternalStore(source.subscribe, source.get, source.get);
  if (state.error !== undefined) throw state.error;
  return state.value;
}

/**
 * The live result of `collection.find(query)`: `undefined` until the first result (or, with
 * `{ suspense: true }`, suspends until it), then re-rendered after every change that alters it.
 * The query is compared by content, so an inline object literal does not restart it.
 */
export function useLiveQuery(collection, query, options) {
  // By the collection's name, not its object (`db.collection()` in a render makes a new one each
  // time), and by the provider's database, so that switching databases restarts the query.
  const key = `${identity(useContext(DatabaseContext))}\u0000${queryKey(collection, query)}`;
  const suspense = options?.suspense === true;
  return useSource(key, () => {
    const initial = suspense ? firstResult(collection, query, key) : undefined;
    return querySource(collection, query, initial);
  });
}

/** The live document with this id: `undefined` until known, `null` while there is none. */
export function useDocument(collection, id, options) {
  return firstOf(useLiveQuery(collection, documentQuery(id), options));
}

const statusSources = new WeakMap();

/** The live sync status of `db` (default: the provider's), `null` for a database without sync. */
export function useSyncStatus(db) {
  const fromContext = useContext(DatabaseContext);
  const database = db ?? fromContext;
  if (database === null || database === undefined) {
    throw new Error("ferrosync/react: useSyncStatus() needs a database argument or a <FerrosyncProvider>");
  }
  let source = statusSources.get(database);
  if (source === undefined) {
    source = statusSource(database);
    statusSources.set(database, source);
  }
  const state = useSyncExternalStore(source.subscribe, source.get, source.get);
  if (state.error !== undefined) throw state.error;
  return state.value;
}
