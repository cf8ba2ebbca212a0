// In the page: times the ways a 10,000-document batch can cross the WASM/JS boundary (see
// src/lib.rs of this crate) and checks they agree. Called by bench/boundary/run.mjs.
import initBoundary, * as B from "/boundary-pkg/boundary.js";
import { makeDocs } from "../docs.js";

const now = () => performance.now();
const encoder = new TextEncoder();
const gc = () => (typeof globalThis.gc === "function" ? globalThis.gc() : undefined);

// The JSON-ness checks of ferrosync's src/js/convert.js (`checkDocument`, not exported there), for
// the strategies that do not go through its `prepareDocs`: every strategy must reject what JSON
// cannot carry before Rust sees the value.
function checkValue(v, depth) {
  switch (typeof v) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(v)) throw "not finite";
      return;
    case "object":
      break;
    default:
      throw `a ${typeof v}`;
  }
  if (v === null) return;
  if (depth >= 100) throw "too deep";
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      if (!(i in v)) throw "hole";
      checkValue(v[i], depth + 1);
    }
  } else {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) throw "not a plain object";
    for (const k of Object.keys(v)) checkValue(v[k], depth + 1);
  }
}
function checkDocs(docs) {
  for (const d of docs) checkValue(d, 0);
}

/** Order-insensitive deep equality of JSON values. */
function sameJson(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameJson(a[k], b[k]));
}

function median(xs) {
  const a = xs.slice().sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

export async function run({ convertUrl, n = 10000, reps = 7 }) {
  await initBoundary();
  const convert = await import(convertUrl); // ferrosync's shipped src/js/convert.js
  B.set_indexes(["category", "bucket"]);
  const docs = makeDocs(0, n);
  const rowsOf = (list) => JSON.stringify(list.map((d) => [d.id, d.category ?? null, d.bucket ?? null]));

  // Each strategy: documents in, (objects to store, ix projections) out.
  const strategies = [
    {
      key: "json-batch",
      label: "one JSON text per batch (ferrosync's choice): convert.js checks + JSON.stringify, serde_json",
      fn: (list) => ({ stored: list, ix: JSON.parse(B.json_batch(convert.prepareDocs(list, 100))) }),
    },
    {
      key: "json-batch-bytes",
      label: "one JSON text per batch, passed as UTF-8 bytes (TextEncoder) instead of a string",
      fn: (list) => ({ stored: list, ix: JSON.parse(B.json_batch_bytes(encoder.encode(convert.prepareDocs(list, 100)))) }),
    },
    {
      key: "json-per-doc",
      label: "one JSON text per document: a boundary call per document",
      fn: (list) => ({ stored: list, ix: list.map((d) => JSON.parse(B.json_one(convert.prepareDoc(d, 100)))) }),
    },
    {
      key: "swb",
      label: "serde-wasm-bindgen from_value (Rust walks the JS objects), objects stored as given",
      fn: (list) => {
        checkDocs(list);
        return { stored: list, ix: JSON.parse(B.swb_batch(list)) };
      },
    },
    {
      key: "swb-roundtrip",
      label: "serde-wasm-bindgen both ways: documents rebuilt in Rust and converted back for storage",
      fn: (list) => {
        checkDocs(list);
        const [stored, ix] = B.swb_roundtrip(list);
        return { stored, ix: JSON.parse(ix) };
      },
    },
    {
      key: "untouched",
      label: "objects untouched: only [id, indexed values] cross (core's document rules do not run)",
      fn: (list) => {
        checkDocs(list);
        return { stored: list, ix: JSON.parse(B.untouched_rows(rowsOf(list))) };
      },
    },
  ];
  const parts = [
    { key: "part:check", label: "part: the JSON-ness walk alone (JS)", fn: (list) => checkDocs(list) },
    { key: "part:stringify", label: "part: JSON.stringify of the batch alone (JS)", fn: (list) => JSON.stringify(list) },
    { key: "part:encode", label: "part: JSON.stringify + TextEncoder.encode of the batch (JS)", fn: (list) => encoder.encode(JSON.stringify(list)) },
  ];

  // Correctness: same projections, stored objects equal to the input; rejections.
  const reference = strategies[0].fn(docs);
  const results = {};
  for (const s of strategies) {
    const out = s.fn(docs);
    const sameIx = JSON.stringify(out.ix) === JSON.stringify(reference.ix);
    const sameDocs = out.stored === docs || out.stored.every((d, i) => sameJson(d, docs[i]));
    const keyOrderKept = out.stored === docs || out.stored.every((d, i) => JSON.stringify(d) === JSON.stringify(docs[i]));
    const rejects = {};
    const bad = {
      reservedName: { id: "x", $bad: 1 },
      badId: { id: "" },
      undefinedField: { id: "x", a: undefined },
      date: { id: "x", when: new Date(0) },
    };
    for (const [k, doc] of Object.entries(bad)) {
      try {
        s.fn([doc]);
        rejects[k] = false;
      } catch {
        rejects[k] = true;
      }
    }
    results[s.key] = { label: s.label, sameIx, sameDocs, keyOrderKept, rejects, ms: [] };
  }
  for (const p of parts) results[p.key] = { label: p.label, ms: [] };

  const all = [...strategies, ...parts];
  for (let rep = 0; rep <= reps; rep++) {
    for (let k = 0; k < all.length; k++) {
      const s = all[(k + rep) % all.length];
      gc();
      const t0 = now();
      s.fn(docs);
      const dt = now() - t0;
      if (rep > 0) results[s.key].ms.push(dt);
    }
  }
  for (const r of Object.values(results)) r.median = median(r.ms);
  return { docs: n, reps, results };
}
