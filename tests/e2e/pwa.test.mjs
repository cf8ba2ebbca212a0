// Installability, the service worker (offline start, no API caching, update flow), and the sync space.
import assert from "node:assert/strict";
import {
	addTodos,
	appUrl,
	baseUrl,
	e2eTest,
	eventually,
	expectItems,
	item,
	newSpace,
	openApp,
	startProxy,
	waitControlled,
	waitReady,
} from "./harness.mjs";

/** Width and height from a PNG's IHDR chunk. */
function pngSize(bytes) {
	const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
	assert.deepEqual([...bytes.subarray(0, 8)], signature, "PNG signature");
	assert.equal(bytes.subarray(12, 16).toString("latin1"), "IHDR");
	return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

e2eTest("manifest has the fields installation needs, and every icon is a PNG of its size", async ({ device }) => {
	const d = await device("device");
	const page = await d.newPage();
	await openApp(page, { space: newSpace("pwa") });

	const href = await page.locator("link[rel=manifest]").getAttribute("href");
	const manifestUrl = new URL(href, page.url()).href;
	const res = await d.context.request.get(manifestUrl);
	assert.equal(res.status(), 200);
	const manifest = await res.json();
	assert.ok(manifest.name && manifest.short_name, "name and short_name");
	assert.equal(manifest.display, "standalone");
	assert.equal(new URL(manifest.start_url, manifestUrl).href, `${baseUrl()}/`);
	assert.equal(new URL(manifest.scope, manifestUrl).href, `${baseUrl()}/`);
	assert.match(manifest.theme_color, /^#[0-9a-f]{6}$/i);
	assert.match(manifest.background_color, /^#[0-9a-f]{6}$/i);
	assert.equal(
		await page.locator("meta[name=theme-color]").getAttribute("content"),
		manifest.theme_color,
	);

	const seen = new Set();
	for (const icon of manifest.icons) {
		const iconRes = await d.context.request.get(new URL(icon.src, manifestUrl).href);
		assert.equal(iconRes.status(), 200, icon.src);
		assert.match(iconRes.headers()["content-type"], /^image\/png/, `${icon.src} content-type`);
		assert.equal(icon.type, "image/png");
		const { width, height } = pngSize(await iconRes.body());
		assert.equal(`${width}x${height}`, icon.sizes, `${icon.src} is ${width}x${height}`);
		for (const purpose of (icon.purpose ?? "any").split(/\s+/)) seen.add(`${purpose}:${icon.sizes}`);
	}
	for (const needed of ["any:192x192", "any:512x512", "maskable:192x192", "maskable:512x512"]) {
		assert.ok(seen.has(needed), `icon ${needed}`);
	}
});

e2eTest("the browser finds the app installable and its service worker controls the page", async ({ device, shot }) => {
	const d = await device("device", { persistent: true });
	const page = await d.newPage();
	await openApp(page, { space: newSpace("pwa") });
	await waitControlled(page);

	const cdp = await d.context.newCDPSession(page);
	const manifest = await cdp.send("Page.getAppManifest");
	assert.deepEqual(manifest.errors, [], "manifest parse errors");
	assert.ok(manifest.url.endsWith("/manifest.webmanifest"));
	// Chromium's own installability check (manifest, icons, service worker with a fetch handler).
	await eventually(
		async () => {
			const { installabilityErrors } = await cdp.send("Page.getInstallabilityErrors");
			assert.deepEqual(installabilityErrors, []);
		},
		{ timeout: 10000, interval: 250 },
	);

	const sw = await page.evaluate(async () => {
		const reg = await navigator.serviceWorker.getRegistration();
		return {
			scope: reg.scope,
			script: reg.active.scriptURL,
			controller: navigator.serviceWorker.controller.scriptURL,
		};
	});
	assert.equal(sw.scope, `${baseUrl()}/`);
	assert.equal(sw.script, `${baseUrl()}/sw.js`);
	assert.equal(sw.controller, sw.script);
	await shot(page);
});

e2eTest("the service worker caches shell, glue and .wasm in one versioned cache, and never /v1", async ({ device }) => {
	const d = await device("device");
	const page = await d.newPage();
	await openApp(page, { space: newSpace("pwa") });
	await waitControlled(page);
	await addTodos(page, "cache me");
	const caches = await page.evaluate(async () => {
		const out = {};
		for (const name of await caches.keys()) {
			const cache = await caches.open(name);
			out[name] = (await cache.keys()).map((r) => new URL(r.url).pathname);
		}
		return out;
	});
	const names = Object.keys(caches);
	assert.equal(names.length, 1, `one cache, got ${names}`);
	assert.match(names[0], /^ferrosync-demo-v/);
	const paths = caches[names[0]];
	for (const p of ["/", "/app.js", "/pkg/ferrosync.js", "/pkg/ferrosync_bg.wasm", "/manifest.webmanifest", "/app.css"]) {
		assert.ok(paths.includes(p), `${p} cached (have ${paths.join(", ")})`);
	}
	assert.deepEqual(
		paths.filter((p) => p.startsWith("/v1")),
		[],
		"sync API responses are never cached",
	);
	// Everything the page loaded from the app (modules with build-specific names included) is cached.
	const loaded = await page.evaluate(() =>
		performance
			.getEntriesByType("resource")
			.map((e) => new URL(e.name))
			.filter((u) => u.origin === location.origin && !u.pathname.startsWith("/v1"))
			.map((u) => u.pathname),
	);
	assert.ok(loaded.some((p) => p.endsWith(".wasm")), `resources seen: ${loaded.join(", ")}`);
	assert.deepEqual(
		[...new Set(loaded.filter((p) => !paths.includes(p)))],
		[],
		"loaded but not cached",
	);
});

e2eTest("a reload with the network off shows the app and its data", async ({ device, shot }) => {
	// The network goes off while the app may be syncing (the push after the writes below, or the
	// pull that the server's event stream then asks for): Chromium logs the request it cuts as a
	// console error. The app retries it when the network returns (sync.test.mjs covers that).
	const d = await device("device", { allowConsole: [/net::ERR_INTERNET_DISCONNECTED/] });
	const page = await d.newPage();
	const space = newSpace("offline");
	await openApp(page, { space });
	await waitControlled(page);
	await addTodos(page, "works offline", "still here");
	await item(page, "still here").locator(".toggle").check();
	await expectItems(page, [
		{ title: "works offline", completed: false },
		{ title: "still here", completed: true },
	]);

	await d.context.setOffline(true);
	await page.reload();
	await waitReady(page);
	await expectItems(page, [
		{ title: "works offline", completed: false },
		{ title: "still here", completed: true },
	]);
	await eventually(async () =>
		assert.equal(await page.locator(".sync-status").getAttribute("data-state"), "offline"),
	);
	assert.equal(await page.evaluate(() => navigator.onLine), false);

	// Still a working app while offline: add, and ask for a Background Sync for when the network returns.
	await addTodos(page, "added offline");
	await eventually(async () =>
		assert.deepEqual(
			await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).sync.getTags()),
			["ferrosync-sync"],
		),
	);
	await shot(page, "offline");

	// A second offline reload still has everything, including the offline addition.
	await page.reload();
	await waitReady(page);
	await expectItems(page, [
		{ title: "works offline", completed: false },
		{ title: "still here", completed: true },
		{ title: "added offline", completed: false },
	]);
	await d.context.setOffline(false);
});

e2eTest("a new service worker waits, the page offers the update, and Reload switches to it", async ({ device, shot, defer }) => {
	// A proxy in front of the server plays the deployment: once `deployed`, sw.js has a new VERSION.
	let deployed = false;
	const proxy = await startProxy((pathname) =>
		deployed && pathname === "/sw.js"
			? (body) => body.replace(/const VERSION = "([^"]*)";/, 'const VERSION = "$1-next";')
			: null,
	);
	defer(() => proxy.close());
	{
		const d = await device("device");
		const page = await d.newPage();
		await page.goto(appUrl({ space: newSpace("update"), base: proxy.url }));
		await waitReady(page);
		await waitControlled(page);
		await addTodos(page, "survives the update");
		const before = await page.evaluate(() => caches.keys());
		assert.equal(before.length, 1);

		deployed = true;
		await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).update());

		const toast = page.locator(".update-toast");
		await toast.waitFor({ state: "visible", timeout: 20000 });
		// The new worker waits: the old one still controls the page, both caches exist.
		const waiting = await page.evaluate(async () => {
			const reg = await navigator.serviceWorker.getRegistration();
			return { waiting: Boolean(reg.waiting), caches: (await caches.keys()).sort() };
		});
		assert.equal(waiting.waiting, true);
		assert.deepEqual(waiting.caches, [before[0], `${before[0]}-next`].sort());
		await shot(page, "update-available");

		await Promise.all([
			page.waitForEvent("load", { timeout: 20000 }),
			page.locator(".update-reload").click(),
		]);
		await waitReady(page);
		await waitControlled(page);
		// The reloaded page runs under the new worker, whose activation removed the old cache.
		await eventually(async () =>
			assert.deepEqual(await page.evaluate(() => caches.keys()), [`${before[0]}-next`]),
		);
		const reg = await page.evaluate(async () => {
			const r = await navigator.serviceWorker.getRegistration();
			return { waiting: Boolean(r.waiting), installing: Boolean(r.installing) };
		});
		assert.deepEqual(reg, { waiting: false, installing: false });
		assert.equal(await toast.isVisible(), false);
		await expectItems(page, [{ title: "survives the update", completed: false }]);
	}
});

