//! A job's way through the broker: idempotent batched enqueue, fetch with
//! leases, priorities, delays, retries, waking an idle fetch.

use std::time::Duration;

use bananas::job::{now_millis, Job, JobId, JobState, Outcome, Priority};
use bananas_tests::{broker_suite, Kind, TestBroker};

use crate::support::*;

/// Enqueue (idempotent), fetch, ack each outcome, read the records.
async fn a_job_goes_round_trip(kind: Kind) {
    let tb = TestBroker::new(kind, "roundtrip").await;
    let b = &tb.broker;
    let j1 = job_with("add", r#"{"a":1,"b":"x"}"#);
    let j2 = job_with("noop", "{}");
    let j3 = job_with("fail", "[1,2]");
    assert_eq!(
        b.enqueue(vec![j1.clone(), j2.clone(), j3.clone()])
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        b.enqueue(vec![j1.clone()]).await.unwrap(),
        0,
        "enqueue is idempotent"
    );
    let inspect = b.inspect().unwrap();
    let rec = inspect
        .job(&j1.id, None)
        .await
        .unwrap()
        .expect("queued job is known");
    assert_eq!(rec.state, JobState::Queued);
    assert_eq!(rec.args.get(), r#"{"a":1,"b":"x"}"#);
    assert_eq!(rec.task, "add");

    let jobs = b.fetch(&req(&["default"], 10)).await.unwrap();
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j.attempt == 1));
    let f1 = jobs.iter().find(|j| j.id == j1.id).unwrap();
    assert_eq!(f1.args.get(), j1.args.get());
    assert_eq!(f1.created_at, j1.created_at);
    assert_eq!(
        inspect.job(&j1.id, None).await.unwrap().unwrap().state,
        JobState::Active
    );
    assert!(b.fetch(&req(&["default"], 10)).await.unwrap().is_empty());

    let by_id = |id: &JobId| jobs.iter().find(|j| &j.id == id).unwrap().clone();
    b.ack(&[
        ok(&by_id(&j1.id), r#"{"sum":3}"#),
        none(&by_id(&j2.id)),
        ack(
            &by_id(&j3.id),
            Outcome::Dead {
                reason: "no such task".into(),
            },
        ),
    ])
    .await
    .unwrap();
    let r1 = inspect.job(&j1.id, None).await.unwrap().unwrap();
    assert_eq!(r1.state, JobState::Succeeded);
    assert_eq!(r1.result.as_ref().unwrap().get(), r#"{"sum":3}"#);
    assert_eq!(r1.attempts, 1);
    assert!(r1.finished_at.is_some() && r1.started_at.is_some());
    assert!(
        inspect.job(&j2.id, None).await.unwrap().is_none(),
        "result=false leaves nothing"
    );
    let r3 = inspect.job(&j3.id, None).await.unwrap().unwrap();
    assert_eq!(r3.state, JobState::Dead);
    assert_eq!(r3.error.as_deref(), Some("no such task"));
    assert_eq!(
        b.enqueue(vec![j1.clone()]).await.unwrap(),
        0,
        "a finished id is held"
    );

    let stats = inspect.stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "default").unwrap();
    assert_eq!(
        (s.high, s.normal, s.low, s.scheduled, s.active, s.dead),
        (0, 0, 0, 0, 0, 1)
    );
    b.ping().await.unwrap();
    tb.cleanup().await;
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

/// Ten slots split 6:3:1 at any point of the cycle; an empty preferred
/// queue falls through; a steady stream of high jobs does not starve low
/// ones.
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
    assert_eq!(
        (
            count(&got, Priority::High),
            count(&got, Priority::Normal),
            count(&got, Priority::Low)
        ),
        (6, 3, 1),
        "ten slots split 6:3:1"
    );

    let mut jobs = Vec::new();
    for i in 0..30 {
        for p in Priority::ALL {
            jobs.push(job_on("prio", p, i));
        }
    }
    b.enqueue(jobs).await.unwrap();
    for cursor in [0, 10] {
        let mut r = req(&["prio"], 10);
        r.cursor = cursor;
        let got = b.fetch(&r).await.unwrap();
        assert_eq!(
            (
                count(&got, Priority::High),
                count(&got, Priority::Normal),
                count(&got, Priority::Low)
            ),
            (6, 3, 1),
            "one cycle of the 6/3/1 plan"
        );
    }
    let s = b.inspect().unwrap().stats().await.unwrap();
    let s = s.iter().find(|s| s.route == "prio").unwrap();
    assert_eq!((s.high, s.normal, s.low, s.active), (18, 24, 28, 20));

    // An empty preferred queue falls through: no capacity wasted.
    b.enqueue(
        (0..10)
            .map(|i| job_on("prio-low", Priority::Low, i))
            .collect(),
    )
    .await
    .unwrap();
    let got = b.fetch(&req(&["prio-low"], 10)).await.unwrap();
    assert_eq!(count(&got, Priority::Low), 10);

    // A steady stream of high jobs does not starve low ones.
    let mut jobs = Vec::new();
    for i in 0..100 {
        jobs.push(job_on("prio-starve", Priority::High, i));
        jobs.push(job_on("prio-starve", Priority::Low, i));
    }
    b.enqueue(jobs).await.unwrap();
    let mut low = 0;
    for batch in 0..5 {
        let mut r = req(&["prio-starve"], 10);
        r.cursor = batch * 10;
        let got = b.fetch(&r).await.unwrap();
        assert_eq!(got.len(), 10);
        low += count(&got, Priority::Low);
    }
    assert_eq!(low, 5, "low gets one slot in ten");
    tb.cleanup().await;
}

/// A job with an eta is scheduled, and an idle fetch wakes up for it.
async fn delayed_jobs_wait_for_their_eta(kind: Kind) {
    let tb = TestBroker::new(kind, "delayed").await;
    let b = &tb.broker;
    let mut j = job_on("delayed", Priority::Normal, 1);
    let eta = now_millis() + 300;
    j.eta = Some(eta);
    b.enqueue(vec![j.clone()]).await.unwrap();
    let rec = b
        .inspect()
        .unwrap()
        .job(&j.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, JobState::Scheduled);
    assert_eq!(rec.eta, Some(eta));
    let s = b.inspect().unwrap().stats().await.unwrap();
    assert_eq!(
        s.iter().find(|s| s.route == "delayed").unwrap().scheduled,
        1
    );
    let got = b.fetch(&req(&["delayed"], 10)).await.unwrap();
    assert!(got.is_empty() || now_millis() >= eta, "not before its eta");
    // Blocking respects the eta: the idle fetch wakes up for it.
    let mut r = req(&["delayed"], 10);
    r.block = Duration::from_secs(20);
    let mut got = got;
    while got.is_empty() {
        got = b.fetch(&r).await.unwrap();
    }
    assert!(now_millis() >= eta);
    assert_eq!(got[0].id, j.id);
    assert_eq!(got[0].eta, Some(eta));
    tb.cleanup().await;
}

/// A retry waits for its eta, runs again as the next attempt at the same
/// priority, and its final result replaces the earlier error.
async fn a_retry_runs_again_after_its_eta(kind: Kind) {
    let tb = TestBroker::new(kind, "retry").await;
    let b = &tb.broker;
    let j = job_on("retry", Priority::High, 1);
    b.enqueue(vec![j.clone()]).await.unwrap();
    let got = fetch_n(b, &["retry"], 1).await;
    let at = now_millis() + 50;
    b.ack(&[ack(
        &got[0],
        Outcome::Retry {
            at,
            error: "boom".into(),
        },
    )])
    .await
    .unwrap();
    let rec = b
        .inspect()
        .unwrap()
        .job(&j.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, JobState::Retrying);
    assert_eq!(rec.error.as_deref(), Some("boom"));
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.eta, Some(at));
    let again = fetch_n(b, &["retry"], 1).await;
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].priority, Priority::High);
    b.ack(&[ok(&again[0], "7")]).await.unwrap();
    let rec = b
        .inspect()
        .unwrap()
        .job(&j.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, JobState::Succeeded);
    assert_eq!(rec.result.unwrap().get(), "7");
    assert_eq!(
        rec.error, None,
        "the final result replaces the earlier failure"
    );
    assert_eq!(rec.attempts, 2);
    tb.cleanup().await;
}

