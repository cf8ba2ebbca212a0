// Type tests (type-checked by tsc, never run) of ferrosync/observable and its RxJS interop.
import { from, type Observable as RxObservable } from "rxjs";
import type { Collection, Database, FerrosyncError, SyncStatus } from "ferrosync";
import { liveDocument, liveQuery, syncStatus, type Observable } from "ferrosync/observable";
import type { Task } from "../shared/harness";

export function typeFlow(tasks: Collection<Task>, db: Database) {
  const q: Observable<Task[]> = liveQuery(tasks, { where: { done: false } });
  const rx: RxObservable<Task[]> = from(q);
  const doc: RxObservable<Task | null> = from(liveDocument(tasks, "a"));
  const status: RxObservable<SyncStatus | null> = from(syncStatus(db));
  // @ts-expect-error: no such field on Task
  liveQuery(tasks, { where: { titel: "x" } });
  // watch's error and end callbacks (what the Observables' error and complete are built on).
  const sub = tasks.watch(
    undefined,
    (docs: Task[]) => docs.length,
    (e: FerrosyncError) => e.code === "STORAGE_ERROR",
    () => undefined,
  );
  // @ts-expect-error: onError gets a FerrosyncError
  tasks.watch(undefined, () => undefined, (e: number) => e);
  // @ts-expect-error: onEnd gets no argument
  tasks.watch(undefined, () => undefined, undefined, (why: string) => why);
  sub.unsubscribe();
  return [rx, doc, status];
}
