//! The broker contract: the one trait every broker implements.
//!
//! A broker owns every job's state and makes each transition atomic.
//! The contract is built for batching: [`Broker::enqueue`] takes many jobs,
//! [`Broker::fetch`] returns up to `max` jobs and [`Broker::ack`] settles many
//! attempts, so a networked broker can do each in one round trip.
//!
//! Delivery is at least once. A fetched job is *leased* until
//! `now + lease`; the worker extends the leases of its in-flight jobs with
//! [`Broker::extend_leases`], and [`Broker::recover_expired`] puts jobs whose
//! lease ran out back in their queue (or in the dead letter once their
//! retries are used up).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    error::{Error, Result},
    job::{Ack, Job, JobId, JobRecord, JobRef, Millis, Priority, Route},
};

/// What a worker asks for when it fetches.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// The routes to take jobs from, in the worker's order of preference.
    pub routes: Vec<Route>,
    /// At most this many jobs.
    pub max: usize,
    /// The lease each fetched job gets.
    pub lease: Duration,
    /// The worker's position in the priority cycle ([`crate::priority`]).
    pub cursor: usize,
    /// When nothing is ready, wait up to this long for a job before
    /// returning an empty batch. The wait must not poll.
    pub block: Duration,
}

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
}

impl QueueStats {
    /// Jobs queued at `p`.
    pub fn depth(&self, p: Priority) -> u64 {
        match p {
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }
}

/// A live worker, as it announces itself with [`Broker::heartbeat`].
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

/// A claimed schedule tick: the last tick a scheduler enqueued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickMark {
    /// The tick time.
    pub tick: Millis,
    /// The job enqueued for it.
    pub job_id: JobId,
}

/// A periodic task's schedule, as the schedulers announce it with
/// [`Broker::publish_schedules`], so that tools without the task code (the
/// CLI, a standalone HTTP API) can list schedules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    /// The schedule id (the task name).
    pub id: String,
    /// The route its jobs run on.
    pub route: String,
    /// The cron expression, as the scheduler parses it.
    pub cron: String,
    /// The IANA time zone.
    pub tz: String,
    /// The next tick, as of `seen_at`.
    pub next_run: Option<Millis>,
    /// When a scheduler last announced it.
    pub seen_at: Millis,
}

impl ScheduleInfo {
    /// How long an announcement outlives the moment a scheduler should
    /// have renewed it. Every scheduler pass renews the announcements of
    /// its schedules, and a scheduler wakes at least at each schedule's next
    /// tick; an announcement whose next run is this far past (or, without a
    /// next run, last seen this long ago) belongs to a schedule no running
    /// scheduler has any more, typically one removed from the code.
    pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

    /// Whether no scheduler can still be announcing this schedule at `now`
    /// (see [`ScheduleInfo::RETENTION`]). Brokers drop such announcements
    /// from [`Broker::schedules`] and delete them when schedules are
    /// published, taking `now` from the freshest announcement
    /// ([`ScheduleInfo::freshest`]): the schedulers' clock, not the
    /// broker's, and while no scheduler runs at all nothing is dropped.
    pub fn is_abandoned(&self, now: Millis) -> bool {
        let due = self.next_run.unwrap_or(self.seen_at).max(self.seen_at);
        now.saturating_sub(due) > Self::RETENTION.as_millis() as Millis
    }

    /// The latest `seen_at` among `announcements` (0 if none).
    pub fn freshest<'a>(announcements: impl IntoIterator<Item = &'a ScheduleInfo>) -> Millis {
        announcements
            .into_iter()
            .map(|s| s.seen_at)
            .max()
            .unwrap_or(0)
    }
}

/// What [`Broker::cancel`] found, and did.
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

