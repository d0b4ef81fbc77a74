//! Redis mechanics against a private 3-master Redis Cluster
//! (`redis+cluster://…`), started on loopback ports by each test: the
//! scenarios of `common::scenarios`, and a restart of every node.

mod common;

use std::time::{Duration, Instant};

use bananas_core::{broker::Inspect, Broker, JobState, Outcome};
use bananas_test_support::{unique_prefix, RedisCluster};
use common::{scenarios, *};
use serde_json::value::RawValue;

/// The Redis mechanics of `common::scenarios` (lease tokens, corrupt
/// records, no leftovers, schedule ticks) on a cluster; the broker contract runs on a
/// cluster in `tests/tests/contract/`.
#[tokio::test]
async fn redis_mechanics_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let connect = |name: &str| {
        let url = url.clone();
        let prefix = unique_prefix(name);
        async move {
            let b = bananas_redis::RedisBroker::builder(&url)
                .prefix(&prefix)
                .connect()
                .await
                .expect("connect to the cluster");
            (b, prefix)
        }
    };
    let (b, p) = connect("tokens").await;
    scenarios::lease_tokens(&b, &url, &p).await;
    let (b, p) = connect("corrupt").await;
    scenarios::corrupt(&b, &url, &p).await;
    let (b, p) = connect("leftovers").await;
    scenarios::no_leftovers(&b, &url, &p).await;
    let (b, p) = connect("ticks").await;
    scenarios::ticks(&b, &url, &p).await;
}

/// One job through the broker: enqueue, fetch, ack, read the record.
async fn one_job(b: &bananas_redis::RedisBroker) -> bananas_core::Result<()> {
    let j = job("after_restart", "{}");
    b.enqueue(vec![j.clone()]).await?;
    // Also whatever an earlier, failed try left queued.
    let jobs = b.fetch(&req(&["default"], 10)).await?;
    let acks: Vec<_> = jobs
        .iter()
        .map(|f| {
            ack(
                f,
                Outcome::Succeeded(Some(RawValue::from_string("1".into()).unwrap())),
            )
        })
        .collect();
    b.ack(&acks).await?;
    assert!(
        jobs.iter().any(|f| f.id == j.id),
        "the job just enqueued is fetched"
    );
    let rec = b.job(&j.id, None).await?.expect("the result is kept");
    assert_eq!(rec.state, JobState::Succeeded);
    Ok(())
}

/// Every node of the cluster is killed and started again (without its data
/// or the function library). The same broker, without reconnecting by
/// hand, runs jobs again once the cluster is back: its connections and the
/// library are restored by themselves.
#[tokio::test]
async fn a_restarted_cluster_is_reconnected() {
    let mut cluster = RedisCluster::start();
    let prefix = unique_prefix("restart");
    let b = bananas_redis::RedisBroker::builder(&cluster.url())
        .prefix(&prefix)
        .response_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to the cluster");
    one_job(&b).await.expect("a job before the restart");

    cluster.restart_all();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = one_job(&b).await {
        assert!(
            Instant::now() < deadline,
            "no job ran within 30 s of the restart; last error: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And it keeps working, also for a fetch blocked on an idle route (the
    // pipelined BLPOP and fetch, on the blocking connections): the job is
    // enqueued after a pause that most likely finds the fetch blocked, and
    // must be fetched either way.
    one_job(&b).await.expect("a second job after the restart");
    let j = job("while_blocked", "{}");
    let blocking = bananas_core::broker::FetchRequest {
        block: Duration::from_secs(10),
        ..req(&["default"], 10)
    };
    let (got, _) = tokio::join!(b.fetch(&blocking), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.enqueue(vec![j.clone()]).await.unwrap();
    });
    let got = got.unwrap();
    assert!(got.iter().any(|f| f.id == j.id), "{got:?}");
}
