//! What operating a store needs besides pushes and pulls: history compaction and the expiry floor
//! it leaves behind, and pool figures for `/metrics`. Each database implements these in its own
//! `ops` module (`sqlite/ops.rs`, `postgres/ops.rs`); `Store` dispatches to them (`mod.rs`).
//!
//! Compaction purges tombstones and replay rows older than the retention horizon. The feed has no
//! time column, so the compactor records *marks*: on each run, the head of every namespace that
//! moved, with the time. A namespace's horizon position is the highest head marked at least the
//! retention ago: every row at or below it was written before that time. Tombstones at or below
//! it are deleted in small transactions, and the namespace's *floor* (the highest purged position)
//! is raised in the same transaction. A cursor below the floor may have missed a purged delete: it
//! is answered `410 CURSOR_EXPIRED`.

/// One compaction run's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Compaction {
    /// Tombstones and replay rows older than this are purged.
    pub retention_ms: u64,
    /// The time of this run (ms since the Unix epoch).
    pub now_ms: u64,
    /// Most feed rows examined per transaction (how long one step may hold the write lock).
    pub batch: usize,
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Namespaces whose history reached the horizon.
    pub namespaces: u64,
    pub tombstones: u64,
    pub replays: u64,
}

/// Database connections right now.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolStats {
    pub in_use: u64,
    pub idle: u64,
    /// Pushes queued for the writer (SQLite) and not yet being applied.
    pub queued_pushes: u64,
}
