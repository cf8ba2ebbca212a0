// Hand-written IndexedDB: one transaction per call (a batch is one transaction), requests all issued
// at once, relaxed durability like the two libraries. `watchBucket` is the minimal fair equivalent
// of a live query: after each committed write through this handle, re-run the query and call back
// (no change detection, no cross-tab notice).

import { RELAXED, done, req } from "../idb.js";

export const label = "raw IndexedDB";
const STORE = "docs";

export async function open(name) {
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => {
    const st = open.result.createObjectStore(STORE, { keyPath: "id" });
    st.createIndex("category", "category");
    st.createIndex("bucket", "bucket");
  };
  const db = await req(open);
  const watchers = new Set();
  const changed = () => {
    for (const w of watchers) w();
  };
  return {
    async bulkPut(list) {
      const tx = db.transaction(STORE, "readwrite", RELAXED);
      const st = tx.objectStore(STORE);
      for (let i = 0; i < list.length; i++) st.put(list[i]);
      await done(tx);
      changed();
    },
    async put(doc) {
      const tx = db.transaction(STORE, "readwrite", RELAXED);
      tx.objectStore(STORE).put(doc);
      await done(tx);
      changed();
    },
    get(id) {
      return req(db.transaction(STORE, "readonly").objectStore(STORE).get(id));
    },
    findCategory(cat) {
      return req(db.transaction(STORE, "readonly").objectStore(STORE).index("category").getAll(cat));
    },
    count() {
      return req(db.transaction(STORE, "readonly").objectStore(STORE).count());
    },
    watchBucket(bucket, cb) {
      let active = true;
      const run = async () => {
        const docs = await req(db.transaction(STORE, "readonly").objectStore(STORE).index("bucket").getAll(bucket));
        if (active) cb(docs);
      };
      watchers.add(run);
      run();
      return () => {
        active = false;
        watchers.delete(run);
      };
    },
    close: () => db.close(),
  };
}

export async function destroy(name) {
  await req(indexedDB.deleteDatabase(name));
}
