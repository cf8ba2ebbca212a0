// Type tests (type-checked by tsc, never run) of ferrosync/observable and its RxJS interop.
import { from, type Observable as RxObservable } from "rxjs";
import type { Collection, Database, SyncStatus } from "ferrosync";
import { liveDocument, liveQuery, syncStatus, type Observable } from "ferrosync/observable";
import type { Task } from "../shared/harness";

export function typeFlow(tasks: Collection<Task>, db: Database) {
  const q: Observable<Task[]> = liveQuery(tasks, { where: { done: false } });
  const rx: RxObservable<Task[]> = from(q);
  const doc: RxObservable<Task | null> = from(liveDocument(tasks, "a"));
  const status: RxObservable<SyncStatus | null> = from(syncStatus(db));
  // @ts-expect-error: no such field on Task
  liveQuery(tasks, { where: { titel: "x" } });
  return [rx, doc, status];
}
