// ferrosync TodoMVC: the TodoMVC app spec on a local-first store. Every write goes to IndexedDB through
// ferrosync; the list, the counter and the sync panel render only from live queries and status
// callbacks, so changes from another tab or another device appear without any refresh.

import init, { Database } from "./pkg/ferrosync.js";
import { DEFAULT_POLICY, POLICIES, isPolicy } from "./policies.js";
import { registerServiceWorker, requestBackgroundSync } from "./sw-client.js";

const KEYS = { space: "ferrosync-demo.space", policy: "ferrosync-demo.policy" };
/** A space is the sync namespace (the bearer token under `--auth dev`): keep it URL- and header-safe. */
const SPACE_RE = /^[A-Za-z0-9_-]{1,64}$/;
const ENTER = "Enter";
const ESCAPE = "Escape";

const $ = (selector) => document.querySelector(selector);
const ui = {
	newTodo: $(".new-todo"),
	main: $(".main"),
	toggleAll: $(".toggle-all"),
	list: $(".todo-list"),
	footer: $(".footer"),
	count: $(".todo-count"),
	filters: [...document.querySelectorAll(".filters a")],
	clearCompleted: $(".clear-completed"),
	status: $(".sync-status"),
	statusLabel: $(".sync-label"),
	pending: $(".pending"),
	pendingCount: $(".pending-count"),
	pendingWord: $(".pending-word"),
	lastSync: $(".last-sync"),
	progress: $(".sync-progress"),
	progressBar: $(".sync-progress-bar"),
	syncError: $(".sync-error"),
	policy: $(".conflict-policy"),
	policyHelp: $(".policy-help"),
	shareLink: $(".share-link"),
	copyLink: $(".copy-link"),
	updateToast: $(".update-toast"),
	updateReload: $(".update-reload"),
	errorToast: $(".error-toast"),
	errorText: $(".error-text"),
	errorDismiss: $(".error-dismiss"),
};

const state = {
	space: "",
	policy: DEFAULT_POLICY,
	route: "all",
	/** Every todo, from the "all" live query. */
	all: [],
	/** The current filter's todos, from its own live query (null until it first answers). */
	view: null,
	/** The ferrosync status, or null when the package has no sync status. */
	sync: null,
	pending: 0,
};

let db = null;
let todos = null;
let subs = [];
let viewSub = null;
/** Resolves to the todos collection once the database is open (writes made earlier wait for it). */
let openFirst;
let ready = new Promise((resolve) => (openFirst = resolve));

// ---------------------------------------------------------------- storage helpers

function load(key) {
	try {
		return localStorage.getItem(key);
	} catch {
		return null;
	}
}

function save(key, value) {
	try {
		localStorage.setItem(key, value);
	} catch {
		// Storage disabled: the choice lasts for this page only.
	}
}

function randomSpace() {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789";
	const bytes = crypto.getRandomValues(new Uint8Array(16));
	return [...bytes].map((b) => alphabet[b % alphabet.length]).join("");
}

/** The space comes from `?space=`, else from this browser's last one, else a new random one. */
function chooseSpace(url) {
	const requested = url.searchParams.get("space");
	if (requested !== null && !SPACE_RE.test(requested)) {
		showError(
			`Ignored ?space=${requested.slice(0, 40)}: a space is 1-64 letters, digits, "-" or "_".`,
		);
	}
	const stored = load(KEYS.space);
	const space =
		requested !== null && SPACE_RE.test(requested)
			? requested
			: stored && SPACE_RE.test(stored)
				? stored
				: randomSpace();
	save(KEYS.space, space);
	return space;
}

function choosePolicy(url) {
	const requested = url.searchParams.get("policy");
	const stored = load(KEYS.policy);
	const policy = isPolicy(requested) ? requested : isPolicy(stored) ? stored : DEFAULT_POLICY;
	save(KEYS.policy, policy);
	return policy;
}

