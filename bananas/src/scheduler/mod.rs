//! The scheduler of `#[bananas::periodic]` tasks.
//!
//! Every app hosts one, and any number may run at once: each due tick is
//! *claimed* in the broker with [`Schedules::claim_tick`], which atomically
//! checks that the tick is later than the schedule's last claimed tick and
//! enqueues the tick's job. The job id is derived from the schedule and the
//! tick (`sched-{task}-{tick_ms}`), so a tick cannot be enqueued twice even
//! across restarts. A tick's job is a normal job: the task's route, priority,
//! retries, result and dead letter apply.
//!
//! [`Schedules::claim_tick`]: crate::broker::Schedules::claim_tick
//!
//! Missed ticks (no scheduler ran when they were due) follow the task's
//! [`Missed`] policy: skip them, run once for the latest (the default), or run
//! each of them up to a bound. Each pass looks for the latest ticks at or
//! before now by walking *backwards from now*, so what a pass costs does not
//! depend on how long no scheduler ran: after a year's outage a per-second
//! `latest` schedule runs one job, for the tick of this second.
//!
//! Every scheduler reads the time from its own [`Clock`], and a broker with a
//! clock of its own (Redis) refuses a tick that is not due by that clock
//! ([`TickClaim::Early`]): a scheduler whose clock runs ahead then claims
//! what is due by the broker's clock, and the refused tick once it is due
//! there (see `docs/SCHEDULER.md`).

mod clock;
mod ticks;

use std::{str::FromStr, sync::Arc, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

pub use clock::{Clock, ManualClock, SystemClock};

use crate::{
    broker::{
        live_schedules, publish_schedules, AnyBroker, ScheduleInfo, TickClaim, TICK_TOLERANCE,
    },
    job::{Job, JobId, JobState, Route},
    task::{Missed, Registry, TaskDef},
    Error, Result,
};

/// How late a tick may be claimed under [`Missed::Skip`] and still count as
/// on time rather than missed.
pub const SKIP_GRACE: Duration = Duration::from_secs(30);

/// The most ticks [`Schedule::ticks_between`] returns.
pub const MAX_TICKS_BETWEEN: usize = 100_000;

/// The shortest wait before a tick the broker refused as early is claimed
/// again, so that a pass never spins on it.
const EARLY_RETRY_MIN: Duration = Duration::from_millis(100);

/// What one pass of [`Scheduler::tick`] did.
#[derive(Debug, Default)]
struct Pass {
    /// The jobs this pass enqueued.
    enqueued: Vec<JobId>,
    /// When to claim again a tick the broker refused as early.
    retry_at: Option<DateTime<Utc>>,
}

/// One periodic task's schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    def: &'static TaskDef,
    cron: cron::Schedule,
    tz: chrono_tz::Tz,
    missed: Missed,
    route: Route,
}

impl Schedule {
    /// The schedule of `def`, or `None` if it is not periodic.
    pub fn from_def(def: &'static TaskDef) -> Result<Option<Self>> {
        let Some(s) = def.schedule else {
            return Ok(None);
        };
        let cron = cron::Schedule::from_str(s.cron).map_err(|e| {
            Error::Invalid(format!(
                "task `{}`: invalid cron expression `{}`: {e}",
                def.name, s.cron
            ))
        })?;
        let tz = chrono_tz::Tz::from_str(s.tz).map_err(|e| {
            Error::Invalid(format!(
                "task `{}`: invalid time zone `{}`: {e}",
                def.name, s.tz
            ))
        })?;
        Ok(Some(Schedule {
            def,
            cron,
            tz,
            missed: s.missed,
            route: Route::new(def.route)?,
        }))
    }

