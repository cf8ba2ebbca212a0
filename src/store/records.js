// @ts-check (tests/types/tsconfig.src.json checks this file in CI)
// Hot loops over records, kept in JavaScript so documents cross into WASM only as the few fields Rust
// must inspect. Layout (see records.rs): live { id, hlc, doc, ix?, pend? }, tombstone
// { id, hlc, tomb, pend? }; `pend` (the place of a local write: its HLC, or above the highest
// place given when the clock was wound back, core's `outbox::Places`) puts the record in the outbox.
// Stamps arrive from Rust already in their stored form (without this client's node: core's
// `Hlc::stored`), and are compared here only with each other.

const CANONICAL_INDEX = /^(0|[1-9][0-9]*)$/;
const hasOwn = Object.prototype.hasOwnProperty;

/**
 * The index key of a field value, exactly as ferrosync-core's `IndexKey::of` (checked against it in
 * tests/browser.rs): missing/null `[0]`, booleans `[1, 0|1]`, numbers `[2, n]`, strings `[3, s]`;
 * arrays and objects have none (`undefined`: the record is left out of that index).
 */
export function keyOf(v) {
  if (v === undefined || v === null) return [0];
  switch (typeof v) {
    case "boolean":
      return [1, v ? 1 : 0];
    case "number":
      return [2, v];
    case "string":
      return [3, v];
    default:
      return undefined;
  }
}

/**
 * The `ix` object of a document: one key per index, `paths` = `[[ident, segments], ...]`; a
 * compound index `[ident, [segments, ...], true]` keys `[key1, ..., keyN, id]` (records.rs
 * `projection_of`), and none when any of its fields holds an array or object.
 */
export function projection(doc, paths) {
  const ix = {};
  for (let j = 0; j < paths.length; j++) {
    const p = paths[j];
    const key = p.length > 2 ? compoundKeyOf(doc, p[1]) : keyOf(valueAt(doc, p[1]));
    if (key !== undefined) ix[p[0]] = key;
  }
  return ix;
}

function compoundKeyOf(doc, list) {
  const out = new Array(list.length + 1);
  for (let i = 0; i < list.length; i++) {
    const k = keyOf(valueAt(doc, list[i]));
    if (k === undefined) return undefined;
    out[i] = k;
  }
  out[list.length] = doc.id;
  return out;
}

/**
 * The document `id` of `store` in one read transaction: a Promise of it (`undefined` when absent
 * or deleted). `slow(id)` (the store's own `get`, which reopens a lost connection and names its
 * errors) answers when this read cannot: the transaction cannot start, or the request fails.
 */
export function getDoc(db, store, id, slow) {
  let r;
  try {
    r = db.transaction(store, "readonly").objectStore(store).get(id);
  } catch {
    return slow(id);
  }
  return new Promise((resolve) => {
    r.onsuccess = () => resolve(docOf(r.result));
    r.onerror = (e) => {
      e.preventDefault();
      resolve(slow(id));
    };
  });
}

/** Sets the `ix` of each live record (the versions sync writes, which arrive without one). */
export function addProjections(records, paths) {
  for (let i = 0; i < records.length; i++) {
    const rec = records[i];
    if (rec.doc !== undefined) rec.ix = projection(rec.doc, paths);
  }
}

/** The records of a batch, each marked pending sync at `pend` (Rust puts them through rexie). */
export function buildRecords(hlc, pend, docs, paths, fieldsJson) {
  // Per-field HLCs of `merge` collections (sync hook, src/store/fields.rs).
  const fs = fieldsJson === undefined ? undefined : JSON.parse(fieldsJson);
  const indexed = paths.length > 0;
  const out = new Array(docs.length);
  for (let i = 0; i < docs.length; i++) {
    const doc = docs[i];
    const id = doc.id;
    const rec = indexed ? { id, hlc, doc, ix: projection(doc, paths), pend } : { id, hlc, doc, pend };
    if (fs !== undefined && fs[i] !== null) rec.fields = fs[i];
    out[i] = rec;
  }
  return out;
}

