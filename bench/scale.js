// Queries and live windows at scale (issue 19), run in the page bench/scale.html by
// `bash bench/run.sh --scale`: ferrosync, hand-written IndexedDB and Dexie on the same N documents
// (default 100,000 of ~1 KB, docs.js), one library after the other in one page, each on a database
// created for it and deleted after it.
//
// Fields (docs.js): `category` "c00".."c99" selects 1% (indexed), `done` is false for 2 in 3
// (indexed), `title` is not indexed alone; a compound index [category, title] serves "category c07
// by title". Rows (median of `reps` timed runs after one warm-up, per library):
//   first50      where category = c07, limit 50 (id order)
//   last50       where category = c07, order by id descending, limit 50 (a backward walk; raw: a
//                `prev` cursor, Dexie: reverse().limit())
//   all          where category = c07, every match (1,000 at 100k)
//   byTitle      where category = c07, order by title, limit 50 (the compound index; raw walks it,
//                Dexie reads it with between().limit())
//   unindexed    where category = c07, order by owner.score (no index: every match read, a top-k)
//   page10       page 10 (documents 451..500) of "category c07 by title": offset 450 vs `after`
//                (ferrosync's `after` row is `page10After`; raw uses a key range past the last key)
//   win*         a live query on "the first 50 of category c07": a write to a document of the
//                window (its title) timed from the write call to the callback that shows it
//                (p50/p95 over `writes` writes); a write to a document outside the window (category
//                c08): its callback calls are counted (must be 0 for ferrosync and Dexie)
//   big*         a live query on `done: false` (2/3 of N): write-to-callback p50/p95
// Every result is checked (counts, first and last ids, orders) so a fast wrong answer fails the run.

import { makeDoc, makeDocs } from "./docs.js";
import * as raw from "./scale-raw.js";

const now = () => performance.now();
const gc = () => (typeof globalThis.gc === "function" ? globalThis.gc() : undefined);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

