// A real failure of a live query after it started, for the apps to show how their binding reports
// it: a database of its own (no sync), a stored record corrupted through a raw IndexedDB
// connection (behind ferrosync's back) so that the next run of a query reading it fails with
// STORAGE_ERROR.
import { Database, type Collection } from "ferrosync";
import { subscriptionStats } from "ferrosync/observable";

export interface Item {
  id: string;
  rank: number;
}

/** `offset` makes every change re-run the query from IndexedDB (no patching). */
export const RERUN_QUERY = { orderBy: { rank: "asc" as const }, offset: 1 };

export async function until(cond: () => boolean, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > 10000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sets `field` of stored document `id` through a raw IndexedDB connection. */
export function tamper(dbName: string, store: string, id: string, field: string, value: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(dbName);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const raw = open.result;
      const tx = raw.transaction(store, "readwrite");
      const st = tx.objectStore(store);
      const get = st.get(id);
      get.onsuccess = () => {
        const rec = get.result;
        rec.doc[field] = value;
        st.put(rec);
      };
      tx.oncomplete = () => {
        raw.close();
        resolve();
      };
      tx.onabort = () => {
        raw.close();
        reject(tx.error);
      };
    };
  });
}

/** An array nested deeper than ferrosync can read back: a run that reads it fails (STORAGE_ERROR). */
export function tooDeep(): unknown {
  let v: unknown = 1;
  for (let i = 0; i < 300; i++) v = [v];
  return v;
}

/** A fresh database holding items a (rank 1) and b (rank 2). */
export async function itemsDatabase(): Promise<{ name: string; db: Database; items: Collection<Item> }> {
  const name = `fw-failure-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const db = await Database.open({ name, collections: { items: {} } });
  const items = db.collection<Item>("items");
  await items.bulkPut([
    { id: "a", rank: 1 },
    { id: "b", rank: 2 },
  ]);
  return { name, db, items };
}

/** Makes the next run of a query over "a"'s rank fail: corrupts "a", then writes "c". */
export async function breakNextRun(name: string, items: Collection<Item>): Promise<void> {
  await tamper(name, "items", "a", "rank", tooDeep());
  await items.put({ id: "c", rank: 3 });
}

/** What an app's failure probe reports to check.mjs. */
export interface FailureReport {
  /** What the app showed: the error's code. */
  shown: string | null;
  /** The error its framework's handler got (its code). */
  handled: string | null;
  /** Subscriptions the probe left open (after unmounting its view). */
  leftOpen: number;
}

/**
 * Mounts `view` (a live query of `RERUN_QUERY` over the items of `db` in `el`; errors its framework
 * handles go to `handled`), waits for its first result ("b"), breaks the next run, waits until
 * `shown(el)` shows the failure, then unmounts and closes.
 */
export async function probeFailure(
  view: (db: Database, el: HTMLElement, handled: (error: unknown) => void) => () => void,
  shown: (el: HTMLElement) => string | null,
  what: string,
): Promise<FailureReport> {
  const { name, db, items } = await itemsDatabase();
  const before = subscriptionStats().open;
  const el = document.createElement("div");
  document.body.append(el);
  let handled: string | null = null;
  const unmount = view(db, el, (error) => {
    handled = String((error as { code?: string }).code);
  });
  await until(() => el.textContent === "b", "the first result");
  await breakNextRun(name, items);
  await until(() => shown(el) !== null, what);
  const report = { shown: shown(el), handled, leftOpen: 0 };
  unmount();
  el.remove();
  db.close();
  report.leftOpen = subscriptionStats().open - before;
  return report;
}
