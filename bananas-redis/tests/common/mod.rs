//! Helpers for the broker tests typed to `RedisBroker` (jobs, requests,
//! acks, a broker under a key prefix of its own). The harness itself
//! (private servers and clusters, key prefixes, waiting) is
//! `bananas-test-support`.

#![allow(dead_code, unreachable_pub)]

pub mod scenarios;

use std::time::{Duration, Instant};

use bananas_core::{
    broker::FetchRequest, job::now_millis, Ack, Broker, Job, Outcome, Priority, Route,
};
use bananas_redis::RedisBroker;
use bananas_test_support::{redis_url, KeySpace};
use serde_json::value::RawValue;

/// A broker on the shared server with its own prefix; the keys go when the
/// [`KeySpace`] is dropped.
pub async fn shared_broker(name: &str) -> (RedisBroker, KeySpace) {
    broker_on(&redis_url(), name, |c| c).await
}

pub async fn broker_on(
    url: &str,
    name: &str,
    tune: impl FnOnce(bananas_redis::RedisConfig) -> bananas_redis::RedisConfig,
) -> (RedisBroker, KeySpace) {
    let space = KeySpace::new(url, name);
    let broker = tune(RedisBroker::builder(url).prefix(space.prefix()))
        .connect()
        .await
        .expect("connect to Redis");
    (broker, space)
}

pub fn args(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

pub fn job(task: &str, json: &str) -> Job {
    Job::new(task, args(json))
}

pub fn job_on(route: &str, prio: Priority, n: usize) -> Job {
    let mut j = job("noop", &format!(r#"{{"n":{n}}}"#));
    j.route = Route::new(route).unwrap();
    j.priority = prio;
    j
}

pub fn req(routes: &[&str], max: usize) -> FetchRequest {
    FetchRequest {
        routes: routes.iter().map(|r| Route::new(*r).unwrap()).collect(),
        max,
        lease: Duration::from_secs(60),
        cursor: 0,
        block: Duration::ZERO,
    }
}

pub fn ack(job: &Job, outcome: Outcome) -> Ack {
    Ack {
        job: job.into(),
        outcome,
        started_at: now_millis(),
        finished_at: now_millis(),
    }
}

pub fn ok(job: &Job, json: &str) -> Ack {
    ack(job, Outcome::Succeeded(Some(args(json))))
}

/// Fetches until `n` jobs came back (or panics after a deadline).
pub async fn fetch_n(b: &RedisBroker, routes: &[&str], n: usize) -> Vec<Job> {
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

/// Fetches everything and acks it as done.
pub async fn drain(b: &RedisBroker, routes: &[&str]) -> usize {
    let mut n = 0;
    loop {
        let jobs = b.fetch(&req(routes, 100)).await.unwrap();
        if jobs.is_empty() {
            return n;
        }
        n += jobs.len();
        b.ack(
            &jobs
                .iter()
                .map(|j| ack(j, Outcome::Succeeded(None)))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    }
}
