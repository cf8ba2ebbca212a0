// Page side of the service worker: registration, the "update available" flow, Background Sync.

/**
 * Registers sw.js. When a new version has installed and waits, calls `onUpdate(accept)`; `accept()`
 * tells the waiting worker to take over, and every tab reloads once it controls them, so no tab
 * keeps running old code against new cached files.
 */
export async function registerServiceWorker({ onUpdate, onSyncRequest }) {
	if (!("serviceWorker" in navigator)) return null;
	const sw = navigator.serviceWorker;
	let hadController = Boolean(sw.controller);
	let reloading = false;

	sw.addEventListener("controllerchange", () => {
		// The first install claims an uncontrolled page: nothing to reload for.
		if (!hadController) {
			hadController = true;
			return;
		}
		if (reloading) return;
		reloading = true;
		location.reload();
	});

	sw.addEventListener("message", (event) => {
		if (event.data?.type === "SYNC_REQUESTED") onSyncRequest?.();
	});

	const reg = await sw.register("./sw.js", { scope: "./" });

	const offer = (worker) => {
		if (!worker || !sw.controller) return;
		onUpdate(() => worker.postMessage({ type: "SKIP_WAITING" }));
	};
	const watchInstalling = (worker) => {
		if (!worker) return;
		worker.addEventListener("statechange", () => {
			if (worker.state === "installed") offer(worker);
		});
	};

	if (reg.waiting) offer(reg.waiting);
	watchInstalling(reg.installing);
	reg.addEventListener("updatefound", () => watchInstalling(reg.installing));

	// Look for a new version whenever the app comes back to the foreground, and hourly.
	const check = () => {
		if (navigator.onLine) reg.update().catch(() => {});
	};
	document.addEventListener("visibilitychange", () => {
		if (document.visibilityState === "visible") check();
	});
	setInterval(check, 60 * 60 * 1000);
	return reg;
}

/**
 * Asks the browser to fire a Background Sync event when connectivity returns (Chromium only); the
 * service worker then asks open tabs to sync. A no-op where the API is missing.
 */
export async function requestBackgroundSync() {
	if (!("serviceWorker" in navigator)) return;
	try {
		const reg = await navigator.serviceWorker.getRegistration();
		if (reg?.active && "sync" in reg) await reg.sync.register("ferrosync-sync");
	} catch {
		// Permission denied or unsupported: the library's own `online` handling still syncs.
	}
}
