//! Running one attempt of one job.

use std::{panic::AssertUnwindSafe, time::Duration};

use futures::FutureExt;
use tracing::Instrument;

use crate::{
    broker::AnyBroker,
    context::Context,
    job::{now_millis, Ack, Job, JobRef, Outcome},
    rules,
    task::{Registry, TaskError},
};

/// Runs one attempt of `job` and decides how it ends.
///
/// - An unknown task, or arguments that do not decode into the task's
///   parameters, sends the job to the dead letter at once: retrying cannot
///   help.
/// - So does a job whose workers were lost more often than its task allows
///   (its `max_lost`, else `max_lost` here, the worker's): it is not run
///   again (see [`rules::lost_too_often`]).
/// - An error, a panic or a timeout is a failed attempt: the job is retried
///   after the task's backoff, or dead-lettered with that error when its
///   retries are used up.
///
/// The arguments move into the handler (they are not copied); the [`Ack`]
/// keeps only the job's [`JobRef`]. The task's [`Context`] stores progress
/// reports in `broker`, which leased the job.
pub async fn execute(registry: &Registry, broker: &AnyBroker, job: Job, max_lost: u32) -> Ack {
    let started_at = now_millis();
    let run = registry
        .get(&job.task)
        .map(|def| (def, Context::for_attempt(&job, broker.clone())));
    let task_name = run.as_ref().map_or("unknown", |(def, _)| def.name);
    let (job, args) = job.into_parts();
    let outcome = match run {
        None => {
            tracing::error!(job_id = %job.id, task = ?job.task, "unknown task");
            Outcome::Dead {
                reason: format!(
                    "unknown task `{}`: no task with that name is registered in this worker",
                    job.task
                ),
            }
        }
        Some((def, _)) if rules::lost_too_often(job.lost, def.max_lost.unwrap_or(max_lost)) => {
            let allowed = def.max_lost.unwrap_or(max_lost);
            let times = if job.lost == 1 { "time" } else { "times" };
            tracing::error!(job_id = %job.id, task = def.name, lost = job.lost, allowed, "the job's workers were lost too often; dead-lettering it unrun");
            Outcome::Dead {
                reason: format!(
                    "worker lost {} {times}: its lease expired before it finished, more often than the {allowed} allowed \
                     (`max_lost`); a job that keeps killing or stalling its worker is not run again",
                    job.lost
                ),
            }
        }
        Some((def, ctx)) => {
            let span = tracing::info_span!("job", job_id = %job.id, task = def.name, attempt = job.attempt);
            let fut = AssertUnwindSafe((def.handler)(ctx, args))
                .catch_unwind()
                .instrument(span);
            let result = match def.timeout {
                Some(limit) => match tokio::time::timeout(limit, fut).await {
                    Ok(r) => r,
                    Err(_) => Ok(Err(TaskError::Failed(format!(
                        "timed out after {}",
                        human(limit)
                    )))),
                },
                None => fut.await,
            };
            match result {
                Ok(Ok(value)) => Outcome::Succeeded(value),
                Ok(Err(TaskError::BadArgs(reason))) => {
                    tracing::error!(job_id = %job.id, reason = ?reason, "invalid arguments");
                    Outcome::Dead {
                        reason: format!("invalid arguments for task `{}`: {reason}", def.name),
                    }
                }
                Ok(Err(TaskError::Failed(error))) => {
                    failed(&job, def.backoff.delay(job.attempt), error)
                }
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a non-string panic payload".to_owned());
                    failed(
                        &job,
                        def.backoff.delay(job.attempt),
                        format!("panicked: {msg}"),
                    )
                }
            }
        }
    };
    let finished_at = now_millis();
    record_metrics(task_name, &outcome, started_at, finished_at);
    Ack {
        job,
        outcome,
        started_at,
        finished_at,
    }
}

/// Counts the attempt and its duration per task. Labels are the task's
/// `&'static` name, so recording allocates nothing.
fn record_metrics(task: &'static str, outcome: &Outcome, started_at: u64, finished_at: u64) {
    let outcome = match outcome {
        Outcome::Succeeded(_) => "succeeded",
        Outcome::Retry { .. } => "retried",
        Outcome::Dead { .. } => "dead",
    };
    metrics::counter!("bananas_jobs_total", "task" => task, "outcome" => outcome).increment(1);
    if outcome != "succeeded" {
        metrics::counter!("bananas_jobs_failed_total", "task" => task).increment(1);
    }
    let secs = finished_at.saturating_sub(started_at) as f64 / 1000.0;
    metrics::histogram!("bananas_job_duration_seconds", "task" => task).record(secs);
}

fn failed(job: &JobRef, delay: Duration, error: String) -> Outcome {
    if job.can_retry() {
        tracing::warn!(job_id = %job.id, task = ?job.task, attempt = job.attempt, error = ?error, retry_in = ?delay, "attempt failed; will retry");
        Outcome::Retry {
            at: now_millis() + delay.as_millis() as u64,
            error,
        }
    } else {
        tracing::error!(job_id = %job.id, task = ?job.task, attempt = job.attempt, error = ?error, "attempt failed; no retries left, dead-lettering");
        Outcome::Dead { reason: error }
    }
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
