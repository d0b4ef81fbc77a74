//! The `Broker` contract, run against every broker: idempotent batched
//! enqueue, batch fetch with leases, waiting for results without polling,
//! hand-back, stats, heartbeats and tick claims.

use std::time::Duration;

use bananas::{
    broker::{
        live_schedules, publish_schedules, AnyBroker, CancelOutcome, FetchRequest, WorkerInfo,
    },
    job::{now_millis, Ack, Job, JobRef, JobState, Outcome, Priority, Route},
};
use bananas_tests::{broker_suite, Kind, TestBroker};
use serde_json::value::RawValue;

fn job(task: &str) -> Job {
    Job::new(
        task,
        RawValue::from_string(r#"{"x":1}"#.to_owned()).unwrap(),
    )
}

fn fetch_req(max: usize) -> FetchRequest {
    FetchRequest {
        routes: vec![Route::default()],
        max,
        lease: Duration::from_secs(30),
        cursor: 0,
        block: Duration::from_millis(20),
    }
}

fn done(job: Job, value: &str) -> Ack {
    Ack {
        job: job.into_parts().0,
        outcome: Outcome::Succeeded(Some(RawValue::from_string(value.to_owned()).unwrap())),
        started_at: now_millis(),
        finished_at: now_millis(),
    }
}

async fn batches_and_idempotent_enqueue(kind: Kind) {
    let tb = TestBroker::new(kind, "batches").await;
    let b = &tb.broker;
    let jobs: Vec<Job> = (0..50).map(|_| job("t")).collect();
    let again = jobs[..10].to_vec();
    assert_eq!(b.enqueue(jobs).await.unwrap(), 50);
    assert_eq!(b.enqueue(again).await.unwrap(), 0, "known ids are skipped");

    let got = b.fetch(&fetch_req(20)).await.unwrap();
    assert_eq!(got.len(), 20, "one fetch takes a whole batch");
    assert!(got.iter().all(|j| j.attempt == 1));
    let stats = b.inspect().unwrap().stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "default").unwrap();
    assert_eq!((s.normal, s.active), (30, 20));

    let finished = got[0].clone();
    b.ack(&got.into_iter().map(|j| done(j, "1")).collect::<Vec<_>>())
        .await
        .unwrap();
    let stats = b.inspect().unwrap().stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "default").unwrap();
    assert_eq!((s.normal, s.active), (30, 0));

    // One job per call (a plain submit) makes the same checks.
    let single = job("t");
    assert_eq!(b.enqueue(vec![single.clone()]).await.unwrap(), 1);
    assert_eq!(
        b.enqueue(vec![single]).await.unwrap(),
        0,
        "a queued id is skipped"
    );
    assert_eq!(
        b.enqueue(vec![finished]).await.unwrap(),
        0,
        "an id whose result is kept is skipped"
    );
    let leased = b.fetch(&fetch_req(1)).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(
        b.enqueue(leased.clone()).await.unwrap(),
        0,
        "a running id is skipped"
    );
    let mut later = job("t");
    later.eta = Some(now_millis() + 60_000);
    assert_eq!(b.enqueue(vec![later.clone()]).await.unwrap(), 1);
    assert_eq!(
        b.enqueue(vec![later]).await.unwrap(),
        0,
        "a scheduled id is skipped"
    );
    let stats = b.inspect().unwrap().stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "default").unwrap();
    assert_eq!((s.normal, s.active, s.scheduled), (30, 1, 1));
    tb.cleanup().await;
}

async fn wait_sees_results_before_and_after(kind: Kind) {
    let tb = TestBroker::new(kind, "wait").await;
    let b = tb.broker.clone();
    let (early, late) = (job("t"), job("t"));
    let (early_id, late_id) = (early.id.clone(), late.id.clone());
    b.enqueue(vec![early, late]).await.unwrap();
    let got = b.fetch(&fetch_req(2)).await.unwrap();
    let (a, c) = {
        let mut it = got.into_iter();
        let a = it.next().unwrap();
        let c = it.next().unwrap();
        if a.id == early_id {
            (a, c)
        } else {
            (c, a)
        }
    };
    // The result lands before anyone waits: the wait still sees it.
    b.ack(&[done(a, "\"early\"")]).await.unwrap();
    let rec = b
        .inspect()
        .unwrap()
        .wait(&early_id, None, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.result.unwrap().get(), "\"early\"");

    // The waiter starts first; the result lands while it waits.
    let waiter = {
        let b = b.clone();
        let id = late_id.clone();
        tokio::spawn(async move {
            b.inspect()
                .unwrap()
                .wait(&id, None, Duration::from_secs(10))
                .await
        })
    };
    tokio::task::yield_now().await;
    b.ack(&[done(c, "\"late\"")]).await.unwrap();
    let rec = waiter.await.unwrap().unwrap().expect("woken by the result");
    assert_eq!(
        (rec.state, rec.result.unwrap().get()),
        (JobState::Succeeded, "\"late\"")
    );

    // Waiting for a job that never finishes times out with None.
    let never = job("t");
    let id = never.id.clone();
    b.enqueue(vec![never]).await.unwrap();
    assert!(b
        .inspect()
        .unwrap()
        .wait(&id, None, Duration::from_millis(100))
        .await
        .unwrap()
        .is_none());
    tb.cleanup().await;
}

