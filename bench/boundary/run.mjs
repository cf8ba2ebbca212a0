// Node side of the boundary micro-benchmark: runs bench/boundary/page.js in the already open
// benchmark page and prints its table.
import { readdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));

/** The URL (under /pkg/) of one of ferrosync's shipped JS snippets, e.g. "src/js/convert.js". */
function snippetUrl(pkg, rel) {
  const snippets = join(pkg, "snippets");
  for (const d of readdirSync(snippets)) {
    if (existsSync(join(snippets, d, ...rel.split("/")))) return `/pkg/snippets/${d}/${rel}`;
  }
  throw new Error(`no ${rel} snippet in ${snippets}`);
}

export async function runBoundary(page, pkg, log) {
  if (!existsSync(join(HERE, "..", ".boundary-pkg", "boundary.js"))) {
    throw new Error("bench/.boundary-pkg is not built (bash bench/run.sh --boundary builds it)");
  }
  log("\nboundary: converting 10,000 documents, each strategy ...");
  const r = await page.evaluate(
    (o) => import("/boundary/page.js").then((m) => m.run(o)),
    { convertUrl: snippetUrl(pkg, "src/js/convert.js"), recordsUrl: snippetUrl(pkg, "src/store/records.js") },
  );
  const yes = (b) => (b ? "yes" : "NO");
  log(`\n| strategy (10,000 docs) | median ms | same index keys | stored docs equal | key order kept | rejects $field / bad id / undefined / Date |`);
  log(`|---|---:|:-:|:-:|:-:|:-:|`);
  for (const [k, v] of Object.entries(r.results)) {
    if (k.startsWith("part:")) continue;
    const rj = v.rejects;
    log(`| ${k}: ${v.label} | ${v.median.toFixed(1)} | ${yes(v.sameIx)} | ${yes(v.sameDocs)} | ${yes(v.keyOrderKept)} | ${[rj.reservedName, rj.badId, rj.undefinedField, rj.date].map(yes).join(" / ")} |`);
  }
  for (const [k, v] of Object.entries(r.results)) {
    if (k.startsWith("part:")) log(`| ${v.label} | ${v.median.toFixed(1)} | | | | |`);
  }
  return r;
}
