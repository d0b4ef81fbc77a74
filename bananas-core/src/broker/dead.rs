//! [`DeadLetter`]: jobs that failed for good.

use async_trait::async_trait;

use crate::{
    error::Result,
    job::{JobId, JobRecord},
};

/// The dead letter: jobs whose retries are used up, and cancelled jobs.
#[async_trait]
pub trait DeadLetter: Send + Sync + std::fmt::Debug + 'static {
    /// Up to `limit` dead jobs, newest first.
    async fn dead_jobs(&self, limit: usize) -> Result<Vec<JobRecord>>;

    /// Moves a dead job back to its queue with its attempts reset.
    /// Returns `false` when no dead job has that id.
    async fn requeue_dead(&self, id: &JobId) -> Result<bool>;

    /// Deletes every dead job. Returns how many were deleted.
    async fn purge_dead(&self) -> Result<usize>;
}