    /// The schedule id: the task name.
    pub fn id(&self) -> &'static str {
        self.def.name
    }

    /// Ticks strictly after `after`, up to and including `until`, in
    /// order: the first [`MAX_TICKS_BETWEEN`] of them. For inspection; the
    /// scheduler itself uses [`Schedule::latest_ticks`].
    pub fn ticks_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = after;
        while out.len() < MAX_TICKS_BETWEEN {
            match self.next_after(at) {
                Some(t) if t <= until => {
                    out.push(t);
                    at = t;
                }
                _ => break,
            }
        }
        out
    }

    /// The first tick strictly after `after`. In the hour a time zone sets
    /// its clocks back, this is the next tick in time, not in wall-clock
    /// order.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        ticks::next_after(&self.cron, self.tz, after)
    }

    /// The latest `n` ticks strictly after `after` and at or before
    /// `until`, oldest first. Found by walking back from `until`: the cost
    /// grows with `n`, not with how long ago `after` was.
    pub fn latest_ticks(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        ticks::latest(&self.cron, self.tz, after, until, n)
    }

    /// The ticks a pass at `now` claims, oldest first, after the last
    /// claimed tick `after`, by the schedule's [`Missed`] policy. Only the
    /// newest ticks can run, so only they are looked for: never a walk
    /// from `after`, which may be months old.
    fn due_ticks(&self, after: DateTime<Utc>, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        match self.missed {
            Missed::Latest => self.latest_ticks(after, now, 1),
            // The latest tick runs if it is on time; a stale one is not
            // run, and the next tick, once due, is on time.
            Missed::Skip => self
                .latest_ticks(after, now, 1)
                .into_iter()
                .filter(|t| (now - *t).to_std().unwrap_or_default() <= SKIP_GRACE)
                .collect(),
            Missed::All(max) => self.latest_ticks(after, now, max.max(1) as usize),
        }
    }

    /// The job for `tick`: the task's options, no arguments, and an id
    /// derived from the schedule and the tick.
    pub fn job_for(&self, tick: DateTime<Utc>) -> Job {
        let args = RawValue::from_string("{}".to_owned()).expect("`{}` is valid JSON");
        let mut job = Job::new(self.def.name, args);
        job.id = tick_job_id(self.def.name, tick.timestamp_millis() as u64);
        job.priority = self.def.priority;
        job.route = self.route.clone();
        job.max_retries = self.def.retries;
        job
    }
}

/// The id of the job for `tick` of `schedule`.
pub fn tick_job_id(schedule: &str, tick_ms: u64) -> JobId {
    JobId::from(format!("sched-{schedule}-{tick_ms}"))
}

/// Checks every periodic task's cron expression and time zone.
pub fn validate_schedules(registry: &Registry) -> Result<()> {
    for def in registry.iter() {
        Schedule::from_def(def)?;
    }
    Ok(())
}

/// What the scheduler knows about one schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The schedule id (the task name).
    pub id: String,
    /// The cron expression, as written in the task's
    /// `#[periodic(cron = "…")]`.
    pub cron: String,
    /// The time zone.
    pub tz: String,
    /// The next tick after now.
    pub next_run: Option<DateTime<Utc>>,
    /// The last tick that was enqueued.
    pub last_run: Option<DateTime<Utc>>,
    /// The job enqueued for the last tick.
    pub last_job_id: Option<JobId>,
    /// That job's state, if the broker still has it.
    pub last_outcome: Option<JobState>,
    /// That job's last error, if any.
    pub last_error: Option<String>,
}

/// Claims due ticks of every periodic task. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Scheduler {
    broker: AnyBroker,
    schedules: Vec<Schedule>,
    clock: Arc<dyn Clock>,
    /// Ticks at or before this are never claimed by a schedule that has no
    /// claimed tick yet: a new schedule starts from when its scheduler did.
    started: DateTime<Utc>,
}

