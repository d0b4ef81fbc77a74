//! Periodic tasks: exactly one job per tick however many schedulers run,
//! the missed-tick policies, time zones and daylight saving, and tick jobs
//! being normal jobs. Every test drives the scheduler with a manual clock.

use std::{collections::HashSet, sync::Arc, time::Duration};

use bananas::{
    broker::{AnyBroker, TickClaim},
    job::{JobState, Route},
    scheduler::{tick_job_id, Clock, ManualClock, Scheduler},
    task::Registry,
    App, JobId,
};
use bananas_test_support::{eventually, RedisServer};
use bananas_tests::{Kind, TestBroker};
use chrono::{DateTime, TimeZone, Utc};

#[bananas::periodic(cron = "* * * * * *")]
async fn every_second() {}

#[bananas::periodic(cron = "0 * * * * *", missed = "latest")]
async fn minutely_latest() {}

#[bananas::periodic(cron = "0 * * * * *", missed = "skip")]
async fn minutely_skip() {}

#[bananas::periodic(cron = "0 * * * * *", missed = "all", max_missed = 5)]
async fn minutely_all() {}

#[bananas::periodic(cron = "30 2 * * *", tz = "Europe/Berlin")]
async fn berlin_half_past_two() {}

#[bananas::periodic(cron = "0 9 * * 1-5")]
async fn weekday_mornings() {}

#[bananas::periodic(cron = "* * * * * *", missed = "skip")]
async fn secondly_skip() {}

#[bananas::periodic(cron = "* * * * * *", missed = "latest")]
async fn secondly_latest() {}

#[bananas::periodic(cron = "* * * * * *", missed = "all", max_missed = 5)]
async fn secondly_all() {}

#[bananas::periodic(
    cron = "0 * * * * *",
    tz = "Europe/Berlin",
    missed = "all",
    max_missed = 5
)]
async fn berlin_minutely_all() {}

#[bananas::periodic(cron = "0 30 * * * *", tz = "Europe/Berlin", missed = "latest")]
async fn berlin_hourly_latest() {}

#[bananas::periodic(cron = "0 2 * * *")]
async fn nightly_as_written() {}

// One task, before and after a deploy that moved it to another route.
#[bananas::periodic(cron = "* * * * * *", name = "moved", route = "before_move")]
async fn moved_before() {}

#[bananas::periodic(cron = "* * * * * *", name = "moved", route = "after_move")]
async fn moved_after() {}

