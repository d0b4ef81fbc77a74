//! [`Cancel`]: taking a job out before it runs.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    job::{JobId, Route},
};

/// What [`Cancel::cancel`] found, and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The job was queued or scheduled (or waiting for a retry): it will
    /// not run. It is now dead with the error `cancelled`, so waiters get
    /// that, and a requeue from the dead letter undoes the cancellation.
    Cancelled,
    /// A worker holds the job's lease: it is running, or prefetched and
    /// about to run as soon as an executor frees up. It is not
    /// interrupted; nothing changed.
    Running,
    /// It already finished (succeeded, or dead); nothing changed.
    Finished,
    /// The broker does not know the job (or its result expired).
    NotFound,
}

/// Cancelling jobs that no worker holds yet.
#[async_trait]
pub trait Cancel: Send + Sync + std::fmt::Debug + 'static {
    /// Cancels a job no worker holds yet: a queued, scheduled or retrying
    /// job is taken out of its queue or schedule and goes to the dead
    /// letter with the error `cancelled` (its waiters see that). A leased
    /// job (running, or prefetched by a worker) is not interrupted. `route`
    /// is the job's route when the caller knows it.
    async fn cancel(&self, id: &JobId, route: Option<&Route>) -> Result<CancelOutcome>;
}
