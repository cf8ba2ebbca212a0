// What every framework app shares: the database (synced with the server serving the app), the
// task type, and the handle the test driver (check.mjs) uses through `window.__fw`.
import init, { Database, type Collection } from "ferrosync";
import { subscriptionStats } from "ferrosync/observable";
import type { FailureReport } from "./failure";

export interface Task {
  id: string;
  title: string;
  done: boolean;
  rank: number;
}

export interface Harness {
  db: Database;
  tasks: Collection<Task>;
  mount(): void;
  unmount(): void;
  stats: typeof subscriptionStats;
  /** How many times the app's list effect ran on mount (2 under React StrictMode in development). */
  mounts: number;
  /** Where the app has one: a live query whose later run fails, as its binding reports it. */
  failure?: () => Promise<FailureReport>;
}

declare global {
  interface Window {
    __fw?: Harness;
    __fwError?: string;
  }
}

/** `?space=` names the sync namespace (the dev token) and, with `?device=`, the database. */
export async function openDatabase(): Promise<{ db: Database; tasks: Collection<Task> }> {
  await init();
  const params = new URLSearchParams(location.search);
  const space = params.get("space") ?? "default";
  const db = await Database.open({
    name: `fw-${space}`,
    collections: { tasks: { indexes: ["done"] } },
    sync: { url: `${location.origin}/v1`, token: space, intervalMs: 0 },
  });
  return { db, tasks: db.collection<Task>("tasks") };
}

/** Opens the database and publishes the harness; the app mounts when the driver says so. */
export async function start(
  mountApp: (db: Database, tasks: Collection<Task>) => () => void,
  failure?: () => Promise<FailureReport>,
): Promise<void> {
  try {
    const { db, tasks } = await openDatabase();
    let unmount: (() => void) | null = null;
    window.__fw = {
      db,
      tasks,
      stats: subscriptionStats,
      mounts: 0,
      failure,
      mount() {
        if (!unmount) unmount = mountApp(db, tasks);
      },
      unmount() {
        unmount?.();
        unmount = null;
      },
    };
  } catch (e) {
    window.__fwError = String((e as Error)?.stack ?? e);
  }
}

/** The next rank for a new task. */
export function nextRank(list: readonly Task[] | null | undefined): number {
  return (list ?? []).reduce((m, t) => Math.max(m, t.rank), 0) + 1;
}
