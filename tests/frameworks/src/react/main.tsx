import { StrictMode, Suspense, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import type { Database, SyncStatus } from "ferrosync";
import {
  FerrosyncProvider,
  useCollection,
  useDatabase,
  useDocument,
  useLiveQuery,
  useSyncStatus,
} from "ferrosync/react";
import { nextRank, start, type Task } from "../shared/harness";

function TaskList() {
  const tasks = useCollection<Task>("tasks");
  // A new query object on every render, same content: must not restart the live query.
  const list = useLiveQuery(tasks, { where: { done: false }, orderBy: { rank: "asc" } });
  const [title, setTitle] = useState("");
  const [ticks, setTicks] = useState(0);
  useEffect(() => {
    window.__fw!.mounts++;
  }, []);
  if (list === undefined) return <p id="loading">loading</p>;
  // Type flow: `list` is Task[], so `t.rank` is a number.
  const ranks: number[] = list.map((t) => t.rank);
  return (
    <section>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void tasks.put({ title, done: false, rank: nextRank(list) });
          setTitle("");
        }}
      >
        <input id="new" value={title} onChange={(e) => setTitle(e.target.value)} />
      </form>
      <button id="rerender" onClick={() => setTicks(ticks + 1)}>
        re-render
      </button>
      <span id="ticks">{ticks}</span>
      <ul id="list" data-ranks={ranks.join(",")}>
        {list.map((t) => (
          <li key={t.id}>{t.title}</li>
        ))}
      </ul>
    </section>
  );
}

function Detail({ id }: { id: string }) {
  const tasks = useCollection<Task>("tasks");
  const doc = useDocument(tasks, id);
  const title: string | undefined = doc === null ? "(none)" : doc?.title;
  return <p id="detail">{title ?? "…"}</p>;
}

function OpenCount() {
  const tasks = useCollection<Task>("tasks");
  const open: Task[] = useLiveQuery(tasks, { where: { done: false } }, { suspense: true });
  return <p id="open-count">{open.length}</p>;
}

function Status() {
  const status: SyncStatus | null = useSyncStatus();
  const db: Database = useDatabase();
  return (
    <p id="status" data-db={db.name}>
      {status ? `${status.state} ${status.pending} ${status.lastSyncAt === null ? "never" : "synced"}` : "no sync"}
    </p>
  );
}

void start((db) => {
  const el = document.getElementById("app")!;
  const root = createRoot(el);
  root.render(
    <StrictMode>
      <FerrosyncProvider database={db}>
        <Status />
        <Suspense fallback={<p id="suspended">suspended</p>}>
          <OpenCount />
        </Suspense>
        <Detail id="seed" />
        <TaskList />
      </FerrosyncProvider>
    </StrictMode>,
  );
  return () => root.unmount();
});