/** Keeps the address bar (and so a reload or a bookmark) pointing at this space and policy. */
function syncUrl() {
	const url = new URL(location.href);
	url.searchParams.set("space", state.space);
	if (state.policy === DEFAULT_POLICY) url.searchParams.delete("policy");
	else url.searchParams.set("policy", state.policy);
	if (url.href !== location.href) history.replaceState(history.state, "", url);
	const share = new URL(url);
	share.hash = "";
	ui.shareLink.value = share.href;
}

// ---------------------------------------------------------------- database

function reportError(context, err) {
	const code = err && typeof err === "object" && err.code ? ` [${err.code}]` : "";
	const message = err && typeof err === "object" && "message" in err ? err.message : String(err);
	console.error(`${context}:`, err);
	showError(`${context}: ${message}${code}`);
}

function showError(text) {
	ui.errorText.textContent = text;
	ui.errorToast.hidden = false;
}

/** Subscribes to a live query; copes with `watch` returning the subscription or a promise of it. */
function liveQuery(collection, query, onDocs) {
	let sub = null;
	let closed = false;
	const callback = (docs) => {
		if (closed) return;
		try {
			onDocs(Array.from(docs));
		} catch (err) {
			reportError("Rendering failed", err);
		}
	};
	const settle = (s) => {
		if (closed) s?.unsubscribe?.();
		else sub = s;
	};
	try {
		const result = collection.watch(query, callback);
		if (result && typeof result.then === "function") {
			result.then(settle, (err) => reportError("Live query failed", err));
		} else {
			settle(result);
		}
	} catch (err) {
		reportError("Live query failed", err);
	}
	return {
		unsubscribe() {
			closed = true;
			sub?.unsubscribe?.();
			sub = null;
		},
	};
}

async function openDatabase() {
	db = await Database.open({
		name: `todomvc-${state.space}`,
		collections: {
			todos: { indexes: ["completed", "createdAt"], conflict: POLICIES[state.policy].conflict },
		},
		sync: { url: `${location.origin}/v1`, token: state.space, intervalMs: 30000 },
	});
	todos = db.collection("todos");

	subs.push(
		liveQuery(todos, { orderBy: { createdAt: "asc" } }, (docs) => {
			state.all = docs;
			render();
			refreshPending();
		}),
	);
	subscribeView();

	if (typeof db.onStatus === "function") {
		const statusSub = db.onStatus((status) => {
			state.sync = status;
			if (status && typeof status.pending === "number") state.pending = status.pending;
			renderStatus();
		});
		subs.push(statusSub);
		state.sync = db.status ?? null;
	}
	renderStatus();
	refreshPending();
	return todos;
}

function closeDatabase() {
	viewSub?.unsubscribe();
	viewSub = null;
	for (const sub of subs) sub?.unsubscribe?.();
	subs = [];
	try {
		db?.close();
	} catch (err) {
		console.warn("closing the database:", err);
	}
	db = null;
	todos = null;
}

/** The filtered list for #/active and #/completed runs as its own live query (using the index). */
function subscribeView() {
	viewSub?.unsubscribe();
	viewSub = null;
	state.view = null;
	if (!todos || state.route === "all") return;
	const where = { completed: state.route === "completed" };
	viewSub = liveQuery(todos, { where, orderBy: { createdAt: "asc" } }, (docs) => {
		state.view = docs;
		render();
	});
}

let pendingInFlight = false;
let pendingAgain = false;
/** Re-reads the outbox size; coalesces bursts of calls into at most one extra read. */
async function refreshPending() {
	if (!db || typeof db.pendingCount !== "function") return;
	if (pendingInFlight) {
		pendingAgain = true;
		return;
	}
	pendingInFlight = true;
	try {
		do {
			pendingAgain = false;
			const n = await db.pendingCount();
			if (typeof n === "number") state.pending = n;
		} while (pendingAgain && db);
	} catch (err) {
		if (db) console.warn("pendingCount:", err);
	} finally {
		pendingInFlight = false;
	}
	renderStatus();
}

