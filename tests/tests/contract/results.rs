//! Results: waiting for them, the dead letter, and how long both are kept.

use std::time::Duration;

use bananas::job::{JobId, JobState, Outcome, Priority};
use bananas_test_support::eventually;
use bananas_tests::{broker_suite, Kind, TestBroker};

use crate::support::*;

/// A wait sees a result stored before it started, is woken by one stored
/// while it waits (with a value, without one, or dead), and gives `None`
/// after its timeout or for an unknown id.
async fn wait_sees_results_before_and_after(kind: Kind) {
    let tb = TestBroker::new(kind, "wait").await;
    let b = &tb.broker;
    let inspect = b.inspect().unwrap();

    // The result lands before anyone waits: the wait still sees it.
    let j = job_on("wait", Priority::Normal, 1);
    b.enqueue(vec![j.clone()]).await.unwrap();
    let got = fetch_n(b, &["wait"], 1).await;
    b.ack(&[ok(&got[0], "\"early\"")]).await.unwrap();
    let rec = inspect
        .wait(&j.id, None, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.result.unwrap().get(), "\"early\"");

    // The result lands while the waiter waits: stored, no result, dead.
    for outcome in [
        Outcome::Succeeded(Some(json("\"late\""))),
        Outcome::Succeeded(None),
        Outcome::Dead {
            reason: "gone".into(),
        },
    ] {
        let j = job_on("wait", Priority::Normal, 2);
        b.enqueue(vec![j.clone()]).await.unwrap();
        let (waited, ()) =
            tokio::join!(inspect.wait(&j.id, None, Duration::from_secs(20)), async {
                until_waiting(&tb, "wait", &j.id).await;
                let got = fetch_n(b, &["wait"], 1).await;
                b.ack(&[ack(&got[0], outcome.clone())]).await.unwrap();
            });
        let rec = waited.unwrap().expect("the waiter woke with the record");
        match outcome {
            Outcome::Succeeded(Some(_)) => {
                assert_eq!(
                    (rec.state, rec.result.unwrap().get()),
                    (JobState::Succeeded, "\"late\"")
                );
            }
            Outcome::Succeeded(None) => {
                assert_eq!(rec.state, JobState::Succeeded);
                assert!(rec.result.is_none());
            }
            _ => {
                assert_eq!(rec.state, JobState::Dead);
                assert_eq!(rec.error.as_deref(), Some("gone"));
            }
        }
    }

    // Nothing lands: None after the timeout; unknown ids: None.
    let j = job_on("wait", Priority::Normal, 3);
    b.enqueue(vec![j.clone()]).await.unwrap();
    assert!(inspect
        .wait(&j.id, None, Duration::from_millis(100))
        .await
        .unwrap()
        .is_none());
    assert!(inspect
        .wait(&JobId::new(), None, Duration::from_millis(100))
        .await
        .unwrap()
        .is_none());
    tb.cleanup().await;
}

