// @ts-check (tests/types/tsconfig.src.json checks this file in CI)
// Pulled documents held as the objects the browser's `JSON.parse` made (src/store/held.rs): a page's
// documents are parsed once, here, and written to IndexedDB as they are, so their text never crosses
// into WASM. WASM sees the page without them (each object document replaced by `{ id }`, its id when
// that is a string) and names each by its slot: the page's base plus its index.

/** base -> the page's documents, by index (`undefined` where a change has no object document). */
const pages = new Map();
let next = 0;

const utf8 = new TextEncoder();

/**
 * Holds the documents of `page` (a parsed pull reply) and returns `[json, base]`: the page as
 * UTF-8 JSON with each object document replaced by `{ id }` (bytes: a string passed into WASM is
 * walked character by character in JavaScript), and the slot of its first change (-1 when the
 * reply has no `changes` array: nothing is held, and WASM reports the reply as malformed).
 */
export function holdPage(page) {
  const changes = page !== null && typeof page === "object" ? page.changes : undefined;
  if (!Array.isArray(changes)) return [utf8.encode(JSON.stringify(page) ?? "null"), -1];
  if (pages.size === 0) next = 0;
  if (next + changes.length > 0xffffffff) throw new RangeError("ferrosync: too many pulled documents held");
  const base = next;
  next += changes.length;
  const docs = new Array(changes.length);
  for (let i = 0; i < changes.length; i++) {
    const c = changes[i];
    const doc = c !== null && typeof c === "object" ? c.doc : undefined;
    if (doc === null || typeof doc !== "object" || Array.isArray(doc)) continue;
    docs[i] = doc;
    const id = Object.prototype.hasOwnProperty.call(doc, "id") ? doc.id : undefined;
    c.doc = typeof id === "string" ? { id } : {};
  }
  pages.set(base, docs);
  return [utf8.encode(JSON.stringify(page)), base];
}

/** The document held at `slot` (`undefined` if none is). */
export function heldDoc(slot) {
  for (const [base, docs] of pages) {
    const i = slot - base;
    if (i >= 0 && i < docs.length) return docs[i];
  }
  return undefined;
}

/** The JSON text of the document held at `slot` (`undefined` if none is). */
export function heldText(slot) {
  const doc = heldDoc(slot);
  return doc === undefined ? undefined : JSON.stringify(doc);
}

/** Lets go of the page held at `base`: no document of it is referred to any more. */
export function releasePage(base) {
  pages.delete(base);
}

/** Test hook: how many pages are held. */
export function heldPages() {
  return pages.size;
}