/** A local delete's record: a tombstone pending sync at `pend`. */
export function tombstone(id, hlc, pend) {
  return { id, hlc, tomb: hlc, pend };
}

/** The document of a live record, `undefined` for a tombstone or no record. */
export function docOf(record) {
  return record === undefined || record === null ? undefined : record.doc;
}

/** True when the record exists and is a tombstone. */
export function isTombstone(record) {
  return record !== undefined && record !== null && record.doc === undefined;
}

/**
 * Up to `need` live records of `source` (an IDBIndex or IDBObjectStore) in `range`, walking it
 * backwards, tombstones read on past; with `ties`, on while the key equals the last live record's
 * (`compound`: a compound index's key `[key1, ..., keyN, id]`, compared without its id). Resolves
 * with every record read. Where IndexedDB has `getAllRecords` (records with their keys, and a
 * direction), a page is one request, plus one for the rest of the last key's ties; else a `prev`
 * cursor. Either way the loop stays in JavaScript: one WASM call per range.
 */
export function walkBack(source, range, need, ties, compound) {
  if (typeof source.getAllRecords === "function") return walkBackRecords(source, range, need, ties, compound);
  return new Promise((resolve, reject) => {
    const out = [];
    let found = 0;
    let lastKey;
    const r = source.openCursor(range, "prev");
    r.onerror = () => reject(r.error);
    r.onsuccess = () => {
      const cur = r.result;
      if (!cur) return resolve(out);
      if (found >= need && !(ties && found > 0 && sameKey(cur.key, lastKey, compound))) return resolve(out);
      const rec = cur.value;
      if (!isTombstone(rec)) {
        found++;
        lastKey = cur.key;
      }
      out.push(rec);
      cur.continue();
    };
  });
}

/**
 * An `offset` page of an exact backward index walk (no ties to finish) without reading the
 * earlier pages: a `prev` key cursor skips `offset` entries (`advance`: no record read), collects
 * the next `limit` primary keys, then their records are read by id, all at once. Resolves with the
 * records in walk order.
 * @param {IDBObjectStore} store
 * @param {IDBIndex} index
 * @param {IDBKeyRange | null} range
 * @param {number} offset
 * @param {number} limit
 * @returns {Promise<any[]>}
 */
export function skipBack(store, index, range, offset, limit) {
  return new Promise((resolve, reject) => {
    /** @type {IDBValidKey[]} */
    const ids = [];
    let skipped = offset === 0;
    const r = index.openKeyCursor(range, "prev");
    r.onerror = () => reject(r.error);
    r.onsuccess = () => {
      const cur = r.result;
      if (cur && !skipped) {
        skipped = true;
        cur.advance(offset);
        return;
      }
      if (cur && ids.length < limit) {
        ids.push(cur.primaryKey);
        cur.continue();
        return;
      }
      const out = new Array(ids.length);
      let left = ids.length;
      if (left === 0) return resolve(out);
      ids.forEach((id, i) => {
        const g = store.get(id);
        g.onerror = () => reject(g.error);
        g.onsuccess = () => {
          out[i] = g.result;
          if (--left === 0) resolve(out);
        };
      });
    };
  });
}

/** Whether two keys of a backward walk tie (compound keys without their last part, the id). */
function sameKey(a, b, compound) {
  return compound ? indexedDB.cmp(a.slice(0, -1), b.slice(0, -1)) === 0 : indexedDB.cmp(a, b) === 0;
}

