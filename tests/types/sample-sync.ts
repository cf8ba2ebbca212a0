// A sample program over the sync API (options, conflict policies, status, sync/pendingCount/
// setToken), type-checked (never run) against the built package by run.sh, with `@ts-expect-error`
// lines proving wrong usage is rejected.
import {
  Database,
  type CollectionOptions,
  type ConflictPolicy,
  type ConflictResolver,
  type Document,
  type ErrorCode,
  type FerrosyncError,
  type OpenOptions,
  type StatusSubscription,
  type SyncOptions,
  type SyncReport,
  type SyncStatus,
} from "ferrosync";

interface Task {
  id: string;
  title: string;
  done: boolean;
}

const keepLongerTitle: ConflictResolver<Task> = (local, remote) => {
  if (!local || !remote) return local ?? remote; // null: that side deleted it
  return local.title.length >= remote.title.length ? local : remote;
};
const askTheUser: ConflictResolver<Task> = async (local, remote) => (confirm("keep mine?") ? local : remote);
const untyped: ConflictResolver = (local, remote) => remote ?? local;
const policy: ConflictPolicy<Task> = "merge";

export async function sync(): Promise<void> {
  const syncOptions: SyncOptions = {
    url: "https://api.example.com/v1",
    token: "t0k3n",
    intervalMs: 30000,
    debounceMs: 100,
    events: true,
    backoffBaseMs: 1000,
    backoffMaxMs: 300000,
    pullLimit: 500,
    pushBatch: 1000,
  };
  const options: OpenOptions = {
    name: "todo",
    collections: {
      tasks: { indexes: ["done"], conflict: keepLongerTitle },
      notes: { conflict: "merge" },
      tags: { conflict: "lww" },
      drafts: { conflict: askTheUser },
      misc: { conflict: untyped },
      inline: { conflict: (local: Document | null, remote: Document | null) => (local ?? remote) },
      policy: { conflict: policy },
    },
    sync: syncOptions,
  };
  const db = await Database.open(options);

  const status: SyncStatus | null = db.status;
  if (status) {
    const state: "idle" | "syncing" | "offline" | "error" = status.state;
    const pending: number = status.pending;
    const last: number | null = status.lastSyncAt;
    const code: ErrorCode | undefined = status.error?.code;
    const progress: number | null = status.progress.remaining;
    void [state, pending, last, code, progress, status.progress.pulled];
    for (const r of status.rejected) {
      const what: string = `${r.collection}/${r.id}: ${r.code} ${r.message}`;
      void what;
      db.retryRejected(r.collection, r.id);
      db.discardRejected(r.collection, r.id);
    }
  }
  const sub: StatusSubscription = db.onStatus((s: SyncStatus) => s.state === "error" && s.error?.message);
  sub.unsubscribe();

  try {
    const report: SyncReport = await db.sync();
    const total: number = report.pushed + report.pulled + report.conflicts;
    void total;
  } catch (e) {
    const code = (e as FerrosyncError).code;
    if (code === "SYNC_OFFLINE" || code === "SYNC_UNAUTHORIZED") db.setToken("new token");
  }
  const pending: number = await db.pendingCount();
  void pending;
}

export async function rejected(db: Database): Promise<void> {
  const bad: CollectionOptions[] = [
    // @ts-expect-error not a policy
    { conflict: "newest" },
    // @ts-expect-error a resolver takes documents, not strings
    { conflict: (local: string) => local },
    // @ts-expect-error a resolver returns a document or null
    { conflict: (local: Task | null) => (local ? 1 : null) },
  ];
  // @ts-expect-error sync needs the server url
  const noUrl: SyncOptions = { token: "x" };
  // @ts-expect-error intervals are numbers of milliseconds
  const badInterval: SyncOptions = { url: "/v1", intervalMs: "30s" };
  // @ts-expect-error setToken takes a string
  db.setToken(42);
  // @ts-expect-error status is read-only
  db.status = null;
  // @ts-expect-error the status callback gets a SyncStatus
  db.onStatus((s: string) => s);
  // @ts-expect-error a test hook (test builds only), not part of the declared API
  db._setOfflineForTest(true);
  void [bad, noUrl, badInterval];
}
