// The sync engine's IndexedDB transactions, written as request callbacks: every request of a
// transaction is issued from the previous one's success event, so nothing foreign is ever awaited
// while a transaction is open (IndexedDB commits it as soon as that happens). Rust awaits only the
// promise each function returns, which settles when the transaction has committed (or aborted).
//
// Batches are read with range requests where they can be: the documents of a pulled page or a push
// acknowledgement are read with one `getAll` over their id range when that range holds few other
// records (`count` first), and a push batch is one `getAll` on a collection's `$pending` index. A
// request costs far more than a record, so this is what makes 10,000 documents a second possible.
//
// Record layout (src/store/records.rs): live { id, hlc, doc, ix?, fields?, pend?, resync? },
// tombstone { id, hlc, tomb, fields?, pend?, resync? }. `pend` (= id, indexed by `$pending`) marks a
// version the server has not acknowledged: the outbox. `resync: true` marks one queued again by a
// server reset rather than edited locally.

const META = "_meta";
const PENDING = "$pending";

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

/** The record's outbox state: null (acknowledged), "edit" or "resync". */
function pendingOf(record) {
  if (record.pend === undefined) return null;
  return record.resync === true ? "resync" : "edit";
}

/** Drops the pending marker (the record is then what the server holds). */
function unpend(record) {
  delete record.pend;
  delete record.resync;
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
 * Up to `limit` pending records after `after` ([collection, id] or undefined), in (collection, id)
 * order, as JSON text of [{ change, resync }]. `collections`: the collection stores, sorted.
 */
export function readPending(tx, collections, after, limit) {
  return new Promise((resolve, reject) => {
    const out = [];
    settle(tx, resolve, reject, () => JSON.stringify(out));
    collections = Array.from(collections).sort(byCodeUnits);
    let i = 0;
    if (after !== undefined) {
      while (i < collections.length && collections[i] < after[0]) i++;
    }
    // One collection after another, each read issued from the previous one's callback.
    const next = () => {
      if (i >= collections.length || out.length >= limit) return;
      const collection = collections[i++];
      const range =
        after !== undefined && collection === after[0] ? IDBKeyRange.lowerBound(after[1], true) : undefined;
      const req = tx.objectStore(collection).index(PENDING).getAll(range, limit - out.length);
      req.onsuccess = () => {
        for (const rec of req.result) {
          out.push({ change: changeOf(collection, rec), resync: rec.resync === true });
        }
        next();
      };
    };
    next();
  });
}

/**
 * Clears the pending marker of each acknowledged record whose hlc is still the pushed one (an edit
 * made during the push keeps it, and is pushed next). `acked`: [[c, id, hlc]].
 */
export function ackRows(tx, acked) {
  return new Promise((resolve, reject) => {
    let removed = 0;
    settle(tx, resolve, reject, () => removed);
    for (const [collection, list] of group(acked, (a) => a[0])) {
      let store;
      try {
        store = tx.objectStore(collection);
      } catch (_) {
        continue; // the store went away (deleted database): nothing to acknowledge
      }
      const want = new Map(list.map(([, id, hlc]) => [id, hlc]));
      readMany(store, list.map((a) => a[1]), (records) => {
        for (const [id, rec] of records) {
          if (rec.pend !== undefined && want.get(id) === rec.hlc) {
            unpend(rec);
            store.put(rec);
            removed++;
          }
        }
      });
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
    for (const [collection, list] of group(indexed, (k) => k.collection)) {
      if (!known.includes(collection)) continue;
      readMany(tx.objectStore(collection), list.map((k) => k.id), (records) => {
        for (const k of list) {
          const rec = records.get(k.id);
          if (rec !== undefined) docs[k.i] = { change: changeOf(collection, rec), pending: pendingOf(rec) };
        }
      });
    }
  });
}

/**
 * Applies the engine's ops in this one transaction, or nothing if any precondition fails.
 * `ops`: [{ c, id, expect: hlc | null, record?: record, outbox: "put" | "delete" }] ("put": the
 * new record stays pending; "delete": it is, or the current one becomes, acknowledged);
 * `meta`: { cursor?, clock? }. Resolves "committed" or "conflict".
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
          rec.pend = rec.id;
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
 * Server reset: forgets the cursor and marks every record that is not pending as a "resync", so
 * what the new server database lacks is pushed again.
 */
export function queueResync(tx, collections) {
  return new Promise((resolve, reject) => {
    let queued = 0;
    settle(tx, resolve, reject, () => queued);
    tx.objectStore(META).delete("syncCursor");
    for (const collection of collections) {
      const store = tx.objectStore(collection);
      const all = store.getAll();
      all.onsuccess = () => {
        for (const rec of all.result) {
          if (rec.pend !== undefined) continue;
          rec.pend = rec.id;
          rec.resync = true;
          store.put(rec);
          queued++;
        }
      };
    }
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

/** Number of pending records over `collections`. */
export function countPending(tx, collections) {
  return new Promise((resolve, reject) => {
    let n = 0;
    settle(tx, resolve, reject, () => n);
    for (const collection of collections) {
      const r = tx.objectStore(collection).index(PENDING).count();
      r.onsuccess = () => {
        n += r.result;
      };
    }
  });
}
