//! Periodic tasks: exactly one job per tick however many schedulers run,
//! the missed-tick policies, time zones and daylight saving, and tick jobs
//! being normal jobs. Every test drives the scheduler with a manual clock.

use std::{collections::HashSet, sync::Arc, time::Duration};

use bananas::{
    broker::AnyBroker,
    job::{JobState, Route},
    scheduler::{tick_job_id, Clock, ManualClock, Scheduler},
    task::Registry,
    App, JobId,
};
use bananas_tests::{eventually, Kind, RedisServer, TestBroker};
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
    let server = RedisServer::start(false);
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
