//! A private Redis Cluster.

use std::{
    process::Command,
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

use crate::RedisServer;

/// A private Redis Cluster of three masters (no replicas), each a
/// [`RedisServer`] on a free loopback port; killed when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the three nodes, joins them with `redis-cli --cluster create`
    /// and waits until every node reports `cluster_state:ok`.
    pub fn start() -> Self {
        Self::start_with(|b| b)
    }

    /// The cluster of this process (this test binary): started by the first
    /// call, shared by every later one, and killed when the process exits
    /// (its nodes are [`reaped`](crate::RedisServerBuilder::reaped)). Tests
    /// share it with a key prefix each ([`unique_prefix`](crate::unique_prefix));
    /// a test that restarts or reconfigures nodes starts its own with
    /// [`RedisCluster::start`].
    ///
    /// It blocks while the cluster starts: from async code, call it through
    /// `tokio::task::spawn_blocking`.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| Self::start_with(|b| b.reaped()))
    }

    fn start_with(node: impl Fn(crate::RedisServerBuilder) -> crate::RedisServerBuilder) -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                node(RedisServer::builder())
                    .config("cluster-enabled", "yes")
                    // In the node's directory: a restarted node rejoins the
                    // cluster with its slots.
                    .config("cluster-config-file", "nodes.conf")
                    .start()
            })
            .collect();
        let cluster = RedisCluster { nodes };
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(cluster.addresses())
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok();
        cluster
    }

    /// Its nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Its URL as Bananas spells it: `redis+cluster://127.0.0.1:P1,…`.
    pub fn url(&self) -> String {
        format!("redis+cluster://{}", self.addresses().join(","))
    }

    /// Kills every node (SIGKILL) and starts them again on the same ports:
    /// the cluster comes back with its slots and without its data.
    pub fn restart_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        for node in &mut self.nodes {
            node.start_again();
        }
        self.wait_ok();
    }

    fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect()
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            while !node.cli(&["cluster", "info"]).contains("cluster_state:ok") {
                assert!(
                    Instant::now() < deadline,
                    "the cluster never reached state ok"
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
