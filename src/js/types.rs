//! TypeScript declarations for the values the API takes and returns, so the generated `.d.ts` says
//! more than `any`.
//!
//! `Collection` is declared here by hand (its Rust struct has `skip_typescript`) because it is
//! generic over the document type, `Collection<T>`, which wasm-bindgen cannot express; so is
//! `Database.collection<T>()`. tests/types checks these declarations against the built module
//! (every declared member exists at runtime and the other way round) so they cannot drift.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Stable `code` of every error ferrosync throws or rejects with. */
export type ErrorCode =
  | "UNKNOWN_COLLECTION"
  | "INVALID_DOCUMENT"
  | "INVALID_QUERY"
  | "INVALID_OPTIONS"
  | "QUOTA_EXCEEDED"
  | "DATABASE_CLOSED"
  | "DATABASE_WIPED"
  | "DATABASE_NEWER"
  | "STORAGE_ERROR"
  | "SYNC_UNAUTHORIZED"
  | "SYNC_NAMESPACE_MISMATCH"
  | "SYNC_NETWORK"
  | "SYNC_SERVER"
  | "SYNC_MALFORMED_REPLY"
  | "SYNC_REFUSED"
  | "SYNC_OFFLINE"
  | "SYNC_RESOLVER_FAILED"
  | "SYNC_BUSY"
  | "SYNC_NOT_CONFIGURED";

