// Dexie 4 (npm `dexie`, from tools/node_modules), its documented API; live queries via liveQuery.
// Relaxed durability like the other two (Dexie leaves it to the browser unless told).
import Dexie, { liveQuery } from "/vendor/dexie.mjs";

export const label = "Dexie " + Dexie.semVer;

export async function open(name) {
  const db = new Dexie(name, { chromeTransactionDurability: "relaxed" });
  db.version(1).stores({ docs: "id, category, bucket" });
  await db.open();
  const docs = db.table("docs");
  return {
    bulkPut: (list) => docs.bulkPut(list),
    put: (doc) => docs.put(doc),
    get: (id) => docs.get(id),
    findCategory: (cat) => docs.where("category").equals(cat).toArray(),
    count: () => docs.count(),
    watchBucket(bucket, cb) {
      const sub = liveQuery(() => docs.where("bucket").equals(bucket).toArray()).subscribe({
        next: cb,
        error: (e) => console.error("liveQuery failed", e),
      });
      return () => sub.unsubscribe();
    },
    close: () => db.close(),
  };
}

export async function destroy(name) {
  await Dexie.delete(name);
}
