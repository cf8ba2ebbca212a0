// ferrosync through its public JS API (the release package built by scripts/pkg.py).
import init, { Database } from "/pkg/ferrosync.js";

export const label = "ferrosync";
let ready;

export async function open(name) {
  ready ??= init();
  await ready;
  const db = await Database.open({ name, collections: { docs: { indexes: ["category", "bucket"] } } });
  const docs = db.collection("docs");
  return {
    bulkPut: (list) => docs.bulkPut(list),
    put: (doc) => docs.put(doc),
    get: (id) => docs.get(id),
    findCategory: (cat) => docs.find({ where: { category: cat } }),
    count: () => docs.count(),
    watchBucket(bucket, cb) {
      const sub = docs.watch({ where: { bucket } }, cb);
      return () => sub.unsubscribe();
    },
    close: () => db.close(),
  };
}

export async function destroy(name) {
  ready ??= init();
  await ready;
  await Database.destroy(name);
}