/** Every rejection and exception from ferrosync is an `Error` with a `code`. */
export interface FerrosyncError extends Error {
  code: ErrorCode;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A stored document: JSON data with a string `id`. Field names starting with `$` are reserved. */
export interface Document {
  id: string;
  [field: string]: JsonValue;
}

/**
 * What a `Collection<T>` can hold: an object with a string `id`. Describe your documents with an
 * interface or type (`interface Task { id: string; title: string; done: boolean }`) and use
 * `db.collection<Task>("tasks")`; values must be JSON data (no `undefined`, functions, Dates).
 */
export type DocumentShape = { id: string };

/** A document to store; `id` is generated (UUIDv7) when absent. */
export type NewDocument<T extends DocumentShape = Document> = Omit<T, "id"> & { id?: string };

export interface CollectionOptions {
  /**
   * Field paths (dotted for nested fields) to keep an index on, and compound indexes as arrays of
   * 2 to 8 paths (`["done", "title"]`: "open tasks by title" is one index walk). `id` is always
   * indexed.
   */
  indexes?: (string | string[])[];
}

export interface DatabaseOptions {
  /** IndexedDB database name. */
  name: string;
  collections: Record<string, CollectionOptions>;
}

/** The options of `Database.open`. */
export type OpenOptions = DatabaseOptions;

type Leaf = string | number | boolean | null | undefined | readonly unknown[];
type Depth = [never, 0, 1, 2, 3, 4, 5];

/**
 * The field paths of `T` a query can name: its fields, dotted paths into nested objects
 * (`"meta.rank"`, up to 6 levels) and array elements (`"tags.0"`). Any string for `Document`.
 */
export type FieldPath<T, D extends number = 6> = [D] extends [never]
  ? never
  : T extends Leaf
    ? never
    : string extends keyof T
      ? string
      : {
          [K in keyof T & string]: NonNullable<T[K]> extends readonly unknown[]
            ? K | `${K}.${number}`
            : NonNullable<T[K]> extends Leaf
              ? K
              : K | `${K}.${FieldPath<NonNullable<T[K]>, Depth[D]>}`;
        }[keyof T & string];

/** The value at field path `P` of `T`; `null` where the field may be missing (missing equals `null`). */
export type FieldValue<T, P extends string> = T extends unknown
  ? string extends keyof T
    ? JsonValue
    : T extends readonly (infer E)[]
      ? P extends `${number}`
        ? E | null
        : never
      : P extends keyof T
        ? Exclude<T[P], undefined> | (undefined extends T[P] ? null : never)
        : P extends `${infer K}.${infer R}`
          ? K extends keyof T
            ? FieldValue<NonNullable<T[K]>, R> | (undefined extends T[K] ? null : never) | (null extends T[K] ? null : never)
            : never
          : never
  : never;

export type Scalar = string | number | boolean;

/** `$gt $gte $lt $lte` only match values of the operand's type (numbers, strings or booleans). */
export interface Operators<V = JsonValue> {
  $eq?: V | null;
  $ne?: V | null;
  $gt?: Extract<V, Scalar>;
  $gte?: Extract<V, Scalar>;
  $lt?: Extract<V, Scalar>;
  $lte?: Extract<V, Scalar>;
  $in?: (V | null)[];
}

/** A value (deep equality) or operators. A missing field equals `null`. */
export type Condition<V = JsonValue> = V | null | Operators<V>;

export interface Query<T extends DocumentShape = Document> {
  /** Conditions on field paths (dotted for nested fields); all must hold. */
  where?: { [P in FieldPath<T>]?: Condition<FieldValue<T, P>> };
  /** Keys in priority order; ties are broken by `id`. Without it results come in `id` order. */
  orderBy?: { [P in FieldPath<T>]?: "asc" | "desc" };
  limit?: number;
  offset?: number;
  /**
   * The previous page's last document (or its `orderBy` fields and `id`): results start just
   * after it, without reading earlier pages. `undefined` (an empty previous page's `at(-1)`)
   * starts at the first page.
   */
  after?: (Partial<T> & { id: string }) | undefined;
}

export type WatchCallback<T extends DocumentShape = Document> = (docs: T[]) => void;

/**
 * A run of a live query failed after `watch` returned (a stored record that cannot be read, an
 * IndexedDB failure: `STORAGE_ERROR`, ...). The watch keeps running with its last result and runs
 * the query again on the next change.
 */
export type WatchErrorCallback = (error: FerrosyncError) => void;

/**
 * The live query ended because its database was closed (`db.close()`) or deleted
 * (`Database.destroy`): no callback follows. Called once; not after `unsubscribe()`.
 */
export type WatchEndCallback = () => void;

/**
 * The documents of one collection, typed as `T` (`db.collection<Task>("tasks")`; plain
 * `Document`s without a type argument). Every method validates its arguments and rejects with a
 * `FerrosyncError` (`INVALID_DOCUMENT`, `INVALID_QUERY`, ...) before anything is written.
 */
export class Collection<T extends DocumentShape = Document> {
  private constructor();
  free(): void;
  [Symbol.dispose](): void;
  readonly name: string;
  /** Stores a document (replacing any with the same id) and returns it as stored, with its id. */
  put(doc: NewDocument<T>): Promise<T>;
  /** Stores many documents in one transaction: all or none. Returns them as stored. */
  bulkPut(docs: NewDocument<T>[]): Promise<T[]>;
  /** The document with this id, or `undefined`. */
  get(id: string): Promise<T | undefined>;
  /** Deletes the document (kept as a tombstone for sync). Idempotent. */
  delete(id: string): Promise<void>;
  /** The documents matching `query` (all without one), in its order. */
  find(query?: Query<T>): Promise<T[]>;
  /** How many documents `find(query)` would return. */
  count(query?: Query<T>): Promise<number>;
  /**
   * Calls `callback` with the current result, then after every committed change that alters it
   * (from this instance, other tabs, or sync) until `unsubscribe()`. A run that fails later goes to
   * `onError` (logged without one) and the watch keeps running; `onEnd` is called once when the
   * database is closed or deleted. Invalid arguments throw at once.
   */
  watch(
    query: Query<T> | undefined,
    callback: WatchCallback<T>,
    onError?: WatchErrorCallback,
    onEnd?: WatchEndCallback,
  ): Subscription;
}

export interface Database {
  /** A declared collection, typed as `T`; throws `UNKNOWN_COLLECTION` for any other name. */
  collection<T extends DocumentShape = Document>(name: string): Collection<T>;
}
"#;
