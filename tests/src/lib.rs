//! Shared helpers for the Bananas behaviour suites: brokers to run a suite
//! against, private `redis-server` processes for fault tests, and waiting
//! for conditions with deadlines.

use std::{
    future::Future,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{atomic::AtomicU32, atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use bananas::broker::{AnyBroker, MemoryBroker};

/// The shared Redis the suites use: `REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "bt-{test}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rand_suffix()
    )
}

fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ (std::process::id() << 16)
}

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
    /// The Redis URL and prefix, for Redis.
    pub redis: Option<(String, String)>,
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
        let prefix = unique_prefix(name);
        let broker = bananas_redis::RedisBroker::builder(url)
            .prefix(&prefix)
            .connect()
            .await
            .expect("connect to Redis (set REDIS_URL if it is not at 127.0.0.1:6379)");
        TestBroker {
            broker: AnyBroker::full(Arc::new(broker)),
            redis: Some((url.to_owned(), prefix)),
        }
    }

    /// Deletes every key under this test's prefix (Redis only).
    pub async fn cleanup(&self) {
        if let Some((url, prefix)) = &self.redis {
            delete_prefix(url, prefix).await;
        }
    }
}

impl Drop for TestBroker {
    /// Deletes the test's keys even when the test failed before its own
    /// `cleanup` (on a thread of its own: drop cannot await).
    fn drop(&mut self) {
        let Some((url, prefix)) = self.redis.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(delete_prefix(&url, &prefix));
            }
        })
        .join();
    }
}

/// Every key containing `prefix`, found with SCAN (never KEYS).
pub async fn keys_with(url: &str, prefix: &str) -> redis::RedisResult<Vec<String>> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let pattern = format!("*{prefix}*");
    let mut cursor: u64 = 0;
    let mut all = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await?;
        all.extend(keys);
        if next == 0 {
            return Ok(all);
        }
        cursor = next;
    }
}

/// Deletes every key containing `prefix` with SCAN + DEL (never FLUSHDB).
pub async fn delete_prefix(url: &str, prefix: &str) {
    let Ok(keys) = keys_with(url, prefix).await else {
        return;
    };
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut con) = client.get_multiplexed_async_connection().await else {
        return;
    };
    for chunk in keys.chunks(500) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(&mut con).await;
    }
}

/// Waits until `check` returns `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A private `redis-server` on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
    appendonly: bool,
    /// Whether it speaks only TLS (certificate and key in `dir`).
    tls: bool,
}

impl RedisServer {
    /// Starts one; `appendonly` turns on the AOF (fsync every write).
    pub fn start(appendonly: bool) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("bananas-redis-{port}-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut s = RedisServer {
            child: None,
            port,
            dir,
            appendonly,
            tls: false,
        };
        s.spawn();
        s
    }

    /// Starts one that speaks only TLS, with a certificate for `127.0.0.1`
    /// and `localhost` signed by a fresh private CA (both made with the
    /// `openssl` command, in the server's directory as `ca.pem` and
    /// `cert.pem`). Returns it and the CA certificate (PEM), which a client
    /// must trust.
    pub fn start_tls() -> (Self, Vec<u8>) {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("bananas-redis-{port}-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .expect("extensions file");
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=bananas test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "server.csr",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "cert.pem",
            ],
        ];
        for args in steps {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run openssl (is it installed?)");
            assert!(status.success(), "openssl {args:?} failed");
        }
        let cert = std::fs::read(dir.join("ca.pem")).expect("CA certificate");
        let mut s = RedisServer {
            child: None,
            port,
            dir,
            appendonly: false,
            tls: true,
        };
        s.spawn();
        (s, cert)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        if self.tls {
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(self.dir.join("cert.pem"))
                .arg("--tls-key-file")
                .arg(self.dir.join("key.pem"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &self.port.to_string()]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.tls {
            // It keeps nothing on disk: listening means ready.
            return;
        }
        // Wait until it has loaded its data and answers.
        let client = redis::Client::open(self.url()).expect("url");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = client.get_connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
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
