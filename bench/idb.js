// Promise wrappers of IndexedDB requests and transactions, shared by the hand-written adapters.

/** Resolves with a request's result, rejects with its error. */
export function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** Resolves when a transaction commits, rejects when it aborts. */
export function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = tx.onerror = () => reject(tx.error);
  });
}

/** The durability every benchmarked library is given. */
export const RELAXED = { durability: "relaxed" };
