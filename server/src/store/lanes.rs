//! Group commit. Pushes queue up in a few lanes (a namespace always uses the same lane, so its
//! pushes keep their order); each lane applies whatever has queued up while the previous group was
//! committing as one transaction. One commit (one fsync) then serves many pushes, which is what
//! makes small pushes fast, and a push is acknowledged only after its group committed.

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::plan::Job;
use super::{PushOutcome, StoreError};

/// Most pushes in one group.
const MAX_GROUP_JOBS: usize = 64;
/// Most changes in one group (bounds the size of one transaction).
const MAX_GROUP_CHANGES: usize = 5_000;

/// Takes `first` and whatever else has queued up (`next` returns `None` when nothing is waiting),
/// within the group limits.
pub(crate) fn gather(first: Pending, mut next: impl FnMut() -> Option<Pending>) -> Vec<Pending> {
    let mut changes = first.job.changes.len();
    let mut group = vec![first];
    while group.len() < MAX_GROUP_JOBS && changes < MAX_GROUP_CHANGES {
        match next() {
            Some(p) => {
                changes += p.job.changes.len();
                group.push(p);
            }
            None => break,
        }
    }
    group
}

/// A database that can apply several pushes in one transaction, all or nothing.
pub(crate) trait GroupWriter: Send + Sync + 'static {
    fn write_group(
        &self,
        jobs: &[Job],
    ) -> impl Future<Output = Result<Vec<PushOutcome>, StoreError>> + Send;
}

/// A queued push and where its outcome goes.
pub(crate) struct Pending {
    pub job: Job,
    pub reply: oneshot::Sender<Result<PushOutcome, StoreError>>,
}

pub(crate) struct Lanes {
    senders: Vec<mpsc::Sender<Pending>>,
}

impl Lanes {
    pub fn spawn<W: GroupWriter>(writer: Arc<W>, lanes: usize) -> Lanes {
        let senders = (0..lanes.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(1024);
                tokio::spawn(run_lane(writer.clone(), rx));
                tx
            })
            .collect();
        Lanes { senders }
    }

    /// Queues a push and waits until its group has committed.
    pub async fn push(&self, job: Job) -> Result<PushOutcome, StoreError> {
        let mut h = DefaultHasher::new();
        job.namespace.hash(&mut h);
        let lane = &self.senders[(h.finish() % self.senders.len() as u64) as usize];
        let (tx, rx) = oneshot::channel();
        lane.send(Pending { job, reply: tx })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run_lane<W: GroupWriter>(writer: Arc<W>, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let group = gather(first, || rx.try_recv().ok());
        let changes: usize = group.iter().map(|p| p.job.changes.len()).sum();
        let (jobs, replies): (Vec<Job>, Vec<_>) =
            group.into_iter().map(|p| (p.job, p.reply)).unzip();
        let started = std::time::Instant::now();
        let written = writer.write_group(&jobs).await;
        tracing::debug!(
            pushes = jobs.len(),
            changes,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "group committed"
        );
        match written {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The requester may have gone away; the push stands (a retry replays it).
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) if jobs.len() > 1 => {
                // Don't let one push fail the others: apply each on its own.
                tracing::warn!(error = %e, pushes = jobs.len(), "group commit failed; retrying pushes one by one");
                for (job, reply) in jobs.into_iter().zip(replies) {
                    let single = writer
                        .write_group(std::slice::from_ref(&job))
                        .await
                        .and_then(|mut o| o.pop().ok_or(StoreError::Closed));
                    let _ = reply.send(single);
                }
            }
            Err(e) => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }
}
