// RxJS consumes ferrosync's Observables unchanged: `from(liveQuery(...))`, errors to `error` (when
// subscribing, and when a later run of the query fails), `complete` when the database is closed,
// nothing delivered after `unsubscribe()`, `error` or `complete`, and no subscription left open.
import { firstValueFrom, from, map } from "rxjs";
import { liveDocument, liveQuery, subscriptionStats, syncStatus } from "ferrosync/observable";
import { openDatabase, type Task } from "../shared/harness";
import { itemsDatabase, RERUN_QUERY, tamper, tooDeep, until } from "../shared/failure";

declare global {
  interface Window {
    __rxjs?: unknown;
  }
}

/**
 * The end of a live Observable on a database of its own (no sync): a later run that fails goes to
 * `error` once and stops the live query; closing the database calls `complete`.
 */
async function endings() {
  const { name, db, items } = await itemsDatabase();
  const openBefore = subscriptionStats().open;
  const failing = { next: 0, errors: [] as string[], completes: 0 };
  const failSub = from(liveQuery(items, RERUN_QUERY)).subscribe({
    next: () => failing.next++,
    error: (e: { code?: string }) => failing.errors.push(String(e.code)),
    complete: () => failing.completes++,
  });
  const ending = { seen: [] as string[][], errors: 0, completes: 0 };
  const endSub = from(liveQuery(items, { orderBy: { rank: "desc" } })).subscribe({
    next: (docs) => ending.seen.push(docs.map((d) => d.id)),
    error: () => ending.errors++,
    complete: () => ending.completes++,
  });
  await until(() => failing.next === 1 && ending.seen.length === 1, "the first results");
  const openWhileBoth = subscriptionStats().open - openBefore;
  await tamper(name, "items", "a", "rank", tooDeep());
  await items.put({ id: "c", rank: 3 });
  await until(() => failing.errors.length > 0, "error after a failed re-run");
  // Repaired; a change after the error delivers nothing to the ended subscription.
  await tamper(name, "items", "a", "rank", 1);
  await items.put({ id: "d", rank: 4 });
  await until(() => ending.seen.length >= 3, "the other subscription's results");
  await new Promise((r) => setTimeout(r, 100));
  const openAfterError = subscriptionStats().open - openBefore;
  const failClosed = failSub.closed;
  db.close();
  const completedInClose = ending.completes;
  await new Promise((r) => setTimeout(r, 100));
  return {
    failing,
    failClosed,
    ending,
    completedInClose,
    endClosed: endSub.closed,
    openWhileBoth,
    openAfterError,
    openAfterClose: subscriptionStats().open - openBefore,
  };
}

async function run() {
  const { db, tasks } = await openDatabase();
  await tasks.bulkPut([
    { id: "b", title: "second", done: false, rank: 2 },
    { id: "a", title: "first", done: false, rank: 1 },
  ]);
  const seen: string[][] = [];
  const sub = from(liveQuery(tasks, { orderBy: { rank: "asc" } }))
    .pipe(map((docs: Task[]) => docs.map((t) => t.title)))
    .subscribe((titles) => seen.push(titles));
  await until(() => seen.length === 1, "the first result");
  await tasks.put({ id: "c", title: "third", done: false, rank: 3 });
  await until(() => seen.length === 2, "the result after a write");
  const openWhileSubscribed = subscriptionStats().open;
  sub.unsubscribe();
  await tasks.put({ id: "d", title: "fourth", done: false, rank: 4 });
  await new Promise((r) => setTimeout(r, 300));

  const doc = await firstValueFrom(from(liveDocument(tasks, "c")));
  const missing = await firstValueFrom(from(liveDocument(tasks, "nope")));
  const status = await firstValueFrom(from(syncStatus(db)));

  // A malformed query: the error goes to `error`, as a FerrosyncError with its code.
  const errorCode = await new Promise<string>((resolve) => {
    from(liveQuery(tasks, { limit: -1 })).subscribe({
      next: () => resolve("next called"),
      error: (e: { code?: string }) => resolve(String(e.code)),
    });
  });
  // The Observable itself, without RxJS: a plain observer and the interop symbol.
  const q = liveQuery(tasks, { where: { id: "a" } });
  const interop = (q as unknown as Record<string, () => unknown>)["@@observable"]() === q;
  const plain = await new Promise<string>((resolve) => {
    const s = q.subscribe({ next: (docs) => { s.unsubscribe(); resolve(docs[0]!.title); } });
  });
  await new Promise((r) => setTimeout(r, 50));
  const ends = await endings();
  // The synced database too: closing it completes its live queries (and the sync stops).
  let mainCompleted = 0;
  const last = from(liveQuery(tasks)).subscribe({ complete: () => mainCompleted++ });
  await new Promise((r) => setTimeout(r, 50));
  db.close();
  const mainClosed = last.closed;
  await new Promise((r) => setTimeout(r, 50));
  return {
    ends,
    mainCompleted,
    mainClosed,
    seen,
    openWhileSubscribed,
    doc: doc?.title ?? null,
    missing,
    statusState: status?.state ?? null,
    errorCode,
    interop,
    plain,
    stats: subscriptionStats(),
  };
}

run().then(
  (r) => (window.__rxjs = r),
  (e) => (window.__rxjs = { error: String((e as Error)?.stack ?? e) }),
);