/** Runs a write once the database is open; errors become a visible toast. */
async function write(context, fn) {
	try {
		const collection = await ready;
		await fn(collection);
	} catch (err) {
		reportError(context, err);
		return;
	}
	refreshPending();
	if (!navigator.onLine) requestBackgroundSync();
}

// ---------------------------------------------------------------- rendering

const items = new Map(); // id -> <li>
const docs = new Map(); // id -> latest doc seen by the renderer

function visibleTodos() {
	if (state.route === "all") return state.all;
	if (state.view) return state.view;
	const completed = state.route === "completed";
	return state.all.filter((t) => Boolean(t.completed) === completed);
}

function createItem(id) {
	const li = document.createElement("li");
	li.dataset.id = id;
	const view = document.createElement("div");
	view.className = "view";
	const toggle = document.createElement("input");
	toggle.className = "toggle";
	toggle.type = "checkbox";
	const label = document.createElement("label");
	const destroy = document.createElement("button");
	destroy.className = "destroy";
	destroy.setAttribute("aria-label", "Delete");
	view.append(toggle, label, destroy);
	const edit = document.createElement("input");
	edit.className = "edit";
	edit.setAttribute("aria-label", "Edit todo");
	li.append(view, edit);
	return li;
}

function updateItem(li, todo) {
	const completed = Boolean(todo.completed);
	li.classList.toggle("completed", completed);
	const toggle = li.querySelector(".toggle");
	if (toggle.checked !== completed) toggle.checked = completed;
	const label = li.querySelector("label");
	const title = String(todo.title ?? "");
	if (label.textContent !== title) label.textContent = title;
}

function renderList(list) {
	const seen = new Set();
	let previous = null;
	for (const todo of list) {
		let li = items.get(todo.id);
		if (!li) {
			li = createItem(todo.id);
			items.set(todo.id, li);
		}
		updateItem(li, todo);
		seen.add(todo.id);
		const expected = previous ? previous.nextSibling : ui.list.firstChild;
		if (expected !== li) ui.list.insertBefore(li, expected);
		previous = li;
	}
	for (const [id, li] of items) {
		if (!seen.has(id)) {
			li.remove();
			items.delete(id);
		}
	}
}

function render() {
	docs.clear();
	for (const todo of state.all) docs.set(todo.id, todo);
	for (const todo of state.view ?? []) docs.set(todo.id, todo);

	const total = state.all.length;
	const active = state.all.filter((t) => !t.completed).length;
	const completed = total - active;

	ui.main.hidden = total === 0;
	ui.footer.hidden = total === 0;
	ui.toggleAll.checked = total > 0 && active === 0;
	ui.count.replaceChildren(
		Object.assign(document.createElement("strong"), { textContent: String(active) }),
		` ${active === 1 ? "item" : "items"} left`,
	);
	ui.clearCompleted.hidden = completed === 0;
	const hash = { all: "#/", active: "#/active", completed: "#/completed" }[state.route];
	for (const a of ui.filters) a.classList.toggle("selected", a.getAttribute("href") === hash);
	renderList(visibleTodos());
}

