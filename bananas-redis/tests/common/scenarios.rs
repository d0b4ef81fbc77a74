//! Broker behaviour, written once and run against one server
//! (`tests/broker.rs`) and against a Redis Cluster (`tests/cluster.rs`).

use std::{collections::HashSet, time::Duration};

use bananas_core::{
    broker::{DeadLetter, Inspect, Schedules},
    job::now_millis,
    Broker, Job, JobId, JobState, Outcome, Priority, Route,
};
use bananas_redis::RedisBroker;
use bananas_test_support::{eventually, Raw};

use super::*;

fn route(name: &str) -> Route {
    Route::new(name).unwrap()
}

fn count(jobs: &[Job], p: Priority) -> usize {
    jobs.iter().filter(|j| j.priority == p).count()
}

pub async fn roundtrip(b: &RedisBroker) {
    let j1 = job("add", r#"{"a":1,"b":"x"}"#);
    let j2 = job("noop", "{}");
    let j3 = job("fail", "[1,2]");
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
    let rec = b
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
        b.job(&j1.id, None).await.unwrap().unwrap().state,
        JobState::Active
    );
    assert!(b.fetch(&req(&["default"], 10)).await.unwrap().is_empty());

    let by_id = |id: &JobId| jobs.iter().find(|j| &j.id == id).unwrap().clone();
    b.ack(&[
        ok(&by_id(&j1.id), r#"{"sum":3}"#),
        ack(&by_id(&j2.id), Outcome::Succeeded(None)),
        ack(
            &by_id(&j3.id),
            Outcome::Dead {
                reason: "no such task".into(),
            },
        ),
    ])
    .await
    .unwrap();
    let r1 = b.job(&j1.id, None).await.unwrap().unwrap();
    assert_eq!(r1.state, JobState::Succeeded);
    assert_eq!(r1.result.as_ref().unwrap().get(), r#"{"sum":3}"#);
    assert_eq!(r1.attempts, 1);
    assert!(r1.finished_at.is_some() && r1.started_at.is_some());
    assert!(
        b.job(&j2.id, None).await.unwrap().is_none(),
        "result=false leaves nothing"
    );
    let r3 = b.job(&j3.id, None).await.unwrap().unwrap();
    assert_eq!(r3.state, JobState::Dead);
    assert_eq!(r3.error.as_deref(), Some("no such task"));
    assert_eq!(
        b.enqueue(vec![j1.clone()]).await.unwrap(),
        0,
        "a finished id is held"
    );

    let stats = b.stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "default").unwrap();
    assert_eq!(
        (s.high, s.normal, s.low, s.scheduled, s.active, s.dead),
        (0, 0, 0, 0, 0, 1)
    );
    b.ping().await.unwrap();
}

pub async fn priorities(b: &RedisBroker) {
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
    let s = b.stats().await.unwrap();
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
}

pub async fn delayed(b: &RedisBroker) {
    let mut j = job_on("delayed", Priority::Normal, 1);
    let eta = now_millis() + 300;
    j.eta = Some(eta);
    b.enqueue(vec![j.clone()]).await.unwrap();
    let rec = b.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Scheduled);
    assert_eq!(rec.eta, Some(eta));
    let s = b.stats().await.unwrap();
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
}

pub async fn retry(b: &RedisBroker) {
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
    let rec = b.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Retrying);
    assert_eq!(rec.error.as_deref(), Some("boom"));
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.eta, Some(at));
    let again = fetch_n(b, &["retry"], 1).await;
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].priority, Priority::High);
    b.ack(&[ok(&again[0], "7")]).await.unwrap();
    let rec = b.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Succeeded);
    assert_eq!(rec.result.unwrap().get(), "7");
    assert_eq!(
        rec.error, None,
        "the final result replaces the earlier failure"
    );
    assert_eq!(rec.attempts, 2);
}