/// The contract between the Bananas runtime and a broker.
///
/// Every method is atomic with respect to every other caller, in this
/// process or another: no two workers hold the same job while its lease is
/// alive, and no job is lost between states.
#[async_trait]
pub trait Broker: Send + Sync + std::fmt::Debug + 'static {
    /// Enqueues jobs. A job whose `eta` is in the future is scheduled;
    /// the others are queued on their route at their priority. A job whose id
    /// the broker already holds is skipped, so enqueueing is idempotent.
    /// Returns how many jobs were new.
    async fn enqueue(&self, jobs: Vec<Job>) -> Result<usize>;

    /// Leases up to `req.max` ready jobs from `req.routes`, first promoting
    /// scheduled jobs whose eta has passed. Each fetched job's `attempt` is
    /// one more than before. When none is ready it waits up to `req.block`
    /// for one, without polling, and may then return an empty batch.
    async fn fetch(&self, req: &FetchRequest) -> Result<Vec<Job>>;

    /// Settles attempts: stores results (with the broker's TTL), schedules
    /// retries, or moves jobs to the dead letter. The attempts' leases end.
    /// A success without a value (a task with `result = false`) leaves
    /// nothing behind: afterwards [`Broker::job`] returns `None` for it.
    /// An ack whose lease is gone (the job was recovered and handed to
    /// another worker) is ignored. The batch is borrowed so that a caller
    /// can retry it after an error without copying it. Acknowledging the
    /// same attempt twice is harmless (the second is stale) provided the
    /// repeat carries [`JobRef::lease_token`] 0: a broker may trust an ack
    /// that still carries its token without looking at its lease, so a
    /// caller that repeats an ack it is not sure landed zeroes the tokens
    /// first (the worker does).
    async fn ack(&self, acks: &[Ack]) -> Result<()>;

    /// Hands back leased attempts that never ran or were cancelled
    /// (graceful shutdown). They go back to the front of their queue and
    /// the attempt is not counted. An attempt whose lease is gone is ignored.
    async fn release(&self, jobs: &[JobRef]) -> Result<()>;

    /// Extends the leases of in-flight jobs to `now + lease`.
    async fn extend_leases(&self, jobs: &[(Route, JobId)], lease: Duration) -> Result<()>;

    /// Returns jobs whose lease expired to their queue, or to the dead letter
    /// when their retries are used up. Safe to call from many workers at once.
    /// Returns how many jobs were recovered.
    async fn recover_expired(&self, routes: &[Route]) -> Result<usize>;

    /// Stores what a running attempt reports about its progress (any JSON),
    /// replacing what it reported before. [`Broker::job`] shows it in
    /// [`JobRecord::progress`] until the attempt is settled or its lease is
    /// recovered. Returns `false`, storing nothing, when `attempt` does not
    /// hold the job's lease (it expired and the job was recovered, or the
    /// attempt was already settled).
    ///
    /// The default implementation refuses, naming the problem, so a broker
    /// written before progress existed keeps compiling.
    async fn set_progress(
        &self,
        route: &Route,
        id: &JobId,
        attempt: u32,
        progress: &RawValue,
    ) -> Result<bool> {
        let _ = (route, id, attempt, progress);
        Err(Error::Unsupported("storing job progress".into()))
    }

    /// What the broker knows about a job, or `None` if it never saw it or its
    /// result has expired.
    async fn job(&self, id: &JobId) -> Result<Option<JobRecord>>;

    /// Waits until the job reaches a final state (succeeded or dead) and
    /// returns its record, or `None` after `timeout`. Does not poll, and does
    /// not miss a result stored before the call.
    async fn wait(&self, id: &JobId, timeout: Duration) -> Result<Option<JobRecord>>;

    /// Cancels a job no worker holds yet: a queued, scheduled or retrying
    /// job is taken out of its queue or schedule and goes to the dead
    /// letter with the error `cancelled` (its waiters see that). A leased
    /// job (running, or prefetched by a worker) is not interrupted.
    ///
    /// The default implementation refuses, naming the problem, so a broker
    /// written before cancellation existed keeps compiling.
    async fn cancel(&self, id: &JobId) -> Result<CancelOutcome> {
        let _ = id;
        Err(Error::Unsupported("cancelling jobs".into()))
    }

    /// Up to `limit` dead jobs, newest first.
    async fn dead_jobs(&self, limit: usize) -> Result<Vec<JobRecord>>;

    /// Moves a dead job back to its queue with its attempts reset.
    /// Returns `false` when no dead job has that id.
    async fn requeue_dead(&self, id: &JobId) -> Result<bool>;

    /// Deletes every dead job. Returns how many were deleted.
    async fn purge_dead(&self) -> Result<usize>;

    /// Queue depths for every route the broker has seen.
    async fn stats(&self) -> Result<Vec<QueueStats>>;

    /// Records a live worker; the record expires after `ttl` without a beat.
    async fn heartbeat(&self, info: &WorkerInfo, ttl: Duration) -> Result<()>;

    /// Workers whose heartbeat has not expired.
    async fn workers(&self) -> Result<Vec<WorkerInfo>>;

    /// Atomically claims `tick` of `schedule` and enqueues `job` for it.
    /// Succeeds only if `tick` is later than the schedule's last claimed
    /// tick, so however many schedulers race, each tick is enqueued once.
    async fn claim_tick(&self, schedule: &str, tick: Millis, job: Job) -> Result<bool>;

    /// The last tick claimed for `schedule` (whose jobs run on `route`).
    async fn last_tick(&self, schedule: &str, route: &Route) -> Result<Option<TickMark>>;

    /// Records the schedules a scheduler runs (replacing earlier
    /// announcements of the same ids), and deletes abandoned announcements
    /// ([`ScheduleInfo::is_abandoned`]).
    async fn publish_schedules(&self, schedules: &[ScheduleInfo]) -> Result<()>;

    /// Every schedule a scheduler has announced and not abandoned, sorted
    /// by id.
    async fn schedules(&self) -> Result<Vec<ScheduleInfo>>;

    /// Checks that the broker answers.
    async fn ping(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_abandoned_a_day_after_they_were_due() {
        let day = ScheduleInfo::RETENTION.as_millis() as Millis;
        let info = |next_run, seen_at| ScheduleInfo {
            id: "s".into(),
            route: "default".into(),
            cron: "0 0 2 * * *".into(),
            tz: "UTC".into(),
            next_run,
            seen_at,
        };
        let t = 10 * day;
        // Due in the future, or due less than a day ago: kept.
        assert!(!info(Some(t + 1000), t).is_abandoned(t));
        assert!(!info(Some(t), t - 1000).is_abandoned(t + day));
        // Due more than a day ago and not announced since: abandoned.
        assert!(info(Some(t), t - 1000).is_abandoned(t + day + 1));
        // Without a next run, a day after it was last seen.
        assert!(!info(None, t).is_abandoned(t + day));
        assert!(info(None, t).is_abandoned(t + day + 1));
        // A next run before the announcement counts from the announcement.
        assert!(!info(Some(t - 5 * day), t).is_abandoned(t + day));
    }
}