impl Scheduler {
    /// A scheduler for `registry`'s periodic tasks. Tasks whose schedule does
    /// not parse are skipped with an error log ([`validate_schedules`]
    /// rejects them at app start-up).
    pub fn new(broker: AnyBroker, registry: &Registry, clock: Arc<dyn Clock>) -> Self {
        let schedules = registry
            .iter()
            .filter_map(|def| match Schedule::from_def(def) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "schedule ignored");
                    None
                }
            })
            .collect();
        let started = clock.now();
        Scheduler {
            broker,
            schedules,
            clock,
            started,
        }
    }

    /// Whether there is any periodic task.
    pub fn has_schedules(&self) -> bool {
        !self.schedules.is_empty()
    }

    /// The schedules.
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// One pass at the clock's current time: claims the due ticks of every
    /// schedule and returns the ids of the jobs this scheduler enqueued.
    ///
    /// A tick the broker refuses as early (its clock is behind this
    /// scheduler's, see [`TickClaim::Early`]) is not claimed: the schedule's
    /// pass is made again at the broker's time, and a later pass claims the
    /// refused tick once the broker's clock has reached it ([`Scheduler::run`]
    /// wakes for it).
    pub async fn tick(&self) -> Result<Vec<JobId>> {
        Ok(self.pass().await?.enqueued)
    }

    async fn pass(&self) -> Result<Pass> {
        let now = self.clock.now();
        let mut pass = Pass::default();
        if self.schedules.is_empty() {
            return Ok(pass);
        }
        let broker = self.broker.schedules()?;
        for s in &self.schedules {
            let last = broker.last_tick(s.id(), &s.route).await?;
            let mut after = match &last {
                Some(m) => Utc
                    .timestamp_millis_opt(m.tick as i64)
                    .single()
                    .unwrap_or(self.started),
                None => self.started,
            };
            // By this scheduler's clock, then, if the broker finds a tick
            // early, once more by the broker's clock: what is due by the
            // broker's clock runs now, the rest when it is due there.
            let mut until = now;
            for _ in 0..2 {
                let mut early = None;
                for tick in s.due_ticks(after, until) {
                    let job = s.job_for(tick);
                    let id = job.id.clone();
                    match broker
                        .claim_tick(s.id(), tick.timestamp_millis() as u64, job)
                        .await?
                    {
                        TickClaim::Enqueued => {
                            tracing::info!(schedule = s.id(), tick = %tick, job_id = ?id.as_str(), "tick enqueued");
                            pass.enqueued.push(id);
                        }
                        TickClaim::Taken => {}
                        TickClaim::Early { now: broker_now } => {
                            early = Some((tick, broker_now));
                            break;
                        }
                    }
                    after = tick;
                }
                let Some((tick, broker_now)) = early else {
                    break;
                };
                let Some(broker_time) = Utc.timestamp_millis_opt(broker_now as i64).single() else {
                    break;
                };
                // The broker takes the tick once its clock is within the
                // tolerance of it; this clock runs at the same rate.
                let wait = (tick - broker_time)
                    .to_std()
                    .unwrap_or_default()
                    .saturating_sub(TICK_TOLERANCE)
                    .max(EARLY_RETRY_MIN);
                let retry = self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
                pass.retry_at = Some(pass.retry_at.map_or(retry, |r| r.min(retry)));
                tracing::warn!(
                    schedule = s.id(),
                    tick = %tick,
                    broker_time = %broker_time,
                    retry_in = ?wait,
                    "this scheduler's clock is ahead of the broker's: the tick is not due there yet"
                );
                if broker_time >= until {
                    break;
                }
                until = broker_time;
            }
        }
        Ok(pass)
    }

    /// The next tick of any schedule after the clock's current time.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        self.schedules
            .iter()
            .filter_map(|s| s.next_after(now))
            .min()
    }

    /// Every schedule's next run, last run and last outcome. A schedule
    /// whose state cannot be read (its last tick's record is corrupt) is
    /// listed in [`ScheduleStates::skipped`] instead; only an unreachable
    /// broker fails the whole list.
    pub async fn states(&self) -> Result<ScheduleStates> {
        states_of(&self.broker, self.infos()).await
    }

    /// What this scheduler announces about its schedules.
    pub fn infos(&self) -> Vec<ScheduleInfo> {
        let now = self.clock.now();
        self.schedules
            .iter()
            .map(|s| {
                let def = s.def.schedule.expect("periodic task has a schedule");
                ScheduleInfo {
                    id: s.id().to_owned(),
                    route: s.route.to_string(),
                    cron: def.written.to_owned(),
                    tz: def.tz.to_owned(),
                    next_run: s.next_after(now).map(|t| t.timestamp_millis() as u64),
                    seen_at: now.timestamp_millis() as u64,
                }
            })
            .collect()
    }

    /// Announces the schedules in the broker, for tools without the task
    /// code ([`published_states`]).
    pub async fn publish(&self) -> Result<()> {
        let broker = self.broker.schedules()?;
        Ok(publish_schedules(broker, &self.infos()).await?)
    }

    /// Claims ticks as they come due until `stop` is cancelled. Broker
    /// errors are logged and retried with backoff.
    pub async fn run(self, stop: CancellationToken) {
        if !self.has_schedules() {
            return;
        }
        tracing::info!(schedules = self.schedules.len(), "scheduler started");
        let mut failures = 0u32;
        loop {
            let pass = async {
                let pass = self.pass().await?;
                self.publish().await?;
                Ok::<_, Error>(pass)
            };
            let wait_until = match pass.await {
                Ok(pass) => {
                    failures = 0;
                    match (self.next_wake(), pass.retry_at) {
                        (Some(next), Some(retry)) => Some(next.min(retry)),
                        (next, retry) => next.or(retry),
                    }
                }
                Err(e) => {
                    failures += 1;
                    let backoff = Duration::from_millis(100 * (1u64 << failures.min(6)));
                    tracing::warn!(error = ?e.to_string(), retry_in = ?backoff, "scheduler pass failed");
                    Some(self.clock.now() + chrono::Duration::from_std(backoff).unwrap_or_default())
                }
            };
            let Some(t) = wait_until else { return };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.clock.sleep_until(t) => {}
            }
        }
    }
}

