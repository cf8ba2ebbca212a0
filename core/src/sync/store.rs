//! What the sync engine needs from the local database: an outbox, document versions, a cursor.
//!
//! Shaped for IndexedDB: every method is one store call, and the two that change several records
//! ([`LocalStore::ack_pushed`], [`LocalStore::apply`]) are each one atomic transaction in which the
//! implementation issues all its requests and awaits only them (IndexedDB commits a transaction as
//! soon as the code awaits anything else). Decisions by version order happen inside the
//! transaction that writes them ([`LocalStore::load_and_apply`]); decisions that need a foreign
//! await (a JS conflict resolver) happen between store calls, [`StoreOp`] preconditions catch a
//! local write that slipped in between, and the engine then decides again.

use std::rc::Rc;

use crate::hlc::Hlc;
use crate::protocol::Change;

use super::clock::SyncClock;

/// `(collection, id)`: the outbox key, and the order in which pending changes are pushed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocKey {
    pub collection: String,
    pub id: String,
}

impl DocKey {
    pub fn new(collection: impl Into<String>, id: impl Into<String>) -> Self {
        DocKey {
            collection: collection.into(),
            id: id.into(),
        }
    }

    pub fn of(c: &Change) -> Self {
        DocKey::new(c.collection.clone(), c.id.clone())
    }
}

/// Why a document sits in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingKind {
    /// A local write (or a conflict resolution) the server has not acknowledged.
    Edit,
    /// Queued by [`LocalStore::reset_for_resync`]: a version the old server database had, offered to
    /// the new one. Conflicts on it are settled by version order, never by a custom resolver (it is
    /// not a new edit of the user's).
    Resync,
}

/// The local version of a document (tombstones included) and whether it awaits a push.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalDoc {
    pub change: Change,
    pub pending: Option<PendingKind>,
}

/// One outbox row joined with its document: `change.hlc` is the version being pushed, which
/// [`LocalStore::ack_pushed`] later compares.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingChange {
    pub change: Change,
    pub kind: PendingKind,
}

/// A version the server acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    pub key: DocKey,
    pub hlc: Hlc,
}

/// One write of [`LocalStore::apply`]. `expect` is the document's local HLC when the engine decided
/// (None: no local record); if any op's `expect` no longer matches, the whole call writes nothing
/// and returns [`ApplyOutcome::Conflict`].
#[derive(Clone, Debug, PartialEq)]
pub enum StoreOp {
    /// Store `change` as the document's local version. `pending`: put it in the outbox as an
    /// [`PendingKind::Edit`] with `change.hlc` (a resolution to push); otherwise remove any outbox
    /// row (a remote version the server already holds).
    Put {
        change: Change,
        pending: bool,
        expect: Option<Hlc>,
    },
    /// Remove the outbox row: the server holds exactly this local version.
    Unpend { key: DocKey, expect: Hlc },
    /// Keep the row pending but move it behind every other row of the outbox (a row set aside:
    /// the rows after it are acknowledged past it). A store whose outbox has no order ignores it.
    Requeue { key: DocKey, expect: Hlc },
}

impl StoreOp {
    pub fn key(&self) -> DocKey {
        match self {
            StoreOp::Put { change, .. } => DocKey::of(change),
            StoreOp::Unpend { key, .. } | StoreOp::Requeue { key, .. } => key.clone(),
        }
    }

    /// For a pending version stamped lower than the one it replaces (an edit re-stamped after
    /// `CLOCK_AHEAD`): the old stamp. Its new place in the outbox is below the old one.
    pub fn restamped_from(&self) -> Option<&Hlc> {
        match self {
            StoreOp::Put {
                change,
                pending: true,
                expect: Some(old),
            } if change.hlc < *old => Some(old),
            _ => None,
        }
    }

    pub fn expect(&self) -> Option<&Hlc> {
        match self {
            StoreOp::Put { expect, .. } => expect.as_ref(),
            StoreOp::Unpend { expect, .. } | StoreOp::Requeue { expect, .. } => Some(expect),
        }
    }
}

/// The engine's decisions for [`LocalStore::load_and_apply`]: the local versions of the keys in,
/// the ops to write out (`None`: write nothing).
pub type Decide<'a> = dyn FnMut(&[Option<LocalDoc>]) -> Option<Vec<StoreOp>> + 'a;

/// Result of [`LocalStore::apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    Committed,
    /// A precondition failed (a local write happened meanwhile); nothing was written.
    Conflict,
}

/// The local database, as the sync engine sees it. Futures need not be `Send` (browser futures
/// are not); `async fn` in this trait is deliberate for that reason.
#[allow(async_fn_in_trait)]
pub trait LocalStore {
    type Error: std::error::Error + 'static;

