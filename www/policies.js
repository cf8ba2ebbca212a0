// The conflict policies the demo offers. A policy applies when a pending local change meets a different
// remote version of the same todo; "lww" and "merge" run inside ferrosync, "keep-both" is a JS resolver.

/** Joins two titles so both survive, the same way on every device (sorted, no repeats, no nesting). */
export function joinTitles(a, b) {
	const parts = new Set();
	for (const title of [a, b]) {
		for (const part of String(title ?? "").split(" / ")) {
			const t = part.trim();
			if (t) parts.add(t);
		}
	}
	return [...parts].sort().join(" / ");
}

/**
 * Custom resolver: keeps both titles. It is deterministic and symmetric (resolve(a, b) equals
 * resolve(b, a)), so devices that both resolve the same conflict write the same document and converge.
 * An edit wins over a delete; `completed` is kept if either side completed the todo.
 */
export function keepBothTitles(local, remote) {
	if (!local) return remote ?? null;
	if (!remote) return local;
	const createdAt = Math.min(local.createdAt ?? Infinity, remote.createdAt ?? Infinity);
	return {
		...remote,
		...local,
		title: joinTitles(local.title, remote.title),
		completed: Boolean(local.completed || remote.completed),
		createdAt: Number.isFinite(createdAt) ? createdAt : Date.now(),
	};
}

export const POLICIES = {
	lww: {
		conflict: "lww",
		help: "The newest edit wins, whole todo at a time (hybrid logical clocks decide which is newest).",
	},
	merge: {
		conflict: "merge",
		help: "Field by field: a title edited on one device and a completion on another both survive.",
	},
	"keep-both": {
		conflict: keepBothTitles,
		help: "Custom JS resolver: when two devices rename the same todo, it keeps both titles (\u201ca / b\u201d).",
	},
};

export const DEFAULT_POLICY = "lww";

export function isPolicy(name) {
	return Object.prototype.hasOwnProperty.call(POLICIES, name);
}