#[bananas::periodic(cron = "@hourly", retries = 0, priority = high)]
async fn hourly_report() -> anyhow::Result<String> {
    Ok("report".to_owned())
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn registry(def: &'static bananas::task::TaskDef) -> Registry {
    Registry::from_defs([def]).unwrap()
}

fn ms(t: DateTime<Utc>) -> u64 {
    t.timestamp_millis() as u64
}

async fn queued(broker: &AnyBroker) -> u64 {
    broker
        .inspect()
        .unwrap()
        .stats()
        .await
        .unwrap()
        .iter()
        .map(|s| s.high + s.normal + s.low)
        .sum()
}

/// Three schedulers share a broker and a clock; the clock walks through ten
/// ticks and all three race on each one.
async fn three_schedulers_ten_ticks(broker: AnyBroker) {
    let t0 = t("2026-01-01T00:00:00.500Z");
    let clock = Arc::new(ManualClock::new(t0));
    let reg = registry(every_second::def());
    let schedulers: Vec<Scheduler> = (0..3)
        .map(|_| Scheduler::new(broker.clone(), &reg, clock.clone()))
        .collect();
    let mut ids = Vec::new();
    for i in 1..=10 {
        clock.set(t0 + chrono::Duration::seconds(i));
        let (a, b, c) = tokio::join!(
            schedulers[0].tick(),
            schedulers[1].tick(),
            schedulers[2].tick()
        );
        for r in [a, b, c] {
            ids.extend(r.unwrap());
        }
    }
    assert_eq!(ids.len(), 10, "one job per tick: {ids:?}");
    let distinct: HashSet<&JobId> = ids.iter().collect();
    assert_eq!(distinct.len(), 10);
    for i in 1..=10 {
        let tick = t("2026-01-01T00:00:00Z") + chrono::Duration::seconds(i);
        assert!(
            ids.contains(&tick_job_id("every_second", ms(tick))),
            "tick {tick} missing"
        );
    }
    assert_eq!(queued(&broker).await, 10);

    // A restarted scheduler does not enqueue a claimed tick again.
    let again = Scheduler::new(broker.clone(), &reg, clock.clone());
    assert!(again.tick().await.unwrap().is_empty());
    assert_eq!(queued(&broker).await, 10);
}

#[tokio::test]
async fn three_schedulers_memory() {
    let tb = TestBroker::new(Kind::Memory, "sched3").await;
    three_schedulers_ten_ticks(tb.broker.clone()).await;
}

#[tokio::test]
async fn three_schedulers_private_redis() {
    let server = RedisServer::start();
    let tb = TestBroker::redis(&server.url(), "sched3").await;
    three_schedulers_ten_ticks(tb.broker.clone()).await;
}

/// The same race through `Scheduler::run`: three running schedulers, the
/// clock moved ten seconds one at a time.
#[tokio::test]
async fn three_running_schedulers() {
    let tb = TestBroker::new(Kind::Redis, "sched_run").await;
    let broker = tb.broker.clone();
    let t0 = t("2026-01-01T00:00:00.500Z");
    let clock = Arc::new(ManualClock::new(t0));
    let reg = registry(every_second::def());
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let s = Scheduler::new(broker.clone(), &reg, clock.clone());
        tasks.push(tokio::spawn(s.run(stop.clone())));
    }
    for i in 1..=10u64 {
        clock.set(t0 + chrono::Duration::seconds(i as i64));
        let b = broker.clone();
        let tick = t("2026-01-01T00:00:00Z") + chrono::Duration::seconds(i as i64);
        eventually(Duration::from_secs(10), "tick claimed", || {
            let b = b.clone();
            async move {
                let mark = b
                    .schedules()
                    .unwrap()
                    .last_tick("every_second", &Route::default())
                    .await
                    .unwrap()?;
                (mark.tick >= ms(tick)).then_some(())
            }
        })
        .await;
    }
    stop.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(queued(&broker).await, 10);
    tb.cleanup().await;
}

struct Missed {
    broker: AnyBroker,
    clock: Arc<ManualClock>,
    reg: Registry,
}

impl Missed {
    /// A schedule that ran at 00:01, then no scheduler ran until `back`.
    async fn new(def: &'static bananas::task::TaskDef) -> Self {
        let broker = AnyBroker::full(Arc::new(bananas::broker::MemoryBroker::new()));
        let clock = Arc::new(ManualClock::new(t("2026-01-01T00:00:30Z")));
        let reg = registry(def);
        let s = Scheduler::new(broker.clone(), &reg, clock.clone());
        clock.set(t("2026-01-01T00:01:00Z"));
        assert_eq!(s.tick().await.unwrap().len(), 1);
        Missed { broker, clock, reg }
    }

    /// Starts a scheduler at `now` and returns the jobs its first pass enqueued.
    async fn back_at(&self, now: &str) -> Vec<JobId> {
        self.clock.set(t(now));
        let s = Scheduler::new(self.broker.clone(), &self.reg, self.clock.clone());
        s.tick().await.unwrap()
    }
}

#[tokio::test]
async fn missed_ticks_latest_runs_once_for_the_newest() {
    let m = Missed::new(minutely_latest::def()).await;
    let ids = m.back_at("2026-01-01T00:10:45Z").await;
    assert_eq!(
        ids,
        vec![tick_job_id(
            "minutely_latest",
            ms(t("2026-01-01T00:10:00Z"))
        )]
    );
}

