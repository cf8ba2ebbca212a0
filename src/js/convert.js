// JavaScript-side checks before a value crosses into Rust as JSON text. They catch what JSON cannot
// carry and `JSON.stringify` would silently drop or rewrite (functions, symbols, undefined, BigInt,
// NaN/Infinity, Dates and other class instances, cycles, sparse arrays); everything JSON can express
// is checked once more, by the shared Rust rules in ferrosync-core. Problems are thrown as strings.

const OBJECT_PROTO = Object.prototype;

/** "a string", "an array", "a Date", "undefined", ... for messages. */
export function kindOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  const t = typeof v;
  if (t === "object") {
    const proto = Object.getPrototypeOf(v);
    if (proto === OBJECT_PROTO || proto === null) return "an object";
    const name = v.constructor && v.constructor.name;
    return name ? `a ${name}` : "a non-plain object";
  }
  if (t === "undefined") return "undefined";
  if (t === "bigint") return "a BigInt";
  return `a ${t}`; // string, number, boolean, function, symbol
}

function fail(path, what) {
  throw `${path.length === 0 ? "the value" : `field "${path.join(".")}"`} ${what}`;
}

function walk(v, path, ancestors, maxDepth) {
  switch (typeof v) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(v)) fail(path, `is ${v}; JSON numbers must be finite`);
      return;
    case "undefined":
      fail(path, "is undefined; omit the field or use null");
      return;
    case "function":
      fail(path, "is a function, which is not JSON data");
      return;
    case "symbol":
      fail(path, "is a symbol, which is not JSON data");
      return;
    case "bigint":
      fail(path, "is a BigInt, which is not JSON data (store it as a string or a number)");
      return;
  }
  if (v === null) return;
  if (ancestors.has(v)) fail(path, "refers back to an object containing it (cyclic); documents must be trees");
  if (path.length >= maxDepth) fail(path, `nests deeper than ${maxDepth} levels`);
  ancestors.add(v);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      path.push(String(i));
      if (!(i in v)) fail(path, "is a hole in a sparse array; use null");
      walk(v[i], path, ancestors, maxDepth);
      path.pop();
    }
  } else {
    const proto = Object.getPrototypeOf(v);
    if (proto !== OBJECT_PROTO && proto !== null) {
      const hint = v instanceof Date ? " (store dates as ISO strings or numbers)" : "";
      fail(path, `is ${kindOf(v)}, not plain JSON data${hint}`);
    }
    const keys = Object.keys(v);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      path.push(k);
      walk(v[k], path, ancestors, maxDepth);
      path.pop();
    }
  }
  ancestors.delete(v);
}

function checkDocument(doc, maxDepth) {
  const kind = kindOf(doc);
  if (kind !== "an object") throw `a document must be a JSON object, got ${kind}`;
  walk(doc, [], new Set(), maxDepth);
}

/** One document as JSON text. */
export function prepareDoc(doc, maxDepth) {
  checkDocument(doc, maxDepth);
  return JSON.stringify(doc);
}

/** A batch of documents as the JSON text of one array. */
export function prepareDocs(docs, maxDepth) {
  if (!Array.isArray(docs)) throw `bulkPut expects an array of documents, got ${kindOf(docs)}`;
  for (let i = 0; i < docs.length; i++) {
    try {
      checkDocument(docs[i], maxDepth);
    } catch (problem) {
      throw `document ${i}: ${problem}`;
    }
  }
  return JSON.stringify(docs);
}

/** A query as JSON text; top-level `undefined` members count as absent (`{ limit: undefined }`). */
export function prepareQuery(query, maxDepth) {
  if (query === undefined || query === null) return "null";
  if (typeof query !== "object" || Array.isArray(query)) {
    throw `a query must be an object like { where, orderBy, limit, offset }, got ${kindOf(query)}`;
  }
  const ancestors = new Set([query]);
  for (const k of Object.keys(query)) {
    if (query[k] !== undefined) walk(query[k], [k], ancestors, maxDepth);
  }
  return JSON.stringify(query);
}

/** A copy of `doc` with a generated id (the caller's object is never modified). */
export function withId(doc, id) {
  return { id, ...doc };
}
