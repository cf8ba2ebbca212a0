// Two devices (two browser contexts: separate IndexedDB, separate service workers) on one sync space,
// syncing through the real server: live propagation, and offline edits on both converging by each
// conflict policy once the network is back, with no manual sync and no reload.
import assert from "node:assert/strict";
import {
	addTodos,
	appUrl,
	baseUrl,
	e2eTest,
	editTodo,
	eventually,
	expectItems,
	expectTitles,
	item,
	newSpace,
	openApp,
	pendingCount,
	startProxy,
	syncState,
	todoItems,
	waitControlled,
	waitReady,
} from "./harness.mjs";

/** How long a change may take to reach the other device (server events, or the sync after a write). */
const PROPAGATION = { timeout: 10000, interval: 100 };

async function twoDevices(device, { policy } = {}) {
	const space = newSpace("sync");
	const a = await device("a");
	const b = await device("b");
	const pa = await a.newPage();
	const pb = await b.newPage();
	await openApp(pa, { space, policy });
	await openApp(pb, { space, policy });
	return { a, b, pa, pb, space };
}

/** Both pages show `state` ("idle" when online and done) and no pending change. */
async function expectSettled(pages, state = "idle") {
	for (const page of pages) {
		await eventually(async () => {
			// The database's own count first: the page's counter can still show the 0 from before a
			// write whose re-count has not come back yet, which would let this pass before the push.
			assert.equal(await page.evaluate(() => window.ferrosyncDemo.db.pendingCount()), 0, "pending changes (database)");
			assert.equal(await pendingCount(page), 0, "pending changes (page)");
			assert.equal(await syncState(page), state);
		}, PROPAGATION);
	}
}

e2eTest("a todo added on device A shows up on device B without a reload", async ({ device, shot }) => {
	const { pa, pb } = await twoDevices(device);
	await addTodos(pa, "buy milk", "walk the dog");
	await expectTitles(pb, ["buy milk", "walk the dog"], PROPAGATION);

	await item(pa, "buy milk").locator(".toggle").check();
	await expectItems(
		pb,
		[
			{ title: "buy milk", completed: true },
			{ title: "walk the dog", completed: false },
		],
		PROPAGATION,
	);

	// And back the other way.
	await editTodo(pb, "walk the dog", "walk the dog twice");
	await expectTitles(pa, ["buy milk", "walk the dog twice"], PROPAGATION);
	await item(pb, "buy milk").hover();
	await item(pb, "buy milk").locator(".destroy").click();
	await expectTitles(pa, ["walk the dog twice"], PROPAGATION);

	await expectSettled([pa, pb]);
	for (const page of [pa, pb]) {
		assert.match(await page.locator(".last-sync").textContent(), /^synced /);
	}
	await shot(pa, "a");
	await shot(pb, "b");
});

/**
 * Both devices go offline and edit the same todos; A edits first, B later:
 *   "buy milk":     A renames it "buy oat milk";  B renames it "buy almond milk"
 *   "walk dog":     A renames it "walk the dog";  B completes it
 *   "water plants": B deletes it
 *   A adds "call mom".
 * Each entry lists, per todo, the states the policy allows (both devices must end in the same one).
 */
const EXPECTED = {
	// Whole todo, newest write wins.
	lww: [
		[{ title: "buy almond milk", completed: false }],
		[{ title: "walk dog", completed: true }],
		[{ title: "call mom", completed: false }],
	],
	// Field by field: A's title and B's completion of "walk dog" both survive.
	merge: [
		[{ title: "buy almond milk", completed: false }],
		[{ title: "walk the dog", completed: true }],
		[{ title: "call mom", completed: false }],
	],
	// The demo's JS resolver keeps both titles (sorted) and completion from either side. ferrosync asks
	// it whenever a pending edit meets a version it was not made on, whichever device's clock is
	// ahead and whichever pushes first (edits of custom-policy collections carry their base version),
	// so both renames always survive.
	"keep-both": [
		[{ title: "buy almond milk / buy oat milk", completed: false }],
		[{ title: "walk dog / walk the dog", completed: true }],
		[{ title: "call mom", completed: false }],
	],
};

