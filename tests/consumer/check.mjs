// Loads the consumer app's production build (app/dist) in headless Chromium and asserts that the
// installed ferrosync package stored, queried and watched data, on the page and in a worker, and
// kept it across a reload. Any uncaught page error, console error or failed request fails the test.
//
//   node check.mjs            (run by run.sh after `vite build`)
import assert from "node:assert/strict";
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = join(HERE, "app", "dist");
const { chromium } = createRequire(join(HERE, "app", "package.json"))("playwright-core");

const CHROMIUM = process.env.FERROSYNC_CHROMIUM || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".svg": "image/svg+xml",
};

/** A static server for dist/ on 127.0.0.1 and a free port. */
function serve(root) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    let file = normalize(join(root, path));
    if (!file.startsWith(root + sep) && file !== root) {
      res.writeHead(403).end();
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, "index.html");
    if (!existsSync(file)) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const EXPECTED_RUN = {
  stored: ["a", "b", "c", "d"],
  watchCalls: [
    [],
    ["write report", "buy milk", "fix bike"],
    ["water plants", "write report", "buy milk", "fix bike"],
    ["water plants", "write report", "fix bike"],
    ["water plants", "write report"],
  ],
  callsAfterUnsubscribe: 0,
  activeAfterUnsubscribe: false,
  findOpenPriority2: ["water plants", "write report"],
  // priority desc, ties by id: write report (5), water plants (3), buy milk (2), call mom again, fix bike
  findPage: ["water plants", "buy milk"],
  findDottedIn: ["a", "d"],
  countRankBelow3: 3,
  gotC: { id: "c", title: "write report", done: false, priority: 5, meta: { rank: 2, tags: ["work", "urgent"] } },
  gotMissing: "undefined",
  gotDeleted: "undefined",
  errors: {
    unknownCollection: "UNKNOWN_COLLECTION",
    invalidDocument: "INVALID_DOCUMENT",
    invalidQuery: "INVALID_QUERY",
    allErrors: true,
  },
};

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function checkRun(where, outcome) {
  const { generatedId, ...rest } = outcome;
  assert.match(generatedId, UUID_V7, `${where}: put() without an id should generate a UUIDv7`);
  assert.deepEqual(rest, EXPECTED_RUN, `${where}: the scenario's outcome`);
}

async function main() {
  assert.ok(existsSync(join(DIST, "index.html")), `no ${DIST}/index.html: run vite build first`);
  const server = await serve(DIST);
  const url = `http://127.0.0.1:${server.address().port}/`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  const problems = [];
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console error: ${m.text()}`);
    });
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
    page.on("response", (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
    });
    const wasm = [];
    page.on("response", (r) => {
      if (r.url().endsWith(".wasm")) wasm.push(`${r.url()} ${r.headers()["content-type"]}`);
    });

    const result = async () => {
      await page.waitForFunction(() => window.__consumer !== undefined, null, { timeout: 60000 });
      return page.evaluate(() => window.__consumer);
    };

    await page.goto(url);
    const first = await result();
    assert.equal(first.error, undefined, `the app failed: ${first.error}`);
    checkRun("page", first.page);
    checkRun("worker", first.worker);
    assert.ok(wasm.length >= 1, "the page should have fetched the .wasm");

    // The data is really in IndexedDB: a new page load opens it and finds it.
    await page.goto(`${url}?phase=reopen`);
    const second = await result();
    assert.equal(second.error, undefined, `the app failed after reload: ${second.error}`);
    assert.deepEqual(second.page, {
      count: 5,
      titles: ["after unsubscribe", "buy milk", "call mom again", "water plants", "write report"],
    });
    assert.deepEqual(problems, [], "no page errors, console errors or failed requests");
    console.log(`consumer check passed: ${url} (wasm: ${wasm.join(", ")})`);
    console.log(`  page:   ${first.page.watchCalls.length} watch calls, find/count/get/delete/errors as expected`);
    console.log(`  worker: ${first.worker.watchCalls.length} watch calls, same outcome`);
    console.log(`  reload: ${second.page.count} documents kept in IndexedDB`);
  } finally {
    await browser.close();
    server.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