function median(xs) {
  const a = xs.slice().sort((x, y) => x - y);
  if (!a.length) return null;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

function percentile(xs, p) {
  const a = xs.slice().sort((x, y) => x - y);
  if (!a.length) return null;
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
}

const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const byTitle = (a, b) => cmp(a.title, b.title) || cmp(a.id, b.id);
const byScore = (a, b) => a.owner.score - b.owner.score || cmp(a.id, b.id);

// ------------------------------------------------------------------------------------------------
// Adapters: each opens a database with the same indexes and answers the same queries.

async function ferrosync(pkg = "/pkg", label = "ferrosync") {
  const m = await import(`${pkg}/ferrosync.js`);
  await m.default();
  const { Database } = m;
  return {
    label,
    async open(name) {
      const db = await Database.open({
        name,
        collections: { docs: { indexes: ["category", "done", ["category", "title"]] } },
      });
      const docs = db.collection("docs");
      return {
        bulkPut: (list) => docs.bulkPut(list),
        put: (doc) => docs.put(doc),
        first50: (c) => docs.find({ where: { category: c }, limit: 50 }),
        last50: (c) => docs.find({ where: { category: c }, orderBy: { id: "desc" }, limit: 50 }),
        all: (c) => docs.find({ where: { category: c } }),
        byTitle: (c) => docs.find({ where: { category: c }, orderBy: { title: "asc" }, limit: 50 }),
        unindexed: (c) => docs.find({ where: { category: c }, orderBy: { "owner.score": "asc" }, limit: 50 }),
        page10: (c) => docs.find({ where: { category: c }, orderBy: { title: "asc" }, offset: 450, limit: 50 }),
        page10After: (c, last) =>
          docs.find({ where: { category: c }, orderBy: { title: "asc" }, after: last, limit: 50 }),
        watchFirst50(c, cb) {
          const sub = docs.watch({ where: { category: c }, limit: 50 }, cb);
          return () => sub.unsubscribe();
        },
        watchOpen(cb) {
          const sub = docs.watch({ where: { done: false } }, cb);
          return () => sub.unsubscribe();
        },
        close: () => db.close(),
      };
    },
    destroy: (name) => Database.destroy(name),
  };
}

async function dexie() {
  const { default: Dexie, liveQuery } = await import("/vendor/dexie.mjs");
  return {
    label: "Dexie " + Dexie.semVer,
    async open(name) {
      const db = new Dexie(name, { chromeTransactionDurability: "relaxed" });
      db.version(1).stores({ docs: "id, category, done, [category+title]" });
      await db.open();
      const docs = db.table("docs");
      const range = (c) => docs.where("[category+title]").between([c, Dexie.minKey], [c, Dexie.maxKey]);
      const live = (query, cb) => {
        const sub = liveQuery(query).subscribe({ next: cb, error: (e) => console.error("liveQuery failed", e) });
        return () => sub.unsubscribe();
      };
      return {
        bulkPut: (list) => docs.bulkPut(list),
        put: (doc) => docs.put(doc),
        first50: (c) => docs.where("category").equals(c).limit(50).toArray(),
        last50: (c) => docs.where("category").equals(c).reverse().limit(50).toArray(),
        all: (c) => docs.where("category").equals(c).toArray(),
        byTitle: (c) => range(c).limit(50).toArray(),
        // Dexie's documented way: sortBy reads every match, then the page is sliced.
        unindexed: async (c) => (await docs.where("category").equals(c).sortBy("owner.score")).slice(0, 50),
        page10: (c) => range(c).offset(450).limit(50).toArray(),
        page10After: null,
        // Dexie has no boolean keys: `done: false` is not indexable, so the 2/3 query is a filter.
        watchFirst50: (c, cb) => live(() => docs.where("category").equals(c).limit(50).toArray(), cb),
        watchOpen: (cb) => live(() => docs.filter((d) => d.done === false).toArray(), cb),
        close: () => db.close(),
      };
    },
    destroy: (name) => Dexie.delete(name),
  };
}

// `ferrosync-alt`: a second build (`bench/run.sh --scale --alt DIR`), to A/B a change in one run.
const LIBS = {
  ferrosync: () => ferrosync(),
  "ferrosync-alt": () => ferrosync("/pkg-alt", "ferrosync (alt build)"),
  raw: async () => raw,
  dexie,
};

// ------------------------------------------------------------------------------------------------

/** Waits until `cb`'s latest result satisfies `ok`; resolves with the time of that call. */
function watcher() {
  let calls = 0;
  let want = null;
  let latest = null;
  return {
    onDocs(docs) {
      const t = now();
      calls++;
      latest = docs;
      if (want && want.ok(docs)) {
        const w = want;
        want = null;
        w.resolve(t);
      }
    },
    calls: () => calls,
    until(ok, ms, what) {
      if (latest && ok(latest)) return Promise.resolve(now());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
        want = { ok, resolve: (t) => (clearTimeout(timer), resolve(t)) };
      });
    },
  };
}

async function timed(reps, f) {
  await f(); // warm-up
  const xs = [];
  for (let i = 0; i < reps; i++) {
    const t0 = now();
    await f();
    xs.push(now() - t0);
  }
  return median(xs);
}

