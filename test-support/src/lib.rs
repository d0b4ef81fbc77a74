//! The test harness of the Bananas workspace (dev-only, not published):
//! private `redis-server` processes and Redis Clusters on free loopback
//! ports, a key prefix per test on the shared server with its keys deleted
//! afterwards, and waiting for a condition with a deadline.
//!
//! ```
//! use bananas_test_support::{KeySpace, RedisServer};
//!
//! // A private server on a free 127.0.0.1 port, killed when dropped.
//! let server = RedisServer::start();
//! assert_eq!(server.cli(&["ping"]).trim(), "PONG");
//!
//! // A key prefix of this test's own; its keys go away with it.
//! let space = KeySpace::new(&server.url(), "doc");
//! server.cli(&["set", &format!("{{{}}}:k", space.prefix()), "1"]);
//! assert_eq!(space.keys().len(), 1);
//! drop(space);
//! assert_eq!(server.cli(&["dbsize"]).trim(), "0");
//! ```
//!
//! It needs `redis-server` and `redis-cli` on the `PATH`, and `openssl` for
//! a TLS server. It depends on no Bananas crate, so any crate of the
//! workspace can use it; helpers typed to a broker stay with their tests.
//!
//! Tests never `FLUSHALL` or `FLUSHDB` a server they did not start:
//! [`KeySpace`] deletes by SCAN under its own prefix.

mod cluster;
mod keys;
mod raw;
mod server;
mod wait;

use std::{net::TcpListener, path::PathBuf};

pub use cluster::RedisCluster;
pub use keys::{unique_prefix, KeySpace};
pub use raw::Raw;
pub use server::{RedisServer, RedisServerBuilder};
pub use wait::eventually;

/// The shared Redis the tests use: `REDIS_URL`, or `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A new, empty directory under the system's temp dir, named after `name`
/// and unique; the caller removes it.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_prefix(name));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}