/** Both pages show the same list, each todo in one of the states `allowed` lists for it. */
async function expectConverged(pages, allowed, options) {
	await eventually(async () => {
		const lists = await Promise.all(pages.map(todoItems));
		for (const list of lists.slice(1)) assert.deepEqual(list, lists[0], "devices differ");
		assert.equal(lists[0].length, allowed.length, JSON.stringify(lists[0]));
		lists[0].forEach((todo, i) =>
			assert.ok(
				allowed[i].some((ok) => ok.title === todo.title && ok.completed === todo.completed),
				`todo ${i + 1} is ${JSON.stringify(todo)}, expected one of ${JSON.stringify(allowed[i])}`,
			),
		);
	}, options);
}

for (const policy of Object.keys(EXPECTED)) {
	e2eTest(`offline edits on two devices converge by the ${policy} policy when both come back online`, async ({ device, shot }) => {
		const { a, b, pa, pb } = await twoDevices(device, { policy });
		assert.equal(await pa.locator(".conflict-policy").inputValue(), policy);
		await addTodos(pa, "buy milk", "walk dog", "water plants");
		await expectTitles(pb, ["buy milk", "walk dog", "water plants"], PROPAGATION);
		await expectSettled([pa, pb]);

		await a.context.setOffline(true);
		await b.context.setOffline(true);
		for (const page of [pa, pb]) {
			await eventually(async () => assert.equal(await syncState(page), "offline"));
		}

		await editTodo(pa, "buy milk", "buy oat milk");
		await editTodo(pa, "walk dog", "walk the dog");
		await addTodos(pa, "call mom");
		await expectTitles(pa, ["buy oat milk", "walk the dog", "water plants", "call mom"]);
		await pa.waitForTimeout(50); // B's edits are strictly later

		await editTodo(pb, "buy milk", "buy almond milk");
		await item(pb, "walk dog").locator(".toggle").check();
		await item(pb, "water plants").hover();
		await item(pb, "water plants").locator(".destroy").click();
		await expectItems(pb, [
			{ title: "buy almond milk", completed: false },
			{ title: "walk dog", completed: true },
		]);
		await eventually(async () => assert.equal(await pendingCount(pa), 3));
		await eventually(async () => assert.equal(await pendingCount(pb), 3));
		await shot(pa, "a-offline");
		await shot(pb, "b-offline");

		// Back online: the `online` event alone must bring both to the same state.
		await a.context.setOffline(false);
		await b.context.setOffline(false);
		await expectConverged([pa, pb], EXPECTED[policy], PROPAGATION);
		await expectSettled([pa, pb]);
		// Stable: no ping-pong of resolutions afterwards.
		await pa.waitForTimeout(1500);
		await expectConverged([pa, pb], EXPECTED[policy], { timeout: 0 });
	});
}

e2eTest("a device that joins later receives the whole list on its first sync", async ({ device }) => {
	const space = newSpace("join");
	const a = await device("a");
	const pa = await a.newPage();
	await openApp(pa, { space });
	const many = Array.from({ length: 25 }, (_, i) => `task ${String(i + 1).padStart(2, "0")}`);
	await addTodos(pa, ...many);
	await expectSettled([pa]);

	const b = await device("b");
	const pb = await b.newPage();
	await openApp(pb, { space });
	await expectTitles(pb, many, PROPAGATION);
	await eventually(async () => assert.equal(await pb.locator(".todo-count strong").textContent(), "25"));
});

e2eTest("offline writes wait as pending and go out when the network returns", async ({ device, shot }) => {
	const space = newSpace("pending");
	const a = await device("a");
	const pa = await a.newPage();
	await openApp(pa, { space });
	await addTodos(pa, "online first");
	await expectSettled([pa]);
	await a.context.setOffline(true);
	await eventually(async () => assert.equal(await syncState(pa), "offline"));
	await addTodos(pa, "offline one", "offline two");
	await eventually(async () => assert.equal(await pendingCount(pa), 2));
	assert.match(await pa.locator(".pending").textContent(), /2\s+pending changes/);
	await shot(pa, "pending");
	await a.context.setOffline(false);
	await expectSettled([pa]);

	const b = await device("b");
	const pb = await b.newPage();
	await openApp(pb, { space });
	await expectTitles(pb, ["online first", "offline one", "offline two"], PROPAGATION);
});

