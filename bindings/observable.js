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

/** One Observable over a start function `(next) => stop`; each subscribe starts its own. */
class FerrosyncObservable {
  #start;

  constructor(start) {
    this.#start = start;
  }

  subscribe(nextOrObserver, error, complete) {
    const observer = toObserver(nextOrObserver, error, complete);
    let closed = false;
    let stop = null;
    const subscription = {
      get closed() {
        return closed;
      },
      unsubscribe() {
        if (closed) return;
        closed = true;
        if (stop) {
          const s = stop;
          stop = null;
          s();
        }
      },
    };
    try {
      stop = this.#start((value) => {
        if (!closed && typeof observer.next === "function") observer.next(value);
      });
    } catch (e) {
      closed = true;
      // The contract: errors go to `error`; without an error handler, throw here rather than lose it.
      if (typeof observer.error === "function") observer.error(e);
      else throw e;
    }
    return subscription;
  }

  [OBSERVABLE]() {
    return this;
  }
}
if (OBSERVABLE !== "@@observable") {
  FerrosyncObservable.prototype["@@observable"] = FerrosyncObservable.prototype[OBSERVABLE];
}

/** The results of `collection.watch(query, ...)` as an Observable. */
export function liveQuery(collection, query) {
  return new FerrosyncObservable((next) => startWatch(collection, query, next));
}

/** The document with this id (`null` when absent) as an Observable. */
export function liveDocument(collection, id) {
  return new FerrosyncObservable((next) => startWatch(collection, documentQuery(id), (docs) => next(firstOf(docs))));
}

/** `db.status` now and after every change, as an Observable (`null` for a database without sync). */
export function syncStatus(db) {
  return new FerrosyncObservable((next) => {
    const stop = startStatus(db, next);
    next(db.status);
    return stop;
  });
}
