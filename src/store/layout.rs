//! The names of the IndexedDB layout, in one place below everything that reads or writes it: object
//! stores and internal indexes, `_meta` keys (the store's and sync's), record fields, and how a
//! secondary index is named and where its key lives in a record (`IndexInfo`, `ident`).
//!
//! `schema.rs` creates the layout, `records.rs` (+ `records.js`) builds the records, `meta.rs` reads
//! and writes `_meta`; each takes its names from here, so none of them needs another for a name.

use ferrosync_core::query::Path;
use ferrosync_core::walk::CompoundIndex;

/// The store of out-of-line values: the client id, the clock, the instance marker, the schema
/// description, the outbox watermarks and sync's keys (all named below).
pub const META: &str = "_meta";
/// The outbox store of databases created before `$pending`; migrated and deleted on open.
pub const LEGACY_OUTBOX: &str = "_outbox";
/// Index over tombstones (internal names start with `$`, which field paths cannot).
pub const TOMBSTONES: &str = "$tombstones";
/// Index over the records written locally, in write order (the outbox, above its watermark).
pub const PENDING: &str = "$pending";

/// `_meta` key: the id of this client (the node of its HLCs).
pub const CLIENT_ID: &str = "clientId";
/// `_meta` key: a bound at or above every HLC issued by any tab (core's `sync::write_clock`).
pub const CLOCK: &str = "clock";
/// `_meta` key: the highest outbox place given, kept when the clock is wound back below it (core's
/// `outbox::Places`); absent until then. Right after `clock` in key order (nothing sorts between
/// them), so a write reads both with one request (`meta::read_stamps`).
pub const PLACE: &str = "clock~place";
/// `_meta` key: the random marker of this database (see `meta.rs`).
pub const INSTANCE: &str = "instance";
/// `_meta` key: a readable description of the stores and indexes (for humans and tools).
pub const SCHEMA: &str = "schema";
/// `_meta` key: the record format the database was last opened with ([`RECORD_FORMAT`]).
pub const FORMAT: &str = "format";

/// The record format this version writes: 2, stamps without this client's node (`Hlc::stored`);
/// 1 (or no `format` key), every stamp in full. This version reads both. A database marked with a
/// higher one was written by a newer version, whose records this one may misread: `open` refuses
/// it (`DATABASE_NEWER`), so an old tab left open across a deploy stops instead of failing
/// half-way. A version that raises it must also upgrade the database (version + 1), so instances
/// already running reopen and see the new mark.
pub const RECORD_FORMAT: u32 = 2;

/// The `_meta` key of `collection`'s outbox watermark (see `outbox.rs`).
pub fn watermark_key(collection: &str) -> String {
    format!("outbox:{collection}")
}

/// `_meta` keys owned by sync (src/sync).
pub mod sync_keys {
    /// The pull cursor (it embeds the server database's epoch).
    pub const CURSOR: &str = "syncCursor";
    /// Offset of the server's clock to this device's, in ms (learnt from `serverTime`).
    pub const CLOCK_OFFSET: &str = "syncClockOffset";
    /// When the last sync succeeded (ms since the epoch).
    pub const LAST_SYNC_AT: &str = "syncLastAt";
}

// Record fields (the record layout is described in `records.rs`).

/// The document's id: the key path of every collection store.
pub const F_ID: &str = "id";
/// The index projection: one key per secondary index, under its [`IndexInfo::ident`].
pub const F_IX: &str = "ix";
/// Set on tombstones only (the deleting HLC): the key path of `$tombstones`.
pub const F_TOMB: &str = "tomb";
/// The record's place in the outbox (`$pending` is `[pend, id]`): see `records.rs`.
pub const F_PEND: &str = "pend";
/// The version a local edit was made on (collections with a custom resolver).
pub const F_BASE: &str = "base";

/// One secondary index as it exists in the database.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexInfo {
    /// The indexed field; for a compound index its first field (see `compound`).
    pub path: Path,
    /// Property of the record's `ix` object holding this index's key.
    pub ident: String,
    /// Set for a compound index (its name is `CompoundIndex::name`).
    pub compound: Option<CompoundIndex>,
}

impl IndexInfo {
    pub fn single(path: Path) -> IndexInfo {
        IndexInfo {
            ident: ident(&path),
            path,
            compound: None,
        }
    }

    pub fn compound(c: CompoundIndex) -> IndexInfo {
        IndexInfo {
            path: c.paths[0].clone(),
            ident: compound_ident(&c),
            compound: Some(c),
        }
    }

    /// The IndexedDB index name.
    pub fn name(&self) -> String {
        match &self.compound {
            Some(c) => c.name(),
            None => self.path.as_str().to_string(),
        }
    }

    /// The index's key path in a record: `ix.<ident>`.
    pub fn key_path(&self) -> String {
        format!("{F_IX}.{}", self.ident)
    }
}

/// A field path as an identifier usable in an IndexedDB key path: ASCII letters and digits kept,
/// every other byte `_xx` (hex), prefixed with `p` so it never starts with a digit. Injective.
pub fn ident(path: &Path) -> String {
    encode_ident('p', path.as_str())
}

/// The `ix` property of a compound index: its name encoded like [`ident`], prefixed with `c`.
pub fn compound_ident(c: &CompoundIndex) -> String {
    encode_ident('c', &c.name())
}

fn encode_ident(prefix: char, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    out.push(prefix);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::*;
    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    fn idents_are_identifiers_and_distinct() {
        let p = |s: &str| Path::parse(s).unwrap();
        assert_eq!(ident(&p("done")), "pdone");
        assert_eq!(ident(&p("meta.rank")), "pmeta_2erank");
        assert_eq!(ident(&p("a_b")), "pa_5fb");
        assert_eq!(ident(&p("0")), "p0");
        assert_ne!(ident(&p("a.b")), ident(&p("a_2eb")));
        let c = CompoundIndex {
            paths: vec![p("done"), p("title")],
        };
        assert_eq!(compound_ident(&c), "c_24_5b_22done_22_2c_22title_22_5d");
    }
}