/** `walkBack` with `getAllRecords({ query, count, direction: "prev" })`. */
function walkBackRecords(source, range, need, ties, compound) {
  return new Promise((resolve, reject) => {
    const out = [];
    let found = 0;
    let last; // the last live record read: { key, primaryKey }
    // Requests are issued from the previous one's success handler (the transaction stays active).
    const read = (query, count, then) => {
      const options = { query, direction: "prev" };
      if (count !== undefined) options.count = Math.min(count, 0xffffffff);
      const r = source.getAllRecords(options);
      r.onerror = () => reject(r.error);
      r.onsuccess = () => then(r.result);
    };
    const tiesRest = () => {
      // The rest of the last key's group: its entries below the last one read (same key, lower
      // primary key; the direction is `prev`).
      if (!ties || last === undefined) return resolve(out);
      if (compound) {
        // Keys are unique (they end with the id): the group's keys below the last one read, from
        // the group's start (its key without the id, a prefix sorting first) or the range's.
        const group = last.key.slice(0, -1);
        const lower = range === null || range === undefined ? undefined : range.lower;
        const inside = lower !== undefined && indexedDB.cmp(lower, group) > 0;
        if (inside && indexedDB.cmp(lower, last.key) >= 0) return resolve(out); // none below
        const rest = inside
          ? IDBKeyRange.bound(lower, last.key, range.lowerOpen, true)
          : IDBKeyRange.bound(group, last.key, false, true);
        return read(rest, undefined, (recs) => {
          for (const r of recs) out.push(r.value);
          resolve(out);
        });
      }
      read(IDBKeyRange.only(last.key), undefined, (recs) => {
        for (const r of recs) {
          if (indexedDB.cmp(r.primaryKey, last.primaryKey) < 0) out.push(r.value);
        }
        resolve(out);
      });
    };
    const page = (query) => {
      const want = need - found;
      read(query, want, (recs) => {
        for (const r of recs) {
          out.push(r.value);
          if (!isTombstone(r.value)) {
            found++;
            last = r;
          }
        }
        if (found >= need) return tiesRest();
        if (recs.length < want) return resolve(out); // the range is exhausted
        // Tombstones took places (the primary key): read on below the last key read.
        const below = recs[recs.length - 1].key;
        let next;
        if (range === null || range === undefined || range.lower === undefined) {
          next = IDBKeyRange.upperBound(below, true);
        } else {
          next = IDBKeyRange.bound(range.lower, below, range.lowerOpen, true);
        }
        page(next);
      });
    };
    page(range);
  });
}

function valueAt(v, segments) {
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (v === null || typeof v !== "object") return undefined;
    if (Array.isArray(v)) {
      if (!CANONICAL_INDEX.test(s)) return undefined;
      v = v[+s];
    } else {
      if (!hasOwn.call(v, s)) return undefined;
      v = v[s];
    }
  }
  return v;
}

/**
 * Drops tombstones and missing entries from `lists` (arrays of records, possibly overlapping when
 * several key ranges were read) and, when `paths` is given, reduces each record to a row
 * `[id, value at path 0, ...]` (missing as null) serialised as one JSON string for Rust.
 */
export function extract(lists, paths) {
  const live = [];
  const seen = lists.length > 1 ? new Set() : undefined;
  for (const list of lists) {
    for (const r of list) {
      if (r === undefined || r === null || r.doc === undefined) continue;
      if (seen !== undefined) {
        if (seen.has(r.id)) continue;
        seen.add(r.id);
      }
      live.push(r);
    }
  }
  if (paths === undefined) return { live, rows: undefined };
  const rows = new Array(live.length);
  for (let i = 0; i < live.length; i++) {
    const r = live[i];
    const row = [r.id];
    for (let j = 0; j < paths.length; j++) {
      const v = valueAt(r.doc, paths[j]);
      row.push(v === undefined ? null : v);
    }
    rows[i] = row;
  }
  return { live, rows: JSON.stringify(rows) };
}

/** The records at `indices`, in that order. */
export function pick(records, indices) {
  const out = new Array(indices.length);
  for (let i = 0; i < indices.length; i++) out[i] = records[indices[i]];
  return out;
}

export function docsOf(records) {
  const out = new Array(records.length);
  for (let i = 0; i < records.length; i++) out[i] = records[i].doc;
  return out;
}

/**
 * Compares a live query's new result with the previous one. Returns `undefined` when nothing the
 * application can see changed (same ids in the same order, each document either the same version or
 * equal content), else the new records, reusing the previous record object of every unchanged
 * document so the callback gets stable object identities (cheap re-rendering).
 */
