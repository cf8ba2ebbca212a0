// The sync engine's IndexedDB transactions, written as request callbacks: every request of a
// transaction is issued from the previous one's success event, so nothing foreign is ever awaited
// while a transaction is open (IndexedDB commits it as soon as that happens). Rust awaits only the
// promise each function returns, which settles when the transaction has committed (or aborted).
//
// Batches are read with range requests where they can be: the documents of a push batch or a pulled
// page are read with one `getAll` over their id range when that range holds few other records
// (`count` first), and acknowledged outbox rows are deleted by key ranges. A request costs far more
// than a record, so this is what makes 10,000 documents a second possible.
//
// Record layout (src/store/records.rs): live { id, hlc, doc, ix?, fields? }, tombstone
// { id, hlc, tomb, fields? }. Outbox rows: { collection, id, hlc, deleted, kind? } (kind "resync" for
// versions queued by a server reset; absent for local edits).

const OUTBOX = "_outbox";
const META = "_meta";

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
 * Reads the records of `ids` from `source` (an object store or the outbox), keyed by `keyOf(id)`,
 * calling `done(Map id -> value)`. One `getAll` over the range when it holds at most twice as many
 * entries as wanted (checked with `count`), else one `get` per id. `idOf(value)` names an entry.
 */
function readMany(source, ids, keyOf, idOf, done) {
  const found = new Map();
  if (ids.length === 0) return done(found);
  const one = () => {
    let left = ids.length;
    for (const id of ids) {
      const r = source.get(keyOf(id));
      r.onsuccess = () => {
        if (r.result !== undefined) found.set(id, r.result);
        if (--left === 0) done(found);
      };
    }
  };
  if (ids.length < 4) return one();
  const sorted = ids.slice().sort(byCodeUnits);
  const range = IDBKeyRange.bound(keyOf(sorted[0]), keyOf(sorted[sorted.length - 1]));
  const c = source.count(range);
  c.onsuccess = () => {
    if (c.result > 2 * ids.length) return one();
    const all = source.getAll(range);
    all.onsuccess = () => {
      for (const v of all.result) found.set(idOf(v), v);
      done(found);
    };
  };
}

const recordKey = (id) => id;
const recordId = (r) => r.id;
const outboxKey = (collection) => (id) => [collection, id];
const rowId = (row) => row.id;

/** Calls `done()` once each of `n` parts has called back. */
function parts(n, done) {
  let left = n;
  if (left === 0) done();
  return () => {
    if (--left === 0) done();
  };
}

/**
 * Up to `limit` outbox rows after `after` ([collection, id] or undefined), each joined with its
 * record, as JSON text of [{ change, resync }].
 */
export function readPending(tx, after, limit) {
  return new Promise((resolve, reject) => {
    let out = [];
    settle(tx, resolve, reject, () => JSON.stringify(out));
    const range = after === undefined ? undefined : IDBKeyRange.lowerBound(after, true);
    const req = tx.objectStore(OUTBOX).getAll(range, limit);
    req.onsuccess = () => {
      const rows = req.result;
      const groups = group(rows, (r) => r.collection);
      const records = new Map();
      const finished = parts(groups.size, () => {
        for (const row of rows) {
          const rec = records.get(row.collection)?.get(row.id);
          if (rec !== undefined) {
            out.push({ change: changeOf(row.collection, rec), resync: row.kind === "resync" });
          }
        }
      });
      for (const [collection, list] of groups) {
        let store;
        try {
          store = tx.objectStore(collection);
        } catch (_) {
          finished(); // a collection this connection does not have: left for an instance that does
          continue;
        }
        readMany(store, list.map(rowId), recordKey, recordId, (m) => {
          records.set(collection, m);
          finished();
        });
      }
    };
  });
}

/**
 * Deletes each acknowledged outbox row whose hlc is still the pushed one. `acked`: [[c, id, hlc]].
 * Runs of consecutive matching rows go in one range delete.
 */
