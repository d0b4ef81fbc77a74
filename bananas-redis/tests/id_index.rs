//! Lookups by a bare job id: the id → route index (or, for the default
//! route, the absence of an entry) finds a job's route with one script call
//! whatever the number of routes, and a lookup whose index entry is missing
//! or wrong still finds the job by asking every route. On a private
//! `redis-server`, so its command counts are this test's own.

mod common;

use std::time::Duration;

use bananas_core::{
    broker::{Cancel, CancelOutcome, DeadLetter, Inspect},
    Broker, JobState, Outcome, Priority,
};
use bananas_redis::RedisBroker;
use bananas_test_support::{eventually, KeySpace, Raw, RedisServer};
use common::*;

/// Routes the broker knows besides the job's.
const OTHER_ROUTES: usize = 20;

/// How many script calls (`FCALL`) the server has run.
fn fcalls(server: &RedisServer) -> u64 {
    server
        .cli(&["info", "commandstats"])
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_fcall:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// A broker that has used `OTHER_ROUTES` routes besides `job-route`, and a
/// job enqueued on `job-route`.
async fn many_routes(
    server: &RedisServer,
    name: &str,
) -> (RedisBroker, KeySpace, bananas_core::Job) {
    let (b, cleanup) = broker_on(&server.url(), name, |c| c).await;
    for i in 0..OTHER_ROUTES {
        b.enqueue(vec![job_on(&format!("other-{i}"), Priority::Normal, i)])
            .await
            .unwrap();
    }
    let j = job_on("job-route", Priority::Normal, 1);
    b.enqueue(vec![j.clone()]).await.unwrap();
    (b, cleanup, j)
}

/// A second process on the same prefix: it has used no route itself.
async fn other_process(server: &RedisServer, cleanup: &KeySpace) -> RedisBroker {
    RedisBroker::builder(&server.url())
        .prefix(cleanup.prefix())
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bare_id_finds_its_route_with_one_script_call() {
    let server = RedisServer::start();
    let (b, cleanup, j) = many_routes(&server, "index").await;
    let other = other_process(&server, &cleanup).await;

    let before = fcalls(&server);
    let rec = other.job(&j.id, None).await.unwrap().expect("found by id");
    assert_eq!(
        fcalls(&server) - before,
        1,
        "one job_info call, not one per route"
    );
    assert_eq!(
        (rec.route.as_str(), rec.state),
        ("job-route", JobState::Queued)
    );

    // Waiting for it by id asks its route only, too.
    let waiter = {
        let other = other.clone();
        let id = j.id.clone();
        tokio::spawn(async move { other.wait(&id, None, Duration::from_secs(20)).await })
    };
    let got = fetch_n(&b, &["job-route"], 1).await;
    eventually(Duration::from_secs(20), "the waiter registered", || async {
        (server
            .cli(&[
                "hlen",
                &format!("{{{}:job-route}}:waiters", cleanup.prefix()),
            ])
            .trim()
            == "1")
            .then_some(())
    })
    .await;
    b.ack(&[ack(
        &got[0],
        Outcome::Dead {
            reason: "boom".into(),
        },
    )])
    .await
    .unwrap();
    let rec = waiter.await.unwrap().unwrap().expect("the waiter woke");
    assert_eq!(
        (rec.route.as_str(), rec.state),
        ("job-route", JobState::Dead)
    );

    // Requeueing the dead job by its id: one script call besides the read.
    let before = fcalls(&server);
    assert!(other.requeue_dead(&j.id).await.unwrap());
    assert_eq!(fcalls(&server) - before, 1, "one requeue_dead call");
    assert_eq!(
        other.job(&j.id, None).await.unwrap().unwrap().state,
        JobState::Queued
    );

    // And cancelling it.
    let before = fcalls(&server);
    assert_eq!(
        other.cancel(&j.id, None).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(fcalls(&server) - before, 1, "one cancel call");

    // A job on the default route has no entry: it is asked first.
    let d = job_on("default", Priority::High, 7);
    b.enqueue(vec![d.clone()]).await.unwrap();
    let before = fcalls(&server);
    let rec = other.job(&d.id, None).await.unwrap().expect("found by id");
    assert_eq!(fcalls(&server) - before, 1, "one job_info call");
    assert_eq!(rec.route.as_str(), "default");

    // An id no route knows: every route is asked, and it is not found.
    let unknown = bananas_core::JobId::from("never-enqueued");
    assert!(other.job(&unknown, None).await.unwrap().is_none());
    assert_eq!(
        other.cancel(&unknown, None).await.unwrap(),
        CancelOutcome::NotFound
    );
}

#[tokio::test]
async fn a_missing_or_wrong_index_entry_falls_back_to_every_route() {
    let server = RedisServer::start();
    let (b, cleanup, j) = many_routes(&server, "fallback").await;
    let buckets = || {
        server
            .cli(&[
                "--scan",
                "--pattern",
                &format!("{{{}}}:ids:*", cleanup.prefix()),
            ])
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let index = buckets();
    assert_eq!(index.len(), 1, "today's bucket: {index:?}");
    // One entry per job on the 21 routes but `default`: the job's says its
    // route.
    let mut raw = Raw::connect(&server.url()).await;
    let fields: Vec<(Vec<u8>, String)> = raw.query(redis::cmd("HGETALL").arg(&index[0])).await;
    assert_eq!(fields.len(), OTHER_ROUTES + 1);
    assert_eq!(
        fields.iter().filter(|(_, r)| r == "job-route").count(),
        1,
        "{fields:?}"
    );
    let expiry: i64 = server.cli(&["pttl", &index[0]]).trim().parse().unwrap();
    assert!(expiry > 0, "the bucket expires");

    // A wrong entry (another route): the lookup asks the others too.
    let (field, _) = fields.iter().find(|(_, r)| r == "job-route").unwrap();
    let _: i64 = raw
        .query(redis::cmd("HSET").arg(&index[0]).arg(field).arg("other-3"))
        .await;
    let rec = b.job(&j.id, None).await.unwrap().expect("found anyway");
    assert_eq!(rec.route.as_str(), "job-route");

    // No entry at all (the index expired, or was lost with a restart).
    server.cli(&["del", &index[0]]);
    let other = other_process(&server, &cleanup).await;
    let before = fcalls(&server);
    let rec = other.job(&j.id, None).await.unwrap().expect("found anyway");
    assert_eq!(rec.route.as_str(), "job-route");
    assert_eq!(
        fcalls(&server) - before,
        1 + OTHER_ROUTES as u64 + 1,
        "the default route first, then every known route"
    );
    let got = fetch_n(&b, &["job-route"], 1).await;
    b.ack(&[ack(
        &got[0],
        Outcome::Dead {
            reason: "boom".into(),
        },
    )])
    .await
    .unwrap();
    assert!(other.requeue_dead(&j.id).await.unwrap());
    assert!(
        other
            .wait(&j.id, None, Duration::from_millis(10))
            .await
            .unwrap()
            .is_none(),
        "queued again, so nothing to return yet"
    );
    // The requeue wrote the entry again.
    let index = buckets();
    let routes: Vec<String> = raw.query(redis::cmd("HVALS").arg(&index[0])).await;
    assert_eq!(routes, ["job-route"]);

    // A broker without the index finds jobs the same way.
    let (plain, _cleanup) = broker_on(&server.url(), "no-index", |c| c.id_index(false)).await;
    let k = job_on("elsewhere", Priority::Low, 2);
    plain.enqueue(vec![k.clone()]).await.unwrap();
    let rec = plain.job(&k.id, None).await.unwrap().expect("found");
    assert_eq!(rec.route.as_str(), "elsewhere");
    assert!(
        !server.cli(&["keys", "*no-index*ids*"]).contains("ids"),
        "no index written"
    );
}
