//! Redis mechanics, written once and run against one server
//! (`broker.rs` here) and against a Redis Cluster (`cluster.rs`):
//! what the stored layout looks like, what a corrupt record does, lease
//! tokens. The broker contract itself is one suite for every broker, in
//! `tests/tests/contract/`.

use std::time::Duration;

use bananas_core::{
    broker::{DeadLetter, Inspect, Schedules, TickClaim},
    job::now_millis,
    Broker, Job, JobId, JobState, Outcome, Priority, Route,
};
use bananas_redis::RedisBroker;
use bananas_test_support::{eventually, Raw};

use super::*;

fn route(name: &str) -> Route {
    Route::new(name).unwrap()
}

async fn wait_past(deadline_ms: u64) {
    eventually(
        Duration::from_secs(20),
        "the clock passed the lease deadline",
        || async move { (now_millis() > deadline_ms).then_some(()) },
    )
    .await;
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

/// Lease tokens let `ack.lua` skip its lease check only while nothing was
/// recovered on the route since the fetch: fetched jobs carry a token, a
/// recovery moves the route's epoch, and an epoch key that was evicted or
/// deleted comes back with a new nonce, so a stale ack is still checked.
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

    // A recovery on the route moves its epoch on: the next lease of the
    // same job carries another token. (That the lost worker's late ack is
    // then checked and ignored, even once the id is reused, is the
    // contract scenario `late_acks_never_touch_a_reused_id`.)
    let x = job_on("tokens", Priority::Normal, 1);
    b.enqueue(vec![x.clone()]).await.unwrap();
    let mut short = req(&["tokens"], 1);
    short.lease = Duration::from_millis(50);
    let first = b.fetch(&short).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_ne!(first[0].lease_token, 0);
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

/// Schedule ticks across the crash windows of a claim and across an
/// upgrade from per-route marks (`src/ops/ticks.rs`), with the stored
/// state a stopped claimer or an earlier version leaves written by hand.
pub async fn ticks(b: &RedisBroker, raw_url: &str, prefix: &str) {
    let mut raw = Raw::connect(raw_url).await;
    let mk = |schedule: &str, r: &str, t: u64| {
        let mut j = job_on(r, Priority::Normal, 0);
        j.task = schedule.to_owned();
        j.id = JobId::from(format!("sched-{schedule}-{t}"));
        j
    };
    let claim = |schedule: &'static str, r: &'static str, t: u64| {
        let j = mk(schedule, r, t);
        async move { b.claim_tick(schedule, t, j).await.unwrap() }
    };
    let queued = |r: &'static str| async move {
        let jobs = b.fetch(&req(&[r], 100)).await.unwrap();
        jobs.into_iter()
            .map(|j| j.id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let pending_key = format!("{{{prefix}}}:ticks:pending");
    let pending = |spec_task: &str, t: u64, r: &str| {
        format!(
            "{t}\x1fsched-{spec_task}-{t}\x1f{r}\x1f0\x1fn\x1f0\x1f1\x1f\x1f{spec_task}\x1f{{}}"
        )
    };

    // An earlier version's mark, kept per route: read when there is no
    // other, and a tick it passed is not run again.
    raw.query::<i64>(
        redis::cmd("HSET")
            .arg(format!("{{{prefix}:legacy}}:ticks"))
            .arg("old")
            .arg("1000\x1fsched-old-1000"),
    )
    .await;
    let mark = b.last_tick("old", &route("legacy")).await.unwrap().unwrap();
    assert_eq!((mark.tick, mark.job_id.as_str()), (1000, "sched-old-1000"));
    assert_eq!(claim("old", "legacy", 1000).await, TickClaim::Taken);
    assert_eq!(claim("old", "legacy", 500).await, TickClaim::Taken);
    let mark = b.last_tick("old", &route("other")).await.unwrap().unwrap();
    assert_eq!(mark.tick, 1000, "the schedule's mark took the route's");
    assert_eq!(claim("old", "legacy", 2000).await, TickClaim::Enqueued);
    assert_eq!(queued("legacy").await, ["sched-old-2000"]);

    // A claimer stopped after claiming, before enqueueing: the tick is not
    // shown as claimed, and the next claim of it enqueues its job, on the
    // route the claim recorded (the claimer's), once.
    raw.query::<i64>(
        redis::cmd("HSET")
            .arg(&pending_key)
            .arg("stopped")
            .arg(pending("stopped", 3000, "gpu")),
    )
    .await;
    assert!(b
        .last_tick("stopped", &route("gpu"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(claim("stopped", "cpu", 3000).await, TickClaim::Enqueued);
    assert_eq!(claim("stopped", "gpu", 3000).await, TickClaim::Taken);
    assert_eq!(queued("gpu").await, ["sched-stopped-3000"]);
    assert!(queued("cpu").await.is_empty());
    let mark = b
        .last_tick("stopped", &route("cpu"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mark.tick, 3000);

    // Stopped again, and the next scheduler asks for a later tick: the
    // stopped claim's job is enqueued first, then the later tick's.
    raw.query::<i64>(
        redis::cmd("HSET")
            .arg(&pending_key)
            .arg("stopped")
            .arg(pending("stopped", 4000, "gpu")),
    )
    .await;
    assert_eq!(claim("stopped", "gpu", 5000).await, TickClaim::Enqueued);
    assert_eq!(
        queued("gpu").await,
        ["sched-stopped-4000", "sched-stopped-5000"]
    );

    // A claimer stopped after enqueueing, before confirming: the job ran
    // and left nothing (no result kept), and still is not enqueued again.
    raw.query::<i64>(
        redis::cmd("HSET")
            .arg(&pending_key)
            .arg("stopped")
            .arg(pending("stopped", 6000, "gpu")),
    )
    .await;
    raw.query::<i64>(
        redis::cmd("HSET")
            .arg(format!("{{{prefix}:gpu}}:ticks"))
            .arg("stopped")
            .arg("6000\x1fsched-stopped-6000"),
    )
    .await;
    assert_eq!(claim("stopped", "gpu", 6000).await, TickClaim::Taken);
    assert_eq!(claim("stopped", "gpu", 7000).await, TickClaim::Enqueued);
    assert_eq!(queued("gpu").await, ["sched-stopped-7000"]);
    let left: i64 = raw.query(redis::cmd("HLEN").arg(&pending_key)).await;
    assert_eq!(left, 0, "no claim is left pending");
}
