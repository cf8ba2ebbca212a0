// Shared set-up of the end-to-end tests: Debian's Chromium driven by playwright-core, one browser
// context per "device", error tracking (any uncaught page error or console error fails the test),
// screenshots, and small polling helpers.
//
// The server under test comes from FERROSYNC_E2E_URL, e.g. http://127.0.0.1:8787 — a
// `ferrosync-server --static www --auth dev` serving the demo with the built package in www/pkg.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = join(HERE, "screenshots");

export const CHROMIUM = process.env.FERROSYNC_E2E_CHROMIUM || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
	"--headless=new",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-dev-shm-usage",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--no-first-run",
];

/** Base URL of the server under test, without a trailing slash. */
export function baseUrl() {
	const url = process.env.FERROSYNC_E2E_URL;
	if (!url) {
		throw new Error(
			"FERROSYNC_E2E_URL is not set: start `ferrosync-server --static www --auth dev` (with the " +
				"package built into www/pkg) and set FERROSYNC_E2E_URL to its base URL, e.g. http://127.0.0.1:8787",
		);
	}
	return url.replace(/\/+$/, "");
}

export async function launch() {
	return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

let sharedBrowser = null;

/**
 * Declares a test that gets fresh devices (browser contexts) from one browser per test file. Whatever
 * happens, every open page is screenshotted into screenshots/<test>-<device>[-n].png, and the test
 * fails if any page had an uncaught error or logged a console error.
 *
 *   e2eTest("adds a todo", async ({ device }) => { const a = await device("a"); ... });
 */
export function e2eTest(name, fn, options = {}) {
	if (!e2eTest.registered) {
		e2eTest.registered = true;
		before(async () => {
			sharedBrowser = await launch();
		});
		after(async () => {
			await sharedBrowser?.close();
		});
	}
	test(name, { timeout: 120000, ...options }, async () => {
		const devices = [];
		const cleanups = [];
		const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 80);
		const tools = {
			browser: () => sharedBrowser,
			async device(deviceName, deviceOptions) {
				const d = await newDevice(sharedBrowser, deviceName, deviceOptions);
				devices.push(d);
				return d;
			},
			shot: (page, suffix) => screenshot(page, suffix ? `${slug}-${suffix}` : slug),
			/** Runs `fn` at the end, after every device has closed (e.g. to stop a proxy they use). */
			defer: (fn) => cleanups.push(fn),
		};
		let failed = null;
		try {
			await fn(tools);
		} catch (err) {
			failed = err;
		}
		for (const d of devices) {
			const pages = d.context.pages();
			for (const [i, page] of pages.entries()) {
				if (page.isClosed()) continue;
				const suffix = pages.length > 1 ? `${d.name}-${i + 1}` : d.name;
				await screenshot(page, `${slug}-${suffix}`).catch(() => {});
			}
		}
		for (const d of devices) await d.close();
		for (const fn of cleanups.reverse()) await fn();
		if (failed) {
			const errors = devices.flatMap((d) => d.errors);
			if (errors.length && failed instanceof Error) failed.message += `\npage errors:\n${errors.join("\n")}`;
			throw failed;
		}
		assertNoErrors(...devices);
	});
}

