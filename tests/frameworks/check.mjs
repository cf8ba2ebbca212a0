// Drives the framework apps (built into dist/ by run.sh and served by a real ferrosync-server with
// `--static dist --auth dev`) in headless Chromium against real IndexedDB and the real sync server.
// For React, Vue and Svelte: the app renders from the store, re-renders on a local write (through
// its UI and through the API), on another tab's write, and on a sync from a second device; its sync
// status shows; a query object made anew on every render does not restart the live query; React
// runs under StrictMode (double mount); after unmount no subscription is left; for React and Vue, a
// live query whose later run really fails (a record corrupted through raw IndexedDB) reaches the
// error boundary / Vue's error handler. Then the RxJS page (errors, complete on db.close()) and the
// plain app. Any page error, console error or warning, or failed request fails the test.
//
//   node check.mjs http://127.0.0.1:PORT
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const BASE = (process.argv[2] || process.env.FERROSYNC_FRAMEWORKS_URL || "").replace(/\/+$/, "");
if (!BASE) {
  console.error("usage: node check.mjs http://127.0.0.1:PORT (a ferrosync-server --static dist --auth dev)");
  process.exit(2);
}
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
const TIMEOUT = 20000;

// Subscriptions each app holds while mounted, and how many times its mount effect runs.
const APPS = {
  // status, Suspense count, document, list; StrictMode mounts twice (development build)
  react: { open: 4, mounts: 2, rerender: true },
  // list, document, status
  vue: { open: 3, mounts: 1, rerender: true },
  // list, document, status, and an Observable used as a store
  svelte: { open: 4, mounts: 1, rerender: false },
};

const problems = [];

