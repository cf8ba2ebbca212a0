// Diagnostic, not a competitor: hand-written IndexedDB doing exactly the storage work ferrosync does
// (src/store/write.rs, meta.rs, records.rs, schema.rs), with no WASM: records { id, hlc, doc, ix,
// pend } (stamps without the node, as records store this client's: core's `Hlc::stored`) with order-preserving index keys ([2, n] numbers, [3, s] strings) under indexes on
// `ix.p<path>`, the `$tombstones` index, the `$pending` index over `[pend, id]` (the outbox: `pend`,
// the write's HLC, set on every written record), and the clock and outbox place floor (`_meta` keys
// `clock` and `clock~place`, one `getAll`) read inside every write transaction, and the clock
// written back as a bound, wall time + 100 ms, only when a stamp passes the bound this instance
// last wrote or the clock read is another writer's (core's `sync::write_clock`; writes of up to 16
// documents go out before the read returns and are re-put if it shows a later clock). ferrosync minus this column is what the WASM side (conversion, validation,
// HLC, live-query bookkeeping) costs.

import { RELAXED, done, req } from "../idb.js";

export const label = "IDB in ferrosync layout (JS)";

// Variants of the layout, for BENCHMARKS.md's analysis of where write time goes (run with
// `--only raw,layout,layout-nooutbox,layout-store`):
// - no outbox at all (what the outbox costs);
// - the outbox as a separate `_outbox` store, one row per written document (ferrosync's layout
//   before the `$pending` index; what that cost);
// - the clock read always awaited before the puts are issued;
// - the clock alone read (one `get`: what reading the place floor costs), read but not written, or
//   neither (what the clock costs each write: every request is a round trip to IndexedDB's backend);
// - `clockwrite`: the clock written back by every write, as ferrosync did before the bound
//   (`cb219e5`); `layout-bound` is the default layout, kept as a name for older commands;
// - record shapes, for what a read pays beside the document (issue 17's find row): `flat`, the
//   index keys as top-level fields (`ix_pcategory`) instead of inside an `ix` object; `nostamps`,
//   without the `hlc` and `pend` strings (no outbox index then); `docfields`, no index keys at all,
//   indexes on the document's own fields (`doc.category`, the shape Dexie reads, nested once);
//   `onestamp`, `pend` without `hlc`; `longstamps`, both with the node (36 characters, not 19:
//   ferrosync's records before `Hlc::stored`); `shortstamps` is the default layout, kept as a
//   name for older commands.
export const variants = {
  "layout-nooutbox": { label: "ferrosync layout without outbox (JS)", outbox: "none", early: 16 },
  "layout-store": { label: "ferrosync layout, outbox as a store (JS)", outbox: "store", early: 16 },
  "layout-wait": { label: "ferrosync layout, clock read always awaited (JS)", outbox: "index", early: 0 },
  "layout-clockonly": { label: "ferrosync layout, the clock alone read (JS)", outbox: "index", early: 16, clock: "get" },
  "layout-noclockwrite": { label: "ferrosync layout, clock read, not written (JS)", outbox: "index", early: 16, clock: "read" },
  "layout-noclock": { label: "ferrosync layout, no clock (JS)", outbox: "index", early: 16, clock: "none" },
  "layout-bound": { label: "ferrosync layout, clock written as a bound (JS)", outbox: "index", early: 16, clock: "bound" },
  "layout-clockwrite": { label: "ferrosync layout, clock written by every write (JS)", outbox: "index", early: 16, clock: "write" },
  "layout-flat": { label: "ferrosync layout, index keys as top-level fields (JS)", outbox: "index", early: 16, shape: "flat" },
  "layout-nostamps": { label: "ferrosync layout without hlc and pend (JS)", outbox: "none", early: 16, shape: "nostamps" },
  "layout-docfields": { label: "ferrosync layout, indexes on the document's fields (JS)", outbox: "index", early: 16, shape: "docfields" },
  "layout-onestamp": { label: "ferrosync layout, pend without hlc (JS)", outbox: "index", early: 16, shape: "onestamp" },
  "layout-shortstamps": { label: "ferrosync layout, stamps without the node (JS)", outbox: "index", early: 16 },
  "layout-pendonly": { label: "ferrosync layout, outbox index on pend alone (JS)", outbox: "index", early: 16, pendKey: "pend" },
  "layout-notombs": { label: "ferrosync layout without the $tombstones index (JS)", outbox: "index", early: 16, tombs: false },
  "layout-nativekeys": { label: "ferrosync layout, index keys as the plain values (JS)", outbox: "index", early: 16, shape: "nativekeys" },
  "layout-longstamps": { label: "ferrosync layout, stamps with the node (JS)", outbox: "index", early: 16, shape: "longstamps" },
};
const STORE = "docs";

const key = (v) => (typeof v === "number" ? [2, v] : typeof v === "string" ? [3, v] : [0]);
let counter = 0;
const tick = (prev) => {
  const ms = Date.now().toString(16).padStart(12, "0");
  counter = (counter + 1) % 0x1000000;
  const next = `${ms}-${counter.toString(16).padStart(6, "0")}-0123456789abcdef`;
  return prev !== undefined && prev >= next ? prev + "0" : next;
};

