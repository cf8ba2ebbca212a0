// Type tests (type-checked by vue-tsc, never run) of ferrosync/vue.
import { ref, type Ref } from "vue";
import type { Collection, SyncStatus } from "ferrosync";
import { useDocument, useLiveQuery, useSyncStatus } from "ferrosync/vue";
import type { Task } from "../shared/harness";

export function typeFlow(tasks: Collection<Task>) {
  const done = ref(false);
  const list: Readonly<Ref<Task[] | undefined>> = useLiveQuery(tasks, () => ({ where: { done: done.value } }));
  const doc: Readonly<Ref<Task | null | undefined>> = useDocument(tasks, ref("a"));
  const status: Readonly<Ref<SyncStatus | null>> = useSyncStatus();
  // @ts-expect-error: no such field on Task
  useLiveQuery(tasks, { where: { titel: "x" } });
  // @ts-expect-error: the ref is read-only
  list.value = [];
  return [list, doc, status];
}
