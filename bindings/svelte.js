// ferrosync/svelte: readable stores (the Svelte store contract, the same in Svelte 3, 4 and 5):
// `subscribe(run)` calls `run` at once with the current value, then on every change, and returns
// the unsubscriber. The first subscriber starts the live query, the last one leaving stops it.
// No import of svelte: the contract is plain JavaScript.
import { documentQuery, firstOf, querySource, statusSource } from "./source.js";

function readable(source, map) {
  return {
    subscribe(run) {
      const read = () => {
        const { value, error } = source.get();
        if (error !== undefined) throw error;
        return map ? map(value) : value;
      };
      let last = {};
      let started = false;
      let reported;
      const push = () => {
        let value;
        try {
          value = read();
        } catch (e) {
          // The store contract has no error channel: an error while subscribing is thrown by
          // `subscribe`; a later run's failure is reported (once) and the last value stays.
          if (!started) throw e;
          if (e !== reported) {
            reported = e;
            setTimeout(() => {
              throw e;
            });
          }
          return;
        }
        if (value !== last) {
          last = value;
          run(value);
        }
      };
      const unsubscribe = source.subscribe(push);
      try {
        push();
      } catch (e) {
        unsubscribe();
        throw e;
      }
      started = true;
      return unsubscribe;
    },
  };
}

/** The live result of `collection.find(query)`: `undefined` until the first result. */
export function liveQuery(collection, query) {
  return readable(querySource(collection, query));
}

/** The live document with this id: `undefined` until known, `null` while there is none. */
export function liveDocument(collection, id) {
  return readable(querySource(collection, documentQuery(id)), firstOf);
}

/** The live sync status of `db` (`null` for a database without sync). */
export function syncStatus(db) {
  return readable(statusSource(db));
}
