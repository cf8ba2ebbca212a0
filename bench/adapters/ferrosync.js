// ferrosync through its public JS API (the release package built by scripts/pkg.py), served under
// /pkg/; `make("/pkg-alt")` gives the same adapter over a second build (bench/run.mjs --alt DIR), to
// compare a change against the baseline in one run.

export function make(base, label) {
  let loaded;
  const load = () =>
    (loaded ??= import(`${base}/ferrosync.js`).then(async (m) => {
      await m.default();
      return m.Database;
    }));
  return {
    label,
    async open(name) {
      const Database = await load();
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
    },
    async destroy(name) {
      const Database = await load();
      await Database.destroy(name);
    },
  };
}

const main = make("/pkg", "ferrosync");
export const label = main.label;
export const open = main.open;
export const destroy = main.destroy;
