// Type tests (type-checked by tsc, never run): types flow from Collection<T> to each hook's result,
// and a query is checked against T.
import type { Collection, Database, SyncStatus } from "ferrosync";
import { useCollection, useDocument, useLiveQuery, useSyncStatus } from "ferrosync/react";
import type { Task } from "../shared/harness";

export function TypeFlow({ tasks, db }: { tasks: Collection<Task>; db: Database }) {
  const list = useLiveQuery(tasks, { where: { done: false, rank: { $gte: 2 } }, orderBy: { title: "asc" } });
  const maybe: Task[] | undefined = list;
  // @ts-expect-error: undefined until the first result
  const sure: Task[] = list;
  const suspended: Task[] = useLiveQuery(tasks, undefined, { suspense: true });
  const doc: Task | null | undefined = useDocument(tasks, "a");
  // @ts-expect-error: no such field on Task
  const bad = useLiveQuery(tasks, { where: { titel: "x" } });
  // @ts-expect-error: a condition of the wrong type
  const badType = useLiveQuery(tasks, { where: { done: "no" } });
  // @ts-expect-error: results are Tasks
  useLiveQuery(tasks)?.[0]?.nope;
  const named = useCollection<Task>("tasks");
  const fromNamed: number[] | undefined = useLiveQuery(named)?.map((t) => t.rank);
  const status: SyncStatus | null = useSyncStatus(db);
  return [maybe, sure, suspended, doc, bad, badType, fromNamed, status].length;
}