#[tokio::test]
async fn missed_ticks_skip_runs_none() {
    let m = Missed::new(minutely_skip::def()).await;
    assert!(m.back_at("2026-01-01T00:10:45Z").await.is_empty());
    // The next tick runs as usual.
    let ids = m.back_at("2026-01-01T00:11:00.010Z").await;
    assert_eq!(
        ids,
        vec![tick_job_id("minutely_skip", ms(t("2026-01-01T00:11:00Z")))]
    );
}

#[tokio::test]
async fn missed_ticks_all_runs_each_up_to_the_bound() {
    let m = Missed::new(minutely_all::def()).await;
    let ids = m.back_at("2026-01-01T00:10:45Z").await;
    let want: Vec<JobId> = (6..=10)
        .map(|min| {
            let tick = t("2026-01-01T00:00:00Z") + chrono::Duration::minutes(min);
            tick_job_id("minutely_all", ms(tick))
        })
        .collect();
    assert_eq!(ids, want, "the five newest missed ticks, oldest first");
}

/// A schedule whose last claimed tick is `last`, and a scheduler that comes
/// back at `now` after an outage. Every pass runs at `now` unless the clock
/// is moved.
struct Outage {
    broker: AnyBroker,
    clock: Arc<ManualClock>,
    scheduler: Scheduler,
    id: &'static str,
}

impl Outage {
    async fn new(
        def: &'static bananas::task::TaskDef,
        last: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        let broker = AnyBroker::full(Arc::new(bananas::broker::MemoryBroker::new()));
        let clock = Arc::new(ManualClock::new(now));
        let scheduler = Scheduler::new(broker.clone(), &registry(def), clock.clone());
        let job = scheduler.schedules()[0].job_for(last);
        assert_eq!(
            broker
                .schedules()
                .unwrap()
                .claim_tick(def.name, ms(last), job)
                .await
                .unwrap(),
            TickClaim::Enqueued
        );
        Outage {
            broker,
            clock,
            scheduler,
            id: def.name,
        }
    }

    async fn pass(&self) -> Vec<JobId> {
        self.scheduler.tick().await.unwrap()
    }

    /// The stored last tick.
    async fn mark(&self) -> DateTime<Utc> {
        let m = self
            .broker
            .schedules()
            .unwrap()
            .last_tick(self.id, &Route::default())
            .await
            .unwrap()
            .unwrap();
        Utc.timestamp_millis_opt(m.tick as i64).unwrap()
    }

    fn job(&self, tick: DateTime<Utc>) -> JobId {
        tick_job_id(self.id, ms(tick))
    }
}

/// `missed = "skip"` after an outage of `down`: nothing stale runs, the
/// next tick after the scheduler came back does, and the stored tick moves
/// on to it.
async fn skip_comes_back(down: chrono::Duration) {
    let last = t("2026-01-01T00:00:00Z");
    let back = last + down + chrono::Duration::milliseconds(400);
    let o = Outage::new(secondly_skip::def(), last, back).await;
    let grace = chrono::Duration::from_std(bananas::scheduler::SKIP_GRACE).unwrap();
    for id in o.pass().await {
        // Only a tick that is on time (within the grace) may run.
        assert_eq!(id, o.job(last + down), "a stale tick ran");
    }
    assert!(o.mark().await == last || o.mark().await >= back - grace);

    // The next tick after the scheduler came back runs, and is stored.
    let next = last + down + chrono::Duration::seconds(1);
    o.clock.set(next + chrono::Duration::milliseconds(5));
    assert_eq!(
        o.pass().await,
        vec![o.job(next)],
        "the next tick did not run"
    );
    assert_eq!(o.mark().await, next);
    assert!(o.pass().await.is_empty());
}

#[tokio::test]
async fn skip_fires_again_after_30_hours_down() {
    skip_comes_back(chrono::Duration::hours(30)).await;
}

#[tokio::test]
async fn skip_fires_again_after_60_days_down() {
    skip_comes_back(chrono::Duration::days(60)).await;
}