async fn release_puts_jobs_back_uncounted(kind: Kind) {
    let tb = TestBroker::new(kind, "release").await;
    let b = &tb.broker;
    let j = job("t");
    let id = j.id.clone();
    b.enqueue(vec![j]).await.unwrap();
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    b.release(&got.iter().map(JobRef::from).collect::<Vec<_>>())
        .await
        .unwrap();
    let rec = b.inspect().unwrap().job(&id, None).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Queued, 0));
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    assert_eq!((got.len(), got[0].attempt), (1, 1));
    tb.cleanup().await;
}

fn json(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).unwrap()
}

async fn progress(b: &AnyBroker, id: &bananas::job::JobId) -> Option<String> {
    let rec = b.inspect().unwrap().job(id, None).await.unwrap().unwrap();
    rec.progress.map(|p| p.get().to_owned())
}

/// Progress belongs to the attempt holding the lease: stored and replaced
/// while it runs, refused for any other attempt, and gone once the attempt
/// is settled, handed back or recovered.
async fn progress_lives_with_the_attempt(kind: Kind) {
    let tb = TestBroker::new(kind, "progress").await;
    let b = &tb.broker;
    let route = Route::default();
    let (a, c, d) = (job("t"), job("t"), job("t"));
    let (ida, idc, idd) = (a.id.clone(), c.id.clone(), d.id.clone());
    b.enqueue(vec![a]).await.unwrap();
    assert!(
        !b.progress()
            .unwrap()
            .set_progress(&route, &ida, 1, &json("1"))
            .await
            .unwrap(),
        "a queued job has no running attempt"
    );
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    assert_eq!(progress(b, &ida).await, None);
    assert!(b
        .progress()
        .unwrap()
        .set_progress(&route, &ida, 1, &json("10"))
        .await
        .unwrap());
    assert!(b
        .progress()
        .unwrap()
        .set_progress(&route, &ida, 1, &json(r#"{"done":3,"of":10}"#))
        .await
        .unwrap());
    assert_eq!(
        progress(b, &ida).await.as_deref(),
        Some(r#"{"done":3,"of":10}"#)
    );
    assert!(
        !b.progress()
            .unwrap()
            .set_progress(&route, &ida, 2, &json("99"))
            .await
            .unwrap(),
        "another attempt's report is refused"
    );
    b.ack(&got.into_iter().map(|j| done(j, "7")).collect::<Vec<_>>())
        .await
        .unwrap();
    let rec = b.inspect().unwrap().job(&ida, None).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.progress.is_none()),
        (JobState::Succeeded, true)
    );
    assert!(!b
        .progress()
        .unwrap()
        .set_progress(&route, &ida, 1, &json("11"))
        .await
        .unwrap());

    // Handed back: the next attempt starts without the old report.
    b.enqueue(vec![c]).await.unwrap();
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    assert!(b
        .progress()
        .unwrap()
        .set_progress(&route, &idc, 1, &json("50"))
        .await
        .unwrap());
    b.release(&got.iter().map(JobRef::from).collect::<Vec<_>>())
        .await
        .unwrap();
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    assert_eq!((got[0].id.clone(), got[0].attempt), (idc.clone(), 1));
    assert_eq!(progress(b, &idc).await, None);
    b.ack(&got.into_iter().map(|j| done(j, "1")).collect::<Vec<_>>())
        .await
        .unwrap();

    // Recovered after its lease expired: the report goes with the lease.
    b.enqueue(vec![d]).await.unwrap();
    let short = FetchRequest {
        lease: Duration::from_millis(50),
        ..fetch_req(1)
    };
    assert_eq!(b.fetch(&short).await.unwrap().len(), 1);
    assert!(b
        .progress()
        .unwrap()
        .set_progress(&route, &idd, 1, &json("60"))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        b.recover_expired(std::slice::from_ref(&route))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        b.inspect()
            .unwrap()
            .job(&idd, None)
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Queued
    );
    assert_eq!(progress(b, &idd).await, None);
    assert!(
        !b.progress()
            .unwrap()
            .set_progress(&route, &idd, 1, &json("61"))
            .await
            .unwrap(),
        "the recovered attempt lost its lease"
    );
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    assert_eq!(got[0].attempt, 2);
    assert_eq!(progress(b, &idd).await, None);
    if let Some(space) = &tb.redis {
        let keys = space.keys();
        assert!(
            !keys.iter().any(|k| k.ends_with(":progress")),
            "no report outlives its attempt: {keys:?}"
        );
    }
    tb.cleanup().await;
}

/// Returns once a `wait` on `id` is registered, so what follows reaches it
/// as a wake-up, not as a record read at the start of the wait. The memory
/// broker registers on the wait's first poll, which `join!` makes before
/// this runs; Redis keeps a count in the route's waiters hash.
async fn until_waiting(tb: &TestBroker, id: &bananas::job::JobId) {
    let Some(space) = &tb.redis else {
        return;
    };
    let prefix = space.prefix();
    let client = ::redis::Client::open(space.url()).unwrap();
    let con = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{{{prefix}:default}}:waiters");
    bananas_test_support::eventually(Duration::from_secs(10), "the waiter registered", || {
        let (mut con, key) = (con.clone(), key.clone());
        async move {
            let n: i64 = ::redis::cmd("HEXISTS")
                .arg(&key)
                .arg(id.as_str())
                .query_async(&mut con)
                .await
                .unwrap();
            (n == 1).then_some(())
        }
    })
    .await;
}

/// Cancelling takes queued, scheduled and retrying jobs out before they
/// run and buries them as `cancelled` (waiters see it; a requeue undoes
/// it); running and finished jobs are left alone.
async fn cancel_takes_jobs_that_have_not_started(kind: Kind) {
    let tb = TestBroker::new(kind, "cancel").await;
    let b = &tb.broker;
    let (queued, mut high, mut delayed, retried) = (job("t"), job("t"), job("t"), job("t"));
    high.priority = Priority::High;
    delayed.eta = Some(now_millis() + 3_600_000);
    let ids = [&queued, &high, &delayed, &retried].map(|j| j.id.clone());
    b.enqueue(vec![retried.clone()]).await.unwrap();
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    b.ack(&[Ack {
        job: got[0].clone().into_parts().0,
        outcome: Outcome::Retry {
            at: now_millis() + 3_600_000,
            error: "try later".into(),
        },
        started_at: now_millis(),
        finished_at: now_millis(),
    }])
    .await
    .unwrap();
    b.enqueue(vec![queued, high, delayed]).await.unwrap();

    // A waiter on the queued job learns of the cancellation.
    let (waited, outcome) = tokio::join!(
        b.inspect()
            .unwrap()
            .wait(&ids[0], None, Duration::from_secs(10)),
        async {
            until_waiting(&tb, &ids[0]).await;
            b.cancel().unwrap().cancel(&ids[0], None).await.unwrap()
        }
    );
    assert_eq!(outcome, CancelOutcome::Cancelled);
    let rec = waited.unwrap().expect("the waiter is told");
    assert_eq!(
        (rec.state, rec.error.as_deref()),
        (JobState::Dead, Some("cancelled"))
    );
    assert_eq!(
        b.cancel().unwrap().cancel(&ids[2], None).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        b.inspect()
            .unwrap()
            .job(&ids[3], None)
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Retrying
    );
    assert_eq!(
        b.cancel().unwrap().cancel(&ids[3], None).await.unwrap(),
        CancelOutcome::Cancelled
    );
    let rec = b
        .inspect()
        .unwrap()
        .job(&ids[3], None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Dead, 1));
    let stats = b.inspect().unwrap().stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "default").unwrap();
    assert_eq!((s.high, s.normal, s.scheduled, s.dead), (1, 0, 0, 3));

    // Only the job left is fetched; running, then finished, it stays.
    let got = b.fetch(&fetch_req(10)).await.unwrap();
    assert_eq!(
        got.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        [ids[1].clone()]
    );
    assert_eq!(
        b.cancel().unwrap().cancel(&ids[1], None).await.unwrap(),
        CancelOutcome::Running
    );
    b.ack(&got.into_iter().map(|j| done(j, "1")).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(
        b.cancel().unwrap().cancel(&ids[1], None).await.unwrap(),
        CancelOutcome::Finished
    );
    assert_eq!(
        b.cancel()
            .unwrap()
            .cancel(&bananas::job::JobId::new(), None)
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );

    // The dead letter holds the cancelled jobs; a requeue undoes one.
    let dead = b.dead_letter().unwrap().dead_jobs(10).await.unwrap();
    assert_eq!(dead.len(), 3);
    assert!(dead.iter().all(|d| d.error.as_deref() == Some("cancelled")));
    assert!(b
        .dead_letter()
        .unwrap()
        .requeue_dead(&ids[2])
        .await
        .unwrap());
    let got = b.fetch(&fetch_req(10)).await.unwrap();
    assert_eq!(
        got.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        [ids[2].clone()]
    );
    tb.cleanup().await;
}

