// The first-sync benchmark's server side (issue 17), used by bench/run.mjs --first-sync: starts a
// release `ferrosync-server` on SQLite on a free port, seeds N ~1 KB documents (bench/docs.js) into
// one namespace by pushing them from here, runs bench/first-sync.js in the page and prints the table.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// bench/docs.js is a browser module (no package.json marks bench/ as ESM for node 20): loaded from
// its text, so node seeds exactly the documents the other benchmarks use.
const DOCS_JS = join(dirname(fileURLToPath(import.meta.url)), "docs.js");
export const { makeDocs, docId } = await import(
  "data:text/javascript," + encodeURIComponent(readFileSync(DOCS_JS, "utf8"))
);

const freePort = () =>
  new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on("error", fail);
  });

/** Starts the server; resolves with { url, stop } once /healthz answers. */
export async function startServer(bin) {
  if (!existsSync(bin)) {
    throw new Error(`no server binary at ${bin} (cargo build --release -p ferrosync-server, or --server-bin PATH)`);
  }
  const dir = mkdtempSync(join(tmpdir(), "fs-first-sync-"));
  const port = await freePort();
  const child = spawn(
    bin,
    ["--listen", `127.0.0.1:${port}`, "--database", `sqlite://${dir}/sync.db`, "--auth", "dev"],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, RUST_LOG: "warn" } },
  );
  let stderr = "";
  child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`ferrosync-server exited: ${stderr}`);
    try {
      if ((await fetch(url + "/healthz")).ok) break;
    } catch {}
    if (i > 200) throw new Error(`ferrosync-server did not answer on ${url}: ${stderr}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
  return {
    url,
    stop() {
      child.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Pushes `n` documents of bench/docs.js into the namespace of `token`, 1,000 per request. */
export async function seed(url, token, n) {
  const client = "bench-seeder";
  const wall = Date.now().toString(16).padStart(12, "0");
  let counter = 0;
  for (let from = 0; from < n; from += 1000) {
    const changes = makeDocs(from, Math.min(1000, n - from)).map((doc) => ({
      collection: "docs",
      id: doc.id,
      hlc: `${wall}-${(counter++).toString(16).padStart(6, "0")}-${client}`,
      doc,
    }));
    const res = await fetch(url + "/v1/push", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ clientId: client, changes }),
    });
    const body = await res.json();
    if (!res.ok) throw new Error(`seeding: HTTP ${res.status} ${JSON.stringify(body)}`);
    const refused = body.results.filter((r) => r.status !== "applied");
    if (refused.length) throw new Error(`seeding: not applied: ${JSON.stringify(refused[0])}`);
  }
}

const fmt = (v, d = 0) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));

export function firstSyncTable(result) {
  const r = result.results;
  const keys = Object.keys(r);
  const rows = [
    ["", ...keys.map((k) => r[k].label)],
    ["time, median (ms)", ...keys.map((k) => fmt(r[k].ms))],
    ["docs/s", ...keys.map((k) => fmt(r[k].docsPerSec))],
    ["longest main-thread stall (ms)", ...keys.map((k) => fmt(r[k].stallMs))],
    ["peak JS heap (MB)", ...keys.map((k) => fmt(r[k].heapMB, 1))],
    ["WASM memory (MB)", ...keys.map((k) => fmt(r[k].wasmMB, 1))],
    ["live query callbacks", ...keys.map((k) => fmt(r[k].watchCalls))],
    ["raw / this, per round", ...keys.map((k) => (result.ratios[k] ? result.ratios[k].perRound.map((x) => x.toFixed(2)).join(" ") : ""))],
    ["raw / this, of medians", ...keys.map((k) => (result.ratios[k] ? result.ratios[k].ofMedians.toFixed(2) + "x" : ""))],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((l) => String(l[i]).length)));
  const pad = (l) => "| " + l.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(" | ") + " |";
  return [pad(rows[0]), "|" + widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|") + "|", ...rows.slice(1).map(pad)].join("\n");
}