/// `missed = "latest"` after an outage of `down`: one job, for the latest
/// tick at or before now, however many passes run.
async fn latest_comes_back(def: &'static bananas::task::TaskDef, down: chrono::Duration) {
    let last = t("2026-01-01T00:00:00Z");
    let latest = last + down;
    let back = latest + chrono::Duration::milliseconds(700);
    let o = Outage::new(def, last, back).await;
    assert_eq!(o.pass().await, vec![o.job(latest)]);
    assert_eq!(o.mark().await, latest);
    assert!(
        o.pass().await.is_empty(),
        "a second job for the same outage"
    );
    assert!(o.pass().await.is_empty(), "a third job for the same outage");
}

#[tokio::test]
async fn latest_runs_once_after_30_days_down_minutely() {
    latest_comes_back(minutely_latest::def(), chrono::Duration::days(30)).await;
}

#[tokio::test]
async fn latest_runs_once_after_100_days_down_minutely() {
    latest_comes_back(minutely_latest::def(), chrono::Duration::days(100)).await;
}

#[tokio::test]
async fn latest_runs_once_after_30_days_down_secondly() {
    latest_comes_back(secondly_latest::def(), chrono::Duration::days(30)).await;
}

/// `missed = "all"` with `max_missed = 5` after an outage of `down`: the
/// last five ticks at or before now, oldest first, and nothing more.
async fn all_comes_back(
    def: &'static bananas::task::TaskDef,
    step: chrono::Duration,
    down: chrono::Duration,
) {
    let last = t("2026-01-01T00:00:00Z");
    let latest = last + down;
    let o = Outage::new(def, last, latest + step / 2).await;
    let want: Vec<JobId> = (0..5).rev().map(|i| o.job(latest - step * i)).collect();
    assert_eq!(o.pass().await, want, "the last five ticks, oldest first");
    assert_eq!(o.mark().await, latest);
    assert!(o.pass().await.is_empty());
}

#[tokio::test]
async fn all_runs_the_last_five_after_30_hours_down_secondly() {
    all_comes_back(
        secondly_all::def(),
        chrono::Duration::seconds(1),
        chrono::Duration::hours(30),
    )
    .await;
}

#[tokio::test]
async fn all_runs_the_last_five_after_30_days_down_minutely() {
    all_comes_back(
        minutely_all::def(),
        chrono::Duration::minutes(1),
        chrono::Duration::days(30),
    )
    .await;
}

#[tokio::test]
async fn all_runs_the_last_five_after_100_days_down_minutely() {
    all_comes_back(
        minutely_all::def(),
        chrono::Duration::minutes(1),
        chrono::Duration::days(100),
    )
    .await;
}

/// Missed ticks across the night Berlin sets its clocks back
/// (2026-10-25: 02:00–03:00 local happens twice, first at UTC+2 from 00:00Z,
/// then at UTC+1 from 01:00Z). Ticks are instants: the last five before
/// 01:02:30Z are 00:58Z and 00:59Z (02:58 and 02:59 the first time) and
/// 01:00Z, 01:01Z, 01:02Z (02:00–02:02 the second time).
#[tokio::test]
async fn missed_ticks_across_the_repeated_hour() {
    let o = Outage::new(
        berlin_minutely_all::def(),
        t("2026-10-25T00:50:00Z"),
        t("2026-10-25T01:02:30Z"),
    )
    .await;
    let want: Vec<JobId> = ["00:58", "00:59", "01:00", "01:01", "01:02"]
        .iter()
        .map(|hm| o.job(t(&format!("2026-10-25T{hm}:00Z"))))
        .collect();
    assert_eq!(o.pass().await, want);

    // Hourly at :30 with `latest`, back at 02:10 local the second time
    // (01:10Z): the latest tick is 02:30 local the first time (00:30Z),
    // although 02:30 is later than 02:10 on the wall.
    let o = Outage::new(
        berlin_hourly_latest::def(),
        t("2026-10-24T20:30:00Z"),
        t("2026-10-25T01:10:00Z"),
    )
    .await;
    assert_eq!(o.pass().await, vec![o.job(t("2026-10-25T00:30:00Z"))]);
    // And it wakes for 02:30 the second time (01:30Z), not for the past.
    assert_eq!(o.scheduler.next_wake(), Some(t("2026-10-25T01:30:00Z")));
    // Back at 02:40 local the first time (00:40Z), the next tick is 02:30
    // local the second time (01:30Z), not 03:30 (02:30Z).
    o.clock.set(t("2026-10-25T00:40:00Z"));
    assert_eq!(o.scheduler.next_wake(), Some(t("2026-10-25T01:30:00Z")));
}

