//! The `maxmemory-policy` check at connect (issue #12, part of #6): a Redis
//! that may evict Bananas' keys is refused with `require_noeviction`, and
//! accepted with a warning otherwise. Private servers, so the policy is
//! the test's own.

use bananas_core::{Broker, Error};
use bananas_redis::RedisBroker;
use bananas_test_support::{unique_prefix, RedisCluster, RedisServer};

fn builder(url: &str) -> bananas_redis::RedisConfig {
    RedisBroker::builder(url).prefix(unique_prefix("evict"))
}

/// The `Error::Config` message of a refused connect.
async fn refused(url: &str) -> String {
    match builder(url).require_noeviction(true).connect().await {
        Err(Error::Config(message)) => message,
        Err(e) => panic!("expected Error::Config, got {e:?}"),
        Ok(_) => panic!("connected to a Redis that may evict keys"),
    }
}

#[tokio::test]
async fn an_evicting_policy_is_refused_when_required_and_warned_about_otherwise() {
    let server = RedisServer::builder()
        .config("maxmemory-policy", "allkeys-lru")
        .start();
    let message = refused(&server.url()).await;
    assert!(
        message.contains("maxmemory-policy allkeys-lru") && message.contains("noeviction"),
        "{message}"
    );

    // The default: it starts (and warns) and works.
    let broker = builder(&server.url()).connect().await.unwrap();
    broker.ping().await.unwrap();

    // Where CONFIG is not allowed, the policy comes from INFO memory.
    server.cli(&[
        "acl", "setuser", "limited", "on", ">pw", "~*", "&*", "+@all", "-config",
    ]);
    let limited = format!("redis://limited:pw@127.0.0.1:{}", server.port());
    let message = refused(&limited).await;
    assert!(message.contains("allkeys-lru"), "{message}");

    // Under noeviction, requiring it changes nothing.
    server.cli(&["config", "set", "maxmemory-policy", "noeviction"]);
    let broker = builder(&server.url())
        .require_noeviction(true)
        .connect()
        .await
        .unwrap();
    broker.ping().await.unwrap();
    let broker = builder(&limited)
        .require_noeviction(true)
        .connect()
        .await
        .unwrap();
    broker.ping().await.unwrap();
}

/// On a cluster every master is asked: one evicting master is enough.
#[tokio::test]
async fn one_evicting_master_of_a_cluster_is_found() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let url = cluster.url();
    builder(&url)
        .require_noeviction(true)
        .connect()
        .await
        .expect("every master is noeviction");
    let node = &cluster.nodes()[2];
    node.cli(&["config", "set", "maxmemory-policy", "volatile-lru"]);
    let message = refused(&url).await;
    assert!(
        message.contains("volatile-lru") && message.contains(&node.port().to_string()),
        "{message}"
    );
    builder(&url).connect().await.unwrap().ping().await.unwrap();
}