pub async fn dead_letter(b: &RedisBroker) {
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
    let dead = b.dead_jobs(10).await.unwrap();
    let mine: Vec<_> = dead.iter().filter(|r| r.route.as_str() == "dl").collect();
    assert_eq!(mine.len(), 2);
    assert!(mine
        .iter()
        .all(|r| r.state == JobState::Dead && r.error.as_deref().unwrap().starts_with("bad")));
    assert_eq!(b.dead_jobs(1).await.unwrap().len(), 1);

    assert!(b.requeue_dead(&j1.id).await.unwrap());
    assert!(!b.requeue_dead(&j1.id).await.unwrap());
    assert!(!b.requeue_dead(&JobId::from("nope")).await.unwrap());
    assert_eq!(
        b.job(&j1.id, None).await.unwrap().unwrap().state,
        JobState::Queued
    );
    let again = fetch_n(b, &["dl"], 1).await;
    assert_eq!(again[0].id, j1.id);
    assert_eq!(again[0].attempt, 1, "requeue resets attempts");
    b.ack(&[ok(&again[0], "null")]).await.unwrap();

    assert!(b.purge_dead().await.unwrap() >= 1);
    assert!(b.dead_jobs(10).await.unwrap().is_empty());
    assert!(b.job(&j2.id, None).await.unwrap().is_none());
    assert_eq!(
        b.job(&j1.id, None).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
}

pub async fn wait(b: &RedisBroker, raw_url: &str, prefix: &str) {
    let raw = Raw::connect(raw_url).await;
    let waiters = format!("{{{prefix}:wait}}:waiters");

    // The result lands before anyone waits.
    let j = job_on("wait", Priority::Normal, 1);
    b.enqueue(vec![j.clone()]).await.unwrap();
    let got = fetch_n(b, &["wait"], 1).await;
    b.ack(&[ok(&got[0], "1")]).await.unwrap();
    let rec = b
        .wait(&j.id, None, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.result.unwrap().get(), "1");

    // The result lands while waiters wait: stored, no result, dead.
    for outcome in [
        Outcome::Succeeded(Some(args("2"))),
        Outcome::Succeeded(None),
        Outcome::Dead {
            reason: "gone".into(),
        },
    ] {
        let j = job_on("wait", Priority::Normal, 2);
        b.enqueue(vec![j.clone()]).await.unwrap();
        let waiter = {
            let b = b.clone();
            let id = j.id.clone();
            tokio::spawn(async move { b.wait(&id, None, Duration::from_secs(20)).await })
        };
        let id = j.id.to_string();
        eventually(Duration::from_secs(20), "the waiter registered", || {
            let cmd = redis::cmd("HEXISTS").arg(&waiters).arg(&id).clone();
            let mut raw = raw.clone();
            async move { raw.query::<bool>(&cmd).await.then_some(()) }
        })
        .await;
        let got = fetch_n(b, &["wait"], 1).await;
        b.ack(&[ack(&got[0], outcome.clone())]).await.unwrap();
        let rec = waiter
            .await
            .unwrap()
            .unwrap()
            .expect("waiter woke with the record");
        match outcome {
            Outcome::Succeeded(Some(_)) => {
                assert_eq!(rec.state, JobState::Succeeded);
                assert_eq!(rec.result.unwrap().get(), "2");
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
    assert!(b
        .wait(&j.id, None, Duration::from_millis(100))
        .await
        .unwrap()
        .is_none());
    assert!(b
        .wait(&JobId::new(), None, Duration::from_millis(100))
        .await
        .unwrap()
        .is_none());
}

async fn wait_past(deadline_ms: u64) {
    eventually(
        Duration::from_secs(20),
        "the clock passed the lease deadline",
        || async move { (now_millis() > deadline_ms).then_some(()) },
    )
    .await;
}

pub async fn leases(b: &RedisBroker) {
    let mut j = job_on("lease", Priority::Normal, 1);
    j.max_retries = 3;
    let mut last = job_on("lease", Priority::Normal, 2);
    last.max_retries = 0;
    b.enqueue(vec![j.clone(), last.clone()]).await.unwrap();
    let mut r = req(&["lease"], 10);
    r.lease = Duration::from_millis(50);
    let got = b.fetch(&r).await.unwrap();
    assert_eq!(got.len(), 2);
    // A first attempt writes no meta field; the lease alone says attempt 1.
    let rec = b.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Active, 1));
    wait_past(now_millis() + 60).await;
    assert_eq!(b.recover_expired(&[route("lease")]).await.unwrap(), 2);
    let rec = b.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Queued, 1));
    let dead = b.job(&last.id, None).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(
        dead.error.as_deref(),
        Some("lease expired: worker lost (attempt 1)")
    );

    let again = fetch_n(b, &["lease"], 1).await;
    assert_eq!(again[0].attempt, 2);
    // The lost worker's late ack is stale and ignored.
    let stale = got.iter().find(|x| x.id == j.id).unwrap();
    b.ack(&[ok(stale, "\"stale\"")]).await.unwrap();
    assert_eq!(
        b.job(&j.id, None).await.unwrap().unwrap().state,
        JobState::Active
    );
    b.ack(&[ok(&again[0], "\"fresh\"")]).await.unwrap();
    let rec = b.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(rec.result.unwrap().get(), "\"fresh\"");

    // Extending keeps a lease alive; releasing does not count the attempt.
    let k = job_on("lease-ext", Priority::Normal, 1);
    b.enqueue(vec![k.clone()]).await.unwrap();
    let mut r = req(&["lease-ext"], 10);
    r.lease = Duration::from_millis(50);
    let got = b.fetch(&r).await.unwrap();
    b.extend_leases(
        &[(route("lease-ext"), k.id.clone())],
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
        b.job(&k.id, None).await.unwrap().unwrap().state,
        JobState::Queued
    );
    let again = fetch_n(b, &["lease-ext"], 1).await;
    assert_eq!(again[0].attempt, 1);
    b.ack(&[ok(&again[0], "\"done\"")]).await.unwrap();
    let rec = b.job(&k.id, None).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Succeeded, 1));
}

