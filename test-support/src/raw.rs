//! A plain connection to a server or a cluster, for checks a broker's API
//! does not expose.

use std::fmt;

/// A connection to a Redis URL as Bananas spells it: one server
/// (`redis://…`) or a cluster (`redis+cluster://h1:p1,h2:p2`). Every method
/// panics on an error: it is for tests.
#[derive(Clone)]
pub enum Raw {
    /// One server.
    Single(redis::aio::MultiplexedConnection),
    /// A cluster.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Raw {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Raw {
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let nodes: Vec<String> = rest.split(',').map(|h| format!("redis://{h}")).collect();
            let client = redis::cluster::ClusterClient::new(nodes).expect("cluster URL");
            Raw::Cluster(
                client
                    .get_async_connection()
                    .await
                    .expect("connect to the cluster"),
            )
        } else {
            let client = redis::Client::open(url).expect("Redis URL");
            Raw::Single(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect to Redis"),
            )
        }
    }

    /// Runs `cmd` and decodes its reply as `T`.
    pub async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Raw::Single(c) => cmd.query_async(c).await.expect("a Redis command"),
            Raw::Cluster(c) => cmd.query_async(c).await.expect("a Redis cluster command"),
        }
    }
}

impl fmt::Debug for Raw {
    // The cluster connection has no `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Raw::Single(_) => "Raw::Single",
            Raw::Cluster(_) => "Raw::Cluster",
        })
    }
}
