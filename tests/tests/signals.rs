//! Graceful shutdown of a worker process on SIGTERM: in-flight jobs finish
//! within `WORKER_SHUTDOWN_TIMEOUT`, and the ones that cannot are handed
//! back to the queue for another worker. Nothing is lost.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use bananas::job::{Job, JobId, JobState};
use bananas_test_support::{eventually, RedisServer};
use bananas_tests::TestBroker;
use serde_json::value::RawValue;

fn fault_job(first_ms: u64) -> Job {
    let args = RawValue::from_string(format!(r#"{{"first_ms":{first_ms}}}"#)).unwrap();
    Job::new("fault_job", args)
}

async fn sigterm_with(first_ms: u64, shutdown_timeout: &str) -> (Vec<JobState>, Vec<u32>) {
    let server = RedisServer::start();
    let tb = TestBroker::redis(&server.url(), "sigterm").await;
    let prefix = tb.redis.as_ref().unwrap().prefix().to_owned();
    let broker = tb.broker.clone();
    let jobs: Vec<Job> = (0..5).map(|_| fault_job(first_ms)).collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
    broker.enqueue(jobs).await.unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_fault_worker"))
        .env("BANANAS_URL", format!("{}?prefix={prefix}", server.url()))
        .env("FAULT_REDIS_URL", server.url())
        .env("FAULT_RUNS_KEY", "runs")
        .env("WORKER_CONCURRENCY", "5")
        .env("WORKER_SHUTDOWN_TIMEOUT", shutdown_timeout)
        .env("BANANAS_SCHEDULER", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start fault_worker");
    eventually(Duration::from_secs(30), "5 jobs in flight", || {
        let b = broker.clone();
        async move {
            let active: u64 = b
                .inspect()
                .unwrap()
                .stats()
                .await
                .unwrap()
                .iter()
                .map(|s| s.active)
                .sum();
            (active == 5).then_some(())
        }
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "worker exited with {exit:?}");
    let mut states = Vec::new();
    let mut attempts = Vec::new();
    for id in &ids {
        let rec = broker
            .inspect()
            .unwrap()
            .job(id, None)
            .await
            .unwrap()
            .expect("job still known");
        states.push(rec.state);
        attempts.push(rec.attempts);
    }
    (states, attempts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_jobs_finish() {
    let (states, attempts) = sigterm_with(500, "10").await;
    assert_eq!(states, vec![JobState::Succeeded; 5]);
    assert_eq!(attempts, vec![1; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_what_cannot_finish() {
    let (states, attempts) = sigterm_with(60_000, "0.2").await;
    assert_eq!(
        states,
        vec![JobState::Queued; 5],
        "handed back to the queue"
    );
    assert_eq!(
        attempts,
        vec![0; 5],
        "the interrupted attempt is not counted"
    );
}
