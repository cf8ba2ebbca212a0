// @ts-check (tests/types/tsconfig.src.json checks this file in CI)
// Record-level logic of the store's sync operations (`sync_ops.rs` issues the
// requests, through rexie): these functions only look at and reshape records already read, in JavaScript, so
// documents never cross into WASM field by field, and a page or batch crosses as one JSON text.
//
// Record layout (src/store/records.rs): live { id, hlc, doc, ix?, fields?, base?, pend?, resync? },
// tombstone { id, hlc, tomb, fields?, base?, pend?, resync? }. The outbox (src/store/outbox.rs):
// `pend` (the place of the write that queued it, core's `outbox::Places`) puts a record in the
// `$pending` index at [pend, id]; it is pending while that key is above the collection's watermark
// (`_meta` "outbox:<collection>"), which acknowledgements move forward. `resync: true` marks a version queued again by a server reset
// rather than edited locally. Stamps (`hlc`, `tomb`, `base`, `pend`) are stored without their
// node when it is this client's (core's `Hlc::stored`: 19 characters, `wwwwwwwwwwww-cccccc`); a
// change sent to the engine carries the full HLC.

import { heldDoc } from "./held.js";

/** Length of a stamp stored without its node (core's `STORED_SHORT_LEN`); full ones are longer. */
const SHORT_STAMP = 19;

/** The full HLC of a stored stamp, in the database of client `own` (core's `Hlc::from_stored`). */
function fullStamp(stamp, own) {
  return typeof stamp === "string" && stamp.length === SHORT_STAMP ? `${stamp}-${own}` : stamp;
}

/** The change (wire format) a record of client `own`'s database stands for. */
function changeOf(collection, record, own) {
  const c = { collection, id: record.id, hlc: fullStamp(record.hlc, own) };
  if (record.doc === undefined) c.deleted = true;
  else c.doc = record.doc;
  if (record.fields !== undefined) c.fields = record.fields;
  if (record.base !== undefined) c.base = fullStamp(record.base, own);
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

/** Whether `mark` ([pend, id]) is beyond `current` (undefined: no mark yet). */
export function markAdvances(mark, current) {
  return current === undefined || indexedDB.cmp(mark, current) > 0;
}

/** The outbox rows of `records` (a `$pending` index read of `collection`), appended to `out`. */
export function pendingRows(out, collection, records, own) {
  for (const rec of records) {
    out.push({ change: changeOf(collection, rec, own), resync: rec.resync === true, pend: rec.pend });
  }
}

export function toJson(v) {
  return JSON.stringify(v);
}

/** Map id -> record of the records read (a range read, or point reads; `undefined`s skipped). */
export function byId(records) {
  const m = new Map();
  for (const r of records) if (r !== undefined && r !== null) m.set(r.id, r);
  return m;
}

/**
 * JSON text of { clock, place, docs: [{ change, pending: null | "edit" | "resync" } | null] },
 * aligned with `keys` ([[c, id]]); `found` maps collection -> (Map id -> record), `marks`
 * collection -> watermark; `own` the client id.
 */
export function loadedJson(clock, place, keys, found, marks, own) {
  const docs = keys.map(([collection, id]) => {
    const m = found.get(collection);
    const rec = m === undefined ? undefined : m.get(id);
    return rec === undefined ? null : { change: changeOf(collection, rec, own), pending: pendingOf(rec, marks.get(collection)) };
  });
  const text = (v) => (typeof v === "string" ? v : null);
  return JSON.stringify({ clock: text(clock), place: text(place), docs });
}

/**
 * The puts of a page of engine ops, whose preconditions core checked against the records this
 * transaction read. `ops`: [{ c, id, record?, held?, outbox: "put" | "ack" | "requeue", pend? }]
 * (`held`: the slot of the record's document, held in held.js; "put":
 * the new record is pending, in the outbox at `pend`, above every place given before;
 * "ack": it is, or the current one becomes, acknowledged; "requeue": the current record stays
 * pending at the new place `pend`); `found`: collection -> (Map id -> current record). Returns
 * [[collection, [record]]].
 */
export function planApply(ops, found) {
  const puts = new Map();
  for (const op of ops) {
    let rec = op.record;
    if (op.held !== undefined) {
      // A pulled document, held as the object `JSON.parse` made (held.js).
      const doc = heldDoc(op.held);
      if (doc === undefined) throw new Error(`ferrosync: pulled document ${op.held} is no longer held`);
      rec.doc = doc;
    }
    const current = () => {
      const m = found.get(op.c);
      return m === undefined ? undefined : m.get(op.id);
    };
    if (rec === undefined && op.outbox === "requeue") {
      // Still pending, behind every other row (a row set aside): a new place in the outbox.
      rec = current();
      if (rec === undefined || rec.pend === undefined) continue;
      rec.pend = op.pend;
    } else if (rec === undefined) {
      // Only the outbox state changes: the current record, acknowledged.
      rec = current();
      if (rec === undefined || rec.pend === undefined || op.outbox === "put") continue;
      delete rec.pend;
      delete rec.resync;
    } else if (op.outbox === "put") {
      rec.pend = op.pend;
    }
    let list = puts.get(op.c);
    if (list === undefined) puts.set(op.c, (list = []));
    list.push(rec);
  }
  return Array.from(puts);
}

/**
 * Server reset: the records of a collection that are not pending, marked as "resync" at `stamp`
 * (this client's clock: a remote HLC may be ahead of it, and a watermark moved past it would hide
 * later local writes), to be put back so what the new server database lacks is pushed again.
 */
export function resyncRecords(records, mark, stamp) {
  const out = [];
  for (const rec of records) {
    if (isPending(rec, mark)) continue;
    rec.pend = stamp;
    rec.resync = true;
    out.push(rec);
  }
  return out;
}