/// What the user wrote is what announcements, `GET /schedules` and
/// `bananas schedules` show, not the form the scheduler parses.
#[tokio::test]
async fn schedules_show_the_cron_as_written() {
    let broker = AnyBroker::full(Arc::new(bananas::broker::MemoryBroker::new()));
    let clock = Arc::new(ManualClock::new(t("2026-01-01T00:00:00Z")));
    let defs = [nightly_as_written::def(), weekday_mornings::def()];
    let s = Scheduler::new(broker.clone(), &Registry::from_defs(defs).unwrap(), clock);
    let mut written: Vec<(String, String)> =
        s.infos().into_iter().map(|i| (i.id, i.cron)).collect();
    written.sort();
    assert_eq!(
        written,
        [
            ("nightly_as_written".to_owned(), "0 2 * * *".to_owned()),
            ("weekday_mornings".to_owned(), "0 9 * * 1-5".to_owned()),
        ]
    );
    s.publish().await.unwrap();
    let published = bananas::scheduler::published_states(&broker).await.unwrap();
    assert!(published.skipped.is_empty(), "{:?}", published.skipped);
    let crons: Vec<&str> = published.states.iter().map(|p| p.cron.as_str()).collect();
    assert_eq!(crons, ["0 2 * * *", "0 9 * * 1-5"]);
    let mut local: Vec<String> = s
        .states()
        .await
        .unwrap()
        .states
        .into_iter()
        .map(|p| p.cron)
        .collect();
    local.sort();
    assert_eq!(local, ["0 2 * * *", "0 9 * * 1-5"]);
    // The schedule still means 02:00 every day.
    let nightly = s
        .schedules()
        .iter()
        .find(|x| x.id() == "nightly_as_written");
    assert_eq!(
        nightly.unwrap().next_after(t("2026-01-01T00:00:00Z")),
        Some(t("2026-01-01T02:00:00Z"))
    );
}

/// A rolling deploy that moves a periodic task to another route: for a
/// while the old and the new code both run a scheduler, and both race for
/// the same tick. It must be enqueued once.
async fn moved_route_runs_each_tick_once(tb: &TestBroker) {
    let broker = tb.broker.clone();
    let t0 = t("2026-01-01T00:00:00.500Z");
    let clock = Arc::new(ManualClock::new(t0));
    let old = Scheduler::new(
        broker.clone(),
        &registry(moved_before::def()),
        clock.clone(),
    );
    let new = Scheduler::new(broker.clone(), &registry(moved_after::def()), clock.clone());
    let mut ids = Vec::new();
    for i in 1..=3 {
        clock.set(t0 + chrono::Duration::seconds(i));
        let (a, b) = tokio::join!(old.tick(), new.tick());
        ids.extend(a.unwrap());
        ids.extend(b.unwrap());
    }
    assert_eq!(ids.len(), 3, "one job per tick across both routes: {ids:?}");
}

#[tokio::test]
async fn moved_route_runs_each_tick_once_memory() {
    let tb = TestBroker::new(Kind::Memory, "moved").await;
    moved_route_runs_each_tick_once(&tb).await;
}

#[tokio::test]
async fn moved_route_runs_each_tick_once_redis() {
    let tb = TestBroker::new(Kind::Redis, "moved").await;
    moved_route_runs_each_tick_once(&tb).await;
    tb.cleanup().await;
}

