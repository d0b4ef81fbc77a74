//! A key prefix per test, and its keys deleted when the test ends.

use std::time::Duration;

/// A key prefix no other test uses: `bt-<test>-<10 random hex digits>`.
pub fn unique_prefix(test: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    // The tail of a v7 UUID is random (the head is the clock).
    format!("bt-{test}-{}", &id[id.len() - 10..])
}

/// One test's own key prefix on a server. When dropped, it deletes every
/// key whose name contains the prefix, found with SCAN and removed with DEL
/// (never KEYS, FLUSHDB or FLUSHALL), so it is safe on a shared server.
///
/// For one server (`redis://`, `rediss://`), not a cluster: a private
/// [`RedisCluster`](crate::RedisCluster) goes away as a whole instead.
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

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url.as_str())?.get_connection_with_timeout(Duration::from_secs(5))
    }

    fn try_keys(&self) -> redis::RedisResult<Vec<String>> {
        scan(&mut self.connect()?, &self.prefix)
    }

    fn try_delete(&self) -> redis::RedisResult<()> {
        let mut con = self.connect()?;
        let keys = scan(&mut con, &self.prefix)?;
        for chunk in keys.chunks(500) {
            redis::cmd("DEL").arg(chunk).exec(&mut con)?;
        }
        Ok(())
    }
}

impl Drop for KeySpace {
    fn drop(&mut self) {
        self.delete_keys();
    }
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
