//! Shared helpers for the Bananas behaviour suites: the brokers a suite
//! runs against. The harness (private `redis-server`s and clusters, key
//! prefixes, waiting with deadlines) is `bananas-test-support`.

use std::{sync::Arc, time::Duration};

use bananas::broker::{AnyBroker, MemoryBroker};
use bananas_test_support::{redis_url, KeySpace, RedisCluster};

/// Which broker a suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The embedded broker.
    Memory,
    /// The shared Redis at [`redis_url`], under a fresh prefix.
    Redis,
    /// The test binary's private Redis Cluster ([`RedisCluster::shared`]:
    /// started by the first test that asks, shared by the others), under a
    /// fresh prefix.
    Cluster,
}

/// A broker for one test, cleaned up by [`TestBroker::cleanup`].
#[derive(Debug)]
pub struct TestBroker {
    /// The broker.
    pub broker: AnyBroker,
    /// The test's key prefix on the Redis server or cluster, for Redis
    /// kinds; its keys are deleted when it is dropped, even when the test
    /// failed before its own [`cleanup`](Self::cleanup).
    pub redis: Option<KeySpace>,
}

impl TestBroker {
    /// A fresh broker of `kind` for test `name`.
    pub async fn new(kind: Kind, name: &str) -> Self {
        match kind {
            Kind::Memory => TestBroker {
                broker: AnyBroker::full(Arc::new(MemoryBroker::new())),
                redis: None,
            },
            Kind::Redis => Self::redis(&redis_url(), name).await,
            Kind::Cluster => Self::redis(&cluster_url().await, name).await,
        }
    }

    /// A fresh broker of `kind` that keeps results for `success` and dead
    /// jobs for `failure`. The memory broker is built from its URL
    /// (`memory://?result_ttl=…&failure_ttl=…`), so the URL's settings are
    /// tested too.
    pub async fn with_ttls(kind: Kind, name: &str, success: Duration, failure: Duration) -> Self {
        let url = match kind {
            Kind::Memory => {
                let url = format!(
                    "memory://?result_ttl={}&failure_ttl={}",
                    success.as_secs_f64(),
                    failure.as_secs_f64()
                );
                return TestBroker {
                    broker: bananas::connect::connect_broker(&url)
                        .await
                        .expect("a memory broker"),
                    redis: None,
                };
            }
            Kind::Redis => redis_url(),
            Kind::Cluster => cluster_url().await,
        };
        Self::redis_with(&url, name, |c| c.result_ttl(success).failure_ttl(failure)).await
    }

    /// A Redis broker on `url` (one server or a cluster) with a fresh prefix.
    pub async fn redis(url: &str, name: &str) -> Self {
        Self::redis_with(url, name, |c| c).await
    }

    async fn redis_with(
        url: &str,
        name: &str,
        tune: impl FnOnce(bananas_redis::RedisConfig) -> bananas_redis::RedisConfig,
    ) -> Self {
        let space = KeySpace::new(url, name);
        let broker = tune(bananas_redis::RedisBroker::builder(url).prefix(space.prefix()))
            .connect()
            .await
            .expect("connect to Redis (set REDIS_URL if it is not at 127.0.0.1:6379)");
        TestBroker {
            broker: AnyBroker::full(Arc::new(broker)),
            redis: Some(space),
        }
    }

    /// Deletes every key under this test's prefix (Redis kinds only).
    pub async fn cleanup(&self) {
        if let Some(space) = &self.redis {
            space.delete_keys();
        }
    }
}

/// The URL of this test binary's Redis Cluster, started on first use.
async fn cluster_url() -> String {
    tokio::task::spawn_blocking(|| RedisCluster::shared().url())
        .await
        .expect("start the shared Redis Cluster")
}

/// Declares one test per broker kind: `broker_suite!(name, …)`, for
/// `async fn name(kind: Kind)`, expands to the tokio tests `memory::name`,
/// `redis::name` and `cluster::name`.
#[macro_export]
macro_rules! broker_suite {
    ($($name:ident),* $(,)?) => {
        $crate::broker_suite!(@kind memory, Memory, $($name),*);
        $crate::broker_suite!(@kind redis, Redis, $($name),*);
        $crate::broker_suite!(@kind cluster, Cluster, $($name),*);
    };
    (@kind $module:ident, $kind:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Kind::$kind).await
                }
            )*
        }
    };
}
