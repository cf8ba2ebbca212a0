// Deterministic test documents of about 1 KB of JSON each.
//
// Field layout, chosen so every scenario has a natural query:
// - `category`: "c00".."c99" (i % 100): an equality on it selects 1% of the documents (indexed).
// - `bucket`: 0..9 (i % 10): an equality on it selects 10%; the watch scenario watches bucket 3, which
//   holds 1,000 of 10,000 documents (indexed).
// - the rest is payload: a title, numbers, tags, a nested object and a text body padding to ~1 KB.

const WORDS = (
  "local first offline sync store index query watch clock merge write read batch page tab worker " +
  "browser record field value change cursor server client device conflict policy vector hybrid " +
  "logical time stamp commit abort upgrade schema object array number string boolean nested path"
).split(" ");

/** mulberry32: a small seeded PRNG, so every run and every library gets the same documents. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function docId(i) {
  return "doc-" + String(i).padStart(6, "0");
}

export function category(i) {
  return "c" + String(i % 100).padStart(2, "0");
}

/** Document number `i` (fresh object each call: libraries may keep or structured-clone it). */
export function makeDoc(i, seed = 1) {
  const r = rng(i * 7919 + seed);
  const word = () => WORDS[(r() * WORDS.length) | 0];
  let body = "";
  while (body.length < 640) body += word() + " ";
  return {
    id: docId(i),
    title: `Task ${i}: ${word()} ${word()} ${word()}`,
    category: category(i),
    bucket: i % 10,
    priority: i % 5,
    done: i % 3 === 0,
    createdAt: 1700000000000 + i * 1000,
    tags: [word(), word(), word()],
    owner: { name: `user${i % 37}`, team: `team${i % 7}`, score: Math.round(r() * 1000) / 10 },
    body: body.trimEnd(),
  };
}

export function makeDocs(from, n, seed = 1) {
  const out = new Array(n);
  for (let k = 0; k < n; k++) out[k] = makeDoc(from + k, seed);
  return out;
}

/** Average JSON size of `docs` in bytes (reported with the results). */
export function avgJsonBytes(docs) {
  let total = 0;
  for (const d of docs) total += JSON.stringify(d).length;
  return Math.round(total / docs.length);
}

/** Shuffled copy (seeded), for random-order gets. */
export function shuffled(list, seed = 7) {
  const r = rng(seed);
  const a = list.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = (r() * (i + 1)) | 0;
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
