//! What the store says after a committed change, and where it says it: a [`NoticeSink`] it is
//! given (`Store::set_sink`). The `Database` (src/js) owns the live queries (`live::Registry`) and
//! hands them to its store as the sink, so the store knows nothing of live queries.

use std::rc::Rc;

use super::prepared::Prepared;

/// What changed in one committed transaction.
#[derive(Debug, Clone)]
pub struct Notice {
    pub collection: String,
    pub ids: Vec<String>,
    /// HLC of the transaction that made all these changes, when known, as its records store it
    /// (`Hlc::stored`: live queries compare it with theirs).
    pub hlc: Option<String>,
    /// New versions aligned with `ids` (`None`: deleted); writes through this instance only.
    pub docs: Option<Rc<Vec<Option<Prepared>>>>,
}

impl Notice {
    /// A write of this instance, stamped `hlc` (its stored form).
    pub fn local(
        collection: &str,
        hlc: String,
        changes: Vec<(String, Option<Prepared>)>,
    ) -> Notice {
        let (ids, docs): (Vec<_>, Vec<_>) = changes.into_iter().unzip();
        Notice {
            collection: collection.to_string(),
            ids,
            hlc: Some(hlc),
            docs: Some(Rc::new(docs)),
        }
    }

    pub fn remote(collection: &str, ids: Vec<String>, hlc: Option<String>) -> Notice {
        Notice {
            collection: collection.to_string(),
            ids,
            hlc,
            docs: None,
        }
    }
}

/// Who hears what the store commits (the live queries of the `Database`, src/live).
pub trait NoticeSink {
    /// `notice` was committed; `broadcast`: tell other instances and tabs too (false for what
    /// came from them).
    fn notice(&self, notice: Notice, broadcast: bool);
    /// `notice` was committed by sync (a pulled page), broadcast; `values` are its new versions
    /// aligned with its ids (`None`: deleted), as JSON text, borrowed for this call only: enough
    /// to tell which live results the page cannot touch.
    fn pulled(&self, notice: Notice, values: &[Option<&ferrosync_core::protocol::Doc>]) {
        let _ = values;
        self.notice(notice, true);
    }
    /// The database was closed (`Store::close`) or deleted under the store: nothing follows.
    fn ended(&self);
}