pub async fn concurrent_recoverers(b: &RedisBroker) {
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
    let s = b.stats().await.unwrap();
    let s = s.iter().find(|s| s.route == "lease-many").unwrap();
    assert_eq!((s.normal, s.active), (50, 0));
    let again = fetch_n(b, &["lease-many"], 50).await;
    let ids: HashSet<_> = again.iter().map(|j| j.id.clone()).collect();
    assert_eq!(ids.len(), 50);
    assert!(again.iter().all(|j| j.attempt == 2));
}

pub async fn claim_ticks(b: &RedisBroker) {
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
            tokio::spawn(async move { b.claim_tick("every-minute", tick, j).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for h in handles {
        wins += h.await.unwrap() as usize;
    }
    assert_eq!(wins, 1, "exactly one claimer wins a tick");
    let mark = b
        .last_tick("every-minute", &route("ticks"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mark.tick, tick);
    assert_eq!(mark.job_id, mk(tick).id);
    assert!(!b
        .claim_tick("every-minute", tick - 60_000, mk(tick - 60_000))
        .await
        .unwrap());
    assert!(b
        .claim_tick("every-minute", tick + 60_000, mk(tick + 60_000))
        .await
        .unwrap());
    assert!(b
        .last_tick("other", &route("ticks"))
        .await
        .unwrap()
        .is_none());
    let got = fetch_n(b, &["ticks"], 2).await;
    assert_eq!(got.len(), 2);
    assert!(b.fetch(&req(&["ticks"], 10)).await.unwrap().is_empty());
}

pub async fn idle_wakeup(b: &RedisBroker) {
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
}

pub async fn corrupt(b: &RedisBroker, raw_url: &str, prefix: &str) {
    let mut raw = Raw::connect(raw_url).await;
    let good = job_on("bad", Priority::Normal, 1);
    b.enqueue(vec![good.clone()]).await.unwrap();
    let k = |s: &str| format!("{{{prefix}:bad}}:{s}");
    let bad: [(&str, Option<&str>); 3] = [
        ("garbage", Some("this is not a spec")),
        ("badjson", Some("n\x1f3\x1f1\x1f\x1fadd\x1f{nope")),
        ("missing", None),
    ];
    for (id, spec) in bad {
        if let Some(spec) = spec {
            raw.query::<i64>(redis::cmd("HSET").arg(k("jobs")).arg(id).arg(spec))
                .await;
        }
        raw.query::<i64>(redis::cmd("LPUSH").arg(k("q:n")).arg(id))
            .await;
    }
    let got = fetch_n(b, &["bad"], 1).await;
    assert_eq!(got[0].id, good.id, "the good job still runs");
    let dead = b.dead_jobs(10).await.unwrap();
    let reason = |id: &str| {
        dead.iter()
            .find(|r| r.id.as_str() == id)
            .and_then(|r| r.error.clone())
            .unwrap_or_else(|| panic!("{id} is in the dead letter"))
    };
    assert!(
        reason("garbage").contains("corrupt"),
        "{}",
        reason("garbage")
    );
    assert!(
        reason("badjson").contains("not valid JSON"),
        "{}",
        reason("badjson")
    );
    assert!(
        reason("missing").contains("missing"),
        "{}",
        reason("missing")
    );
    let rec = b.job(&JobId::from("badjson"), None).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Dead);
    assert_eq!(rec.task, "add");
}

/// After processing, nothing is left but results (and the route registry
/// and a bounded wake-up list).
pub async fn no_leftovers(b: &RedisBroker, raw_url: &str, prefix: &str) {
    let mut raw = Raw::connect(raw_url).await;
    let jobs: Vec<Job> = (0..300)
        .map(|i| job_on("mem", Priority::ALL[i % 3], i))
        .collect();
    b.enqueue(jobs).await.unwrap();
    let mut settled = 0;
    while settled < 300 {
        let got = fetch_n(b, &["mem"], 1).await;
        let more = b.fetch(&req(&["mem"], 99)).await.unwrap();
        let all: Vec<Job> = got.into_iter().chain(more).collect();
        settled += all.len();
        b.ack(
            &all.iter()
                .map(|j| {
                    if j.args.get().contains("7") {
                        ok(j, "1")
                    } else {
                        ack(j, Outcome::Succeeded(None))
                    }
                })
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    }
    for key in [
        "jobs", "meta", "q:h", "q:n", "q:l", "sched", "lease", "dead", "waiters",
    ] {
        let k = format!("{{{prefix}:mem}}:{key}");
        let n: i64 = raw.query(redis::cmd("EXISTS").arg(&k)).await;
        assert_eq!(n, 0, "{k} is gone once every job finished");
    }
}

/// Successes without a result go to `ack.lua` compact (ids only, attempts
/// and start times packed): the lease and attempt checks still hold.
pub async fn compact_acks(b: &RedisBroker) {
    let none = |j: &Job| ack(j, Outcome::Succeeded(None));
    // Attempt 1, no meta: the hot path, with a stale ack in the batch.
    let m1 = job_on("compact", Priority::Normal, 1);
    let m2 = job_on("compact", Priority::Normal, 2);
    b.enqueue(vec![m1.clone(), m2.clone()]).await.unwrap();
    let got = fetch_n(b, &["compact"], 2).await;
    let g1 = got.iter().find(|x| x.id == m1.id).unwrap();
    let g2 = got.iter().find(|x| x.id == m2.id).unwrap();
    b.ack(&[none(g1)]).await.unwrap();
    assert!(b.job(&m1.id, None).await.unwrap().is_none());
    b.ack(&[none(g1), none(g2), none(g2)]).await.unwrap();
    assert!(b.job(&m2.id, None).await.unwrap().is_none());

    // Attempt 2 (meta present), mixed with stale attempt-1 acks.
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
    assert!(b.job(a, None).await.unwrap().is_none());
    for id in [bb, c] {
        let rec = b.job(id, None).await.unwrap().unwrap();
        assert_eq!((rec.state, rec.attempts), (JobState::Active, 2));
    }
    // Compact and full acks in one batch.
    b.ack(&[none(&of(&second, bb)), ok(&of(&second, c), "3")])
        .await
        .unwrap();
    assert!(b.job(bb, None).await.unwrap().is_none());
    let rec = b.job(c, None).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Succeeded, 2));
}

/// Lease tokens let `ack.lua` skip its lease check only while nothing was
/// recovered on the route since the fetch; a stale ack is still ignored.
pub async fn lease_tokens(b: &RedisBroker, raw_url: &str, prefix: &str) {
    let none = |j: &Job| ack(j, Outcome::Succeeded(None));
    let r = route("tokens");

    // A fetched job carries a token; an ack with it settles the job.
    let plain = job_on("tokens", Priority::Normal, 0);
    b.enqueue(vec![plain.clone()]).await.unwrap();
    let got = fetch_n(b, &["tokens"], 1).await;
    assert_ne!(got[0].lease_token, 0, "the Redis broker hands out tokens");
    b.ack(&[none(&got[0])]).await.unwrap();
    assert!(b.job(&plain.id, None).await.unwrap().is_none());

    // Worker 1 leases X and goes quiet; its lease is recovered, worker 2
    // runs X to the end (no meta left on the route), and a new job is
    // enqueued under the same id. Worker 1's late ack still carries the
    // old token: the recovery moved the epoch on, so the ack is checked,
    // found stale and ignored, and the new job is untouched.
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
    assert_ne!(second[0].lease_token, first[0].lease_token);
    b.ack(&[none(&second[0])]).await.unwrap();
    assert!(b.job(&x.id, None).await.unwrap().is_none());
    let mut again = job_on("tokens", Priority::Normal, 2);
    again.id = x.id.clone();
    assert_eq!(b.enqueue(vec![again]).await.unwrap(), 1);
    b.ack(&[none(&first[0])]).await.unwrap();
    let rec = b
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
    let rec = b
        .job(&x.id, None)
        .await
        .unwrap()
        .expect("the successor survived");
    assert_eq!(rec.state, JobState::Queued);
    let fourth = fetch_n(b, &["tokens"], 1).await;
    assert_eq!(fourth[0].args.get(), r#"{"n":3}"#);
    b.ack(&[none(&fourth[0])]).await.unwrap();

    // The epoch key evicted or deleted (`allkeys-*` eviction, a careless
    // cleanup) after a recovery: it comes back with a new nonce, not with
    // the value it had when it was first made, so the late ack of an
    // attempt leased before the recovery is still checked.
    let y = job_on("tokens2", Priority::Normal, 5);
    b.enqueue(vec![y.clone()]).await.unwrap();
    let mut short = req(&["tokens2"], 1);
    short.lease = Duration::from_millis(50);
    let early = b.fetch(&short).await.unwrap();
    assert_eq!(early.len(), 1);
    wait_past(now_millis() + 60).await;
    let r2 = route("tokens2");
    assert_eq!(
        b.recover_expired(std::slice::from_ref(&r2)).await.unwrap(),
        1
    );
    let rerun = fetch_n(b, &["tokens2"], 1).await;
    b.ack(&[none(&rerun[0])]).await.unwrap();
    let mut successor = job_on("tokens2", Priority::Normal, 6);
    successor.id = y.id.clone();
    assert_eq!(b.enqueue(vec![successor]).await.unwrap(), 1);
    let mut raw = Raw::connect(raw_url).await;
    raw.query::<i64>(redis::cmd("DEL").arg(format!("{{{prefix}:tokens2}}:epoch")))
        .await;
    b.ack(&[none(&early[0])]).await.unwrap();
    let rec = b
        .job(&y.id, None)
        .await
        .unwrap()
        .expect("the successor survived");
    assert_eq!(rec.state, JobState::Queued);
    let last = fetch_n(b, &["tokens2"], 1).await;
    assert_eq!(last[0].args.get(), r#"{"n":6}"#);
    assert_ne!(last[0].lease_token, early[0].lease_token, "a new epoch");
    b.ack(&[none(&last[0])]).await.unwrap();
    assert!(b.job(&y.id, None).await.unwrap().is_none());
}
