//! What the scenarios share: jobs, fetch requests, acks, fetching with a
//! deadline, and knowing that a `wait` is registered.

use std::time::{Duration, Instant};

use bananas::{
    broker::{AnyBroker, FetchRequest},
    job::{now_millis, Ack, Job, JobId, Outcome, Priority, Route},
};
use bananas_test_support::{eventually, Raw};
use bananas_tests::TestBroker;
use serde_json::value::RawValue;

pub(crate) fn json(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).unwrap()
}

/// A job of `task` with arguments `{"x":1}` on the default route.
pub(crate) fn job(task: &str) -> Job {
    Job::new(task, json(r#"{"x":1}"#))
}

/// A job of task `task` with arguments `args`, on the default route.
pub(crate) fn job_with(task: &str, args: &str) -> Job {
    Job::new(task, json(args))
}

/// A `noop` job with arguments `{"n":n}` on `route` at `prio`.
pub(crate) fn job_on(route: &str, prio: Priority, n: usize) -> Job {
    let mut j = job_with("noop", &format!(r#"{{"n":{n}}}"#));
    j.route = Route::new(route).unwrap();
    j.priority = prio;
    j
}

pub(crate) fn route(name: &str) -> Route {
    Route::new(name).unwrap()
}

pub(crate) fn count(jobs: &[Job], p: Priority) -> usize {
    jobs.iter().filter(|j| j.priority == p).count()
}

/// Up to `max` jobs from the default route, with a 30 s lease, waiting
/// 20 ms at most.
pub(crate) fn fetch_req(max: usize) -> FetchRequest {
    FetchRequest {
        routes: vec![Route::default()],
        max,
        lease: Duration::from_secs(30),
        cursor: 0,
        block: Duration::from_millis(20),
    }
}

/// Up to `max` jobs from `routes`, with a 60 s lease, not waiting.
pub(crate) fn req(routes: &[&str], max: usize) -> FetchRequest {
    FetchRequest {
        routes: routes.iter().map(|r| route(r)).collect(),
        max,
        lease: Duration::from_secs(60),
        cursor: 0,
        block: Duration::ZERO,
    }
}

pub(crate) fn ack(job: &Job, outcome: Outcome) -> Ack {
    Ack {
        job: job.into(),
        outcome,
        started_at: now_millis(),
        finished_at: now_millis(),
    }
}

/// A success with the result `value` (JSON).
pub(crate) fn ok(job: &Job, value: &str) -> Ack {
    ack(job, Outcome::Succeeded(Some(json(value))))
}

/// A success without a result (a task with `result = false`).
pub(crate) fn none(job: &Job) -> Ack {
    ack(job, Outcome::Succeeded(None))
}

/// A success with the result `value`, taking the job.
pub(crate) fn done(job: Job, value: &str) -> Ack {
    ok(&job, value)
}

/// Fetches from `routes` until `n` jobs came back (or panics after a
/// deadline).
pub(crate) async fn fetch_n(b: &AnyBroker, routes: &[&str], n: usize) -> Vec<Job> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "fetched {} of {n} jobs",
            out.len()
        );
        let mut r = req(routes, n - out.len());
        r.block = Duration::from_millis(200);
        out.extend(b.fetch(&r).await.unwrap());
    }
    out
}

/// Returns once the clock is past `deadline_ms` (a lease deadline).
pub(crate) async fn wait_past(deadline_ms: u64) {
    eventually(
        Duration::from_secs(20),
        "the clock passed the lease deadline",
        || async move { (now_millis() > deadline_ms).then_some(()) },
    )
    .await;
}

/// Returns once a `wait` on `id` (of a job on `route`) is registered, so
/// what follows reaches it as a wake-up, not as a record read at the start
/// of the wait. The memory broker registers on the wait's first poll, which
/// `join!` makes before this runs (the wait goes first); Redis keeps a
/// count in the route's waiters hash.
pub(crate) async fn until_waiting(tb: &TestBroker, route: &str, id: &JobId) {
    let Some(space) = &tb.redis else {
        return;
    };
    let raw = Raw::connect(space.url()).await;
    let key = format!("{{{}:{route}}}:waiters", space.prefix());
    eventually(Duration::from_secs(20), "the waiter registered", || {
        let cmd = redis::cmd("HEXISTS").arg(&key).arg(id.as_str()).clone();
        let mut raw = raw.clone();
        async move { raw.query::<bool>(&cmd).await.then_some(()) }
    })
    .await;
}
