// Internal to the framework bindings (not a package export): the one place that opens and closes
// ferrosync subscriptions, and the sources every binding builds on. A source is ref-counted: the
// first listener opens one `watch` (or `onStatus`), the last one leaving closes it, and the last
// value is kept so that a framework can read it synchronously (React's getSnapshot, Svelte's
// store contract). Nothing here imports a framework or ferrosync itself: the bindings work with
// whichever build (`ferrosync`, `ferrosync/bundler`) created the collection or database.

/** Subscriptions opened through the bindings and not yet closed. */
const open = new Set();
const stats = { opened: 0, stillActive: 0 };

/** Closes a ferrosync subscription once: unsubscribe, check it really stopped, free its memory. */
function close(sub) {
  if (!open.delete(sub)) return;
  sub.unsubscribe();
  // A Subscription reports `active`; a StatusSubscription has no such getter.
  if (sub.active === true) stats.stillActive++;
  if (typeof sub.free === "function") sub.free();
}

function track(sub) {
  open.add(sub);
  stats.opened++;
  return () => close(sub);
}

/**
 * Starts `collection.watch(query, onDocs, onError, onEnd)`; returns its stop function. Throws what
 * `watch` throws. `onError` gets a later run's `FerrosyncError` (the watch keeps running), `onEnd`
 * is called once when the database is closed or deleted.
 */
export function startWatch(collection, query, onDocs, onError, onEnd) {
  if (collection == null || typeof collection.watch !== "function") {
    throw new TypeError(`ferrosync: expected a Collection (from db.collection(name)), got ${collection === null ? "null" : typeof collection}`);
  }
  return track(collection.watch(query, onDocs, onError, onEnd));
}

/** Starts `db.onStatus(onStatus)`; returns its stop function. */
export function startStatus(db, onStatus) {
  if (db == null || typeof db.onStatus !== "function") {
    throw new TypeError(`ferrosync: expected a Database, got ${db === null ? "null" : typeof db}`);
  }
  return track(db.onStatus(onStatus));
}

/** See `subscriptionStats` in observable.d.ts. */
export function subscriptionStats() {
  return { open: open.size, opened: stats.opened, stillActive: stats.stillActive };
}

/**
 * A stable string for a query's content, so that an equal query object made anew on every render
 * does not restart the live query. Key order is kept (it is meaningful in `orderBy`).
 */
export function queryKey(collection, query) {
  return `${collection?.name}\u0000${query === undefined ? "" : JSON.stringify(query)}`;
}

const identities = new WeakMap();
let nextIdentity = 1;

/** A number naming an object for as long as it lives (0 for none), to put its identity in a key. */
export function identity(object) {
  if (object === null || object === undefined) return 0;
  let id = identities.get(object);
  if (id === undefined) {
    id = nextIdentity++;
    identities.set(object, id);
  }
  return id;
}

/** The id query of one document. */
export function documentQuery(id) {
  return { where: { id }, limit: 1 };
}

/**
 * A ref-counted source. `start(set, fail)` opens the underlying subscription and returns its stop
 * function; `state` is `{ value, error }`, replaced (never mutated) on every change so it can be
 * compared by identity. `fail(error)` (a later run failed) keeps the last value beside the error;
 * a later successful run clears it. A source whose database closed keeps its last value.
 */
export function createSource(start, initial) {
  let state = { value: initial, error: undefined };
  const listeners = new Set();
  let stop = null;
  const emit = (next) => {
    state = next;
    for (const l of [...listeners]) l();
  };
  const source = {
    get: () => state,
    subscribe(listener) {
      listeners.add(listener);
      if (stop === null && state.error === undefined) {
        try {
          stop = start(
            (value) => emit({ value, error: undefined }),
            (error) => emit({ value: state.value, error }),
          );
        } catch (error) {
          emit({ value: state.value, error });
        }
      }
      return () => {
        if (!listeners.delete(listener)) return;
        if (listeners.size === 0 && stop !== null) {
          const s = stop;
          stop = null;
          s();
        }
      };
    },
  };
  return source;
}

/** A source of `collection.watch(query)`'s results (`undefined` until the first one). */
export function querySource(collection, query, initial) {
  return createSource((set, fail) => startWatch(collection, query, set, fail), initial);
}

/** A source of the first document of an id query: the document, `null` when absent. */
export function firstOf(docs) {
  return docs === undefined ? undefined : (docs[0] ?? null);
}

/** A source of `db.status` (`null` without sync), updated by `onStatus`. */
export function statusSource(db) {
  const source = createSource((set) => {
    const stop = startStatus(db, set);
    // The status may have changed between the first read and the subscription.
    set(db.status);
    return stop;
  }, db.status);
  return source;
}
