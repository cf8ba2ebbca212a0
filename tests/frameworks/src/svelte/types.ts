// Type tests (type-checked by svelte-check, never run): the stores fit Svelte's own Readable type.
import type { Readable } from "svelte/store";
import type { Collection, Database, SyncStatus } from "ferrosync";
import { liveDocument, liveQuery, syncStatus } from "ferrosync/svelte";
import type { Task } from "../shared/harness";

export function typeFlow(tasks: Collection<Task>, db: Database) {
  const list: Readable<Task[] | undefined> = liveQuery(tasks, { where: { done: false } });
  const doc: Readable<Task | null | undefined> = liveDocument(tasks, "a");
  const status: Readable<SyncStatus | null> = syncStatus(db);
  // @ts-expect-error: no such field on Task
  liveQuery(tasks, { where: { titel: "x" } });
  return [list, doc, status];
}
