//! [`Schedules`]: claiming schedule ticks and announcing schedules.
//!
//! The broker stores; the policy of which announcements are abandoned
//! lives here once ([`ScheduleInfo::is_abandoned`], applied by
//! [`publish_schedules`] and [`live_schedules`]), not in each broker.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    job::{Job, JobId, Millis, Route},
};

/// A claimed schedule tick: the last tick a scheduler enqueued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickMark {
    /// The tick time.
    pub tick: Millis,
    /// The job enqueued for it.
    pub job_id: JobId,
}

/// How far ahead of the broker's clock a tick may be and still be claimed
/// ([`Schedules::claim_tick`]): one second.
///
/// The refusal is there for a scheduler whose clock is wrong (minutes or
/// hours ahead), not for the milliseconds by which synchronised clocks
/// differ: a scheduler wakes at the tick by its own clock, and one a few
/// milliseconds ahead of the broker must still claim on that first wake
/// rather than be refused and sleep again. One second is the resolution of
/// a cron expression, so a tick claimed within it is as on time as a cron
/// schedule can tell, and it bounds how early a job can start.
pub const TICK_TOLERANCE: Duration = Duration::from_secs(1);

/// What [`Schedules::claim_tick`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickClaim {
    /// This call claimed the tick and enqueued its job. However many
    /// schedulers race for a tick, exactly one call answers this.
    Enqueued,
    /// This tick, or a later one, was claimed before (by another call):
    /// nothing was enqueued.
    Taken,
    /// The tick is more than [`TICK_TOLERANCE`] later than the broker's
    /// clock, which read `now` (ms since the Unix epoch): nothing was
    /// claimed, and the tick can be claimed again once that clock reaches
    /// it.
    Early {
        /// The broker's time when it refused.
        now: Millis,
    },
}

/// A periodic task's schedule, as the schedulers announce it with
/// [`Schedules::announce`], so that tools without the task code (the
/// CLI, a standalone HTTP API) can list schedules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    /// The schedule id (the task name).
    pub id: String,
    /// The route its jobs run on.
    pub route: String,
    /// The cron expression, as written in the task's
    /// `#[periodic(cron = "…")]` (`0 2 * * *`, not the six-field form the
    /// scheduler parses).
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
    /// (see [`ScheduleInfo::RETENTION`]). [`live_schedules`] drops such
    /// announcements and [`publish_schedules`] deletes them, taking `now`
    /// from the freshest announcement ([`ScheduleInfo::freshest`]): the
    /// schedulers' clock, not the broker's, and while no scheduler runs at
    /// all nothing is dropped.
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

/// Schedule ticks (each claimed once however many schedulers race) and the
/// schedulers' announcements of their schedules.
#[async_trait]
pub trait Schedules: Send + Sync + std::fmt::Debug + 'static {
    /// Claims `tick` of `schedule` and enqueues `job` for it, on the job's
    /// route.
    ///
    /// A tick is claimed only if it is later than the schedule's last
    /// claimed tick, whatever route that tick's job ran on, so however many
    /// schedulers race, and whichever route each of them gives the task
    /// (a rolling deploy that moves it), each tick is enqueued once
    /// ([`TickClaim::Enqueued`] for one call, [`TickClaim::Taken`] for the
    /// others).
    ///
    /// A broker with a clock of its own refuses a tick more than
    /// [`TICK_TOLERANCE`] later than that clock with [`TickClaim::Early`]
    /// and claims nothing, so a scheduler whose clock runs ahead cannot run
    /// ticks early; the caller claims the tick again once the broker's
    /// clock has reached it. The Redis broker reads Redis's `TIME`. The
    /// in-memory broker lives in its scheduler's process and takes that
    /// scheduler's time as given: it never answers `Early`.
    async fn claim_tick(&self, schedule: &str, tick: Millis, job: Job) -> Result<TickClaim>;

    /// The last tick claimed and enqueued for `schedule`, whatever route
    /// its job ran on. `route` is the route the schedule's jobs run on now;
    /// a broker that kept marks per route in an earlier version reads its
    /// old mark there when it has no other.
    async fn last_tick(&self, schedule: &str, route: &Route) -> Result<Option<TickMark>>;

    /// Stores announcements, replacing earlier ones with the same ids.
    async fn announce(&self, schedules: &[ScheduleInfo]) -> Result<()>;

    /// Every stored announcement, in any order. An announcement the broker
    /// cannot read is skipped (and logged), never an error for the others.
    async fn announcements(&self) -> Result<Vec<ScheduleInfo>>;

    /// Deletes the announcements with these ids.
    async fn forget(&self, ids: &[String]) -> Result<()>;
}

/// Announces the schedules a scheduler runs, and deletes announcements no
/// scheduler renews any more ([`ScheduleInfo::is_abandoned`]).
pub async fn publish_schedules(broker: &dyn Schedules, schedules: &[ScheduleInfo]) -> Result<()> {
    if !schedules.is_empty() {
        broker.announce(schedules).await?;
    }
    let all = broker.announcements().await?;
    let now = ScheduleInfo::freshest(&all);
    let abandoned: Vec<String> = all
        .into_iter()
        .filter(|s| s.is_abandoned(now))
        .map(|s| s.id)
        .collect();
    if !abandoned.is_empty() {
        tracing::info!(schedules = ?abandoned, "forgetting schedules no scheduler has announced for a day");
        broker.forget(&abandoned).await?;
    }
    Ok(())
}

/// Every schedule a scheduler has announced and not abandoned, sorted by id.
pub async fn live_schedules(broker: &dyn Schedules) -> Result<Vec<ScheduleInfo>> {
    let all = broker.announcements().await?;
    let now = ScheduleInfo::freshest(&all);
    let mut out: Vec<ScheduleInfo> = all.into_iter().filter(|s| !s.is_abandoned(now)).collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
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