/// A scheduler whose clock is an hour ahead of everyone else's (and of
/// Redis's) must not claim a tick that is not due yet.
#[tokio::test]
async fn a_scheduler_ahead_of_the_broker_claims_nothing_early() {
    let tb = TestBroker::new(Kind::Redis, "ahead").await;
    let ahead = Arc::new(ManualClock::new(Utc::now() + chrono::Duration::hours(1)));
    let s = Scheduler::new(
        tb.broker.clone(),
        &registry(secondly_latest::def()),
        ahead.clone(),
    );
    ahead.advance(chrono::Duration::seconds(2));
    let early = s.tick().await.unwrap();
    assert!(early.is_empty(), "claimed a tick an hour early: {early:?}");
    tb.cleanup().await;
}

/// The wall clock, `ahead` in the future.
#[derive(Debug)]
struct AheadClock {
    ahead: chrono::Duration,
}

#[async_trait::async_trait]
impl Clock for AheadClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.ahead
    }

    async fn sleep_until(&self, t: DateTime<Utc>) {
        tokio::time::sleep((t - self.now()).to_std().unwrap_or_default()).await;
    }
}

/// A running scheduler whose clock is three seconds ahead of Redis's: each
/// tick is claimed once Redis's clock has (nearly) reached it, not before,
/// and not lost; and waiting for it does not spin.
#[tokio::test]
async fn a_scheduler_ahead_of_the_broker_claims_each_tick_when_it_is_due() {
    let server = RedisServer::start();
    let tb = TestBroker::redis(&server.url(), "ahead_run").await;
    let clock = Arc::new(AheadClock {
        ahead: chrono::Duration::seconds(3),
    });
    let reg = registry(secondly_latest::def());
    // A tick after the scheduler started by its own clock (earlier ones
    // were never due for it), a few seconds away by Redis's.
    let target = ms(Utc::now()) / 1000 * 1000 + 5000;
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(Scheduler::new(tb.broker.clone(), &reg, clock).run(stop.clone()));
    let tolerance = bananas::broker::TICK_TOLERANCE.as_millis() as u64;
    let b = tb.broker.clone();
    let seen_at = eventually(Duration::from_secs(20), "the target tick claimed", || {
        let b = b.clone();
        async move {
            let mark = b
                .schedules()
                .unwrap()
                .last_tick("secondly_latest", &Route::default())
                .await
                .unwrap()?;
            (mark.tick >= target).then(|| ms(Utc::now()))
        }
    })
    .await;
    assert!(
        seen_at + tolerance >= target,
        "tick {target} was claimed by {seen_at}, before Redis's clock reached it"
    );
    stop.cancel();
    running.await.unwrap();
    // Each tick's job is enqueued once (ids are per tick), and a pass every
    // second of either clock, not a spin, asked for them.
    let calls: u64 = server
        .cli(&["info", "commandstats"])
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_fcall:calls="))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(calls < 300, "{calls} script calls in a few seconds");
}

#[test]
fn berlin_daylight_saving() {
    let reg = registry(berlin_half_past_two::def());
    let broker = AnyBroker::full(Arc::new(bananas::broker::MemoryBroker::new()));
    let s = Scheduler::new(broker, &reg, Arc::new(ManualClock::new(Utc::now())));
    let sched = &s.schedules()[0];

    // Spring forward: on 2026-03-29 Berlin jumps from 02:00 to 03:00, so
    // 02:30 local does not exist that day and the cron crate skips it.
    let ticks = sched.ticks_between(t("2026-03-27T12:00:00Z"), t("2026-03-31T12:00:00Z"));
    assert_eq!(
        ticks,
        vec![
            t("2026-03-28T01:30:00Z"), // 02:30 CET (UTC+1)
            t("2026-03-30T00:30:00Z"), // 02:30 CEST (UTC+2)
            t("2026-03-31T00:30:00Z"),
        ]
    );

    // Fall back: on 2026-10-25 Berlin goes from 03:00 back to 02:00, so
    // 02:30 local happens twice, and the cron crate fires at both.
    let ticks = sched.ticks_between(t("2026-10-24T12:00:00Z"), t("2026-10-26T12:00:00Z"));
    assert_eq!(
        ticks,
        vec![
            t("2026-10-25T00:30:00Z"), // 02:30 CEST, the first 02:30
            t("2026-10-25T01:30:00Z"), // 02:30 CET, the second 02:30
            t("2026-10-26T01:30:00Z"), // 02:30 CET, the next day
        ]
    );
}

