//! Leases: handing jobs back, extending, recovering expired ones, and the
//! acks that arrive too late or twice.

use std::{collections::HashSet, time::Duration};

use bananas::job::{now_millis, Job, JobId, JobRef, JobState, Outcome, Priority};
use bananas_tests::{broker_suite, Kind, TestBroker};

use crate::support::*;

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

/// An expired lease puts the job back, also when no retry is left (a lost
/// worker does not spend one: it counts as lost); the lost worker's late
/// ack is ignored. Extending keeps a lease alive; releasing does not count
/// the attempt.
async fn expired_leases_are_recovered(kind: Kind) {
    let tb = TestBroker::new(kind, "leases").await;
    let b = &tb.broker;
    let inspect = b.inspect().unwrap();
    let mut j = job_on("lease", Priority::Normal, 1);
    j.max_retries = 3;
    let mut last = job_on("lease", Priority::Normal, 2);
    last.max_retries = 0;
    b.enqueue(vec![j.clone(), last.clone()]).await.unwrap();
    let mut r = req(&["lease"], 10);
    r.lease = Duration::from_millis(50);
    let got = b.fetch(&r).await.unwrap();
    assert_eq!(got.len(), 2);
    let rec = inspect.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Active, 1));
    wait_past(now_millis() + 60).await;
    assert_eq!(b.recover_expired(&[route("lease")]).await.unwrap(), 2);
    for id in [&j.id, &last.id] {
        let rec = inspect.job(id, None).await.unwrap().unwrap();
        assert_eq!((rec.state, rec.attempts), (JobState::Queued, 1));
    }

    let both = fetch_n(b, &["lease"], 2).await;
    assert!(
        both.iter().all(|x| (x.attempt, x.lost) == (2, 1)),
        "{both:?}"
    );
    let again: Vec<Job> = both.iter().filter(|x| x.id == j.id).cloned().collect();
    let other = both.iter().find(|x| x.id == last.id).unwrap();
    b.ack(&[ok(other, "1")]).await.unwrap();
    // The lost worker's late ack is stale and ignored.
    let stale = got.iter().find(|x| x.id == j.id).unwrap();
    b.ack(&[ok(stale, "\"stale\"")]).await.unwrap();
    assert_eq!(
        inspect.job(&j.id, None).await.unwrap().unwrap().state,
        JobState::Active
    );
    b.ack(&[ok(&again[0], "\"fresh\"")]).await.unwrap();
    let rec = inspect.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(rec.result.unwrap().get(), "\"fresh\"");

    // Extending keeps a lease alive; releasing does not count the attempt.
    let k = job_on("lease-ext", Priority::Normal, 1);
    b.enqueue(vec![k.clone()]).await.unwrap();
    let mut r = req(&["lease-ext"], 10);
    r.lease = Duration::from_millis(50);
    let got = b.fetch(&r).await.unwrap();
    b.extend_leases(
        &got.iter().map(Into::into).collect::<Vec<_>>(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    wait_past(now_millis() + 60).await;
    assert_eq!(b.recover_expired(&[route("lease-ext")]).await.unwrap(), 0);
    b.release(&got.iter().map(Into::into).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(
        inspect.job(&k.id, None).await.unwrap().unwrap().state,
        JobState::Queued
    );
    let again = fetch_n(b, &["lease-ext"], 1).await;
    assert_eq!(again[0].attempt, 1);
    b.ack(&[ok(&again[0], "\"done\"")]).await.unwrap();
    let rec = inspect.job(&k.id, None).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Succeeded, 1));
    tb.cleanup().await;
}

