// The sync engine's IndexedDB transactions, written as request callbacks: every request of a
// transaction is issued from the previous one's success event, so nothing foreign is ever awaited
// while a transaction is open (IndexedDB commits it as soon as that happens). Rust awaits only the
// promise each function returns, which settles when the transaction has committed (or aborted).
//
// Batches are read with range requests where they can be: the documents of a pulled page are read
// with one `getAll` over their id range when that range holds few other records (`count` first),
// and a push batch is one `getAll` on a collection's `$pending` index. A request costs far more than
// a record, so this is what makes 10,000 documents a second possible.
//
// Record layout (src/store/records.rs): live { id, hlc, doc, ix?, fields?, pend?, resync? },
// tombstone { id, hlc, tomb, fields?, pend?, resync? }. The outbox (src/store/outbox.rs): `pend`
// (the HLC of a local write) puts a record in the `$pending` index at [pend, id]; it is pending while
// that key is above the collection's watermark (`_meta` "outbox:<collection>"), which
// acknowledgements move forward. `resync: true` marks a version queued again by a server reset
// rather than edited locally.

const META = "_meta";
const PENDING = "$pending";
const markKey = (collection) => "outbox:" + collection;

function settle(tx, resolve, reject, value) {
  tx.oncomplete = () => resolve(value());
  tx.onabort = () => reject(tx.error || new DOMException("the transaction was aborted", "AbortError"));
}

/** The change (wire format) a record stands for. */
function changeOf(collection, record) {
  const c = { collection, id: record.id, hlc: record.hlc };
  if (record.doc === undefined) c.deleted = true;
  else c.doc = record.doc;
  if (record.fields !== undefined) c.fields = record.fields;
  return c;
}

/** Whether the record is in the outbox: marked, and above the watermark `mark` (or no mark). */
function isPending(record, mark) {
  return record.pend !== undefined && (mark === undefined || indexedDB.cmp([record.pend, record.id], mark) > 0);
}

/** The record's outbox state: null (acknowledged), "edit" or "resync". */
function pendingOf(record, mark) {
  if (!isPending(record, mark)) return null;
  return record.resync === true ? "resync" : "edit";
}

/** Takes the record out of the outbox (it is then what the server holds). */
function unpend(record) {
  delete record.pend;
  delete record.resync;
}

/** Reads the watermarks of `collections` from `_meta`, calling `done(Map collection -> mark)`. */
function readMarks(tx, collections, done) {
  const marks = new Map();
  const meta = tx.objectStore(META);
  const finished = parts(collections.length, () => done(marks));
  for (const c of collections) {
    const r = meta.get(markKey(c));
    r.onsuccess = () => {
      if (r.result !== undefined) marks.set(c, r.result);
      finished();
    };
  }
}