function formatAgo(date) {
	const seconds = Math.round((Date.now() - date.getTime()) / 1000);
	if (seconds < 5) return "just now";
	if (seconds < 60) return `${seconds} s ago`;
	if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
	return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function toDate(value) {
	if (value === null || value === undefined || value === 0) return null;
	const date = value instanceof Date ? value : new Date(value);
	return Number.isNaN(date.getTime()) ? null : date;
}

function errorText(error) {
	if (!error) return "";
	if (typeof error === "string") return error;
	const message = error.message ?? JSON.stringify(error);
	return error.code ? `${message} [${error.code}]` : message;
}

function renderStatus() {
	const s = state.sync;
	let stateName;
	if (!db) stateName = "starting";
	else if (!s) stateName = navigator.onLine ? "local" : "offline";
	else stateName = navigator.onLine ? (s.state ?? "idle") : "offline";

	const progress = s?.progress;
	let label = {
		starting: "Starting…",
		local: "Saved on this device",
		idle: "Online",
		syncing: "Syncing…",
		offline: "Offline · changes stay on this device",
		error: "Sync error",
	}[stateName] ?? stateName;

	let fraction = null;
	if (stateName === "syncing" && progress && typeof progress === "object") {
		const done = Number(progress.pulled ?? progress.done ?? 0);
		const remaining = progress.remaining;
		if (typeof remaining === "number" && done + remaining > 0) {
			fraction = done / (done + remaining);
			label = `Syncing… ${done.toLocaleString()} of ${(done + remaining).toLocaleString()}`;
		} else if (done > 0) {
			label = `Syncing… ${done.toLocaleString()} received`;
		}
	}
	ui.status.dataset.state = stateName;
	ui.statusLabel.textContent = label;
	ui.progress.hidden = fraction === null;
	if (fraction !== null) ui.progressBar.style.width = `${Math.round(fraction * 100)}%`;

	const err = stateName === "error" ? errorText(s?.error) : "";
	ui.syncError.hidden = !err;
	ui.syncError.textContent = err;

	ui.pendingCount.textContent = String(state.pending);
	ui.pendingWord.textContent = state.pending === 1 ? "pending change" : "pending changes";
	ui.pending.toggleAttribute("data-nonzero", state.pending > 0);

	const last = toDate(s?.lastSyncAt);
	ui.lastSync.textContent = last ? `synced ${formatAgo(last)}` : "never synced";
	ui.lastSync.title = last ? last.toLocaleString() : "";
	if (last) ui.lastSync.dateTime = last.toISOString();
	else ui.lastSync.removeAttribute("datetime");
}

// ---------------------------------------------------------------- routing

function routeFromHash() {
	const hash = location.hash.replace(/^#\/?/, "");
	return hash === "active" || hash === "completed" ? hash : "all";
}

function onRoute() {
	const route = routeFromHash();
	if (route === state.route) return;
	state.route = route;
	subscribeView();
	render();
}

// ---------------------------------------------------------------- editing

function startEditing(li) {
	const todo = docs.get(li.dataset.id);
	if (!todo) return;
	const edit = li.querySelector(".edit");
	li.classList.add("editing");
	edit.value = String(todo.title ?? "");
	edit.focus();
	edit.setSelectionRange(edit.value.length, edit.value.length);
}

function finishEditing(li, keep) {
	if (!li.classList.contains("editing")) return;
	li.classList.remove("editing");
	if (!keep) return;
	const id = li.dataset.id;
	const todo = docs.get(id);
	const title = li.querySelector(".edit").value.trim();
	if (!todo) return;
	if (!title) {
		write("Could not delete the todo", (c) => c.delete(id));
	} else if (title !== todo.title) {
		write("Could not save the todo", (c) => c.put({ ...todo, title }));
	}
}

// ---------------------------------------------------------------- events

function bindEvents() {
	ui.newTodo.addEventListener("keydown", (event) => {
		if (event.key !== ENTER || event.isComposing) return;
		const title = ui.newTodo.value.trim();
		if (!title) return;
		ui.newTodo.value = "";
		write("Could not add the todo", (c) =>
			c.put({ title, completed: false, createdAt: Date.now() }),
		);
	});

	ui.toggleAll.addEventListener("change", () => {
		const completed = ui.toggleAll.checked;
		const changed = state.all
			.filter((t) => Boolean(t.completed) !== completed)
			.map((t) => ({ ...t, completed }));
		if (changed.length) write("Could not update the todos", (c) => c.bulkPut(changed));
	});

	ui.clearCompleted.addEventListener("click", () => {
		const ids = state.all.filter((t) => t.completed).map((t) => t.id);
		write("Could not clear completed todos", (c) =>
			typeof c.bulkDelete === "function"
				? c.bulkDelete(ids)
				: Promise.all(ids.map((id) => c.delete(id))),
		);
	});

	ui.list.addEventListener("change", (event) => {
		if (!event.target.matches(".toggle")) return;
		const li = event.target.closest("li");
		const todo = docs.get(li.dataset.id);
		if (!todo) return;
		const completed = event.target.checked;
		write("Could not update the todo", (c) => c.put({ ...todo, completed }));
	});

	ui.list.addEventListener("click", (event) => {
		if (!event.target.matches(".destroy")) return;
		const id = event.target.closest("li").dataset.id;
		write("Could not delete the todo", (c) => c.delete(id));
	});

	ui.list.addEventListener("dblclick", (event) => {
		if (!event.target.matches(".view label")) return;
		startEditing(event.target.closest("li"));
	});

	ui.list.addEventListener("keydown", (event) => {
		if (!event.target.matches(".edit")) return;
		const li = event.target.closest("li");
		if (event.key === ENTER && !event.isComposing) finishEditing(li, true);
		else if (event.key === ESCAPE) finishEditing(li, false);
	});

	ui.list.addEventListener("focusout", (event) => {
		if (event.target.matches(".edit")) finishEditing(event.target.closest("li"), true);
	});

	window.addEventListener("hashchange", onRoute);
	window.addEventListener("online", renderStatus);
	window.addEventListener("offline", renderStatus);
	// Keep "synced 2 min ago" honest.
	setInterval(renderStatus, 15000);

	ui.policy.addEventListener("change", () => switchPolicy(ui.policy.value));

	ui.copyLink.addEventListener("click", async () => {
		try {
			await navigator.clipboard.writeText(ui.shareLink.value);
		} catch {
			ui.shareLink.select();
			document.execCommand("copy");
		}
		ui.copyLink.textContent = "Copied";
		setTimeout(() => (ui.copyLink.textContent = "Copy"), 1500);
	});
	ui.shareLink.addEventListener("focus", () => ui.shareLink.select());
	ui.errorDismiss.addEventListener("click", () => (ui.errorToast.hidden = true));
}

function renderPolicy() {
	ui.policy.value = state.policy;
	ui.policyHelp.textContent = POLICIES[state.policy].help;
}

/** A policy is part of how the collection is opened: close and reopen the database with the new one. */
async function switchPolicy(name) {
	if (!isPolicy(name) || name === state.policy) return;
	state.policy = name;
	save(KEYS.policy, name);
	renderPolicy();
	syncUrl();
	ui.policy.disabled = true;
	await ready?.catch(() => {});
	closeDatabase();
	ready = openDatabase();
	try {
		await ready;
	} catch (err) {
		reportError("Could not reopen the database", err);
	} finally {
		ui.policy.disabled = false;
	}
}

// ---------------------------------------------------------------- start

async function main() {
	const url = new URL(location.href);
	state.space = chooseSpace(url);
	state.policy = choosePolicy(url);
	state.route = routeFromHash();
	syncUrl();
	renderPolicy();
	bindEvents();
	render();
	renderStatus();

	registerServiceWorker({
		onUpdate(accept) {
			ui.updateToast.hidden = false;
			ui.updateReload.onclick = () => {
				ui.updateReload.disabled = true;
				accept();
			};
		},
		onSyncRequest() {
			db?.sync?.().catch((err) => console.warn("background sync:", err));
		},
	}).catch((err) => console.warn("service worker registration failed:", err));

	await init();
	const opening = openDatabase();
	openFirst(opening);
	ready = opening;
	await opening;
	document.documentElement.dataset.ready = "true";
}

main().catch((err) => reportError("ferrosync could not start", err));

// For debugging in the console (and the end-to-end tests): the open database.
Object.defineProperty(window, "ferrosyncDemo", {
	value: Object.freeze({
		get db() {
			return db;
		},
		get state() {
			return state;
		},
	}),
});
