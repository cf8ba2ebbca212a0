//! Group commit. Pushes queue up in a few lanes (a namespace always uses the same lane, so its
//! pushes keep their order); each lane applies whatever has queued up while the previous group was
//! committing as one transaction. One commit (one fsync) then serves many pushes, which is what
//! makes small pushes fast, and a push is acknowledged only after its group committed.

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::error::StoreError;
use super::plan::Job;
use super::rows::PushOutcome;

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

/// A database that can apply several pushes in one transaction, all or nothing. Without `wait`,
/// a job whose namespace another transaction has locked may be answered
/// [`StoreError::LockedElsewhere`] (and written by a later call with `wait`).
pub(crate) trait GroupWriter: Send + Sync + 'static {
    fn write_group(
        &self,
        jobs: &[Job],
        wait: bool,
    ) -> impl Future<Output = Result<Vec<Result<PushOutcome, StoreError>>, StoreError>> + Send;
}

/// A queued push and where its outcome goes.
pub(crate) struct Pending {
    pub job: Job,
    pub reply: oneshot::Sender<Result<PushOutcome, StoreError>>,
}

pub(crate) struct Lanes {
    senders: Vec<mpsc::Sender<Pending>>,
}

/// Most pushes waiting at once for a namespace locked elsewhere (each holds a connection while it
/// waits, at most the lock time-out).
const MAX_WAITERS: usize = 4;

impl Lanes {
    pub fn spawn<W: GroupWriter>(writer: Arc<W>, lanes: usize) -> Lanes {
        let waiters = Arc::new(Semaphore::new(MAX_WAITERS));
        let senders = (0..lanes.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(1024);
                tokio::spawn(run_lane(writer.clone(), rx, waiters.clone()));
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

async fn run_lane<W: GroupWriter>(
    writer: Arc<W>,
    mut rx: mpsc::Receiver<Pending>,
    waiters: Arc<Semaphore>,
) {
    while let Some(first) = rx.recv().await {
        let group = gather(first, || rx.try_recv().ok());
        let changes: usize = group.iter().map(|p| p.job.changes.len()).sum();
        let (jobs, replies): (Vec<Job>, Vec<_>) =
            group.into_iter().map(|p| (p.job, p.reply)).unzip();
        let started = std::time::Instant::now();
        let written = writer.write_group(&jobs, false).await;
        tracing::debug!(
            pushes = jobs.len(),
            changes,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "group committed"
        );
        match written {
            Ok(outcomes) => {
                for ((job, reply), outcome) in jobs.into_iter().zip(replies).zip(outcomes) {
                    match outcome {
                        Err(StoreError::LockedElsewhere) => {
                            let (writer, waiters) = (writer.clone(), waiters.clone());
                            tokio::spawn(async move {
                                let _permit = waiters.acquire_owned().await;
                                let single = writer
                                    .write_group(std::slice::from_ref(&job), true)
                                    .await
                                    .and_then(|mut o| o.pop().ok_or(StoreError::Closed)?);
                                let _ = reply.send(single);
                            });
                        }
                        // The requester may have gone away; the push stands (a retry replays it).
                        outcome => {
                            let _ = reply.send(outcome);
                        }
                    }
                }
            }
            Err(e) if jobs.len() > 1 => {
                // Don't let one push fail the others: apply each on its own.
                tracing::warn!(error = %e, pushes = jobs.len(), "group commit failed; retrying pushes one by one");
                for (job, reply) in jobs.into_iter().zip(replies) {
                    let single = writer
                        .write_group(std::slice::from_ref(&job), true)
                        .await
                        .and_then(|mut o| o.pop().ok_or(StoreError::Closed)?);
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
