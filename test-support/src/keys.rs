//! A key prefix per test, and its keys deleted when the test ends.

use std::time::Duration;

/// A key prefix no other test uses: `bt-<test>-<10 random hex digits>`.
pub fn unique_prefix(test: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    // The tail of a v7 UUID is random (the head is the clock).
    format!("bt-{test}-{}", &id[id.len() - 10..])
}

/// One test's own key prefix on a server or a cluster. When dropped, it
/// deletes every key whose name contains the prefix, found with SCAN and
/// removed with DEL (never KEYS, FLUSHDB or FLUSHALL), so it is safe on a
/// shared server.
///
/// The URL names one server (`redis://`, `rediss://`) or, as Bananas spells
/// it, a cluster without TLS (`redis+cluster://h1:p1,h2:p2`, every master
/// listed, as [`RedisCluster::url`](crate::RedisCluster::url) gives it):
/// then each node is scanned and its keys deleted one by one.
#[derive(Debug)]
pub struct KeySpace {
    url: String,
    prefix: String,
}

impl KeySpace {
    /// A fresh prefix for test `test` on the server at `url`
    /// ([`unique_prefix`]).
    pub fn new(url: &str, test: &str) -> Self {
        KeySpace {
            url: url.to_owned(),
            prefix: unique_prefix(test),
        }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every key whose name contains the prefix, sorted. Panics if the
    /// server cannot be asked, so a check on it never passes vacuously.
    pub fn keys(&self) -> Vec<String> {
        self.try_keys()
            .unwrap_or_else(|e| panic!("SCAN for {} on {}: {e}", self.prefix, self.url))
    }

    /// Deletes every key whose name contains the prefix, now. Errors are
    /// ignored: this is cleanup, and the keys carry a test prefix.
    pub fn delete_keys(&self) {
        let _ = self.try_delete();
    }

    /// The servers to scan: the one server, or each node of a cluster.
    fn nodes(&self) -> Vec<String> {
        match self.url.strip_prefix("redis+cluster://") {
            Some(hosts) => hosts.split(',').map(|h| format!("redis://{h}")).collect(),
            None => vec![self.url.clone()],
        }
    }

    fn cluster(&self) -> bool {
        self.url.starts_with("redis+cluster://")
    }

    fn try_keys(&self) -> redis::RedisResult<Vec<String>> {
        let mut all = Vec::new();
        for node in self.nodes() {
            all.extend(scan(&mut connect(&node)?, &self.prefix)?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    fn try_delete(&self) -> redis::RedisResult<()> {
        for node in self.nodes() {
            let mut con = connect(&node)?;
            let keys = scan(&mut con, &self.prefix)?;
            if keys.is_empty() {
                continue;
            }
            if self.cluster() {
                // A node refuses a DEL of keys in different slots.
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("DEL").arg(k).ignore();
                }
                pipe.exec(&mut con)?;
            } else {
                for chunk in keys.chunks(500) {
                    redis::cmd("DEL").arg(chunk).exec(&mut con)?;
                }
            }
        }
        Ok(())
    }
}

impl Drop for KeySpace {
    fn drop(&mut self) {
        self.delete_keys();
    }
}

fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(5))
}

/// The keys whose name contains `prefix`, with SCAN; sorted.
fn scan(con: &mut redis::Connection, prefix: &str) -> redis::RedisResult<Vec<String>> {
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
            .query(con)?;
        all.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    // SCAN may return a key twice.
    all.sort();
    all.dedup();
    Ok(all)
}
