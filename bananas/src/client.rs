//! The [`Client`] that submits jobs and reads their results, and the
//! installed client the generated `delay` functions submit through.

use std::time::Duration;

use parking_lot::RwLock;

use crate::{
    broker::AnyBroker,
    connect::connect_broker,
    job::{Job, JobId, JobRecord},
    Error, Result,
};

/// Submits jobs and reads their results through a broker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    broker: AnyBroker,
}

impl Client {
    /// A client for `broker`.
    pub fn new(broker: impl Into<AnyBroker>) -> Self {
        Client {
            broker: broker.into(),
        }
    }

    /// Connects to the broker named by `url`: `memory://` (a new embedded
    /// broker), or with the `redis` feature `redis://`, `rediss://` and
    /// `redis+cluster://`.
    pub async fn connect(url: &str) -> Result<Self> {
        Ok(Client::new(connect_broker(url).await?))
    }

    /// The broker.
    pub fn broker(&self) -> &AnyBroker {
        &self.broker
    }

    /// Enqueues already-built jobs, in one batch.
    pub async fn enqueue(&self, jobs: Vec<Job>) -> Result<usize> {
        Ok(self.broker.enqueue(jobs).await?)
    }

    /// The job's record. The broker finds the job's route itself; a
    /// [`JobHandle`](crate::JobHandle) knows it and spares that.
    pub async fn job(&self, id: &JobId) -> Result<Option<JobRecord>> {
        Ok(self.broker.inspect()?.job(id, None).await?)
    }

    /// Waits for the job to finish; `None` on timeout.
    pub async fn wait(&self, id: &JobId, timeout: Duration) -> Result<Option<JobRecord>> {
        Ok(self.broker.inspect()?.wait(id, None, timeout).await?)
    }

    /// Cancels the job if it has not started (see
    /// [`Cancel::cancel`](crate::broker::Cancel::cancel)).
    pub async fn cancel(&self, id: &JobId) -> Result<crate::broker::CancelOutcome> {
        Ok(self.broker.cancel()?.cancel(id, None).await?)
    }
}

static INSTALLED: RwLock<Option<Client>> = RwLock::new(None);

/// The client of the installed app, used by the generated `delay` functions.
pub fn installed_client() -> Result<Client> {
    INSTALLED.read().clone().ok_or(Error::NoApp)
}

/// Makes `client` the one `delay` submits through ([`App::install`]).
///
/// [`App::install`]: crate::App::install
pub(crate) fn install(client: Client) {
    *INSTALLED.write() = Some(client);
}