/// A fetch blocked on idle routes returns as soon as a job arrives on any
/// of them.
async fn an_idle_fetch_wakes_for_a_new_job(kind: Kind) {
    let tb = TestBroker::new(kind, "idle").await;
    let b = &tb.broker;
    for routes in [&["idle"][..], &["idle-a", "idle-b"][..]] {
        let fetcher = {
            let b = b.clone();
            let mut r = req(routes, 10);
            r.block = Duration::from_secs(30);
            tokio::spawn(async move { b.fetch(&r).await.unwrap() })
        };
        let j = job_on(routes[routes.len() - 1], Priority::Normal, 1);
        b.enqueue(vec![j.clone()]).await.unwrap();
        let got = fetcher.await.unwrap();
        assert_eq!(got.len(), 1, "the idle fetcher woke up with the job");
        assert_eq!(got[0].id, j.id);
    }
    tb.cleanup().await;
}

/// `Inspect::routes` lists the routes jobs were enqueued on, delayed ones
/// too (Redis also lists routes a worker fetched from; the memory broker
/// need not), and not a route nothing used.
async fn the_routes_seen_are_listed(kind: Kind) {
    let tb = TestBroker::new(kind, "routes").await;
    let b = &tb.broker;
    let mut later = job_on("later", Priority::Normal, 1);
    later.eta = Some(now_millis() + 600_000);
    b.enqueue(vec![job_on("queued", Priority::High, 1), later])
        .await
        .unwrap();
    let routes = b.inspect().unwrap().routes().await.unwrap();
    for r in ["queued", "later"] {
        assert!(routes.contains(&route(r)), "{r} missing from {routes:?}");
    }
    assert!(!routes.contains(&route("never")), "{routes:?}");
    tb.cleanup().await;
}

broker_suite!(
    the_routes_seen_are_listed,
    a_job_goes_round_trip,
    batches_and_idempotent_enqueue,
    priorities_follow_the_weighted_plan,
    delayed_jobs_wait_for_their_eta,
    a_retry_runs_again_after_its_eta,
    an_idle_fetch_wakes_for_a_new_job,
);