    /// The clock local writes are stamped with; the engine feeds it remote times and server time.
    fn clock(&self) -> &SyncClock;

    /// Up to `limit` outbox rows with keys after `after`, in key order, each with its document's
    /// current local version.
    async fn pending(
        &self,
        after: Option<&DocKey>,
        limit: usize,
    ) -> Result<Vec<PendingChange>, Self::Error>;

    /// One transaction: for each acknowledged version, delete its outbox row only if the row still
    /// holds that HLC. A row edited while the push was in flight keeps its newer HLC and is pushed
    /// next: such an edit is never lost.
    async fn ack_pushed(&self, acked: &[Pushed]) -> Result<(), Self::Error>;

    /// The current local versions of `keys` (same order; None when the store has no record).
    async fn load(&self, keys: &[DocKey]) -> Result<Vec<Option<LocalDoc>>, Self::Error>;

    /// One transaction: check every op's precondition, write all ops, and, with `cursor`, save it.
    /// A pulled page and its cursor land together or not at all, so a crash never skips or
    /// half-applies a page. The browser store notifies live queries once per committed call.
    async fn apply(
        &self,
        ops: &[StoreOp],
        cursor: Option<&str>,
    ) -> Result<ApplyOutcome, Self::Error>;

    /// Reads the local versions of `keys`, lets `decide` turn them into ops, and applies those ops
    /// (and `cursor`) as [`LocalStore::apply`] does. `decide` never awaits, so a store that can
    /// keep one transaction open across it (IndexedDB can: nothing foreign is awaited) does all of
    /// this in one transaction: no second read to check the preconditions, and no local write can
    /// slip in between (the ops' preconditions then always hold). `decide` returning `None` writes
    /// nothing and gives [`ApplyOutcome::Conflict`]. The default is [`LocalStore::load`] then
    /// [`LocalStore::apply`], whose preconditions catch a write in between.
    async fn load_and_apply(
        &self,
        keys: &[DocKey],
        cursor: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<ApplyOutcome, Self::Error> {
        load_then_apply(self, keys, cursor, decide).await
    }

    /// The saved pull cursor (None, or empty: pull from the start). It embeds the server's epoch.
    async fn cursor(&self) -> Result<Option<String>, Self::Error>;

    /// One transaction, when the server no longer knows our cursor (reset or restored database):
    /// forget the cursor and put every local document that is not pending into the outbox as
    /// [`PendingKind::Resync`], so that what the server lacks is pushed again.
    async fn reset_for_resync(&self) -> Result<(), Self::Error>;
}

/// [`LocalStore::load_and_apply`] as two store calls: `load`, `decide`, then `apply` (whose
/// preconditions catch a write in between). The trait's default.
pub async fn load_then_apply<S: LocalStore + ?Sized>(
    store: &S,
    keys: &[DocKey],
    cursor: Option<&str>,
    decide: &mut Decide<'_>,
) -> Result<ApplyOutcome, S::Error> {
    let loaded = store.load(keys).await?;
    match decide(&loaded) {
        Some(ops) if ops.is_empty() && cursor.is_none() => Ok(ApplyOutcome::Committed),
        Some(ops) => store.apply(&ops, cursor).await,
        None => Ok(ApplyOutcome::Conflict),
    }
}

/// A shared store (the database object and the engine hold the same one).
impl<S: LocalStore + ?Sized> LocalStore for Rc<S> {
    type Error = S::Error;

    fn clock(&self) -> &SyncClock {
        (**self).clock()
    }

    async fn pending(
        &self,
        after: Option<&DocKey>,
        limit: usize,
    ) -> Result<Vec<PendingChange>, Self::Error> {
        (**self).pending(after, limit).await
    }

    async fn ack_pushed(&self, acked: &[Pushed]) -> Result<(), Self::Error> {
        (**self).ack_pushed(acked).await
    }

    async fn load(&self, keys: &[DocKey]) -> Result<Vec<Option<LocalDoc>>, Self::Error> {
        (**self).load(keys).await
    }

    async fn apply(
        &self,
        ops: &[StoreOp],
        cursor: Option<&str>,
    ) -> Result<ApplyOutcome, Self::Error> {
        (**self).apply(ops, cursor).await
    }

    async fn load_and_apply(
        &self,
        keys: &[DocKey],
        cursor: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<ApplyOutcome, Self::Error> {
        (**self).load_and_apply(keys, cursor, decide).await
    }

    async fn cursor(&self) -> Result<Option<String>, Self::Error> {
        (**self).cursor().await
    }

    async fn reset_for_resync(&self) -> Result<(), Self::Error> {
        (**self).reset_for_resync().await
    }
}
