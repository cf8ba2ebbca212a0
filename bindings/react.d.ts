import type { ReactElement, ReactNode } from "react";
import type { Collection, Database, Document, DocumentShape, Query, SyncStatus } from "../web/ferrosync.js";

export interface LiveQueryOptions {
  /**
   * Suspend (throw to the nearest `<Suspense>`) until the first result instead of returning
   * `undefined`. Later changes re-render without suspending.
   */
  suspense?: boolean;
}

/** Makes `database` available to `useDatabase()`, `useCollection()` and `useSyncStatus()` below it. */
export function FerrosyncProvider(props: { database: Database; children?: ReactNode }): ReactElement;

/** The database of the nearest `<FerrosyncProvider>`; throws without one. */
export function useDatabase(): Database;

/** `db.collection<T>(name)` of the provider's database, the same object on every render. */
export function useCollection<T extends DocumentShape = Document>(name: string): Collection<T>;

/**
 * The live result of `collection.find(query)`: `undefined` until the first result, then
 * re-rendered after every change that alters it (this tab, other tabs, sync). Built on
 * `useSyncExternalStore` (no tearing); the query is compared by content (JSON), so an inline object
 * literal does not restart it. A query error (`INVALID_QUERY`, ...) and a later run's failure
 * (`STORAGE_ERROR`, ...) are thrown to the error boundary. After `db.close()` the last result stays.
 */
export function useLiveQuery<T extends DocumentShape>(
  collection: Collection<T>,
  query: NoInfer<Query<T>> | undefined,
  options: LiveQueryOptions & { suspense: true },
): T[];
export function useLiveQuery<T extends DocumentShape>(
  collection: Collection<T>,
  query?: NoInfer<Query<T>>,
  options?: LiveQueryOptions,
): T[] | undefined;

/** The live document with this id: `undefined` until known, `null` while there is none. */
export function useDocument<T extends DocumentShape>(
  collection: Collection<T>,
  id: string,
  options: LiveQueryOptions & { suspense: true },
): T | null;
export function useDocument<T extends DocumentShape>(
  collection: Collection<T>,
  id: string,
  options?: LiveQueryOptions,
): T | null | undefined;

/**
 * The live sync status (`db.status` as it changes) of `db`, or of the provider's database;
 * `null` for a database opened without `sync`.
 */
export function useSyncStatus(db?: Database): SyncStatus | null;