export async function open(name, variant = { outbox: "index", early: 16, clock: "bound" }) {
  const clock = variant.clock ?? "bound";
  const shape = variant.shape ?? "nested";
  // The index key of a value as this shape stores it (the document's own value for `docfields`).
  const ixKey = shape === "docfields" || shape === "nativekeys" ? (v) => v : key;
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => {
    const db = open.result;
    const st = db.createObjectStore(STORE, { keyPath: "id" });
    const at = { flat: "ix_p", docfields: "doc." }[shape] ?? "ix.p";
    st.createIndex("category", `${at}category`);
    st.createIndex("bucket", `${at}bucket`);
    if (variant.tombs !== false) st.createIndex("$tombstones", "tomb");
    if (variant.outbox === "index") st.createIndex("$pending", variant.pendKey ?? ["pend", "id"]);
    if (variant.outbox === "store") db.createObjectStore("_outbox", { keyPath: ["collection", "id"] });
    db.createObjectStore("_meta");
  };
  const db = await req(open);
  const watchers = new Set();
  let memClock;
  let ownBound; // `bound`: the clock value this instance last persisted
  const boundOf = (hlc) => {
    const b = `${(Date.now() + 100).toString(16).padStart(12, "0")}-000000-0123456789abcdef`;
    return b > hlc ? b : hlc;
  };
  const changed = () => {
    for (const w of watchers) w();
  };
  async function write(list) {
    const stores = variant.outbox === "store" ? [STORE, "_outbox", "_meta"] : [STORE, "_meta"];
    const tx = db.transaction(stores, "readwrite", RELAXED);
    const committed = done(tx);
    const st = tx.objectStore(STORE), meta = tx.objectStore("_meta");
    const outbox = variant.outbox === "store" ? tx.objectStore("_outbox") : undefined;
    let last;
    const issue = (hlc, force = false) => {
      const short = hlc.slice(0, 19);
      for (let i = 0; i < list.length; i++) {
        const doc = list[i];
        const ix = { pcategory: key(doc.category), pbucket: key(doc.bucket) };
        if (shape === "flat") {
          st.put({ id: doc.id, hlc: short, doc, ix_pcategory: ix.pcategory, ix_pbucket: ix.pbucket, pend: short });
        } else if (shape === "nostamps") {
          st.put({ id: doc.id, doc, ix });
        } else if (shape === "onestamp") {
          st.put({ id: doc.id, doc, ix, pend: short });
        } else if (shape === "nativekeys") {
          st.put({ id: doc.id, hlc: short, doc, ix: { pcategory: doc.category, pbucket: doc.bucket }, pend: short });
        } else if (shape === "longstamps") {
          st.put({ id: doc.id, hlc, doc, ix, pend: hlc });
        } else if (shape === "docfields") {
          st.put({ id: doc.id, hlc: short, doc, pend: short });
        } else if (variant.outbox === "index") {
          st.put({ id: doc.id, hlc: short, doc, ix, pend: short });
        } else {
          st.put({ id: doc.id, hlc: short, doc, ix });
          if (variant.outbox === "store") outbox.put({ collection: STORE, id: doc.id, hlc, deleted: false });
        }
      }
      if (clock === "bound") {
        if (force || ownBound === undefined || hlc > ownBound) meta.put((ownBound = boundOf(hlc)), "clock");
      } else if (clock !== "read") meta.put(hlc, "clock");
      last = memClock = hlc;
    };
    // Reads the persisted clock (with the place floor, by one `getAll`, unless the variant says
    // otherwise) and calls `then` with it.
    const readClock = (then) => {
      if (clock === "get") {
        const r = meta.get("clock");
        r.onsuccess = () => then(r.result);
      } else {
        const r = meta.getAll(IDBKeyRange.bound("clock", "clock~place"));
        r.onsuccess = () => then(r.result[0]);
      }
    };
    if (clock === "none") {
      issue(tick(memClock));
    } else if (list.length <= variant.early) {
      const owned = ownBound;
      readClock((c) => {
        const theirs = clock === "bound" && c !== undefined && c !== owned;
        if (theirs) issue(tick(c >= last ? c : memClock), true);
        else if (clock !== "bound" && c !== undefined && c >= last) issue(tick(c));
      });
      issue(tick(memClock));
    } else {
      issue(tick(await new Promise((ok) => readClock(ok))));
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
      const recs = await req(db.transaction(STORE, "readonly").objectStore(STORE).index("category").getAll(ixKey(cat)));
      return recs.map(docOf);
    },
    async count() {
      const st = db.transaction(STORE, "readonly").objectStore(STORE);
      const tombs = variant.tombs === false ? Promise.resolve(0) : req(st.index("$tombstones").count());
      const [all, dead] = await Promise.all([req(st.count()), tombs]);
      return all - dead;
    },
    watchBucket(bucket, cb) {
      let active = true;
      const run = async () => {
        const recs = await req(db.transaction(STORE, "readonly").objectStore(STORE).index("bucket").getAll(ixKey(bucket)));
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
