//! [`Pause`]: stopping a route's workers without stopping its producers.

use async_trait::async_trait;

use crate::{error::Result, job::Route};

/// Pausing and resuming a route.
///
/// A paused route keeps accepting jobs (enqueues, retries, promotions of
/// scheduled jobs when it resumes), but no worker takes a job from it until
/// it is resumed: jobs already running finish. The state is the broker's,
/// so it survives worker restarts, and every process sees it
/// ([`QueueStats::paused`](super::QueueStats::paused)).
#[async_trait]
pub trait Pause: Send + Sync + std::fmt::Debug + 'static {
    /// Pauses `route`. Returns `false` when it was already paused.
    async fn pause(&self, route: &Route) -> Result<bool>;

    /// Resumes `route`, waking idle workers. Returns `false` when it was
    /// not paused.
    async fn resume(&self, route: &Route) -> Result<bool>;
}
