// A sample program over the local-store API, type-checked (never run) against the built package by
// run.sh. It uses the API the way the package README shows; the `@ts-expect-error` lines prove
// that wrong usage is rejected (tsc fails if such a line type-checks).
import init, {
  Collection,
  Database,
  initSync,
  type Condition,
  type Document,
  type ErrorCode,
  type FerrosyncError,
  type FieldPath,
  type JsonValue,
  type NewDocument,
  type OpenOptions,
  type Query,
  type Subscription,
  type WatchCallback,
} from "ferrosync";
import * as web from "ferrosync/web";
import * as bundler from "ferrosync/bundler";

interface Task {
  id: string;
  title: string;
  done: boolean;
  priority: number;
  due?: string | null;
  meta: { rank: number; tags: string[]; owner?: { name: string } };
}

type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | void {}

export async function store(): Promise<void> {
  await init();
  await init({ module_or_path: new URL("ferrosync_bg.wasm", import.meta.url) });
  initSync({ module: new Uint8Array() });

  const options: OpenOptions = {
    name: "todo",
    collections: { tasks: { indexes: ["done", "meta.rank", ["done", "title"]] }, notes: {} },
  };
  const db: Database = await Database.open(options);
  const name: string = db.name;

  // A typed collection: documents in and out are `Task`s.
  const tasks: Collection<Task> = db.collection<Task>("tasks");
  const created: Task = await tasks.put({ title: "Buy milk", done: false, priority: 1, meta: { rank: 1, tags: [] } });
  const withId: Task = await tasks.put({ ...created, done: true });
  const many: Task[] = await tasks.bulkPut([
    { id: "a", title: "x", done: true, priority: 2, meta: { rank: 2, tags: ["home"] } },
    { title: "y", done: false, priority: 3, due: null, meta: { rank: 3, tags: [], owner: { name: "ann" } } },
  ]);
  const got: Task | undefined = await tasks.get("a");
  await tasks.delete(withId.id);

  // Queries: equality, operators, dotted paths, array elements, orderBy/limit/offset.
  const open: Task[] = await tasks.find({
    where: { done: false, priority: { $gte: 2, $lt: 5 }, "meta.rank": { $in: [1, 2, 3] }, "meta.owner.name": "ann" },
    orderBy: { "meta.rank": "desc", title: "asc" },
    limit: 20,
    offset: 0,
  });
  const nextPage: Task[] = await tasks.find({ where: { done: false }, orderBy: { title: "asc" }, limit: 20, after: open[19] });
  const fromKey: Task[] = await tasks.find({ orderBy: { title: "asc" }, limit: 20, after: { id: "a", title: "x" } });
  // @ts-expect-error after needs the id of the previous page's last document
  await tasks.find({ limit: 20, after: { title: "x" } });
  const all: Task[] = await tasks.find();
  const tagged: number = await tasks.count({ where: { "meta.tags.0": "home", due: null, title: { $ne: "x" } } });
  const n: number = await tasks.count();
  const q: Query<Task> = { where: { id: { $in: ["a", "b"] } } };
  const cond: Condition<number> = { $gt: 1 };

  // Live queries.
  const onChange: WatchCallback<Task> = (docs) => docs.forEach((d) => d.title.toUpperCase());
  const sub: Subscription = tasks.watch({ where: { done: false } }, onChange);
  const sub2 = tasks.watch(undefined, (docs: Task[]) => docs.length);
  const active: boolean = sub.active;
  sub.unsubscribe();
  sub2.unsubscribe();

  // Without a type argument a collection holds plain `Document`s: any field path, JSON values.
  const notes = db.collection("notes");
  const note: Document = await notes.put({ text: "hi", nested: { a: [1, "b", null] } });
  const text: JsonValue | undefined = note["text"];
  await notes.find({ where: { "nested.a.0": { $gte: 1 }, anything: "goes" }, orderBy: { whatever: "asc" } });
  const untyped: Collection = notes;

  // Errors carry a stable code from a closed union.
  try {
    db.collection("nope");
  } catch (e) {
    const err = e as FerrosyncError;
    const code: ErrorCode = err.code;
    const message: string = err.message;
    if (code === "UNKNOWN_COLLECTION" || code === "INVALID_DOCUMENT") void message;
  }

  db.close();
  await Database.destroy("todo");

  // The `web` and `bundler` entry points declare the same API.
  assertType<Equal<typeof web.Database, typeof Database>>();
  assertType<Equal<bundler.Collection<Task>, Collection<Task>>>();
  assertType<Equal<FieldPath<Task>, "id" | "title" | "done" | "priority" | "due" | "meta" | "meta.rank" | "meta.tags" | `meta.tags.${number}` | "meta.owner" | "meta.owner.name">>();
  assertType<Equal<Awaited<ReturnType<Collection<Task>["get"]>>, Task | undefined>>();
  assertType<Equal<NewDocument<Task>["id"], string | undefined>>();
  void [name, many, got, open, all, tagged, n, q, cond, active, text, untyped];
}

export async function rejected(db: Database): Promise<void> {
  const tasks = db.collection<Task>("tasks");
  // @ts-expect-error a required field is missing
  await tasks.put({ title: "no done", priority: 1, meta: { rank: 1, tags: [] } });
  // @ts-expect-error a field of the wrong type
  await tasks.put({ title: 1, done: false, priority: 1, meta: { rank: 1, tags: [] } });
  // @ts-expect-error ids are strings
  await tasks.get(42);
  // @ts-expect-error a condition of the wrong type for the field
  await tasks.find({ where: { done: "yes" } });
  // @ts-expect-error an unknown field path
  await tasks.find({ where: { nope: 1 } });
  // @ts-expect-error an unknown nested path
  await tasks.find({ where: { "meta.nope": 1 } });
  // @ts-expect-error a range operand of another type than the field
  await tasks.find({ where: { priority: { $gt: "2" } } });
  // @ts-expect-error $in takes an array
  await tasks.find({ where: { title: { $in: "a" } } });
  // @ts-expect-error an unsupported operator
  await tasks.find({ where: { title: { $regex: "a" } } });
  // @ts-expect-error orderBy directions are "asc" | "desc"
  await tasks.find({ orderBy: { title: "up" } });
  // @ts-expect-error limit is a number
  await tasks.find({ limit: "10" });
  // @ts-expect-error the watch callback receives Task[]
  tasks.watch({}, (docs: string[]) => docs);
  // @ts-expect-error watch needs a callback
  tasks.watch({ where: { done: false } });
  // @ts-expect-error not an error code
  const code: ErrorCode = "NOT_A_CODE";
  // @ts-expect-error collections must be declared as an object of options
  await Database.open({ name: "x", collections: ["tasks"] });
  // @ts-expect-error indexes are field path strings
  await Database.open({ name: "x", collections: { tasks: { indexes: [1] } } });
  // @ts-expect-error the name is required
  await Database.open({ collections: {} });
  // @ts-expect-error a collection's documents need a string id
  db.collection<{ title: string }>("tasks");
  // @ts-expect-error Collection has no public constructor
  new Collection();
  void code;
}
