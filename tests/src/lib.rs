//! Shared helpers for the Bananas behaviour suites: the brokers a suite
//! runs against. The harness (private `redis-server`s, key prefixes,
//! waiting with deadlines) is `bananas-test-support`.

use std::sync::Arc;

use bananas::broker::{AnyBroker, MemoryBroker};
use bananas_test_support::{redis_url, KeySpace};

/// Which broker a suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The embedded broker.
    Memory,
    /// The shared Redis at [`redis_url`], under a fresh prefix.
    Redis,
}

/// A broker for one test, cleaned up by [`TestBroker::cleanup`].
#[derive(Debug)]
pub struct TestBroker {
    /// The broker.
    pub broker: AnyBroker,
    /// The test's key prefix on the Redis server, for Redis; its keys are
    /// deleted when it is dropped, even when the test failed before its own
    /// [`cleanup`](Self::cleanup).
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
        }
    }

    /// A Redis broker on `url` with a fresh prefix.
    pub async fn redis(url: &str, name: &str) -> Self {
        let space = KeySpace::new(url, name);
        let broker = bananas_redis::RedisBroker::builder(url)
            .prefix(space.prefix())
            .connect()
            .await
            .expect("connect to Redis (set REDIS_URL if it is not at 127.0.0.1:6379)");
        TestBroker {
            broker: AnyBroker::full(Arc::new(broker)),
            redis: Some(space),
        }
    }

    /// Deletes every key under this test's prefix (Redis only).
    pub async fn cleanup(&self) {
        if let Some(space) = &self.redis {
            space.delete_keys();
        }
    }
}

/// Declares one test per broker kind: `broker_suite!(name, …)`, for `async fn name(kind: Kind)`,
/// expands to `name_memory` and `name_redis` tokio tests.
#[macro_export]
macro_rules! broker_suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Kind::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Kind::Redis).await
                }
            )*
        }
    };
}
