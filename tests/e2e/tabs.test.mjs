// Two tabs of one device (one browser context: shared IndexedDB): changes cross tabs within a second,
// and only one tab talks to the sync server at a time; when it closes, the other takes over.
import assert from "node:assert/strict";
import {
	addTodos,
	e2eTest,
	eventually,
	expectItems,
	expectTitles,
	item,
	newSpace,
	openApp,
	pendingCount,
} from "./harness.mjs";

const SYNC_REQUEST = /\/v1\/(push|pull)(\?|$)/;

/** Counts this page's push and pull requests (the library's fetches, main thread or worker). */
function countSyncRequests(page) {
	const counter = { push: 0, pull: 0, get total() { return this.push + this.pull; } };
	page.on("request", (request) => {
		const m = SYNC_REQUEST.exec(new URL(request.url()).pathname);
		if (m) counter[m[1]] += 1;
	});
	return counter;
}

e2eTest("a change in one tab appears in the other within a second, and only one tab syncs", async ({ device, shot }) => {
	const space = newSpace("tabs");
	const d = await device("device");
	const t1 = await d.newPage();
	const c1 = countSyncRequests(t1);
	await openApp(t1, { space });
	const t2 = await d.newPage();
	const c2 = countSyncRequests(t2);
	await openApp(t2, { space });

	// Tab 1 -> tab 2, within a second.
	await addTodos(t1, "from tab one");
	await expectTitles(t2, ["from tab one"], { timeout: 1000, interval: 20 });

	// Tab 2 -> tab 1, within a second.
	await item(t2, "from tab one").locator(".toggle").check();
	await expectItems(t1, [{ title: "from tab one", completed: true }], { timeout: 1000, interval: 20 });
	await addTodos(t2, "from tab two");
	await expectTitles(t1, ["from tab one", "from tab two"], { timeout: 1000, interval: 20 });

	// The changes reach the server (pending drops to 0 in both tabs)...
	for (const page of [t1, t2]) {
		await eventually(async () => {
			// The database's count first: the page's counter may still show a 0 from before the write.
			assert.equal(await page.evaluate(() => window.ferrosyncDemo.db.pendingCount()), 0);
			assert.equal(await pendingCount(page), 0);
		}, { timeout: 10000 });
	}
	// ...through exactly one of the tabs.
	const counts = [c1.total, c2.total];
	assert.equal(counts.filter((n) => n > 0).length, 1, `push/pull requests per tab: ${counts}`);
	await shot(t1, "tab1");
	await shot(t2, "tab2");

	// Closing the syncing tab hands the job to the other one.
	const [syncing, other, otherCount] = c1.total > 0 ? [t1, t2, c2] : [t2, t1, c1];
	await syncing.close();
	await addTodos(other, "after the hand-over");
	// Both must hold together: right after the hand-over the tab's pending count can still read 0
	// (before its new leader role has pushed), so waiting on the count alone raced the push.
	await eventually(
		async () => {
			assert.ok(otherCount.push > 0, "the remaining tab pushed");
			assert.equal(await pendingCount(other), 0);
		},
		{ timeout: 15000 },
	);

	// A second device proves the server has everything.
	const b = await device("other-device");
	const pb = await b.newPage();
	await openApp(pb, { space });
	await expectItems(
		pb,
		[
			{ title: "from tab one", completed: true },
			{ title: "from tab two", completed: false },
			{ title: "after the hand-over", completed: false },
		],
		{ timeout: 10000 },
	);
});