/// Dead jobs are listed newest first up to a limit, requeued once with
/// their attempts reset, and purged.
async fn dead_letter_lists_requeues_and_purges(kind: Kind) {
    let tb = TestBroker::new(kind, "dead").await;
    let b = &tb.broker;
    let (inspect, dl) = (b.inspect().unwrap(), b.dead_letter().unwrap());
    let j1 = job_on("dl", Priority::Normal, 1);
    let j2 = job_on("dl", Priority::Low, 2);
    b.enqueue(vec![j1.clone(), j2.clone()]).await.unwrap();
    let got = fetch_n(b, &["dl"], 2).await;
    for j in &got {
        b.ack(&[ack(
            j,
            Outcome::Dead {
                reason: format!("bad {}", j.args.get()),
            },
        )])
        .await
        .unwrap();
    }
    let dead = dl.dead_jobs(10).await.unwrap();
    let mine: Vec<_> = dead.iter().filter(|r| r.route.as_str() == "dl").collect();
    assert_eq!(mine.len(), 2);
    assert!(mine
        .iter()
        .all(|r| r.state == JobState::Dead && r.error.as_deref().unwrap().starts_with("bad")));
    assert_eq!(dl.dead_jobs(1).await.unwrap().len(), 1);

    assert!(dl.requeue_dead(&j1.id).await.unwrap());
    assert!(!dl.requeue_dead(&j1.id).await.unwrap());
    assert!(!dl.requeue_dead(&JobId::from("nope")).await.unwrap());
    assert_eq!(
        inspect.job(&j1.id, None).await.unwrap().unwrap().state,
        JobState::Queued
    );
    let again = fetch_n(b, &["dl"], 1).await;
    assert_eq!(again[0].id, j1.id);
    assert_eq!(again[0].attempt, 1, "requeue resets attempts");
    b.ack(&[ok(&again[0], "null")]).await.unwrap();

    assert!(dl.purge_dead().await.unwrap() >= 1);
    assert!(dl.dead_jobs(10).await.unwrap().is_empty());
    assert!(inspect.job(&j2.id, None).await.unwrap().is_none());
    assert_eq!(
        inspect.job(&j1.id, None).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    tb.cleanup().await;
}

/// Results and dead jobs are kept for their TTLs (the memory broker's set
/// through its URL), dead jobs longer here.
async fn results_expire_with_their_ttls(kind: Kind) {
    let tb = TestBroker::with_ttls(
        kind,
        "ttl",
        Duration::from_millis(200),
        Duration::from_secs(1),
    )
    .await;
    let b = &tb.broker;
    let (inspect, dl) = (b.inspect().unwrap(), b.dead_letter().unwrap());
    let (good, bad) = (
        job_on("ttl", Priority::Normal, 1),
        job_on("ttl", Priority::Normal, 2),
    );
    b.enqueue(vec![good.clone(), bad.clone()]).await.unwrap();
    let got = fetch_n(b, &["ttl"], 2).await;
    let of = |id: &JobId| got.iter().find(|j| &j.id == id).unwrap();
    b.ack(&[
        ok(of(&good.id), "1"),
        ack(of(&bad.id), Outcome::Dead { reason: "x".into() }),
    ])
    .await
    .unwrap();
    assert!(inspect.job(&good.id, None).await.unwrap().is_some());
    assert!(inspect.job(&bad.id, None).await.unwrap().is_some());
    let expired = |id: JobId| {
        let b = b.clone();
        move || {
            let (b, id) = (b.clone(), id.clone());
            async move {
                let rec = b.inspect().unwrap().job(&id, None).await.unwrap();
                rec.is_none().then_some(())
            }
        }
    };
    eventually(
        Duration::from_secs(20),
        "the result expired",
        expired(good.id.clone()),
    )
    .await;
    assert_eq!(
        dl.dead_jobs(10).await.unwrap().len(),
        1,
        "dead jobs are kept longer"
    );
    eventually(
        Duration::from_secs(20),
        "the dead job expired",
        expired(bad.id.clone()),
    )
    .await;
    assert!(dl.dead_jobs(10).await.unwrap().is_empty());
    tb.cleanup().await;
}

/// A waiter of a job's second run (the same custom id, enqueued again once
/// the first run finished without keeping a result) is not handed the
/// first run's record, which a waiter that gave up left behind.
async fn a_waiter_sees_its_own_run(kind: Kind) {
    let tb = TestBroker::new(kind, "rerun").await;
    let b = &tb.broker;
    let inspect = b.inspect().unwrap();
    let mut j = job_on("rerun", Priority::Normal, 1);
    j.id = JobId::from("again");
    b.enqueue(vec![j.clone()]).await.unwrap();
    // A waiter gives up before the first run ends.
    assert!(inspect
        .wait(&j.id, None, Duration::from_millis(50))
        .await
        .unwrap()
        .is_none());
    let got = fetch_n(b, &["rerun"], 1).await;
    b.ack(&[none(&got[0])]).await.unwrap();
    // The first run kept no result, so the id can run again at once.
    let mut second = job_on("rerun", Priority::Normal, 2);
    second.id = j.id.clone();
    b.enqueue(vec![second]).await.unwrap();
    let waited = inspect
        .wait(&j.id, None, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(
        waited.is_none(),
        "the second run is still queued, yet the waiter got {waited:?}"
    );
    assert_eq!(
        inspect.job(&j.id, None).await.unwrap().unwrap().state,
        JobState::Queued
    );
    tb.cleanup().await;
}

/// A dead-letter entry left behind when its record expired does not make a
/// later run of the same id, which succeeded, look dead: it is not listed,
/// not requeued (its result kept) and not purged.
async fn a_reused_id_that_succeeded_is_not_dead(kind: Kind) {
    let tb = TestBroker::with_ttls(
        kind,
        "reuse",
        Duration::from_secs(60),
        Duration::from_millis(200),
    )
    .await;
    let b = &tb.broker;
    let (inspect, dl) = (b.inspect().unwrap(), b.dead_letter().unwrap());
    let mut j = job_on("reuse", Priority::Normal, 1);
    j.id = JobId::from("reused");
    b.enqueue(vec![j.clone()]).await.unwrap();
    let got = fetch_n(b, &["reuse"], 1).await;
    b.ack(&[ack(&got[0], Outcome::Dead { reason: "x".into() })])
        .await
        .unwrap();
    let id = j.id.clone();
    eventually(Duration::from_secs(20), "the dead record expired", || {
        let (b, id) = (b.clone(), id.clone());
        async move {
            let rec = b.inspect().unwrap().job(&id, None).await.unwrap();
            rec.is_none().then_some(())
        }
    })
    .await;
    b.enqueue(vec![j.clone()]).await.unwrap();
    let got = fetch_n(b, &["reuse"], 1).await;
    b.ack(&[ok(&got[0], "\"kept\"")]).await.unwrap();

    let listed = dl.dead_jobs(10).await.unwrap();
    assert!(listed.is_empty(), "a success listed as dead: {listed:?}");
    assert!(!dl.requeue_dead(&j.id).await.unwrap());
    dl.purge_dead().await.unwrap();
    let rec = inspect.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.result.unwrap().get()),
        (JobState::Succeeded, "\"kept\"")
    );
    tb.cleanup().await;
}

broker_suite!(
    wait_sees_results_before_and_after,
    dead_letter_lists_requeues_and_purges,
    results_expire_with_their_ttls,
    a_waiter_sees_its_own_run,
    a_reused_id_that_succeeded_is_not_dead,
);
