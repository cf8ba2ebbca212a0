// Service worker of the ferrosync TodoMVC demo.
//
// - Precaches the app shell, the ferrosync JS glue and its .wasm, so the app starts with no network.
// - Code (pages, JS, .wasm, manifest) is network-first with a short timeout, falling back to the
//   cache: online users always run the newest build, and glue and .wasm never come from two builds.
//   Other static files (CSS, icons) are stale-while-revalidate.
// - Never touches the sync API (/v1/...): those requests go straight to the network, uncached.
// - Update flow: a changed sw.js installs next to the running one and waits; the page shows
//   "Update available", posts SKIP_WAITING when the user accepts, and reloads on controllerchange.
//   Activation deletes the caches of older versions.
//
// Bump VERSION when the list of shell files changes; the browser compares this file byte for byte.
// The modules that the entry points import (wasm-bindgen's snippets/<hash>/... files, whose names
// change with each build) are found at install time by following their static imports.
const VERSION = "5";
const CACHE_PREFIX = "ferrosync-demo-";
const CACHE = `${CACHE_PREFIX}v${VERSION}`;
const NETWORK_TIMEOUT_MS = 4000;

const SHELL = [
	"./",
	"./app.js",
	"./policies.js",
	"./sw-client.js",
	"./app.css",
	"./vendor/todomvc-app-css/index.css",
	"./manifest.webmanifest",
	"./icons/icon-192.png",
	"./icons/icon-512.png",
	"./icons/maskable-192.png",
	"./icons/maskable-512.png",
	"./icons/apple-touch-icon.png",
	"./icons/favicon-32.png",
	"./pkg/ferrosync.js",
	"./pkg/ferrosync_bg.wasm",
];

/** ES modules whose static imports are followed at install time. */
const MODULE_ENTRIES = ["./app.js", "./pkg/ferrosync.js"];

const scopeUrl = new URL(self.registration.scope);
const indexUrl = new URL("./", scopeUrl).href;

self.addEventListener("install", (event) => {
	event.waitUntil(precache());
	// No skipWaiting() here: an update waits until the page accepts it (see SKIP_WAITING).
});

async function precache() {
	const cache = await caches.open(CACHE);
	await cache.addAll(SHELL.map((path) => new Request(new URL(path, scopeUrl), { cache: "reload" })));
	// Follow static imports (import ... from "./x.js", export ... from, import("./x.js")) from the
	// entry modules, so every module the app loads is cached, whatever the build named it.
	const seen = new Set();
	const queue = MODULE_ENTRIES.map((path) => new URL(path, scopeUrl).href);
	while (queue.length) {
		const url = queue.shift();
		if (seen.has(url)) continue;
		seen.add(url);
		let response = await cache.match(url);
		if (!response) {
			response = await fetch(url, { cache: "reload" });
			if (!response.ok) throw new Error(`precache: ${url} answered ${response.status}`);
			await cache.put(url, response.clone());
		}
		const source = await response.text();
		for (const m of source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)(["'])(\.{1,2}\/[^"'\s]+)\1/g)) {
			const dep = new URL(m[2], url);
			if (dep.origin === scopeUrl.origin && dep.href.startsWith(scopeUrl.href)) queue.push(dep.href);
		}
	}
}

self.addEventListener("activate", (event) => {
	event.waitUntil(
		(async () => {
			const names = await caches.keys();
			await Promise.all(
				names.filter((n) => n.startsWith(CACHE_PREFIX) && n !== CACHE).map((n) => caches.delete(n)),
			);
			if (self.registration.navigationPreload) await self.registration.navigationPreload.enable();
			await self.clients.claim();
		})(),
	);
});

self.addEventListener("message", (event) => {
	if (event.data?.type === "SKIP_WAITING") self.skipWaiting();
});

// Background Sync: connectivity is back; ask the open tabs to sync now (the library picks one tab).
self.addEventListener("sync", (event) => {
	if (event.tag !== "ferrosync-sync") return;
	event.waitUntil(
		self.clients.matchAll({ type: "window" }).then((clients) => {
			for (const client of clients) client.postMessage({ type: "SYNC_REQUESTED" });
		}),
	);
});

function isApi(url) {
	return url.pathname === "/v1" || url.pathname.startsWith("/v1/");
}

function isNavigationToApp(request, url) {
	if (request.mode !== "navigate") return false;
	const scopePath = scopeUrl.pathname;
	return url.pathname === scopePath || url.pathname === `${scopePath}index.html`;
}

function isCode(url) {
	return /\.(m?js|wasm|webmanifest)$/.test(url.pathname);
}

self.addEventListener("fetch", (event) => {
	const { request } = event;
	if (request.method !== "GET") return;
	const url = new URL(request.url);
	if (url.origin !== self.location.origin || isApi(url)) return;
	if (!url.href.startsWith(scopeUrl.href)) return;

	if (isNavigationToApp(request, url)) {
		// Every address of the app (?space=..., #/active) is the one cached page.
		event.respondWith(networkFirst(event, indexUrl, event.preloadResponse));
	} else if (request.mode === "navigate") {
		return;
	} else if (isCode(url)) {
		event.respondWith(networkFirst(event, url.origin + url.pathname));
	} else {
		event.respondWith(staleWhileRevalidate(event, url.origin + url.pathname));
	}
});

async function store(key, response) {
	if (!response || !response.ok || response.type !== "basic") return;
	const cache = await caches.open(CACHE);
	await cache.put(key, response);
}

async function fromCache(key) {
	const cache = await caches.open(CACHE);
	return cache.match(key);
}

/** Network first; a failure or a network slower than NETWORK_TIMEOUT_MS falls back to the cache. */
async function networkFirst(event, key, preload) {
	const network = (async () => {
		const preloaded = preload ? await preload.catch(() => undefined) : undefined;
		return preloaded ?? (await fetch(event.request));
	})();
	// Attached first, so the copy is taken before the page reads the body.
	event.waitUntil(network.then((response) => store(key, response.clone())).catch(() => {}));
	let timer;
	const timeout = new Promise((resolve) => {
		timer = setTimeout(resolve, NETWORK_TIMEOUT_MS);
	});
	try {
		const first = await Promise.race([network, timeout]);
		if (first) return first;
		const cached = await fromCache(key);
		return cached ?? (await network);
	} catch (err) {
		const cached = await fromCache(key);
		if (cached) return cached;
		throw err;
	} finally {
		clearTimeout(timer);
	}
}

async function staleWhileRevalidate(event, key) {
	const network = fetch(event.request);
	event.waitUntil(network.then((response) => store(key, response.clone())).catch(() => {}));
	const cached = await fromCache(key);
	return cached ?? network;
}
