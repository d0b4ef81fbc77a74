//! The same broker behaviour against a private 3-master Redis Cluster
//! (`redis+cluster://…`), started on loopback ports by the test.

mod common;

use common::{scenarios, *};

#[tokio::test]
async fn behaviour_on_a_redis_cluster() {
    let cluster = PrivateCluster::start();
    let url = cluster.url();
    let connect = |name: &str| {
        let url = url.clone();
        let prefix = unique(name);
        async move {
            let b = bananas_redis::RedisBroker::builder(&url)
                .prefix(&prefix)
                .connect()
                .await
                .expect("connect to the cluster");
            (b, prefix)
        }
    };
    let (b, _) = connect("roundtrip").await;
    scenarios::roundtrip(&b).await;
    let (b, _) = connect("prio").await;
    scenarios::priorities(&b).await;
    let (b, _) = connect("delayed").await;
    scenarios::delayed(&b).await;
    let (b, _) = connect("retry").await;
    scenarios::retry(&b).await;
    let (b, _) = connect("dead").await;
    scenarios::dead_letter(&b).await;
    let (b, p) = connect("wait").await;
    scenarios::wait(&b, &url, &p).await;
    let (b, _) = connect("leases").await;
    scenarios::leases(&b).await;
    let (b, p) = connect("tokens").await;
    scenarios::lease_tokens(&b, &url, &p).await;
    let (b, _) = connect("recoverers").await;
    scenarios::concurrent_recoverers(&b).await;
    let (b, _) = connect("ticks").await;
    scenarios::claim_ticks(&b).await;
    let (b, _) = connect("idle").await;
    scenarios::idle_wakeup(&b).await;
    let (b, p) = connect("corrupt").await;
    scenarios::corrupt(&b, &url, &p).await;
    let (b, p) = connect("leftovers").await;
    scenarios::no_leftovers(&b, &url, &p).await;
}