e2eTest("without ?space= a fresh browser gets its own random space, remembered, with a share link", async ({ device, shot }) => {
	const one = await device("one");
	const two = await device("two");
	const p1 = await one.newPage();
	const p2 = await two.newPage();
	await p1.goto(appUrl());
	await waitReady(p1);
	await p2.goto(appUrl());
	await waitReady(p2);

	const space1 = new URL(p1.url()).searchParams.get("space");
	const space2 = new URL(p2.url()).searchParams.get("space");
	assert.match(space1, /^[A-Za-z0-9_-]{12,64}$/);
	assert.notEqual(space1, space2, "two browsers, two spaces");
	assert.equal(await p1.locator(".todo-list li").count(), 0, "a fresh browser starts empty");
	const share = await p1.locator(".share-link").inputValue();
	assert.equal(new URL(share).searchParams.get("space"), space1);

	await addTodos(p1, "mine");
	// Opening the bare URL again in the same browser returns to the same space and data.
	await p1.goto(appUrl());
	await waitReady(p1);
	assert.equal(new URL(p1.url()).searchParams.get("space"), space1);
	await expectItems(p1, [{ title: "mine", completed: false }]);
	await shot(p1, "share");
	// The other browser's list is its own.
	assert.equal(await p2.locator(".todo-list li").count(), 0);
});

e2eTest("the conflict policy control reopens the database with the chosen policy", async ({ device }) => {
	const d = await device("device");
	const page = await d.newPage();
	await openApp(page, { space: newSpace("policy") });
	await addTodos(page, "keep me");
	const select = page.locator(".conflict-policy");
	assert.equal(await select.inputValue(), "lww");
	for (const policy of ["merge", "keep-both", "lww"]) {
		await select.selectOption(policy);
		await eventually(async () => assert.equal(await select.isEnabled(), true));
		assert.equal(await page.evaluate(() => localStorage.getItem("ferrosync-demo.policy")), policy);
		// The live query is back after the reopen: a new write shows up.
		await addTodos(page, `after ${policy}`);
	}
	await expectItems(page, [
		{ title: "keep me", completed: false },
		{ title: "after merge", completed: false },
		{ title: "after keep-both", completed: false },
		{ title: "after lww", completed: false },
	]);
	// The choice sticks across reloads.
	await select.selectOption("merge");
	await eventually(async () => assert.equal(await select.isEnabled(), true));
	await page.reload();
	await waitReady(page);
	assert.equal(await select.inputValue(), "merge");
	assert.match(page.url(), /[?&]policy=merge/);
});