export function ackRows(tx, acked) {
  return new Promise((resolve, reject) => {
    let removed = 0;
    settle(tx, resolve, reject, () => removed);
    const outbox = tx.objectStore(OUTBOX);
    for (const [collection, list] of group(acked, (a) => a[0])) {
      const want = new Map(list.map(([, id, hlc]) => [id, hlc]));
      const ids = list.map((a) => a[1]).sort(byCodeUnits);
      const range = IDBKeyRange.bound([collection, ids[0]], [collection, ids[ids.length - 1]]);
      const r = outbox.getAll(range);
      r.onsuccess = () => {
        let start = null;
        let prev = null;
        const flush = () => {
          if (start !== null) outbox.delete(IDBKeyRange.bound([collection, start], [collection, prev]));
          start = null;
        };
        for (const row of r.result) {
          if (want.get(row.id) === row.hlc) {
            if (start === null) start = row.id;
            prev = row.id;
            removed++;
          } else {
            flush();
          }
        }
        flush();
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
    const outbox = tx.objectStore(OUTBOX);
    const c = tx.objectStore(META).get("clock");
    c.onsuccess = () => {
      if (typeof c.result === "string") clock = c.result;
    };
    const indexed = keys.map(([collection, id], i) => ({ collection, id, i }));
    for (const [collection, list] of group(indexed, (k) => k.collection)) {
      if (!known.includes(collection)) continue;
      const ids = list.map((k) => k.id);
      let records = null;
      let rows = null;
      const both = parts(2, () => {
        for (const k of list) {
          const rec = records.get(k.id);
          if (rec === undefined) continue;
          const row = rows.get(k.id);
          docs[k.i] = {
            change: changeOf(collection, rec),
            pending: row === undefined ? null : row.kind === "resync" ? "resync" : "edit",
          };
        }
      });
      readMany(tx.objectStore(collection), ids, recordKey, recordId, (m) => {
        records = m;
        both();
      });
      readMany(outbox, ids, outboxKey(collection), rowId, (m) => {
        rows = m;
        both();
      });
    }
  });
}

/**
 * Applies the engine's ops in this one transaction, or nothing if any precondition fails.
 * `ops`: [{ c, id, expect: hlc | null, record?: record, outbox: "put" | "delete" }];
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
    const outbox = tx.objectStore(OUTBOX);
    const metaStore = tx.objectStore(META);
    const groups = group(ops, (op) => op.c);
    const records = new Map();
    const rows = new Map();
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
        const rec = op.record;
        if (rec !== undefined) tx.objectStore(op.c).put(rec);
        if (op.outbox === "put") {
          outbox.put({ collection: op.c, id: op.id, hlc: rec.hlc, deleted: rec.doc === undefined });
        } else if (rows.get(op.c).has(op.id)) {
          outbox.delete([op.c, op.id]);
        }
      }
      if (meta.cursor !== undefined) metaStore.put(meta.cursor, "syncCursor");
      if (meta.clock !== undefined && (typeof persisted !== "string" || persisted < meta.clock)) {
        metaStore.put(meta.clock, "clock");
      }
    };
    const finished = parts(2 * groups.size + 1, write);
    const clockReq = metaStore.get("clock");
    clockReq.onsuccess = () => {
      persisted = clockReq.result;
      finished();
    };
    for (const [collection, list] of groups) {
      const ids = list.map((op) => op.id);
      readMany(tx.objectStore(collection), ids, recordKey, recordId, (m) => {
        records.set(collection, m);
        finished();
      });
      readMany(outbox, ids, outboxKey(collection), rowId, (m) => {
        rows.set(collection, m);
        finished();
      });
    }
  });
}

/**
 * Server reset: forgets the cursor and queues every record that has no outbox row as a "resync"
 * row, so what the new server database lacks is pushed again.
 */
export function queueResync(tx, collections) {
  return new Promise((resolve, reject) => {
    let queued = 0;
    settle(tx, resolve, reject, () => queued);
    const outbox = tx.objectStore(OUTBOX);
    tx.objectStore(META).delete("syncCursor");
    const keys = outbox.getAllKeys();
    keys.onsuccess = () => {
      const have = new Set(keys.result.map(([c, id]) => c + "\u0000" + id));
      for (const collection of collections) {
        const all = tx.objectStore(collection).getAll();
        all.onsuccess = () => {
          for (const rec of all.result) {
            if (have.has(collection + "\u0000" + rec.id)) continue;
            outbox.put({ collection, id: rec.id, hlc: rec.hlc, deleted: rec.doc === undefined, kind: "resync" });
            queued++;
          }
        };
      }
    };
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

/** Number of outbox rows. */
export function countPending(tx) {
  return new Promise((resolve, reject) => {
    let n = 0;
    settle(tx, resolve, reject, () => n);
    const r = tx.objectStore(OUTBOX).count();
    r.onsuccess = () => {
      n = r.result;
    };
  });
}