async function runLib(key, make, o, log) {
  const lib = await make();
  const name = `scale-${key}-${Date.now()}`;
  const out = { label: lib.label };
  const db = await lib.open(name);
  try {
    const t0 = now();
    for (let i = 0; i < o.docs; i += o.batch) await db.bulkPut(makeDocs(i, Math.min(o.batch, o.docs - i)));
    out.fill = now() - t0;
    log(`  ${lib.label}: ${o.docs} docs stored in ${out.fill.toFixed(0)} ms`);
    gc();
    await sleep(200);
    const C = "c07";
    const every = (from, step, n = Infinity) => {
      const xs = [];
      for (let i = from; i < o.docs && xs.length < n; i += step) xs.push(makeDoc(i));
      return xs;
    };
    const expectAll = every(7, 100); // category c07
    const sortedTitle = expectAll.slice().sort(byTitle);
    const sortedScore = expectAll.slice().sort(byScore);
    const ids = (xs) => xs.map((d) => d.id).join(",");
    // Correctness first, then timing.
    const f50 = await db.first50(C);
    const W = Math.min(50, expectAll.length);
    check(f50.length === W && ids(f50) === ids(expectAll.slice(0, 50)), `${key} first50`);
    check(ids(await db.last50(C)) === ids(expectAll.slice().reverse().slice(0, 50)), `${key} last50`);
    check((await db.all(C)).length === expectAll.length, `${key} all`);
    check(ids(await db.byTitle(C)) === ids(sortedTitle.slice(0, 50)), `${key} byTitle`);
    check(ids(await db.unindexed(C)) === ids(sortedScore.slice(0, 50)), `${key} unindexed`);
    const p10 = await db.page10(C);
    check(ids(p10) === ids(sortedTitle.slice(450, 500)), `${key} page10`);
    out.first50 = await timed(o.reps, () => db.first50(C));
    if (o.profile) {
      // CPU profile of 200 `first50` calls: where a small query's fixed cost goes.
      console.profile(`${key}-first50`);
      for (let i = 0; i < 200; i++) await db.first50(C);
      console.profileEnd(`${key}-first50`);
    }
    out.last50 = await timed(o.reps, () => db.last50(C));
    out.all = await timed(o.reps, () => db.all(C));
    out.byTitle = await timed(o.reps, () => db.byTitle(C));
    out.unindexed = await timed(o.reps, () => db.unindexed(C));
    out.page10 = await timed(o.reps, () => db.page10(C));
    if (db.page10After && sortedTitle.length > 450) {
      const last = sortedTitle[449];
      check(ids(await db.page10After(C, last)) === ids(sortedTitle.slice(450, 500)), `${key} page10After`);
      out.page10After = await timed(o.reps, () => db.page10After(C, last));
    } else out.page10After = null;
    log(`  ${lib.label}: queries done`);

    // Live window: the first 50 of category c07 (id order).
    const w = watcher();
    const stop = db.watchFirst50(C, (docs) => w.onDocs(docs));
    await w.until((d) => d.length === W, 60000, `${key} window first result`);
    const lat = [];
    for (let i = 0; i < o.writes; i++) {
      const doc = { ...expectAll[i % W], title: `moved ${i} ${Math.random()}` };
      // Waiting starts before the clock: `until` first checks the last result (a scan of it that
      // is the harness's work, not the write's).
      const seen = w.until((d) => d.length === W && d.some((x) => x.id === doc.id && x.title === doc.title), 10000, `${key} window write ${i}`);
      const t0 = now();
      await db.put(doc);
      lat.push((await seen) - t0);
    }
    out.winP50 = percentile(lat, 50);
    out.winP95 = percentile(lat, 95);
    // Writes outside the window: nobody should be called.
    await sleep(100);
    const before = w.calls();
    const outside = every(8, 100, 10); // category c08
    const t1 = now();
    for (const d of outside) await db.put({ ...d, title: "outside " + Math.random() });
    out.outsideWriteMs = (now() - t1) / outside.length;
    await sleep(300);
    out.outsideCalls = w.calls() - before;
    stop();

    // A live query over 2/3 of the documents.
    const open = every(1, 3, o.bigWrites); // done: false
    const b = watcher();
    const stopBig = db.watchOpen((docs) => b.onDocs(docs));
    const size = o.docs - Math.ceil(o.docs / 3);
    await b.until((d) => d.length === size, 120000, `${key} big first result`);
    const big = [];
    // CPU profile of the writes (bench/run.mjs --scale --profile): console.profile reaches CDP.
    if (o.profile) console.profile(`${key}-big`);
    for (let i = 0; i < o.bigWrites; i++) {
      const doc = { ...open[i], title: `big ${i} ${Math.random()}` };
      const seen = b.until((d) => d.some((x) => x.id === doc.id && x.title === doc.title), 20000, `${key} big write ${i}`);
      const t0 = now(); // after `until`'s scan of the last result (66,666 documents), as above
      await db.put(doc);
      big.push((await seen) - t0);
    }
    if (o.profile) console.profileEnd(`${key}-big`);
    out.bigP50 = percentile(big, 50);
    out.bigP95 = percentile(big, 95);
    stopBig();
    log(`  ${lib.label}: live queries done`);
  } finally {
    db.close();
    await lib.destroy(name);
  }
  return out;
}

export async function run(options = {}, log = console.log) {
  const o = { docs: 100000, batch: 10000, reps: 7, writes: 30, bigWrites: 10, only: null, ...options };
  o.batch = Math.min(o.batch, o.docs);
  const results = {};
  for (const key of o.only ?? ["ferrosync", "raw", "dexie"]) {
    gc();
    await sleep(300);
    results[key] = await runLib(key, LIBS[key], o, log);
  }
  return { config: o, results };
}
