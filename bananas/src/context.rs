//! [`Context`]: what a running task knows about its own job.

use std::fmt;

use serde::Serialize;

use crate::{
    broker::AnyBroker,
    job::{Job, JobId, Route},
    rules, Error, Result,
};

/// What a task knows about the job it is running. A task receives it by
/// taking `ctx: bananas::Context` as its first parameter; it is not part of
/// the submitted arguments.
#[derive(Clone)]
pub struct Context {
    job_id: JobId,
    task: String,
    attempt: u32,
    max_retries: u32,
    lost: u32,
    route: Route,
    /// Where [`Context::progress`] is stored; `None` outside a worker.
    broker: Option<AnyBroker>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("job_id", &self.job_id)
            .field("task", &self.task)
            .field("attempt", &self.attempt)
            .field("max_retries", &self.max_retries)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The context of a fetched job, without a broker: progress reports are
    /// only logged. The worker uses [`Context::for_attempt`].
    pub fn for_job(job: &Job) -> Self {
        Context {
            job_id: job.id.clone(),
            task: job.task.clone(),
            attempt: job.attempt,
            max_retries: job.max_retries,
            lost: job.lost,
            route: job.route.clone(),
            broker: None,
        }
    }

    /// The context of an attempt leased from `broker`, where progress
    /// reports are stored.
    pub fn for_attempt(job: &Job, broker: AnyBroker) -> Self {
        Context {
            broker: Some(broker),
            ..Context::for_job(job)
        }
    }

    /// A context for calling a task body directly, outside any worker
    /// (in tests): a fresh job id, attempt 1, the default route.
    pub fn detached(task: &str) -> Self {
        Context {
            job_id: JobId::new(),
            task: task.to_owned(),
            attempt: 1,
            max_retries: 0,
            lost: 0,
            route: Route::default(),
            broker: None,
        }
    }

    /// The job id.
    pub fn job_id(&self) -> &JobId {
        &self.job_id
    }

    /// The task name.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The attempt number: 1 for the first run, 2 for the first retry, …
    /// Attempts whose worker was lost count here too (see
    /// [`Context::lost`]).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How many earlier attempts ended with their worker lost (killed or
    /// cut off before it finished): a job that keeps killing its workers
    /// shows it here.
    pub fn lost(&self) -> u32 {
        self.lost
    }

    /// Whether a failure of this attempt will be retried
    /// (see [`rules::can_retry`]; lost attempts do not count).
    pub fn will_retry_on_failure(&self) -> bool {
        rules::can_retry(self.attempt.saturating_sub(self.lost), self.max_retries)
    }

    /// The route the job was fetched from.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// Reports how far the job has got: any value that serializes to JSON
    /// (a percentage, `{"done": 3, "of": 10}`, …). Each report replaces the
    /// one before. The broker stores it while the attempt runs, so
    /// `GET /jobs/{id}`, `bananas jobs show` and [`Client::job`] show it in
    /// [`JobRecord::progress`]; it is dropped when the attempt is settled.
    /// Every report is also logged at debug level.
    ///
    /// Reports are best effort: if the broker cannot store one (it is
    /// unreachable or full, or does not store progress), a warning is
    /// logged, the report is dropped and `Ok` is returned, so a task that
    /// uses `?` is not failed by a hiccup of its telemetry. The one error
    /// is [`Error::NotLeased`]: this attempt no longer holds the job (its
    /// lease expired and the job went back to its queue, perhaps to another
    /// worker), so a task that returns it with `?` stops early, and its
    /// outcome is ignored as stale anyway. Outside a worker
    /// ([`Context::detached`]) the report is only logged.
    ///
    /// [`Client::job`]: crate::Client::job
    /// [`JobRecord::progress`]: crate::job::JobRecord::progress
    pub async fn progress(&self, progress: impl Serialize) -> Result<()> {
        let value = serde_json::value::to_raw_value(&progress)?;
        tracing::debug!(job_id = ?self.job_id.as_str(), task = ?self.task, progress = %value, "progress");
        let Some(broker) = &self.broker else {
            return Ok(());
        };
        let stored = match broker.progress() {
            Ok(p) => {
                p.set_progress(&self.route, &self.job_id, self.attempt, &value)
                    .await
            }
            Err(e) => Err(e),
        };
        match stored {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::NotLeased {
                id: self.job_id.to_string(),
                attempt: self.attempt,
            }),
            Err(e) => {
                tracing::warn!(job_id = ?self.job_id.as_str(), task = ?self.task, error = ?e.to_string(), "progress not stored");
                Ok(())
            }
        }
    }
}