e2eTest("a Background Sync event from the service worker makes the open app sync", async ({ device }) => {
	const d = await device("device");
	const page = await d.newPage();
	await openApp(page, { space: newSpace("bgsync") });
	await waitControlled(page);
	// Count the app's calls of db.sync().
	await page.evaluate(() => {
		const db = window.ferrosyncDemo.db;
		const original = db.sync.bind(db);
		window.syncCalls = 0;
		db.sync = (...args) => {
			window.syncCalls += 1;
			return original(...args);
		};
	});
	const cdp = await d.context.newCDPSession(page);
	const registration = new Promise((resolve) =>
		cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations }) => {
			const r = registrations.find((x) => x.scopeURL === `${baseUrl()}/` && !x.isDeleted);
			if (r) resolve(r.registrationId);
		}),
	);
	await cdp.send("ServiceWorker.enable");
	const registrationId = await registration;
	await cdp.send("ServiceWorker.dispatchSyncEvent", {
		origin: baseUrl(),
		registrationId,
		tag: "ferrosync-sync",
		lastChance: false,
	});
	await eventually(async () => assert.equal(await page.evaluate(() => window.syncCalls), 1));
});

e2eTest("a failing server shows the sync error; the app keeps working and recovers by itself", async ({ device, shot, defer }) => {
	let failing = false;
	const proxy = await startProxy((pathname) =>
		failing && /^\/v1\/(push|pull)$/.test(pathname)
			? {
					status: 503,
					body: JSON.stringify({ error: { code: "UNAVAILABLE", message: "maintenance (injected by the test)" } }),
				}
			: null,
	);
	defer(() => proxy.close());
	// The browser logs each failed request; those are the point of this test.
	const d = await device("device", { allowConsole: [/status of 503/] });
	const page = await d.newPage();
	await page.goto(appUrl({ space: newSpace("error"), base: proxy.url }));
	await waitReady(page);
	await addTodos(page, "before the outage");
	await expectSettled([page]);

	failing = true;
	await addTodos(page, "during the outage");
	await eventually(async () => assert.equal(await syncState(page), "error"), PROPAGATION);
	assert.equal(await page.locator(".sync-error").isVisible(), true);
	assert.match(await page.locator(".sync-error").textContent(), /\S/);
	assert.equal(await pendingCount(page), 1);
	await expectTitles(page, ["before the outage", "during the outage"]);
	await shot(page, "error");

	failing = false;
	// Retries with backoff: no reload, no click.
	await eventually(async () => {
		assert.equal(await syncState(page), "idle");
		assert.equal(await pendingCount(page), 0);
	}, { timeout: 30000, interval: 200 });
	assert.equal(await page.locator(".sync-error").isVisible(), false);
});

/** Two keep-both devices that both renamed the synced "buy milk" offline (a first, b 50 ms later). */
async function offlineRenames(device) {
	const devices = await twoDevices(device, { policy: "keep-both" });
	const { a, b, pa, pb } = devices;
	await addTodos(pa, "buy milk");
	await expectTitles(pb, ["buy milk"], PROPAGATION);
	await expectSettled([pa, pb]);
	await a.context.setOffline(true);
	await b.context.setOffline(true);
	await editTodo(pa, "buy milk", "buy oat milk");
	await pa.waitForTimeout(50);
	await editTodo(pb, "buy milk", "buy almond milk");
	await eventually(async () => assert.equal(await pendingCount(pa), 1));
	await eventually(async () => assert.equal(await pendingCount(pb), 1));
	return devices;
}

e2eTest("the keep-both resolver runs when an older offline rename reaches the server after a newer one", async ({ device }) => {
	const { a, b, pa, pb } = await offlineRenames(device);

	// The newer rename lands first; the older one then meets it and goes through the resolver.
	await b.context.setOffline(false);
	await expectSettled([pb]);
	await a.context.setOffline(false);
	await expectTitles(pa, ["buy almond milk / buy oat milk"], PROPAGATION);
	await expectTitles(pb, ["buy almond milk / buy oat milk"], PROPAGATION);
	await expectSettled([pa, pb]);
});

e2eTest("the keep-both resolver runs when the older offline rename reaches the server first", async ({ device }) => {
	const { a, b, pa, pb } = await offlineRenames(device);

	// The older rename lands first (made on the synced todo, it is taken); the newer one was made on
	// that same version, not on the older rename, so the server refuses it and b's resolver decides.
	await a.context.setOffline(false);
	await expectSettled([pa]);
	await b.context.setOffline(false);
	await expectTitles(pb, ["buy almond milk / buy oat milk"], PROPAGATION);
	await expectTitles(pa, ["buy almond milk / buy oat milk"], PROPAGATION);
	await expectSettled([pa, pb]);
});
