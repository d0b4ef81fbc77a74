//! [`Inspect`]: what the broker knows about jobs and queues.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    job::{JobId, JobRecord, Millis, Priority, Route},
};

/// Depths of one route's queues.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// The route.
    pub route: String,
    /// Jobs queued at high priority.
    pub high: u64,
    /// Jobs queued at normal priority.
    pub normal: u64,
    /// Jobs queued at low priority.
    pub low: u64,
    /// Jobs waiting for their eta (delayed jobs and retries in backoff).
    pub scheduled: u64,
    /// Jobs leased by workers.
    pub active: u64,
    /// Jobs in the dead letter.
    pub dead: u64,
    /// Whether the route is paused ([`Pause`](super::Pause)): workers take
    /// none of its jobs.
    #[serde(default)]
    pub paused: bool,
    /// When the oldest queued job became due (its eta, else its creation),
    /// in ms since the epoch; `None` when nothing is queued. See
    /// [`QueueStats::latency`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_due: Option<Millis>,
}

impl QueueStats {
    /// Queue latency: how long the oldest queued job has waited since it
    /// became due, at `now` (ms since the epoch); zero when nothing is
    /// queued. A job taken back from a lost worker counts from when it
    /// first became due.
    pub fn latency(&self, now: Millis) -> std::time::Duration {
        let due = self.oldest_due.unwrap_or(now);
        std::time::Duration::from_millis(now.saturating_sub(due))
    }

    /// Jobs queued at `p`.
    pub fn depth(&self, p: Priority) -> u64 {
        match p {
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }
}

/// Looking at jobs: one by id, waiting for one to finish, queue depths,
/// the known routes.
#[async_trait]
pub trait Inspect: Send + Sync + std::fmt::Debug + 'static {
    /// What the broker knows about a job, or `None` if it never saw it or
    /// its result has expired. `route` is the job's route when the caller
    /// knows it (a [`JobHandle`](https://docs.rs/bananas) does), which
    /// spares the broker finding it; with `None` the broker finds it itself.
    async fn job(&self, id: &JobId, route: Option<&Route>) -> Result<Option<JobRecord>>;

    /// Waits until the job reaches a final state (succeeded or dead) and
    /// returns its record, or `None` after `timeout`. Does not poll, and does
    /// not miss a result stored before the call. `route` as for
    /// [`Inspect::job`].
    async fn wait(
        &self,
        id: &JobId,
        route: Option<&Route>,
        timeout: Duration,
    ) -> Result<Option<JobRecord>>;

    /// Queue depths for every route the broker has seen.
    async fn stats(&self) -> Result<Vec<QueueStats>>;

    /// Every route the broker has seen: at least every route a job was
    /// enqueued on (the routes [`Inspect::stats`] reports), without reading
    /// their queues; one cheap read.
    async fn routes(&self) -> Result<Vec<Route>>;
}
