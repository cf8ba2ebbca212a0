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

export async function run({ convertUrl, recordsUrl, n = 10000, reps = 7 }) {
  await initBoundary();
  // ferrosync's shipped src/js/convert.js and src/store/records.js (from the package's snippets).
  const convert = await import(convertUrl);
  const records = await import(recordsUrl);
  B.set_indexes(["category", "bucket"]);
  const docs = makeDocs(0, n);
  // What the strategies that serialise send: the JSON-ness walk, then the text.
  const jsonOf = (list) => {
    checkDocs(list);
    return JSON.stringify(list);
  };
  // records.js `projection` takes [[ident, segments]]; the same idents as set_indexes.
  const paths = [["i_category", ["category"]], ["i_bucket", ["bucket"]]];
  const MAX_ID_BYTES = 256; // ferrosync_core::limits::MAX_ID_LEN

  // Each strategy: documents in, (objects to store, ix projections) out.
  const strategies = [
    {
      key: "untouched",
      label: "objects untouched (ferrosync's choice): shipped convert.js checkDocs (core's rules in JS) + records.js projection; Rust gets the ids",
      fn: (list) => {
        const ids = convert.checkDocs(list, 100, MAX_ID_BYTES, false);
        if (B.untouched_ids(ids) !== list.length) throw new Error("ids");
        return { stored: list, ix: list.map((d) => records.projection(d, paths)) };
      },
    },
    {
      key: "json-batch",
      label: "one JSON text per batch (ferrosync before ee870c1): JSON-ness walk + JSON.stringify, serde_json, core's rules in Rust",
      fn: (list) => ({ stored: list, ix: JSON.parse(B.json_batch(jsonOf(list))) }),
    },
    {
      key: "json-batch-bytes",
      label: "the same, the text passed as UTF-8 bytes (TextEncoder) instead of a string",
      fn: (list) => ({ stored: list, ix: JSON.parse(B.json_batch_bytes(encoder.encode(jsonOf(list)))) }),
    },
    {
      key: "json-per-doc",
      label: "one JSON text per document: a boundary call per document",
      fn: (list) =>
        ({
          stored: list,
          ix: list.map((d) => {
            checkDocs([d]);
            return JSON.parse(B.json_one(JSON.stringify(d)));
          }),
        }),
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
  ];
  const parts = [
    { key: "part:check", label: "part: the JSON-ness walk alone (JS)", fn: (list) => checkDocs(list) },
    { key: "part:stringify", label: "part: JSON.stringify of the batch alone (JS)", fn: (list) => JSON.stringify(list) },
    { key: "part:encode", label: "part: JSON.stringify + TextEncoder.encode of the batch (JS)", fn: (list) => encoder.encode(JSON.stringify(list)) },
  ];

  // Correctness: same projections, stored objects equal to the input; rejections.
  const reference = strategies[1].fn(docs); // core's rules and IndexKey in Rust: the reference
  const results = {};
  for (const s of strategies) {
    const out = s.fn(docs);
    const sameIx = sameJson(out.ix, reference.ix);
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