/// Many workers recovering at once recover each expired lease once.
async fn each_expired_lease_is_recovered_once(kind: Kind) {
    let tb = TestBroker::new(kind, "recoverers").await;
    let b = &tb.broker;
    b.enqueue(
        (0..50)
            .map(|i| job_on("lease-many", Priority::Normal, i))
            .collect(),
    )
    .await
    .unwrap();
    let mut r = req(&["lease-many"], 50);
    r.lease = Duration::from_millis(20);
    assert_eq!(b.fetch(&r).await.unwrap().len(), 50);
    wait_past(now_millis() + 30).await;
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.recover_expired(&[route("lease-many")]).await.unwrap() })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    assert_eq!(total, 50, "each expired lease recovered exactly once");
    let s = b.inspect().unwrap().stats().await.unwrap();
    let s = s.iter().find(|s| s.route == "lease-many").unwrap();
    assert_eq!((s.normal, s.active), (50, 0));
    let again = fetch_n(b, &["lease-many"], 50).await;
    let ids: HashSet<_> = again.iter().map(|j| j.id.clone()).collect();
    assert_eq!(ids.len(), 50);
    assert!(again.iter().all(|j| j.attempt == 2));
    tb.cleanup().await;
}

/// Stale and repeated acks in a batch are ignored, next to the acks that
/// count, for first and later attempts, with and without results. (On
/// Redis, successes without a result take `ack.lua`'s compact path.)
async fn stale_and_repeated_acks_are_ignored(kind: Kind) {
    let tb = TestBroker::new(kind, "compact").await;
    let b = &tb.broker;
    let inspect = b.inspect().unwrap();
    // First attempts, with a stale ack in the batch.
    let m1 = job_on("compact", Priority::Normal, 1);
    let m2 = job_on("compact", Priority::Normal, 2);
    b.enqueue(vec![m1.clone(), m2.clone()]).await.unwrap();
    let got = fetch_n(b, &["compact"], 2).await;
    let g1 = got.iter().find(|x| x.id == m1.id).unwrap();
    let g2 = got.iter().find(|x| x.id == m2.id).unwrap();
    b.ack(&[none(g1)]).await.unwrap();
    assert!(inspect.job(&m1.id, None).await.unwrap().is_none());
    b.ack(&[none(g1), none(g2), none(g2)]).await.unwrap();
    assert!(inspect.job(&m2.id, None).await.unwrap().is_none());

    // Second attempts, mixed with stale first-attempt acks.
    let mut jobs = Vec::new();
    for n in 0..3 {
        let mut j = job_on("compact2", Priority::Normal, n);
        j.max_retries = 3;
        jobs.push(j);
    }
    b.enqueue(jobs.clone()).await.unwrap();
    let mut r = req(&["compact2"], 10);
    r.lease = Duration::from_millis(50);
    let first = b.fetch(&r).await.unwrap();
    assert_eq!(first.len(), 3);
    wait_past(now_millis() + 60).await;
    assert_eq!(b.recover_expired(&[route("compact2")]).await.unwrap(), 3);
    let second = fetch_n(b, &["compact2"], 3).await;
    assert!(second.iter().all(|j| j.attempt == 2));
    let of = |v: &[Job], id: &JobId| v.iter().find(|x| &x.id == id).unwrap().clone();
    let (a, bb, c) = (&jobs[0].id, &jobs[1].id, &jobs[2].id);
    b.ack(&[
        none(&of(&first, a)),
        none(&of(&second, a)),
        none(&of(&first, bb)),
        none(&of(&first, c)),
    ])
    .await
    .unwrap();
    assert!(inspect.job(a, None).await.unwrap().is_none());
    for id in [bb, c] {
        let rec = inspect.job(id, None).await.unwrap().unwrap();
        assert_eq!((rec.state, rec.attempts), (JobState::Active, 2));
    }
    // Acks with and without a result in one batch.
    b.ack(&[none(&of(&second, bb)), ok(&of(&second, c), "3")])
        .await
        .unwrap();
    assert!(inspect.job(bb, None).await.unwrap().is_none());
    let rec = inspect.job(c, None).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Succeeded, 2));
    tb.cleanup().await;
}

