// RxJS consumes ferrosync's Observables unchanged: `from(liveQuery(...))`, errors to `error`,
// nothing delivered after `unsubscribe()`, and no subscription left open.
import { firstValueFrom, from, map } from "rxjs";
import { liveDocument, liveQuery, subscriptionStats, syncStatus } from "ferrosync/observable";
import { openDatabase, type Task } from "../shared/harness";

declare global {
  interface Window {
    __rxjs?: unknown;
  }
}

const until = async (cond: () => boolean, what: string) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > 10000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

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
  return {
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