async function open(context, url) {
  const page = await context.newPage();
  const where = url.replace(BASE, "");
  page.on("pageerror", (e) => problems.push(`${where}: page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`${where}: console ${m.type()}: ${m.text()} (${m.location()?.url ?? "?"})`);
  });
  page.on("requestfailed", (r) => {
    // The event stream is cut when a page closes; that is not a failure of the app.
    if (!r.url().includes("/v1/events")) problems.push(`${where}: request failed: ${r.url()} (${r.failure()?.errorText})`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`${where}: HTTP ${r.status()} for ${r.url()}`);
  });
  await page.goto(url);
  await page.waitForFunction(() => window.__fw !== undefined || window.__fwError !== undefined, null, { timeout: 60000 });
  const error = await page.evaluate(() => window.__fwError);
  assert.equal(error, undefined, `${where} failed to start: ${error}`);
  return page;
}

const titles = (page) => page.$$eval("#list li", (lis) => lis.map((li) => li.textContent));

async function expectList(page, want, what) {
  try {
    await page.waitForFunction(
      (w) => JSON.stringify([...document.querySelectorAll("#list li")].map((li) => li.textContent)) === w,
      JSON.stringify(want),
      { timeout: TIMEOUT },
    );
  } catch {
    assert.deepEqual(await titles(page), want, `the list ${what}`);
  }
}

async function expectText(page, selector, want, what) {
  try {
    await page.waitForFunction(
      ([s, w]) => document.querySelector(s)?.textContent?.trim() === w,
      [selector, want],
      { timeout: TIMEOUT },
    );
  } catch {
    const got = await page.evaluate((s) => document.querySelector(s)?.textContent?.trim() ?? null, selector);
    assert.equal(got, want, `${selector} ${what}`);
  }
}

const stats = (page) => page.evaluate(() => window.__fw.stats());

async function frameworkApp(browser, app) {
  const want = APPS[app];
  const space = `${app}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const url = `${BASE}/${app}.html?space=${space}`;
  const deviceA = await browser.newContext();
  const deviceB = await browser.newContext();
  try {
    const a = await open(deviceA, url);
    // Renders from the store: data written before the app mounts.
    await a.evaluate(() => window.__fw.tasks.put({ id: "seed", title: "seeded", done: false, rank: 1 }));
    await a.evaluate(() => window.__fw.mount());
    await expectList(a, ["seeded"], "from the store");
    await expectText(a, "#detail", "seeded", "(the document hook) from the store");
    await expectText(a, "#open-count", "1", "(the count) from the store");
    const mounted = await stats(a);
    assert.equal(mounted.open, want.open, `${app}: subscriptions open while mounted`);
    assert.equal(await a.evaluate(() => window.__fw.mounts), want.mounts, `${app}: mount effects run (StrictMode double-mounts)`);

    if (want.rerender) {
      // A new query object with the same content on every render: no new subscription.
      for (let i = 0; i < 3; i++) await a.click("#rerender");
      await expectText(a, "#ticks", "3", "after three re-renders");
      await new Promise((r) => setTimeout(r, 200));
      const after = await stats(a);
      assert.equal(after.opened, mounted.opened, `${app}: re-rendering with an equal query opened a subscription`);
      assert.equal(after.open, want.open, `${app}: subscriptions open after re-renders`);
      await expectList(a, ["seeded"], "after re-renders");
    }

    // A local write through the app's UI.
    await a.fill("#new", "typed here");
    await a.press("#new", "Enter");
    await expectList(a, ["seeded", "typed here"], "after a write through the UI");
    await expectText(a, "#open-count", "2", "after a write through the UI");
    // A local write through the API, to the document the document hook shows.
    await a.evaluate(() => window.__fw.tasks.put({ id: "seed", title: "seeded, edited", done: false, rank: 1 }));
    await expectText(a, "#detail", "seeded, edited", "after a local edit");
    await expectList(a, ["seeded, edited", "typed here"], "after a local edit");

    // Another tab's write (same device: BroadcastChannel).
    const b = await open(deviceA, url);
    await b.evaluate(() => window.__fw.tasks.put({ id: "tab", title: "from another tab", done: false, rank: 10 }));
    await expectList(a, ["seeded, edited", "typed here", "from another tab"], "after another tab's write");

    // A second device's write, arriving by sync through the real server.
    const c = await open(deviceB, url);
    await c.evaluate(async () => {
      await window.__fw.tasks.put({ id: "dev2", title: "from device 2", done: false, rank: 20 });
      await window.__fw.db.sync();
    });
    await a.evaluate(() => window.__fw.db.sync());
    await expectList(a, ["seeded, edited", "typed here", "from another tab", "from device 2"], "after a sync from another device");
    await expectText(a, "#open-count", "4", "after a sync from another device");
    // The second device sees the first one's writes too, and marks one done: it leaves the list.
    await c.evaluate(async () => {
      await window.__fw.db.sync();
      const t = await window.__fw.tasks.get("tab");
      if (!t) throw new Error("device 2 did not receive the other tab's task");
      await window.__fw.tasks.put({ ...t, done: true });
      await window.__fw.db.sync();
    });
    await a.evaluate(() => window.__fw.db.sync());
    await expectList(a, ["seeded, edited", "typed here", "from device 2"], "after a remote edit");
    // The sync status hook: idle, nothing pending, synced at least once.
    await expectText(a, "#status", "idle 0 synced", "(sync status)");
    // A delete: the list and the document hook follow.
    await a.evaluate(() => window.__fw.tasks.delete("seed"));
    await expectText(a, "#detail", "(none)", "after a delete");
    await expectList(a, ["typed here", "from device 2"], "after a delete");
    assert.equal(await a.$eval("#list", (ul) => ul.getAttribute("data-ranks")), "2,20");

    // Unmount: every subscription closed, and really stopped.
    await a.evaluate(() => window.__fw.unmount());
    const unmounted = await stats(a);
    assert.equal(unmounted.open, 0, `${app}: subscriptions left after unmount`);
    assert.equal(unmounted.stillActive, 0, `${app}: a live query still active after unsubscribe`);
    // Writes after unmount reach no component (a leaked callback would throw or log).
    await a.evaluate(() => window.__fw.tasks.put({ id: "late", title: "after unmount", done: false, rank: 30 }));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await a.$("#list"), null, `${app}: the list is gone after unmount`);
    // A later run of a live query fails (a record corrupted through raw IndexedDB): the binding
    // reports it where its framework handles errors, and leaves no subscription behind.
    let failure = "";
    if (await a.evaluate(() => typeof window.__fw.failure === "function")) {
      const report = await a.evaluate(() => window.__fw.failure());
      assert.deepEqual(report, { shown: "STORAGE_ERROR", handled: "STORAGE_ERROR", leftOpen: 0 }, `${app}: a failed re-run`);
      failure = ", a failed re-run reaches its error handling";
    }
    console.log(
      `  ${app}: ok (${want.open} subscriptions while mounted, ${unmounted.opened} opened in all, 0 left after unmount${failure})`,
    );
  } finally {
    await deviceA.close();
    await deviceB.close();
  }
}

async function rxjsPage(browser) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.on("pageerror", (e) => problems.push(`rxjs: page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`rxjs: console ${m.type()}: ${m.text()}`);
    });
    await page.goto(`${BASE}/rxjs.html?space=rxjs-${Date.now().toString(36)}`);
    await page.waitForFunction(() => window.__rxjs !== undefined, null, { timeout: 60000 });
    const r = await page.evaluate(() => window.__rxjs);
    assert.equal(r.error, undefined, `the RxJS page failed: ${r.error}`);
    const { statusState, ...rest } = r;
    assert.ok(["idle", "syncing"].includes(statusState), `syncStatus() as an Observable gave state ${statusState}`);
    assert.deepEqual(rest, {
      seen: [
        ["first", "second"],
        ["first", "second", "third"],
      ],
      openWhileSubscribed: 1,
      doc: "third",
      missing: null,
      errorCode: "INVALID_QUERY",
      interop: true,
      plain: "first",
      ends: {
        // The failing live query: its first result, then one error with a stable code; nothing
        // after it (not the repaired result), no complete, and its live query stopped.
        failing: { next: 1, errors: ["STORAGE_ERROR"], completes: 0 },
        failClosed: true,
        // The other one kept its results and completed, once, inside db.close().
        ending: {
          seen: [
            ["b", "a"],
            ["c", "b", "a"],
            ["d", "c", "b", "a"],
          ],
          errors: 0,
          completes: 1,
        },
        completedInClose: 1,
        endClosed: true,
        openWhileBoth: 2,
        openAfterError: 1,
        openAfterClose: 0,
      },
      mainCompleted: 1,
      mainClosed: true,
      // liveQuery, two liveDocument, syncStatus, the plain subscribe (the failed one opened
      // nothing), the two of endings() and the last one on the synced database
      stats: { open: 0, opened: 8, stillActive: 0 },
    });
    console.log("  rxjs: ok (from(), error to error (subscribing and a failed re-run), complete on close, nothing after unsubscribe, 0 left open)");
  } finally {
    await context.close();
  }
}

async function plainApp(browser) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.on("pageerror", (e) => problems.push(`plain: page error: ${e.message}`));
    const loaded = [];
    page.on("response", (r) => loaded.push(r.url()));
    await page.goto(`${BASE}/plain/plain.html`);
    await page.waitForFunction(() => window.__plain !== undefined, null, { timeout: 60000 });
    assert.deepEqual(await page.evaluate(() => window.__plain), ["plain"]);
    console.log(`  plain: ok (${loaded.filter((u) => u.endsWith(".js")).length} script(s) loaded)`);
  } finally {
    await context.close();
  }
}

async function main() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  try {
    for (const app of Object.keys(APPS)) await frameworkApp(browser, app);
    await rxjsPage(browser);
    await plainApp(browser);
  } finally {
    await browser.close();
  }
  assert.deepEqual(problems, [], "no page errors, console errors or warnings, or failed requests");
  console.log(`frameworks check passed against ${BASE}`);
}

main().catch((e) => {
  console.error(e);
  if (problems.length) console.error("problems seen on the pages:\n  " + problems.join("\n  "));
  process.exit(1);
});