function byCodeUnits(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Groups items by collection: Map collection -> array of items (input order kept). */
function group(items, collectionOf) {
  const m = new Map();
  for (const it of items) {
    const c = collectionOf(it);
    let list = m.get(c);
    if (list === undefined) m.set(c, (list = []));
    list.push(it);
  }
  return m;
}

/**
 * Reads the records of `ids` from `store`, calling `done(Map id -> record)`. One `getAll` over the
 * range when it holds at most twice as many records as wanted (checked with `count`), else one
 * `get` per id.
 */
function readMany(store, ids, done) {
  const found = new Map();
  if (ids.length === 0) return done(found);
  const one = () => {
    let left = ids.length;
    for (const id of ids) {
      const r = store.get(id);
      r.onsuccess = () => {
        if (r.result !== undefined) found.set(id, r.result);
        if (--left === 0) done(found);
      };
    }
  };
  if (ids.length < 4) return one();
  const sorted = ids.slice().sort(byCodeUnits);
  const range = IDBKeyRange.bound(sorted[0], sorted[sorted.length - 1]);
  const c = store.count(range);
  c.onsuccess = () => {
    if (c.result > 2 * ids.length) return one();
    const all = store.getAll(range);
    all.onsuccess = () => {
      for (const v of all.result) found.set(v.id, v);
      done(found);
    };
  };
}

/** Calls `done()` once each of `n` parts has called back. */
function parts(n, done) {
  let left = n;
  if (left === 0) done();
  return () => {
    if (--left === 0) done();
  };
}

/**
 * Up to `limit` pending records in outbox order (collection, then [pend, id]), as JSON text of
 * [{ change, resync, pend }]. `after`: undefined (from each collection's watermark), [c, pend, id]
 * (continue after that record of c), or [c] (c is done: start at the next collection).
 */
export function readPending(tx, collections, after, limit) {
  return new Promise((resolve, reject) => {
    const out = [];
    settle(tx, resolve, reject, () => JSON.stringify(out));
    collections = Array.from(collections).sort(byCodeUnits);
    let i = 0;
    if (after !== undefined) {
      while (i < collections.length && collections[i] < after[0]) i++;
      if (after.length === 1 && collections[i] === after[0]) i++;
    }
    readMarks(tx, collections, (marks) => {
      // One collection after another, each read issued from the previous one's callback.
      const next = () => {
        if (i >= collections.length || out.length >= limit) return;
        const collection = collections[i++];
        let from = marks.get(collection);
        if (after !== undefined && after.length === 3 && collection === after[0]) from = [after[1], after[2]];
        const range = from === undefined ? undefined : IDBKeyRange.lowerBound(from, true);
        const req = tx.objectStore(collection).index(PENDING).getAll(range, limit - out.length);
        req.onsuccess = () => {
          for (const rec of req.result) {
            out.push({ change: changeOf(collection, rec), resync: rec.resync === true, pend: rec.pend });
          }
          next();
        };
      };
      next();
    });
  });
}

/**
 * Moves watermarks forward: `marks` is [[collection, pend, id]], each the last record of an
 * acknowledged run of that collection's outbox. A mark never moves back.
 */
export function ackRows(tx, marks) {
  return new Promise((resolve, reject) => {
    settle(tx, resolve, reject, () => marks.length);
    const meta = tx.objectStore(META);
    for (const [collection, pend, id] of marks) {
      const key = markKey(collection);
      const r = meta.get(key);
      r.onsuccess = () => {
        const mark = [pend, id];
        if (r.result === undefined || indexedDB.cmp(mark, r.result) > 0) meta.put(mark, key);
      };
    }
  });
}

/**
 * The local versions of `keys` ([[c, id]]) with their outbox state, and the persisted clock, as
 * JSON text of { clock, docs: [{ change, pending: null | "edit" | "resync" } | null] }.
 */
export function loadDocs(tx, keys, known) {
  return new Promise((resolve, reject) => {
    const docs = new Array(keys.length).fill(null);
    let clock = null;
    settle(tx, resolve, reject, () => JSON.stringify({ clock, docs }));
    const c = tx.objectStore(META).get("clock");
    c.onsuccess = () => {
      if (typeof c.result === "string") clock = c.result;
    };
    const indexed = keys.map(([collection, id], i) => ({ collection, id, i }));
    const groups = group(indexed, (k) => k.collection);
    const names = Array.from(groups.keys()).filter((n) => known.includes(n));
    readMarks(tx, names, (marks) => {
      for (const collection of names) {
        const list = groups.get(collection);
        const mark = marks.get(collection);
        readMany(tx.objectStore(collection), list.map((k) => k.id), (records) => {
          for (const k of list) {
            const rec = records.get(k.id);
            if (rec !== undefined) docs[k.i] = { change: changeOf(collection, rec), pending: pendingOf(rec, mark) };
          }
        });
      }
    });
  });
}

/**
 * Applies the engine's ops in this one transaction, or nothing if any precondition fails.
 * `ops`: [{ c, id, expect: hlc | null, record?: record, outbox: "put" | "delete" }] ("put": the
 * new record is pending, in the outbox at its own HLC, which is newer than any watermark; "delete":
 * it is, or the current one becomes, acknowledged); `meta`: { cursor?, clock? }. Resolves
 * "committed" or "conflict".
 */
export function applyOps(tx, ops, meta) {
  return new Promise((resolve, reject) => {
    let conflict = false;
    tx.oncomplete = () => resolve("committed");
    tx.onabort = () => {
      if (conflict) resolve("conflict");
      else reject(tx.error || new DOMException("the transaction was aborted", "AbortError"));
    };
    const metaStore = tx.objectStore(META);
    const groups = group(ops, (op) => op.c);
    const records = new Map();
    let marks;
    let persisted;
    const write = () => {
      for (const op of ops) {
        const rec = records.get(op.c).get(op.id);
        const have = rec === undefined ? null : rec.hlc;
        if (have !== op.expect) {
          conflict = true;
          tx.abort();
          return;
        }
      }
      for (const op of ops) {
        const store = tx.objectStore(op.c);
        let rec = op.record;
        if (rec === undefined) {
          // Only the outbox state changes: the current record, acknowledged.
          rec = records.get(op.c).get(op.id);
          if (rec === undefined || rec.pend === undefined || op.outbox === "put") continue;
          unpend(rec);
        } else if (op.outbox === "put") {
          rec.pend = rec.hlc;
        }
        store.put(rec);
      }
      if (meta.cursor !== undefined) metaStore.put(meta.cursor, "syncCursor");
      if (meta.clock !== undefined && (typeof persisted !== "string" || persisted < meta.clock)) {
        metaStore.put(meta.clock, "clock");
      }
    };
    const finished = parts(groups.size + 1, write);
    const clockReq = metaStore.get("clock");
    clockReq.onsuccess = () => {
      persisted = clockReq.result;
      finished();
    };
    for (const [collection, list] of groups) {
      readMany(tx.objectStore(collection), list.map((op) => op.id), (m) => {
        records.set(collection, m);
        finished();
      });
    }
  });
}

/**
 * Server reset: forgets the cursor, marks every record that is not pending as a "resync" in the
 * outbox, and drops the watermarks, so what the new server database lacks is pushed again. The
 * resync rows go in at `stamp` (this client's clock, persisted here too), not at their own HLCs: a
 * remote HLC may be ahead of this clock, and a watermark moved past it would hide later local writes.
 */
export function queueResync(tx, collections, stamp) {
  return new Promise((resolve, reject) => {
    let queued = 0;
    settle(tx, resolve, reject, () => queued);
    const meta = tx.objectStore(META);
    meta.delete("syncCursor");
    const clock = meta.get("clock");
    clock.onsuccess = () => {
      if (typeof clock.result !== "string" || clock.result < stamp) meta.put(stamp, "clock");
    };
    readMarks(tx, Array.from(collections), (marks) => {
      for (const collection of collections) {
        const mark = marks.get(collection);
        meta.delete(markKey(collection));
        const store = tx.objectStore(collection);
        const all = store.getAll();
        all.onsuccess = () => {
          for (const rec of all.result) {
            if (isPending(rec, mark)) continue;
            rec.pend = stamp;
            rec.resync = true;
            store.put(rec);
            queued++;
          }
        };
      }
    });
  });
}

/** Reads `_meta` values by key (a plain object of the found ones). */
export function readMeta(tx, keys) {
  return new Promise((resolve, reject) => {
    const out = {};
    settle(tx, resolve, reject, () => out);
    const meta = tx.objectStore(META);
    for (const k of keys) {
      const r = meta.get(k);
      r.onsuccess = () => {
        if (r.result !== undefined) out[k] = r.result;
      };
    }
  });
}

/** Writes `_meta` values (a plain object). */
export function writeMeta(tx, values) {
  return new Promise((resolve, reject) => {
    settle(tx, resolve, reject, () => undefined);
    const meta = tx.objectStore(META);
    for (const k of Object.keys(values)) meta.put(values[k], k);
  });
}
