import { Component, StrictMode, Suspense, useEffect, useState, type ReactNode } from "react";
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
import { probeFailure, RERUN_QUERY, type FailureReport, type Item } from "../shared/failure";

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

class Boundary extends Component<{ children: ReactNode }, { error: unknown }> {
  state = { error: undefined as unknown };
  static getDerivedStateFromError(error: unknown) {
    return { error };
  }
  render() {
    if (this.state.error === undefined) return this.props.children;
    return <p id="failed">{String((this.state.error as { code?: string }).code)}</p>;
  }
}

function Ranked() {
  const list = useLiveQuery(useCollection<Item>("items"), RERUN_QUERY);
  return <p id="ranked">{list === undefined ? "…" : list.map((i) => i.id).join(",")}</p>;
}

/** A live query whose later run fails: the error reaches the error boundary (and onCaughtError). */
function failure(): Promise<FailureReport> {
  return probeFailure(
    (db, el, handled) => {
      const root = createRoot(el, { onCaughtError: handled });
      root.render(
        <FerrosyncProvider database={db}>
          <Boundary>
            <Ranked />
          </Boundary>
        </FerrosyncProvider>,
      );
      return () => root.unmount();
    },
    (el) => el.querySelector("#failed")?.textContent ?? null,
    "the error boundary",
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
}, failure);
