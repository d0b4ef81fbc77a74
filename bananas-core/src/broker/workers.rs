//! [`Workers`]: live workers, their heartbeats, and their goodbyes.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{error::Result, job::Millis};

/// A live worker, as it announces itself with [`Workers::heartbeat`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Unique worker id (host, pid and a random suffix).
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The routes it serves.
    pub routes: Vec<String>,
    /// Its concurrency.
    pub concurrency: usize,
    /// Jobs it is running now.
    pub in_flight: usize,
    /// When it started.
    pub started_at: Millis,
    /// When it last reported.
    pub seen_at: Millis,
}

/// Heartbeats, the list of live workers, and removing a stopped one.
#[async_trait]
pub trait Workers: Send + Sync + std::fmt::Debug + 'static {
    /// Records a live worker; the record expires after `ttl` without a beat.
    async fn heartbeat(&self, info: &WorkerInfo, ttl: Duration) -> Result<()>;

    /// Workers whose heartbeat has not expired.
    async fn workers(&self) -> Result<Vec<WorkerInfo>>;

    /// Removes the worker `id` from the list at once: a worker that stopped
    /// cleanly says so instead of being listed until its heartbeat expires.
    /// Removing a worker that is not listed is not an error.
    async fn deregister(&self, id: &str) -> Result<()>;
}
