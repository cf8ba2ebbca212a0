// Hand-written IndexedDB for bench/scale.js: what a careful developer writes for each query
// (getAll with a count on the index, a key range past the last key for the next page, a bounded
// read for the compound index), relaxed durability. Its live queries are the minimal fair
// equivalent: after each committed write through this handle, run the query again and call back
// (no change detection: every watcher is called on every write).

import { RELAXED, done, req } from "./idb.js";

export const label = "raw IndexedDB";
const STORE = "docs";

export async function open(name) {
  const o = indexedDB.open(name, 1);
  o.onupgradeneeded = () => {
    const st = o.result.createObjectStore(STORE, { keyPath: "id" });
    st.createIndex("category", "category");
    // IndexedDB has no boolean keys: `done` is indexed as 0/1 in a shadow field.
    st.createIndex("open", "_open");
    st.createIndex("category_title", ["category", "title"]);
  };
  const db = await req(o);
  const watchers = new Set();
  const changed = () => {
    for (const w of watchers) w();
  };
  const index = (n) => db.transaction(STORE, "readonly").objectStore(STORE).index(n);
  const strip = (docs) => {
    for (const d of docs) delete d._open;
    return docs;
  };
  const withShadow = (d) => ({ ...d, _open: d.done ? 0 : 1 });
  const titles = (c, lower = "", open = false) =>
    IDBKeyRange.bound([c, lower], [c, []], open, false);
  const live = (query, cb) => {
    let active = true;
    const run = async () => {
      const docs = await query();
      if (active) cb(docs);
    };
    watchers.add(run);
    run();
    return () => {
      active = false;
      watchers.delete(run);
    };
  };
  return {
    async bulkPut(list) {
      const tx = db.transaction(STORE, "readwrite", RELAXED);
      const st = tx.objectStore(STORE);
      for (let i = 0; i < list.length; i++) st.put(withShadow(list[i]));
      await done(tx);
      changed();
    },
    async put(doc) {
      const tx = db.transaction(STORE, "readwrite", RELAXED);
      tx.objectStore(STORE).put(withShadow(doc));
      await done(tx);
      changed();
    },
    first50: async (c) => strip(await req(index("category").getAll(c, 50))),
    // Newest first: a cursor walking the category backwards, 50 values.
    last50: (c) =>
      new Promise((resolve, reject) => {
        const out = [];
        const r = index("category").openCursor(IDBKeyRange.only(c), "prev");
        r.onerror = () => reject(r.error);
        r.onsuccess = () => {
          const cur = r.result;
          if (!cur || out.length === 50) return resolve(strip(out));
          out.push(cur.value);
          cur.continue();
        };
      }),
    all: async (c) => strip(await req(index("category").getAll(c))),
    byTitle: async (c) => strip(await req(index("category_title").getAll(titles(c), 50))),
    // No index on the sort field: every match read, sorted, sliced.
    unindexed: async (c) =>
      strip(await req(index("category").getAll(c)))
        .sort((a, b) => a.owner.score - b.owner.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .slice(0, 50),
    // Offset: a cursor advanced past 450 entries, then 50 read.
    page10: (c) =>
      new Promise((resolve, reject) => {
        const out = [];
        const r = index("category_title").openCursor(titles(c));
        let skipped = false;
        r.onerror = () => reject(r.error);
        r.onsuccess = () => {
          const cur = r.result;
          if (!cur || out.length === 50) return resolve(strip(out));
          if (!skipped) {
            skipped = true;
            return cur.advance(450);
          }
          out.push(cur.value);
          cur.continue();
        };
      }),
    // After: a key range starting just past the last title of page 9 (titles here are unique
    // per category; a general client would also carry the id).
    page10After: async (c, last) =>
      strip(await req(index("category_title").getAll(titles(c, last.title, true), 50))),
    watchFirst50: (c, cb) => live(async () => strip(await req(index("category").getAll(c, 50))), cb),
    watchOpen: (cb) => live(async () => strip(await req(index("open").getAll(1))), cb),
    close: () => db.close(),
  };
}

export async function destroy(name) {
  await req(indexedDB.deleteDatabase(name));
}
