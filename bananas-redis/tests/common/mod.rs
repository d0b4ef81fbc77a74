//! Helpers for the broker tests: unique prefixes with cleanup, private
//! `redis-server` processes and a private Redis Cluster.

#![allow(dead_code, unreachable_pub)]

pub mod scenarios;

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bananas_core::{
    broker::FetchRequest, job::now_millis, Ack, Broker, Job, Outcome, Priority, Route,
};
use bananas_redis::RedisBroker;
use serde_json::value::RawValue;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub fn unique(name: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("bt-{name}-{}", &id[id.len() - 10..])
}

/// Waits for `cond` with a deadline; panics with `what` if it never holds.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Deletes every key under a prefix on a server, when dropped.
pub struct Cleanup {
    pub url: String,
    pub prefix: String,
}

impl Cleanup {
    pub fn keys(&self) -> Vec<String> {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return Vec::new();
        };
        let Ok(mut c) = client.get_connection() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for pat in [
            format!("{{{}:*", self.prefix),
            format!("{{{}}}*", self.prefix),
        ] {
            let keys: Vec<String> = match c.scan_match(&pat) {
                Ok(iter) => iter.filter_map(|k| k.ok()).collect(),
                Err(_) => Vec::new(),
            };
            out.extend(keys);
        }
        out.sort();
        out
    }
}

use redis::TypedCommands as _;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let keys = self.keys();
        if keys.is_empty() {
            return;
        }
        if let Ok(client) = redis::Client::open(self.url.as_str()) {
            if let Ok(mut c) = client.get_connection() {
                for chunk in keys.chunks(500) {
                    let _ = redis::cmd("DEL").arg(chunk).exec(&mut c);
                }
            }
        }
    }
}

/// A broker on the shared server with its own prefix, cleaned up on drop.
pub async fn shared_broker(name: &str) -> (RedisBroker, Cleanup) {
    broker_on(&redis_url(), name, |c| c).await
}

pub async fn broker_on(
    url: &str,
    name: &str,
    tune: impl FnOnce(bananas_redis::RedisConfig) -> bananas_redis::RedisConfig,
) -> (RedisBroker, Cleanup) {
    let prefix = unique(name);
    let broker = tune(RedisBroker::builder(url).prefix(&prefix))
        .connect()
        .await
        .expect("connect to Redis");
    (
        broker,
        Cleanup {
            url: url.to_owned(),
            prefix,
        },
    )
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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A private `redis-server` on a free port, killed on drop.
pub struct PrivateRedis {
    pub port: u16,
    pub dir: PathBuf,
    appendonly: bool,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start(appendonly: bool) -> Self {
        let mut r = PrivateRedis {
            port: free_port(),
            dir: temp_dir("redis"),
            appendonly,
            child: None,
        };
        r.spawn();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_ping(self.port);
    }

    /// Stops the server (SIGTERM, so the AOF is flushed) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Starts the stopped server again on the same port and directory.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_ping(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "ping"])
            .output();
        if matches!(&out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("PONG")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private 3-master Redis Cluster on loopback, killed on drop.
pub struct PrivateCluster {
    pub ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Child>,
}

impl PrivateCluster {
    /// Starts the node on `port`; its directory keeps `nodes.conf`, so a
    /// restarted node rejoins the cluster with its slots (and no data).
    fn spawn_node(dir: &std::path::Path, port: u16) -> Child {
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).unwrap();
        Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server")
    }

    /// Kills every node (SIGKILL) and starts them again on the same ports:
    /// the cluster comes back with its slots and without its data.
    pub fn restart_all(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children = self
            .ports
            .iter()
            .map(|&p| Self::spawn_node(&self.dir, p))
            .collect();
        for &p in &self.ports {
            wait_ping(p);
        }
        self.wait_ok();
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for &p in &self.ports {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster never reached state ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn start() -> Self {
        let dir = temp_dir("cluster");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let children = ports.iter().map(|&p| Self::spawn_node(&dir, p)).collect();
        let cluster = PrivateCluster {
            ports,
            dir,
            children,
        };
        for &p in &cluster.ports {
            wait_ping(p);
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok();
        cluster
    }

    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Low-level access for checks the Broker API does not expose.
#[derive(Clone)]
pub enum Raw {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let nodes: Vec<String> = rest.split(',').map(|h| format!("redis://{h}")).collect();
            let client = redis::cluster::ClusterClient::new(nodes).unwrap();
            Raw::Cluster(client.get_async_connection().await.unwrap())
        } else {
            let client = redis::Client::open(url).unwrap();
            Raw::Single(client.get_multiplexed_async_connection().await.unwrap())
        }
    }

    pub async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Raw::Single(c) => cmd.query_async(c).await.unwrap(),
            Raw::Cluster(c) => cmd.query_async(c).await.unwrap(),
        }
    }
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