export function diffResult(prev, next) {
  if (prev !== undefined && prev.length === next.length) {
    let same = true;
    for (let i = 0; i < next.length; i++) {
      const a = prev[i], b = next[i];
      if (a.id !== b.id || (a.hlc !== b.hlc && JSON.stringify(a.doc) !== JSON.stringify(b.doc))) {
        same = false;
        break;
      }
    }
    if (same) return undefined;
  }
  if (prev === undefined || prev.length === 0) return next;
  const old = new Map();
  for (const r of prev) old.set(r.id, r);
  return next.map((r) => {
    const o = old.get(r.id);
    return o !== undefined && o.hlc === r.hlc ? o : r;
  });
}

/** A record for a document just written, holding a clone: the application's object stays its own. */
export function freshRecord(id, hlc, doc) {
  return { id, hlc, doc: structuredClone(doc) };
}

export function hlcOf(record) {
  return record === undefined || record === null ? undefined : record.hlc;
}

/**
 * Replays a live window's edits on `records` and on `docs`, the parallel array of their documents
 * kept for the callbacks (flat triples `[op, x, y]`: 0 remove at x, 1 insert `fresh[y]` at x, 2 keep
 * the first x). Returns whether anything visible changed: a removal followed by the same document
 * inserted at the same place with equal content (an identical rewrite) does not count, and the
 * record shown keeps its object identity then. Both arrays are patched in place (a splice moves
 * pointers; nothing is read from the other documents), so the cost follows the edits.
 */
export function replay(records, docs, edits, fresh) {
  let visible = false;
  /** @type {any} */
  let removed = undefined;
  let removedAt = -1;
  for (let i = 0; i < edits.length; i += 3) {
    const op = edits[i], x = edits[i + 1], y = edits[i + 2];
    if (op === 1) {
      const r = fresh[y];
      if (removed !== undefined && removedAt === x && removed.id === r.id && sameDoc(removed.doc, r.doc)) {
        records.splice(x, 0, { id: r.id, hlc: r.hlc, doc: removed.doc });
        docs.splice(x, 0, removed.doc);
      } else {
        records.splice(x, 0, r);
        docs.splice(x, 0, r.doc);
        visible = true;
      }
      removed = undefined;
      continue;
    }
    if (removed !== undefined) visible = true;
    removed = undefined;
    if (op === 0) {
      removed = records.splice(x, 1)[0];
      docs.splice(x, 1);
      removedAt = x;
    } else if (records.length > x) {
      records.length = x;
      docs.length = x;
      visible = true;
    }
  }
  if (removed !== undefined) visible = true;
  return visible;
}

/** A copy of a live query's documents for its callback: the application owns it (may keep or
 * change it) while the watch keeps patching its own array. A copy of pointers, no document read. */
export function shownDocs(docs) {
  return docs.slice();
}

function sameDoc(a, b) {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** Ids of records, in order. */
export function idsOf(records) {
  const out = new Array(records.length);
  for (let i = 0; i < records.length; i++) out[i] = records[i].id;
  return out;
}

/** JSON text of a value (a stored document Rust must inspect). */
export function toJson(v) {
  return JSON.stringify(v);
}

/**
 * Upgrade from the layout with a separate `_outbox` store (rows { collection, id, hlc, kind? }, key
 * [collection, id]): marks each row's record pending, then deletes the store. Runs inside the
 * upgrade transaction `tx`, from request callbacks only.
 */
export function migrateOutbox(db, tx) {
  const names = new Set(Array.from(db.objectStoreNames));
  const req = tx.objectStore("_outbox").openCursor();
  req.onsuccess = () => {
    const cur = req.result;
    if (cur === null) {
      db.deleteObjectStore("_outbox");
      return;
    }
    const row = cur.value;
    if (names.has(row.collection)) {
      const store = tx.objectStore(row.collection);
      const get = store.get(row.id);
      get.onsuccess = () => {
        const rec = get.result;
        if (rec === undefined) return;
        rec.pend = rec.hlc;
        if (row.kind === "resync") rec.resync = true;
        store.put(rec);
      };
    }
    cur.continue();
  };
}