async fn priorities_follow_the_weighted_plan(kind: Kind) {
    let tb = TestBroker::new(kind, "plan").await;
    let b = &tb.broker;
    let mut jobs = Vec::new();
    for p in [Priority::Low, Priority::Normal, Priority::High] {
        for _ in 0..20 {
            let mut j = job(p.as_str());
            j.priority = p;
            jobs.push(j);
        }
    }
    b.enqueue(jobs).await.unwrap();
    let got = b.fetch(&fetch_req(10)).await.unwrap();
    let count = |p: Priority| got.iter().filter(|j| j.priority == p).count();
    assert_eq!(
        (
            count(Priority::High),
            count(Priority::Normal),
            count(Priority::Low)
        ),
        (6, 3, 1),
        "ten slots split 6:3:1"
    );
    tb.cleanup().await;
}

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
    assert!(!b
        .schedules()
        .unwrap()
        .claim_tick("s", 5_000, job("tick"))
        .await
        .unwrap());
    tb.cleanup().await;
}

async fn heartbeats_list_live_workers(kind: Kind) {
    let tb = TestBroker::new(kind, "workers").await;
    let b = &tb.broker;
    let info = WorkerInfo {
        id: format!("w-{}", bananas_test_support::unique_prefix("w")),
        host: "h".into(),
        pid: 1,
        routes: vec!["default".into()],
        concurrency: 4,
        in_flight: 2,
        started_at: now_millis(),
        seen_at: now_millis(),
    };
    b.workers()
        .unwrap()
        .heartbeat(&info, Duration::from_secs(30))
        .await
        .unwrap();
    let workers = b.workers().unwrap().workers().await.unwrap();
    assert!(workers.iter().any(|w| w == &info), "{workers:?}");
    b.ping().await.unwrap();
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

broker_suite!(
    batches_and_idempotent_enqueue,
    wait_sees_results_before_and_after,
    release_puts_jobs_back_uncounted,
    progress_lives_with_the_attempt,
    cancel_takes_jobs_that_have_not_started,
    priorities_follow_the_weighted_plan,
    tick_claims_are_exclusive,
    heartbeats_list_live_workers,
    schedules_are_announced,
);

/// Results and dead jobs are kept for their TTLs, set through the URL.
#[tokio::test]
async fn memory_results_expire_with_their_ttls() {
    let b = bananas::connect::connect_broker("memory://?result_ttl=0.2&failure_ttl=0.4")
        .await
        .unwrap();
    let (ok, bad) = (job("t"), job("t"));
    let (ok_id, bad_id) = (ok.id.clone(), bad.id.clone());
    b.enqueue(vec![ok, bad]).await.unwrap();
    let mut got = b.fetch(&fetch_req(2)).await.unwrap();
    let second = got.pop().unwrap();
    let first = got.pop().unwrap();
    let (ok, bad) = if first.id == ok_id {
        (first, second)
    } else {
        (second, first)
    };
    let dead = Ack {
        job: bad.into_parts().0,
        outcome: Outcome::Dead {
            reason: "no".into(),
        },
        started_at: now_millis(),
        finished_at: now_millis(),
    };
    b.ack(&[done(ok, "1"), dead]).await.unwrap();
    assert!(b
        .inspect()
        .unwrap()
        .job(&ok_id, None)
        .await
        .unwrap()
        .is_some());
    bananas_test_support::eventually(Duration::from_secs(5), "result expired", || {
        let b = b.clone();
        let id = ok_id.clone();
        async move {
            b.inspect()
                .unwrap()
                .job(&id, None)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        b.dead_letter().unwrap().dead_jobs(10).await.unwrap().len(),
        1,
        "dead jobs are kept longer"
    );
    bananas_test_support::eventually(Duration::from_secs(5), "dead job expired", || {
        let b = b.clone();
        let id = bad_id.clone();
        async move {
            b.inspect()
                .unwrap()
                .job(&id, None)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(b
        .dead_letter()
        .unwrap()
        .dead_jobs(10)
        .await
        .unwrap()
        .is_empty());
}
