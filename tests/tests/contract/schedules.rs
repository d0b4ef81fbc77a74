//! Schedule ticks, claimed once however many schedulers race, and the
//! schedulers' announcements.

use bananas::{
    broker::{live_schedules, publish_schedules, AnyBroker, TickClaim, TICK_TOLERANCE},
    job::{now_millis, JobId, Priority, Route},
};
use bananas_tests::{broker_suite, Kind, TestBroker};

use crate::support::*;

async fn tick_claims_are_exclusive(kind: Kind) {
    let tb = TestBroker::new(kind, "ticks").await;
    let b: AnyBroker = tb.broker.clone();
    let mut racers = Vec::new();
    for _ in 0..8 {
        let b = b.clone();
        racers.push(tokio::spawn(async move {
            let mut won = 0;
            for tick in 1..=20u64 {
                let mut j = job("tick");
                j.id = format!("sched-s-{tick}").into();
                if b.schedules()
                    .unwrap()
                    .claim_tick("s", tick * 1000, j)
                    .await
                    .unwrap()
                    == TickClaim::Enqueued
                {
                    won += 1;
                }
            }
            won
        }));
    }
    let mut total = 0;
    for r in racers {
        total += r.await.unwrap();
    }
    assert_eq!(total, 20, "each tick claimed exactly once");
    let mark = b
        .schedules()
        .unwrap()
        .last_tick("s", &Route::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((mark.tick, mark.job_id.as_str()), (20_000, "sched-s-20"));
    // An older tick can never be claimed again.
    assert_eq!(
        b.schedules()
            .unwrap()
            .claim_tick("s", 5_000, job("tick"))
            .await
            .unwrap(),
        TickClaim::Taken
    );
    tb.cleanup().await;
}

/// The ids `schedules()` lists.
async fn listed(b: &AnyBroker) -> Vec<String> {
    let all = live_schedules(b.schedules().unwrap()).await.unwrap();
    all.into_iter().map(|s| s.id).collect()
}

async fn schedules_are_announced(kind: Kind) {
    let tb = TestBroker::new(kind, "schedules").await;
    let b = &tb.broker;
    assert!(live_schedules(b.schedules().unwrap())
        .await
        .unwrap()
        .is_empty());
    let now = now_millis();
    let info = |id: &str, next: u64, seen: u64| bananas::broker::ScheduleInfo {
        id: id.to_owned(),
        route: "default".to_owned(),
        cron: "0 * * * * *".to_owned(),
        tz: "UTC".to_owned(),
        next_run: Some(next),
        seen_at: seen,
    };
    publish_schedules(
        b.schedules().unwrap(),
        &[info("b", now + 10, now), info("a", now + 10, now)],
    )
    .await
    .unwrap();
    publish_schedules(b.schedules().unwrap(), &[info("b", now + 20, now)])
        .await
        .unwrap();
    let got = live_schedules(b.schedules().unwrap()).await.unwrap();
    assert_eq!(
        got,
        vec![info("a", now + 10, now), info("b", now + 20, now)],
        "sorted, latest announcement wins"
    );

    // A schedule whose next run passed more than a day (by the freshest
    // announcement's clock) ago without a new announcement was removed from
    // every scheduler: it is not listed, and publishing deletes it.
    let day = 24 * 3600 * 1000;
    let gone = info("gone", now - day - 60_000, now - day - 120_000);
    publish_schedules(b.schedules().unwrap(), std::slice::from_ref(&gone))
        .await
        .unwrap();
    assert_eq!(
        listed(b).await,
        ["a", "b"],
        "an abandoned schedule is not listed"
    );
    // Just inside the day it is still listed (its scheduler may be restarting).
    let late = info("late", now - day + 60_000, now - day);
    publish_schedules(b.schedules().unwrap(), std::slice::from_ref(&late))
        .await
        .unwrap();
    assert_eq!(listed(b).await, ["a", "b", "late"]);
    tb.cleanup().await;
}

/// Of many schedulers racing for one tick, one wins; the tick's mark names
/// its job; an older tick is refused and a newer one claimed; each claimed
/// tick enqueued its job once.
async fn claimed_ticks_enqueue_their_jobs(kind: Kind) {
    let tb = TestBroker::new(kind, "claims").await;
    let b = &tb.broker;
    let s = b.schedules().unwrap();
    let tick = 1_700_000_000_000u64;
    let mk = |t: u64| {
        let mut j = job_on("ticks", Priority::Normal, 0);
        j.id = JobId::from(format!("every-minute@{t}"));
        j
    };
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let b = b.clone();
            let j = mk(tick);
            tokio::spawn(async move {
                b.schedules()
                    .unwrap()
                    .claim_tick("every-minute", tick, j)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for h in handles {
        match h.await.unwrap() {
            TickClaim::Enqueued => wins += 1,
            TickClaim::Taken => {}
            other => panic!("a tick of 2023 refused: {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one claimer wins a tick");
    let mark = s
        .last_tick("every-minute", &route("ticks"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mark.tick, tick);
    assert_eq!(mark.job_id, mk(tick).id);
    assert_eq!(
        s.claim_tick("every-minute", tick - 60_000, mk(tick - 60_000))
            .await
            .unwrap(),
        TickClaim::Taken
    );
    assert_eq!(
        s.claim_tick("every-minute", tick + 60_000, mk(tick + 60_000))
            .await
            .unwrap(),
        TickClaim::Enqueued
    );
    assert!(s
        .last_tick("other", &route("ticks"))
        .await
        .unwrap()
        .is_none());
    let got = fetch_n(b, &["ticks"], 2).await;
    assert_eq!(got.len(), 2);
    assert!(b.fetch(&req(&["ticks"], 10)).await.unwrap().is_empty());
    tb.cleanup().await;
}

/// A schedule has one mark whatever route its jobs run on: of two claims
/// of a tick with jobs on different routes (a rolling deploy that moved
/// the task), one enqueues it and the other finds it taken, and each tick
/// has one job, on one of the routes.
async fn ticks_are_claimed_once_across_routes(kind: Kind) {
    let tb = TestBroker::new(kind, "moved").await;
    let b = &tb.broker;
    let s = b.schedules().unwrap();
    let tick = 1_700_000_000_000u64;
    let mk = |r: &str, t: u64| {
        let mut j = job_on(r, Priority::Normal, 0);
        j.id = JobId::from(format!("sched-moved-{t}"));
        j
    };
    for i in 0..3u64 {
        let t = tick + i * 1000;
        let (a, b) = tokio::join!(
            s.claim_tick("moved", t, mk("old_route", t)),
            s.claim_tick("moved", t, mk("new_route", t))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(
            matches!(
                (a, b),
                (TickClaim::Enqueued, TickClaim::Taken) | (TickClaim::Taken, TickClaim::Enqueued)
            ),
            "tick {t}: {a:?}, {b:?}"
        );
    }
    // Either route's view of the schedule shows the last tick.
    for r in ["old_route", "new_route"] {
        let mark = s.last_tick("moved", &route(r)).await.unwrap().unwrap();
        assert_eq!(mark.tick, tick + 2000, "{r}");
    }
    let routes = ["old_route", "new_route"];
    let got = fetch_n(b, &routes, 3).await;
    let mut ids: Vec<&str> = got.iter().map(|j| j.id.as_str()).collect();
    ids.sort();
    let want: Vec<String> = (0..3)
        .map(|i| format!("sched-moved-{}", tick + i * 1000))
        .collect();
    assert_eq!(ids, want, "one job per tick");
    assert!(b.fetch(&req(&routes, 10)).await.unwrap().is_empty());
    tb.cleanup().await;
}

/// A tick later than the broker's clock (plus `TICK_TOLERANCE`) is refused
/// by a broker with a clock of its own, which says what its clock reads,
/// and nothing is claimed: the schedule's due ticks are still claimed.
/// The memory broker takes its scheduler's time as given.
async fn ticks_ahead_of_the_broker_are_refused(kind: Kind) {
    let tb = TestBroker::new(kind, "early").await;
    let b = &tb.broker;
    let s = b.schedules().unwrap();
    let now = now_millis();
    let mk = |t: u64| {
        let mut j = job_on("early", Priority::Normal, 0);
        j.id = JobId::from(format!("sched-early-{t}"));
        j
    };
    let hour = 3_600_000;
    let got = s
        .claim_tick("early", now + hour, mk(now + hour))
        .await
        .unwrap();
    if kind == Kind::Memory {
        assert_eq!(got, TickClaim::Enqueued);
        return;
    }
    let TickClaim::Early { now: broker_now } = got else {
        panic!("a tick an hour ahead was not refused: {got:?}");
    };
    // The shared Redis runs on this machine: its clock is this one's.
    assert!(broker_now.abs_diff(now) < 60_000, "{broker_now} vs {now}");
    assert!(s
        .last_tick("early", &route("early"))
        .await
        .unwrap()
        .is_none());
    // Within the tolerance of the broker's clock, a tick is claimed.
    let soon = now + TICK_TOLERANCE.as_millis() as u64 / 2;
    assert_eq!(
        s.claim_tick("early", soon, mk(soon)).await.unwrap(),
        TickClaim::Enqueued
    );
    let got = fetch_n(b, &["early"], 1).await;
    assert_eq!(got[0].id, mk(soon).id);
    assert!(b.fetch(&req(&["early"], 10)).await.unwrap().is_empty());
    tb.cleanup().await;
}

broker_suite!(
    tick_claims_are_exclusive,
    claimed_ticks_enqueue_their_jobs,
    ticks_are_claimed_once_across_routes,
    ticks_ahead_of_the_broker_are_refused,
    schedules_are_announced,
);
