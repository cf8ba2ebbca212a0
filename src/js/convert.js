// @ts-check (tests/types/tsconfig.src.json checks this file in CI)
// Checks on values before they are stored or used, done where the values are: in JavaScript.
//
// Documents are never serialised to cross into WASM (measured: producing and passing the JSON text
// cost 20-40x the walk below; see tests/convert_bench.rs). So this walk enforces, in one pass:
// - what only JavaScript can get wrong: functions, symbols, undefined, BigInt, NaN/Infinity, Dates
//   and other class instances, cycles, sparse arrays, strings that are not valid Unicode;
// - the JSON-level rules of ferrosync-core (`document::validate`, `limits::validate_id`), with the
//   same messages. core stays the reference (the server uses it); tests/browser.rs checks that this
//   walk and core agree on thousands of random documents.
// Problems are thrown as strings (the Rust side wraps them in the error with the right code).

const OBJECT_PROTO = Object.prototype;
const hasOwn = Object.prototype.hasOwnProperty;
// Rust's char::is_control: Unicode general category Cc (control characters on purpose).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const wellFormed =
  typeof "".isWellFormed === "function" ? (s) => s.isWellFormed() : (s) => !LONE_SURROGATE.test(s);

/** "a string", "an array", "a Date", "undefined", ... for messages (core's names for JSON types). */
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

function displayPath(path) {
  return path.length === 0 ? "the top level" : `"${path.join(".")}"`;
}

function fail(path, what) {
  throw `${path.length === 0 ? "the value" : `field "${path.join(".")}"`} ${what}`;
}

function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * Walks one value. `doc`: document rules (reserved `$` names, depth as core counts it); otherwise a
 * query, where `$` names are operators.
 */
function walk(v, path, ancestors, maxDepth, doc) {
  if (doc && path.length >= maxDepth) {
    throw `document nests deeper than ${maxDepth} levels at ${displayPath(path)}`;
  }
  switch (typeof v) {
    case "string":
      if (!wellFormed(v)) fail(path, "is a string with an unpaired surrogate (not valid Unicode)");
      return;
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
  if (!doc && path.length >= maxDepth) fail(path, `nests deeper than ${maxDepth} levels`);
  ancestors.add(v);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      path.push(String(i));
      if (!(i in v)) fail(path, "is a hole in a sparse array; use null");
      walk(v[i], path, ancestors, maxDepth, doc);
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
      if (doc && k.charCodeAt(0) === 36 /* $ */) {
        throw `field name ${JSON.stringify(k)} at ${displayPath(path)} is reserved: names starting with '$' are query operators`;
      }
      if (!wellFormed(k)) fail(path, `has a field name with an unpaired surrogate (not valid Unicode)`);
      path.push(k);
      walk(v[k], path, ancestors, maxDepth, doc);
      path.pop();
    }
  }
  ancestors.delete(v);
}

/** Checks one document; returns its id, or undefined when it has none (one will be generated). */
function checkDocument(d, maxDepth, maxIdBytes) {
  const kind = kindOf(d);
  if (kind !== "an object") throw `a document must be a JSON object, got ${kind}`;
  let id;
  if (hasOwn.call(d, "id") && d.id !== undefined) {
    id = d.id;
    if (typeof id !== "string") throw `field "id" must be a string, got ${kindOf(id)}`;
    if (id.length === 0) throw "invalid document id: id must not be empty";
    const bytes = utf8Length(id);
    if (bytes > maxIdBytes) throw `invalid document id: id is ${bytes} bytes, limit is ${maxIdBytes}`;
    if (CONTROL.test(id)) throw "invalid document id: id must not contain control characters";
  }
  walk(d, [], new Set(), maxDepth, true);
  return id;
}

/**
 * Checks documents (`single`: one, for `put`, else an array for `bulkPut`) and returns their ids
 * (`undefined` where absent). Throws the first problem, naming the document's position in a batch.
 */
export function checkDocs(docs, maxDepth, maxIdBytes, single) {
  if (single) return [checkDocument(docs, maxDepth, maxIdBytes)];
  if (!Array.isArray(docs)) throw `bulkPut expects an array of documents, got ${kindOf(docs)}`;
  const ids = new Array(docs.length);
  for (let i = 0; i < docs.length; i++) {
    try {
      ids[i] = checkDocument(docs[i], maxDepth, maxIdBytes);
    } catch (problem) {
      throw `document ${i}: ${problem instanceof Error ? problem.message : problem}`;
    }
  }
  return ids;
}

/** A query as JSON text; top-level `undefined` members count as absent (`{ limit: undefined }`). */
export function prepareQuery(query, maxDepth) {
  if (query === undefined || query === null) return "null";
  if (typeof query !== "object" || Array.isArray(query)) {
    throw `a query must be an object like { where, orderBy, limit, offset }, got ${kindOf(query)}`;
  }
  const ancestors = new Set([query]);
  for (const k of Object.keys(query)) {
    if (query[k] !== undefined) walk(query[k], [k], ancestors, maxDepth, false);
  }
  return JSON.stringify(query);
}

/** A copy of `doc` with a generated id (the caller's object is never modified). */
export function withId(doc, id) {
  return { id, ...doc };
}

/** JSON text of one document (for the rare places Rust must see a whole document). */
export function toJson(doc) {
  return JSON.stringify(doc);
}
