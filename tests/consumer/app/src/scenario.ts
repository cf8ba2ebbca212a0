// The scenario the consumer test runs, once on the page and once in a dedicated module worker: it
// stores, queries and watches data through the installed `ferrosync` package, using its types the
// way an application would (a typed `Collection<Task>`), and returns what it saw for the test to
// assert (tests/consumer/check.mjs).
import init, { Database, type Collection, type FerrosyncError, type Query } from "ferrosync";

export interface Task {
  id: string;
  title: string;
  done: boolean;
  priority: number;
  meta: { rank: number; tags: string[] };
}

export interface Outcome {
  stored: string[];
  generatedId: string;
  watchCalls: string[][];
  callsAfterUnsubscribe: number;
  activeAfterUnsubscribe: boolean;
  findOpenPriority2: string[];
  findPage: string[];
  findDottedIn: string[];
  countRankBelow3: number;
  gotC: Task | null;
  gotMissing: string;
  gotDeleted: string;
  errors: { unknownCollection: string; invalidDocument: string; invalidQuery: string; allErrors: boolean };
}

export interface Reopened {
  count: number;
  titles: string[];
}

const SEED: Task[] = [
  { id: "a", title: "buy milk", done: false, priority: 2, meta: { rank: 3, tags: ["home"] } },
  { id: "b", title: "call mom", done: true, priority: 1, meta: { rank: 1, tags: [] } },
  { id: "c", title: "write report", done: false, priority: 5, meta: { rank: 2, tags: ["work", "urgent"] } },
  { id: "d", title: "fix bike", done: false, priority: 1, meta: { rank: 4, tags: ["home"] } },
];

const titles = (docs: Task[]) => docs.map((d) => d.title);

async function open(name: string): Promise<{ db: Database; tasks: Collection<Task> }> {
  await init();
  const db = await Database.open({
    name,
    collections: { tasks: { indexes: ["done", "meta.rank", "priority"] } },
  });
  return { db, tasks: db.collection<Task>("tasks") };
}

/** The `code` of what `f` threw or rejected with (and whether it was a real `Error`). */
async function codeOf(f: () => unknown): Promise<{ code: string; isError: boolean }> {
  try {
    await f();
  } catch (e) {
    return { code: (e as FerrosyncError).code, isError: e instanceof Error && (e as Error).message.length > 0 };
  }
  return { code: "(no error)", isError: false };
}

export async function run(name: string): Promise<Outcome> {
  await init();
  await Database.destroy(name); // a clean start, whatever an earlier run left
  const { db, tasks } = await open(name);

  // Live query: every call is queued; `next()` waits for the next one.
  const calls: string[][] = [];
  const waiters: Array<() => void> = [];
  let taken = 0;
  const sub = tasks.watch({ where: { done: false }, orderBy: { "meta.rank": "asc" } }, (docs) => {
    calls.push(titles(docs));
    waiters.splice(0).forEach((w) => w());
  });
  const next = async (what: string): Promise<string[]> => {
    const deadline = Date.now() + 5000;
    while (calls.length <= taken) {
      if (Date.now() > deadline) throw new Error(`watch callback did not arrive after ${what}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    return calls[taken++];
  };

  await next("watch()"); // the current (empty) result
  const stored = await tasks.bulkPut(SEED);
  await next("bulkPut");
  const created = await tasks.put({ title: "water plants", done: false, priority: 3, meta: { rank: 0, tags: ["home"] } });
  await next("put");
  // A write that leaves the watched result unchanged ("b" is done) must not call back: the next
  // call has to be the one for marking "a" done.
  const b = (await tasks.get("b"))!;
  await tasks.put({ ...b, title: "call mom again" });
  const a = (await tasks.get("a"))!;
  await tasks.put({ ...a, done: true });
  await next("marking a done");

  const findOpenPriority2 = titles(
    await tasks.find({ where: { done: false, priority: { $gte: 2 } }, orderBy: { title: "asc" }, limit: 10 }),
  );
  const findPage = titles(await tasks.find({ orderBy: { priority: "desc" }, limit: 2, offset: 1 }));
  const dotted: Query<Task> = { where: { "meta.tags.0": "home", id: { $in: ["a", "d", "zz"] } } };
  const findDottedIn = (await tasks.find(dotted)).map((d) => d.id);
  const countRankBelow3 = await tasks.count({ where: { "meta.rank": { $lt: 3 } } });
  const gotC = (await tasks.get("c")) ?? null;
  const gotMissing = typeof (await tasks.get("nope"));

  await tasks.delete("d");
  await next("delete");
  await tasks.delete("d"); // idempotent
  const gotDeleted = typeof (await tasks.get("d"));

  sub.unsubscribe();
  const before = calls.length;
  await tasks.put({ id: "e", title: "after unsubscribe", done: false, priority: 1, meta: { rank: -1, tags: [] } });
  await new Promise((r) => setTimeout(r, 300));

  const unknown = await codeOf(() => db.collection("nope"));
  const invalidDoc = await codeOf(() => tasks.put({ title: () => "not JSON" } as unknown as Task));
  const invalidQuery = await codeOf(() => tasks.find({ where: { title: { $regex: "x" } } } as unknown as Query<Task>));
  db.close();

  return {
    stored: stored.map((d) => d.id),
    generatedId: created.id,
    watchCalls: calls,
    callsAfterUnsubscribe: calls.length - before,
    activeAfterUnsubscribe: sub.active,
    findOpenPriority2,
    findPage,
    findDottedIn,
    countRankBelow3,
    gotC,
    gotMissing,
    gotDeleted,
    errors: {
      unknownCollection: unknown.code,
      invalidDocument: invalidDoc.code,
      invalidQuery: invalidQuery.code,
      allErrors: unknown.isError && invalidDoc.isError && invalidQuery.isError,
    },
  };
}

/** Opens the database `run` filled (after a page reload) and reads what it kept. */
export async function reopen(name: string): Promise<Reopened> {
  const { db, tasks } = await open(name);
  const docs = await tasks.find({ orderBy: { title: "asc" } });
  const count = await tasks.count();
  db.close();
  return { count, titles: titles(docs) };
}
