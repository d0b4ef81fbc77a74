//! [`Context`]: what a running task knows about its own job.

use serde::Serialize;

use crate::job::{Job, JobId, Route};

/// What a task knows about the job it is running. A task receives it by
/// taking `ctx: bananas::Context` as its first parameter; it is not part of
/// the submitted arguments.
#[derive(Debug, Clone)]
pub struct Context {
    job_id: JobId,
    task: String,
    attempt: u32,
    max_retries: u32,
    route: Route,
}

impl Context {
    /// The context of a fetched job.
    pub fn for_job(job: &Job) -> Self {
        Context {
            job_id: job.id.clone(),
            task: job.task.clone(),
            attempt: job.attempt,
            max_retries: job.max_retries,
            route: job.route.clone(),
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
            route: Route::default(),
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
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether a failure of this attempt will be retried.
    pub fn will_retry_on_failure(&self) -> bool {
        self.attempt <= self.max_retries
    }

    /// The route the job was fetched from.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// Reports progress. Today this emits a `tracing` event with the job id;
    /// brokers do not store progress yet.
    pub fn progress(&self, progress: impl Serialize) {
        let value = serde_json::to_string(&progress).unwrap_or_default();
        tracing::info!(job_id = %self.job_id, task = %self.task, progress = %value, "progress");
    }
}