/// A late ack never settles a new job enqueued under the same id: not the
/// ack of a lost worker whose lease was recovered, and not the repeat
/// (without its lease token, as the worker repeats a batch) of an ack that
/// already settled the job. The Redis lease tokens behind this are tested
/// in bananas-redis (`lease_tokens`).
async fn late_acks_never_touch_a_reused_id(kind: Kind) {
    let tb = TestBroker::new(kind, "tokens").await;
    let b = &tb.broker;
    let inspect = b.inspect().unwrap();
    let r = route("tokens");

    // A fetched job's ack settles it.
    let plain = job_on("tokens", Priority::Normal, 0);
    b.enqueue(vec![plain.clone()]).await.unwrap();
    let got = fetch_n(b, &["tokens"], 1).await;
    b.ack(&[none(&got[0])]).await.unwrap();
    assert!(inspect.job(&plain.id, None).await.unwrap().is_none());

    // Worker 1 leases X and goes quiet; its lease is recovered, worker 2
    // runs X to the end, and a new job is enqueued under the same id.
    // Worker 1's late ack is stale and ignored: the new job is untouched.
    let x = job_on("tokens", Priority::Normal, 1);
    b.enqueue(vec![x.clone()]).await.unwrap();
    let mut short = req(&["tokens"], 1);
    short.lease = Duration::from_millis(50);
    let first = b.fetch(&short).await.unwrap();
    assert_eq!(first.len(), 1);
    wait_past(now_millis() + 60).await;
    assert_eq!(
        b.recover_expired(std::slice::from_ref(&r)).await.unwrap(),
        1
    );
    let second = fetch_n(b, &["tokens"], 1).await;
    assert_eq!(second[0].attempt, 2);
    b.ack(&[none(&second[0])]).await.unwrap();
    assert!(inspect.job(&x.id, None).await.unwrap().is_none());
    let mut again = job_on("tokens", Priority::Normal, 2);
    again.id = x.id.clone();
    assert_eq!(b.enqueue(vec![again]).await.unwrap(), 1);
    b.ack(&[none(&first[0])]).await.unwrap();
    let rec = inspect
        .job(&x.id, None)
        .await
        .unwrap()
        .expect("the new job survived");
    assert_eq!(rec.state, JobState::Queued);
    let third = fetch_n(b, &["tokens"], 1).await;
    assert_eq!((third[0].attempt, third[0].args.get()), (1, r#"{"n":2}"#));

    // An ack sent again without its token (what the worker does when it
    // retries a batch that may have landed) is checked too: the repeat of
    // an ack that already settled the job cannot touch its successor.
    b.ack(&[none(&third[0])]).await.unwrap();
    let mut successor = job_on("tokens", Priority::Normal, 3);
    successor.id = x.id.clone();
    assert_eq!(b.enqueue(vec![successor]).await.unwrap(), 1);
    let mut repeat = none(&third[0]);
    repeat.job.lease_token = 0;
    b.ack(&[repeat]).await.unwrap();
    let rec = inspect
        .job(&x.id, None)
        .await
        .unwrap()
        .expect("the successor survived");
    assert_eq!(rec.state, JobState::Queued);
    let fourth = fetch_n(b, &["tokens"], 1).await;
    assert_eq!(fourth[0].args.get(), r#"{"n":3}"#);
    b.ack(&[none(&fourth[0])]).await.unwrap();
    assert!(inspect.job(&x.id, None).await.unwrap().is_none());
    tb.cleanup().await;
}

/// A lease is told apart from every other lease of its job, also once the
/// job runs again from attempt 1: requeued from the dead letter, or its id
/// reused. The worker that lost the lease can neither settle the new run
/// (its late failure would be recorded and the new run's success dropped)
/// nor keep the new run's lease alive.
async fn a_lost_lease_stays_lost_when_the_job_runs_again(kind: Kind) {
    let tb = TestBroker::new(kind, "identity").await;
    let b = &tb.broker;
    let (inspect, dl) = (b.inspect().unwrap(), b.dead_letter().unwrap());

    // Requeued from the dead letter: attempts start again at 1.
    let mut j = job_on("ident", Priority::Normal, 1);
    j.id = JobId::from("ident-requeued");
    j.max_retries = 0;
    b.enqueue(vec![j.clone()]).await.unwrap();
    let a = lose(b).await; // worker A: lost, attempt 1
    let second = fetch_n(b, &["ident"], 1).await;
    b.ack(&[ack(
        &second[0],
        Outcome::Dead {
            reason: "B failed".into(),
        },
    )])
    .await
    .unwrap();
    assert!(dl.requeue_dead(&j.id).await.unwrap());
    let c = fetch_short(b).await; // worker C, with a short lease

    assert_eq!((a.attempt, c.attempt), (1, 1), "the same attempt number");
    b.ack(&[ack(
        &a,
        Outcome::Dead {
            reason: "A, late".into(),
        },
    )])
    .await
    .unwrap();
    let rec = inspect.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(
        rec.state,
        JobState::Active,
        "A's late ack settled C's run: {rec:?}"
    );
    // A does not keep C's lease alive either.
    b.extend_leases(&[JobRef::from(&a)], Duration::from_secs(60))
        .await
        .unwrap();
    wait_past(now_millis() + 60).await;
    assert_eq!(
        b.recover_expired(&[route("ident")]).await.unwrap(),
        1,
        "A extended C's lease"
    );
    let d = fetch_n(b, &["ident"], 1).await.remove(0);
    b.ack(&[ok(&d, "\"D\"")]).await.unwrap();
    let rec = inspect.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.result.unwrap().get()),
        (JobState::Succeeded, "\"D\"")
    );

    // The id reused once the job finished without a result.
    let mut j = job_on("ident", Priority::Normal, 2);
    j.id = JobId::from("ident-reused");
    b.enqueue(vec![j.clone()]).await.unwrap();
    let a = lose(b).await;
    let second = fetch_n(b, &["ident"], 1).await;
    b.ack(&[none(&second[0])]).await.unwrap();
    b.enqueue(vec![j.clone()]).await.unwrap();
    let c = fetch_n(b, &["ident"], 1).await.remove(0);
    assert_eq!((a.attempt, c.attempt), (1, 1));
    b.ack(&[ok(&a, "\"A\"")]).await.unwrap();
    let rec = inspect.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(
        rec.state,
        JobState::Active,
        "A's late ack settled C's run: {rec:?}"
    );
    b.ack(&[ok(&c, "\"C\"")]).await.unwrap();
    let rec = inspect.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.result.unwrap().get()),
        (JobState::Succeeded, "\"C\"")
    );
    tb.cleanup().await;
}

/// Leases the next job of route `ident` for 50 ms.
async fn fetch_short(b: &bananas::broker::AnyBroker) -> Job {
    let mut r = req(&["ident"], 1);
    r.lease = Duration::from_millis(50);
    r.block = Duration::from_millis(500);
    let mut got = b.fetch(&r).await.unwrap();
    assert_eq!(got.len(), 1);
    got.remove(0)
}

/// Leases the next job of route `ident` and lets the lease expire and be
/// recovered, as when its worker is lost; returns the lost attempt.
async fn lose(b: &bananas::broker::AnyBroker) -> Job {
    let got = vec![fetch_short(b).await];
    wait_past(now_millis() + 60).await;
    assert_eq!(b.recover_expired(&[route("ident")]).await.unwrap(), 1);
    got.into_iter().next().unwrap()
}

broker_suite!(
    release_puts_jobs_back_uncounted,
    expired_leases_are_recovered,
    each_expired_lease_is_recovered_once,
    stale_and_repeated_acks_are_ignored,
    late_acks_never_touch_a_reused_id,
    a_lost_lease_stays_lost_when_the_job_runs_again,
);
