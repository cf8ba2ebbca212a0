// Diagnostic, not a competitor: hand-written IndexedDB doing exactly the storage work ferrosync does
// (src/store/write.rs, records.rs, schema.rs), with no WASM: records { id, hlc, doc, ix } with
// order-preserving index keys ([2, n] numbers, [3, s] strings) under indexes on `ix.p<path>`, the
// `$tombstones` index, one `_outbox` row per written document, and the clock read and written back
// in `_meta` inside every write transaction. ferrosync minus this column is what the WASM side
// (conversion, validation, HLC, live-query bookkeeping) costs.

export const label = "IDB in ferrosync layout (JS)";

// Variants of the layout, for BENCHMARKS.md's analysis of where bulk insert time goes (run with
// `--only raw,layout,layout-nooutbox,layout-pending`):
// - no outbox rows at all (what the outbox costs);
// - the outbox as an index instead of a store: each record carries `pend` (its pending HLC) and an
//   index on `pend` lists the documents to push, so one put per document maintains both.
export const variants = {
  "layout-nooutbox": { label: "ferrosync layout without outbox (JS)", outbox: "none" },
  "layout-pending": { label: "ferrosync layout, outbox as an index (JS)", outbox: "index" },
  // The clock read not awaited: the puts go out at once with the in-memory clock, and the read's
  // success handler (still inside the transaction) re-puts them if the persisted clock was ahead
  // (another tab wrote meanwhile). Same committed result, one round trip less per write.
  "layout-nowait": { label: "ferrosync layout, clock read not awaited (JS)", outbox: "store", nowait: true },
  // Both: what ferrosync's storage work could cost with an outbox index and no clock wait.
  "layout-lean": { label: "ferrosync layout, outbox index + clock not awaited (JS)", outbox: "index", nowait: true },
};
const STORE = "docs";
const RELAXED = { durability: "relaxed" };

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = tx.onerror = () => reject(tx.error);
  });
}

const key = (v) => (typeof v === "number" ? [2, v] : typeof v === "string" ? [3, v] : [0]);
let counter = 0;
const tick = (prev) => {
  const ms = Date.now().toString(16).padStart(12, "0");
  counter = (counter + 1) % 0x1000000;
  const next = `${ms}-${counter.toString(16).padStart(6, "0")}-0123456789abcdef`;
  return prev !== undefined && prev >= next ? prev + "0" : next;
};

export async function open(name, variant = { outbox: "store" }) {
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => {
    const db = open.result;
    const st = db.createObjectStore(STORE, { keyPath: "id" });
    st.createIndex("category", "ix.pcategory");
    st.createIndex("bucket", "ix.pbucket");
    st.createIndex("$tombstones", "tomb");
    if (variant.outbox === "index") st.createIndex("$pending", "pend");
    db.createObjectStore("_outbox", { keyPath: ["collection", "id"] });
    db.createObjectStore("_meta");
  };
  const db = await req(open);
  const watchers = new Set();
  let memClock;
  const changed = () => {
    for (const w of watchers) w();
  };
  async function write(list) {
    const tx = db.transaction([STORE, "_outbox", "_meta"], "readwrite", RELAXED);
    const committed = done(tx);
    const st = tx.objectStore(STORE), outbox = tx.objectStore("_outbox"), meta = tx.objectStore("_meta");
    let last;
    const issue = (hlc) => {
      for (let i = 0; i < list.length; i++) {
        const doc = list[i];
        const ix = { pcategory: key(doc.category), pbucket: key(doc.bucket) };
        if (variant.outbox === "index") {
          st.put({ id: doc.id, hlc, doc, ix, pend: hlc });
        } else {
          st.put({ id: doc.id, hlc, doc, ix });
          if (variant.outbox === "store") outbox.put({ collection: STORE, id: doc.id, hlc, deleted: false });
        }
      }
      meta.put(hlc, "clock");
      last = memClock = hlc;
    };
    if (variant.nowait) {
      const read = meta.get("clock");
      issue(tick(memClock));
      read.onsuccess = () => {
        if (read.result !== undefined && read.result >= last) issue(tick(read.result));
      };
    } else {
      issue(tick(await req(meta.get("clock"))));
    }
    await committed;
    changed();
  }
  const docOf = (r) => (r === undefined || r.doc === undefined ? undefined : r.doc);
  return {
    bulkPut: write,
    put: (doc) => write([doc]),
    async get(id) {
      return docOf(await req(db.transaction(STORE, "readonly").objectStore(STORE).get(id)));
    },
    async findCategory(cat) {
      const recs = await req(db.transaction(STORE, "readonly").objectStore(STORE).index("category").getAll(key(cat)));
      return recs.map(docOf);
    },
    async count() {
      const st = db.transaction(STORE, "readonly").objectStore(STORE);
      const [all, dead] = await Promise.all([req(st.count()), req(st.index("$tombstones").count())]);
      return all - dead;
    },
    watchBucket(bucket, cb) {
      let active = true;
      const run = async () => {
        const recs = await req(db.transaction(STORE, "readonly").objectStore(STORE).index("bucket").getAll(key(bucket)));
        if (active) cb(recs.map(docOf));
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
