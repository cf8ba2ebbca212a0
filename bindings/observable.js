// ferrosync/observable: live queries and the sync status as Observables (the TC39 proposal's
// contract, which RxJS's `from()`, Svelte's `$store` and most reactive libraries accept).
import { documentQuery, firstOf, startStatus, startWatch, subscriptionStats } from "./source.js";

export { subscriptionStats };

// RxJS looks for `Symbol.observable` when a polyfill defines it, else for "@@observable".
const OBSERVABLE = (typeof Symbol === "function" && Symbol.observable) || "@@observable";

function toObserver(nextOrObserver, error, complete) {
  if (nextOrObserver === null || nextOrObserver === undefined || typeof nextOrObserver === "function") {
    return { next: nextOrObserver ?? undefined, error, complete };
  }
  if (typeof nextOrObserver === "object") return nextOrObserver;
  throw new TypeError("subscribe expects a function or an observer object");
}

/** Reports an error no observer handles, as RxJS does (uncaught, on a fresh stack). */
function report(error) {
  setTimeout(() => {
    throw error;
  });
}

/**
 * One Observable over a start function `(next, error, complete) => stop`; each subscribe starts its
 * own. After `error` or `complete` (each at most once) the subscription is closed: the underlying
 * watch is stopped and nothing more is delivered.
 */
class FerrosyncObservable {
  #start;

  constructor(start) {
    this.#start = start;
  }

  subscribe(nextOrObserver, error, complete) {
    const observer = toObserver(nextOrObserver, error, complete);
    let closed = false;
    let stop = null;
    const release = () => {
      if (stop) {
        const s = stop;
        stop = null;
        s();
      }
    };
    const subscription = {
      get closed() {
        return closed;
      },
      unsubscribe() {
        if (closed) return;
        closed = true;
        release();
      },
    };
    const fail = (e) => {
      if (closed) return;
      closed = true;
      release();
      // The contract: errors go to `error`; without an error handler, report it rather than lose it.
      if (typeof observer.error === "function") observer.error(e);
      else report(e);
    };
    const end = () => {
      if (closed) return;
      closed = true;
      release();
      if (typeof observer.complete === "function") observer.complete();
    };
    try {
      stop = this.#start(
        (value) => {
          if (!closed && typeof observer.next === "function") observer.next(value);
        },
        fail,
        end,
      );
    } catch (e) {
      closed = true;
      // Thrown by `subscribe` itself (an invalid query): to `error`, else to the caller.
      if (typeof observer.error === "function") observer.error(e);
      else throw e;
    }
    // Ended while starting: stop what `start` returned.
    if (closed) release();
    return subscription;
  }

  [OBSERVABLE]() {
    return this;
  }
}
if (OBSERVABLE !== "@@observable") {
  FerrosyncObservable.prototype["@@observable"] = FerrosyncObservable.prototype[OBSERVABLE];
}

/**
 * The results of `collection.watch(query, ...)` as an Observable: a failed run goes to `error`
 * (the Observable ends there), the database's close or deletion to `complete`.
 */
export function liveQuery(collection, query) {
  return new FerrosyncObservable((next, error, complete) => startWatch(collection, query, next, error, complete));
}

/** The document with this id (`null` when absent) as an Observable; ends as `liveQuery` does. */
export function liveDocument(collection, id) {
  return new FerrosyncObservable((next, error, complete) =>
    startWatch(collection, documentQuery(id), (docs) => next(firstOf(docs)), error, complete),
  );
}

/** `db.status` now and after every change, as an Observable (`null` for a database without sync). */
export function syncStatus(db) {
  return new FerrosyncObservable((next) => {
    const stop = startStatus(db, next);
    next(db.status);
    return stop;
  });
}
