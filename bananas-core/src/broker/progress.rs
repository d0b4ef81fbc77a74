//! [`Progress`]: what a running attempt reports.

use async_trait::async_trait;
use serde_json::value::RawValue;

use crate::{
    error::Result,
    job::{JobId, Route},
};

/// Storing job progress.
#[async_trait]
pub trait Progress: Send + Sync + std::fmt::Debug + 'static {
    /// Stores what a running attempt reports about its progress (any JSON),
    /// replacing what it reported before. [`Inspect::job`](super::Inspect::job)
    /// shows it in [`JobRecord::progress`](crate::JobRecord::progress) until
    /// the attempt is settled or its lease is recovered. Returns `false`,
    /// storing nothing, when `attempt` does not hold the job's lease (it
    /// expired and the job was recovered, or the attempt was already
    /// settled).
    async fn set_progress(
        &self,
        route: &Route,
        id: &JobId,
        attempt: u32,
        progress: &RawValue,
    ) -> Result<bool>;
}
