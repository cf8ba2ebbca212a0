//! TypeScript declarations for the values the API takes and returns, so the generated `.d.ts` says
//! more than `any`.

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
  | "STORAGE_ERROR";

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

/** A document to store; `id` is generated (UUIDv7) when absent. */
export type NewDocument = { id?: string; [field: string]: unknown };

export interface CollectionOptions {
  /** Field paths (dotted for nested fields) to keep an index on. `id` is always indexed. */
  indexes?: string[];
}

export interface DatabaseOptions {
  /** IndexedDB database name. */
  name: string;
  collections: Record<string, CollectionOptions>;
}

export type Scalar = string | number | boolean;

export interface Operators {
  $eq?: JsonValue;
  $ne?: JsonValue;
  $gt?: Scalar;
  $gte?: Scalar;
  $lt?: Scalar;
  $lte?: Scalar;
  $in?: JsonValue[];
}

/** A value (deep equality) or operators. A missing field equals `null`. */
export type Condition = JsonValue | Operators;

export interface Query {
  /** Conditions on field paths (dotted for nested fields); all must hold. */
  where?: Record<string, Condition>;
  /** Keys in priority order; ties are broken by `id`. Without it results come in `id` order. */
  orderBy?: Record<string, "asc" | "desc">;
  limit?: number;
  offset?: number;
}

export type WatchCallback = (docs: Document[]) => void;
"#;