/// Schedule states, and the schedules whose state could not be read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScheduleStates {
    /// The schedules (announcements sorted by id, a scheduler's own in
    /// its order).
    pub states: Vec<ScheduleState>,
    /// The schedules left out, with why: one bad announcement (an invalid
    /// route, a corrupt record of its last job) does not hide the others.
    pub skipped: Vec<SkippedSchedule>,
}

/// A schedule [`ScheduleStates`] leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedSchedule {
    /// The schedule id, as announced.
    pub id: String,
    /// Why its state could not be read.
    pub error: String,
}

/// Every schedule announced in the broker, with its last run and outcome:
/// what the CLI and a standalone HTTP API show without the task code. An
/// announcement whose state cannot be read is skipped, logged with its id
/// and listed in [`ScheduleStates::skipped`]; only an unreachable broker
/// fails the whole list.
pub async fn published_states(broker: &AnyBroker) -> Result<ScheduleStates> {
    let infos = live_schedules(broker.schedules()?).await?;
    states_of(broker, infos).await
}

async fn states_of(broker: &AnyBroker, infos: Vec<ScheduleInfo>) -> Result<ScheduleStates> {
    let mut out = ScheduleStates::default();
    for info in infos {
        let id = info.id.clone();
        match state_of(broker, info).await {
            Ok(state) => out.states.push(state),
            Err(e) if fails_every_schedule(&e) => return Err(e),
            Err(e) => {
                tracing::warn!(schedule = ?id, error = ?e.to_string(), "schedule skipped: its state cannot be read");
                out.skipped.push(SkippedSchedule {
                    id,
                    error: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Whether `e` is about the broker rather than one schedule: it cannot be
/// reached, or lacks a capability. Everything else (an invalid route in an
/// announcement, a corrupt record, an error reply about one key) concerns
/// the schedule at hand only.
fn fails_every_schedule(e: &Error) -> bool {
    match e {
        Error::Broker(b) => b.is_unavailable(),
        Error::Unsupported(_) | Error::Timeout(_) => true,
        _ => false,
    }
}

async fn state_of(broker: &AnyBroker, info: ScheduleInfo) -> Result<ScheduleState> {
    let route = Route::new(info.route.as_str())
        .map_err(|e| Error::Invalid(format!("announced with an invalid route: {e}")))?;
    let mark = broker.schedules()?.last_tick(&info.id, &route).await?;
    let record = match &mark {
        Some(m) => broker.inspect()?.job(&m.job_id, Some(&route)).await?,
        None => None,
    };
    let at = |ms: u64| Utc.timestamp_millis_opt(ms as i64).single();
    Ok(ScheduleState {
        id: info.id,
        cron: info.cron,
        tz: info.tz,
        next_run: info.next_run.and_then(at),
        last_run: mark.as_ref().and_then(|m| at(m.tick)),
        last_job_id: mark.map(|m| m.job_id),
        last_outcome: record.as_ref().map(|r| r.state),
        last_error: record.and_then(|r| r.error),
    })
}
