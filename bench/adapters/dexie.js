// Dexie 4 (npm `dexie`, from tools/node_modules), its documented API; live queries via liveQuery.
// Relaxed durability like the other two (Dexie leaves it to the browser unless told).
import Dexie, { liveQuery } from "/vendor/dexie.mjs";

export const label = "Dexie " + Dexie.semVer;

// Diagnostic variant (`--only dexie-nocache`): Dexie's query cache off (`cache: "disabled"`), so a
// live query re-reads IndexedDB after each committed write instead of patching its cached result
// optimistically (before the write commits), which is what Dexie 4 does by default.
export const variants = {
  "dexie-nocache": { label: "Dexie, cache disabled", options: { cache: "disabled" } },
};

export async function open(name, variant = { options: {} }) {
  const db = new Dexie(name, { chromeTransactionDurability: "relaxed", ...variant.options });
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