/** A random sync space, so tests never share server data. */
export function newSpace(prefix = "e2e") {
	return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/**
 * A device: one browser context (its own IndexedDB, service worker, cache), recording every uncaught
 * page error and console error of its pages. `allowConsole` takes regexps for console errors a test
 * provokes on purpose. `persistent: true` gives a context with a real profile on disk instead of an
 * incognito-like one (Chromium never offers to install an app from incognito).
 */
export async function newDevice(browser, name, { allowConsole = [], persistent = false } = {}) {
	const options = { viewport: { width: 760, height: 980 }, deviceScaleFactor: 1, serviceWorkers: "allow" };
	let profile = null;
	let context;
	if (persistent) {
		profile = mkdtempSync(join(tmpdir(), "ferrosync-e2e-"));
		context = await chromium.launchPersistentContext(profile, {
			...options,
			executablePath: CHROMIUM,
			args: CHROMIUM_ARGS,
			headless: true,
		});
	} else {
		context = await browser.newContext(options);
	}
	const device = { name, context, errors: [], allowConsole: [...allowConsole] };
	const watch = (page) => {
		page.on("pageerror", (err) => device.errors.push(`${name}: uncaught ${err.stack || err}`));
		page.on("console", (msg) => {
			if (msg.type() !== "error") return;
			const text = msg.text();
			if (device.allowConsole.some((re) => re.test(text))) return;
			const loc = msg.location();
			device.errors.push(`${name}: console.error ${text} (${loc.url}:${loc.lineNumber})`);
		});
	};
	context.on("page", watch);
	for (const page of context.pages()) watch(page);
	device.newPage = async () => {
		// A persistent context starts with one blank page: use it first.
		const blank = context.pages().find((p) => p.url() === "about:blank" && !p.usedByTest);
		const page = blank ?? (await context.newPage());
		page.usedByTest = true;
		return page;
	};
	device.close = async () => {
		await context.close().catch(() => {});
		if (profile) rmSync(profile, { recursive: true, force: true });
	};
	return device;
}

/** Fails when a device saw uncaught errors or console errors. */
export function assertNoErrors(...devices) {
	const errors = devices.flatMap((d) => d.errors);
	assert.deepEqual(errors, [], `page errors:\n${errors.join("\n")}`);
}

/** The app's URL for a space and options. */
export function appUrl({ space, policy, hash = "", base = baseUrl() } = {}) {
	const url = new URL(`${base}/`);
	if (space) url.searchParams.set("space", space);
	if (policy) url.searchParams.set("policy", policy);
	return url.href + hash;
}

/** Opens the app and waits until its database is open (html[data-ready]). */
export async function openApp(page, options = {}) {
	await page.goto(appUrl(options));
	await waitReady(page);
}

export async function waitReady(page) {
	await page.waitForSelector("html[data-ready='true']", { timeout: 20000 });
}

/** Waits until a service worker controls the page (the first visit is claimed, no reload needed). */
export async function waitControlled(page) {
	await page.waitForFunction(() => navigator.serviceWorker.controller?.state === "activated", null, {
		timeout: 20000,
	});
}

export async function screenshot(page, name) {
	mkdirSync(SCREENSHOTS, { recursive: true });
	const path = join(SCREENSHOTS, `${name}.png`);
	await page.screenshot({ path, fullPage: true });
	return path;
}

/** Retries `check` (which throws on failure) until it passes or `timeout` ms have passed. */
export async function eventually(check, { timeout = 5000, interval = 50 } = {}) {
	const deadline = Date.now() + timeout;
	for (;;) {
		try {
			return await check();
		} catch (err) {
			if (Date.now() > deadline) throw err;
		}
		await new Promise((r) => setTimeout(r, interval));
	}
}

// ------------------------------------------------------------------ TodoMVC page helpers

export async function addTodos(page, ...titles) {
	const input = page.locator(".new-todo");
	for (const title of titles) {
		const before = await page.locator(".todo-list li").count();
		await input.fill(title);
		await input.press("Enter");
		if (title.trim()) await eventually(async () => assert.ok((await page.locator(".todo-list li").count()) > before));
	}
}

/** The visible todos as [{ title, completed }]. */
export async function todoItems(page) {
	return page.$$eval(".todo-list li", (lis) =>
		lis.map((li) => ({
			title: li.querySelector("label").textContent,
			completed: li.classList.contains("completed"),
		})),
	);
}

export async function titles(page) {
	return page.$$eval(".todo-list li label", (labels) => labels.map((l) => l.textContent));
}

export async function expectTitles(page, expected, options) {
	await eventually(async () => assert.deepEqual(await titles(page), expected), options);
}

export async function expectItems(page, expected, options) {
	await eventually(async () => assert.deepEqual(await todoItems(page), expected), options);
}

export function item(page, title) {
	return page.locator(".todo-list li").filter({ has: page.locator("label", { hasText: new RegExp(`^${escapeRe(title)}$`) }) });
}

export async function editTodo(page, oldTitle, newTitle, key = "Enter") {
	const li = item(page, oldTitle);
	await li.locator("label").dblclick();
	const edit = li.locator(".edit");
	await edit.fill(newTitle);
	await edit.press(key);
}

export async function pendingCount(page) {
	return Number(await page.locator(".pending-count").textContent());
}

export async function syncState(page) {
	return page.locator(".sync-status").getAttribute("data-state");
}

function escapeRe(s) {
	return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ------------------------------------------------------------------ a rewriting proxy

/**
 * A loopback HTTP proxy in front of the server under test, for tests that must change what the server
 * serves (e.g. deploy a new sw.js) or to make it fail. `rewriter(pathname)` returns null to pass the
 * response through, a function turning a 200 response's body text into a new one, or
 * `{ status, body }` to answer that itself. Streams such as /v1/events pass through.
 * Returns { url, close() }.
 */
export async function startProxy(rewriter) {
	const http = await import("node:http");
	const target = new URL(baseUrl());
	const server = http.createServer((req, res) => {
		const pathname = new URL(req.url, "http://x").pathname;
		const rewrite = rewriter(pathname);
		if (rewrite && typeof rewrite === "object") {
			req.resume();
			res.writeHead(rewrite.status, { "content-type": "application/json" });
			res.end(rewrite.body ?? "");
			return;
		}
		const headers = { ...req.headers, host: target.host };
		if (rewrite) {
			// A rewritten file must not be answered with "304 Not Modified" from the original's validators.
			delete headers["if-none-match"];
			delete headers["if-modified-since"];
			headers["accept-encoding"] = "identity";
		}
		const upstream = http.request(
			{ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent: false },
			(up) => {
				if (!rewrite || up.statusCode !== 200) {
					res.writeHead(up.statusCode, up.headers);
					up.pipe(res);
					return;
				}
				const chunks = [];
				up.on("data", (c) => chunks.push(c));
				up.on("end", () => {
					const body = Buffer.from(rewrite(Buffer.concat(chunks).toString("utf8")), "utf8");
					const out = { ...up.headers, "content-length": String(body.length) };
					delete out.etag;
					delete out["last-modified"];
					delete out["transfer-encoding"];
					res.writeHead(up.statusCode, out);
					res.end(body);
				});
			},
		);
		upstream.on("error", () => {
			if (!res.headersSent) res.writeHead(502);
			res.end();
		});
		// A client that goes away (e.g. a closed page's event stream) ends the upstream request too.
		res.on("close", () => upstream.destroy());
		req.pipe(upstream);
	});
	await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
	return {
		url: `http://127.0.0.1:${server.address().port}`,
		close: () =>
			new Promise((resolve) => {
				server.closeAllConnections?.();
				server.close(() => resolve());
			}),
	};
}
