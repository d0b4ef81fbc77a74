//! [`Manage`]: an operator's moves on single jobs that the other
//! capabilities do not make: running a waiting job now, deleting a job.

use async_trait::async_trait;

use crate::{
    error::Result,
    job::{JobId, Route},
};

/// Moving and deleting jobs no worker holds. Retrying a dead job is
/// [`DeadLetter::requeue_dead`](super::DeadLetter::requeue_dead) and
/// cancelling one [`Cancel::cancel`](super::Cancel::cancel); doing any of
/// them to many jobs at once is built on these and [`Browse`](super::Browse)
/// (`bananas::control`).
#[async_trait]
pub trait Manage: Send + Sync + std::fmt::Debug + 'static {
    /// Runs a scheduled or retrying job now: it leaves the schedule for the
    /// front of its queue (its attempts and last error stay). Returns
    /// `false`, changing nothing, for a job in any other state. `route` as
    /// for [`Inspect::job`](super::Inspect::job).
    async fn run_now(&self, id: &JobId, route: Option<&Route>) -> Result<bool>;

    /// Deletes a job no worker holds: a queued, scheduled or retrying job
    /// with everything about it, or a finished job's record (dead,
    /// cancelled or succeeded), so it is gone from every listing. Returns
    /// `false`, changing nothing, for a leased job or one the broker does
    /// not know. Waiters of a deleted live job are not woken: their wait
    /// times out.
    async fn delete(&self, id: &JobId, route: Option<&Route>) -> Result<bool>;
}
