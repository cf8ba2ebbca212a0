// The sync engine's IndexedDB transactions, written as request callbacks: every request of a
// transaction is issued from the previous one's success event, so nothing foreign is ever awaited
// while a transaction is open (IndexedDB commits it as soon as that happens). Rust awaits only the
// promise each function returns, which settles when the transaction has committed (or aborted).
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

/**
 * Up to `limit` outbox rows after `after` ([collection, id] or undefined), each joined with its
 * record, as JSON text of [{ change, resync }].
 */
export function readPending(tx, after, limit) {
  return new Promise((resolve, reject) => {
    let found = [];
    settle(tx, resolve, reject, () => JSON.stringify(found.filter((f) => f !== undefined)));
    const range = after === undefined ? undefined : IDBKeyRange.lowerBound(after, true);
    const req = tx.objectStore(OUTBOX).getAll(range, limit);
    req.onsuccess = () => {
      const rows = req.result;
      found = new Array(rows.length);
      rows.forEach((row, i) => {
        let store;
        try {
          store = tx.objectStore(row.collection);
        } catch (_) {
          return; // a collection this connection does not have: left for an instance that does
        }
        const r = store.get(row.id);
        r.onsuccess = () => {
          if (r.result !== undefined) {
            found[i] = { change: changeOf(row.collection, r.result), resync: row.kind === "resync" };
          }
        };
      });
    };
  });
}

/** Deletes each acknowledged outbox row whose hlc is still the pushed one. `acked`: [[c, id, hlc]]. */
export function ackRows(tx, acked) {
  return new Promise((resolve, reject) => {
    let removed = 0;
    settle(tx, resolve, reject, () => removed);
    const outbox = tx.objectStore(OUTBOX);
    for (const [collection, id, hlc] of acked) {
      const r = outbox.get([collection, id]);
      r.onsuccess = () => {
        const row = r.result;
        if (row !== undefined && row.hlc === hlc) {
          outbox.delete([collection, id]);
          removed++;
        }
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
    keys.forEach(([collection, id], i) => {
      if (!known.includes(collection)) return;
      const r = tx.objectStore(collection).get(id);
      const o = outbox.get([collection, id]);
      r.onsuccess = () => {
        if (r.result !== undefined) docs[i] = { change: changeOf(collection, r.result), pending: null };
      };
      o.onsuccess = () => {
        if (o.result !== undefined && docs[i] !== null) {
          docs[i].pending = o.result.kind === "resync" ? "resync" : "edit";
        }
      };
    });
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
    const current = new Array(ops.length);
    ops.forEach((op, i) => {
      const r = tx.objectStore(op.c).get(op.id);
      r.onsuccess = () => {
        current[i] = r.result;
      };
    });
    // Issued last, so it completes after every get above: all preconditions are known then.
    const clockReq = metaStore.get("clock");
    clockReq.onsuccess = () => {
      for (let i = 0; i < ops.length; i++) {
        const have = current[i] === undefined ? null : current[i].hlc;
        if (have !== ops[i].expect) {
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
        } else {
          outbox.delete([op.c, op.id]);
        }
      }
      if (meta.cursor !== undefined) metaStore.put(meta.cursor, "syncCursor");
      const persisted = clockReq.result;
      if (meta.clock !== undefined && (typeof persisted !== "string" || persisted < meta.clock)) {
        metaStore.put(meta.clock, "clock");
      }
    };
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