#[test]
fn five_field_weekdays_follow_unix_cron() {
    let reg = registry(weekday_mornings::def());
    let broker = AnyBroker::full(Arc::new(bananas::broker::MemoryBroker::new()));
    let s = Scheduler::new(broker, &reg, Arc::new(ManualClock::new(Utc::now())));
    // 2026-01-03 is a Saturday: `1-5` is Monday to Friday, as in crontab.
    let ticks =
        s.schedules()[0].ticks_between(t("2026-01-03T00:00:00Z"), t("2026-01-07T00:00:00Z"));
    assert_eq!(
        ticks,
        vec![t("2026-01-05T09:00:00Z"), t("2026-01-06T09:00:00Z")]
    );
}

#[test]
fn named_schedules_parse() {
    let reg = registry(hourly_report::def());
    let broker = AnyBroker::full(Arc::new(bananas::broker::MemoryBroker::new()));
    let s = Scheduler::new(broker, &reg, Arc::new(ManualClock::new(Utc::now())));
    let next = s.schedules()[0].next_after(t("2026-01-01T10:15:00Z"));
    assert_eq!(next, Some(t("2026-01-01T11:00:00Z")));
}

/// A tick's job is a normal job: it runs on a worker with the task's
/// options, and the schedule state shows its outcome.
#[tokio::test]
async fn tick_jobs_are_normal_jobs() {
    let tb = TestBroker::new(Kind::Memory, "tick_jobs").await;
    let clock = Arc::new(ManualClock::new(t("2026-01-01T09:59:59Z")));
    let app = App::builder()
        .broker(tb.broker.clone())
        .registry(registry(hourly_report::def()))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let running = tokio::spawn(app.clone().run());
    let scheduler = app.scheduler();
    let before = scheduler.states().await.unwrap().states;
    assert_eq!(before[0].next_run, Some(t("2026-01-01T10:00:00Z")));
    assert_eq!(before[0].last_run, None);

    clock.set(t("2026-01-01T10:00:00.002Z"));
    let id = tick_job_id("hourly_report", ms(t("2026-01-01T10:00:00Z")));
    let rec = eventually(Duration::from_secs(10), "tick job finished", || {
        let b = tb.broker.clone();
        let id = id.clone();
        async move {
            b.inspect()
                .unwrap()
                .job(&id, None)
                .await
                .unwrap()
                .filter(|r| r.state.is_final())
        }
    })
    .await;
    assert_eq!(rec.state, JobState::Succeeded);
    assert_eq!(rec.result.unwrap().get(), "\"report\"");
    assert_eq!(rec.priority, bananas::Priority::High);
    assert_eq!(rec.max_retries, 0);

    // The running scheduler announced the schedule in the broker, so tools
    // without the task code see the same state.
    let published = bananas::scheduler::published_states(&tb.broker)
        .await
        .unwrap()
        .states;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].id, "hourly_report");
    assert_eq!(published[0].last_outcome, Some(JobState::Succeeded));

    let after = scheduler.states().await.unwrap().states;
    assert_eq!(after[0].last_run, Some(t("2026-01-01T10:00:00Z")));
    assert_eq!(after[0].last_job_id.as_ref(), Some(&id));
    assert_eq!(after[0].last_outcome, Some(JobState::Succeeded));
    assert_eq!(after[0].next_run, Some(t("2026-01-01T11:00:00Z")));
    assert_eq!(clock.now(), t("2026-01-01T10:00:00.002Z"));
    app.shutdown();
    running.await.unwrap().unwrap();
}

#[test]
fn tick_job_ids_are_stable() {
    let tick = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap();
    assert_eq!(
        tick_job_id("nightly", ms(tick)).as_str(),
        "sched-nightly-1767232800000"
    );
}
