//! Settings of the Redis broker and how its URL is read.

use std::time::Duration;

use bananas_core::{Error, Result};

use crate::RedisBroker;

/// Settings of a [`RedisBroker`], built with [`RedisBroker::builder`].
///
/// ```no_run
/// # async fn demo() -> bananas_core::Result<()> {
/// use std::time::Duration;
/// use bananas_redis::RedisBroker;
///
/// let broker = RedisBroker::builder("redis://127.0.0.1:6379")
///     .prefix("myapp")
///     .result_ttl(Duration::from_secs(3600))
///     .connect()
///     .await?;
/// # let _ = broker; Ok(()) }
/// ```
///
/// Its `Debug` output shows the URL without its password.
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) result_ttl: Duration,
    pub(crate) failure_ttl: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) promote_batch: usize,
    pub(crate) recover_batch: usize,
    /// The most bytes of job specs one fetch returns.
    pub(crate) fetch_max_bytes: usize,
    /// PEM certificates of the CA(s) a `rediss://` server's certificate
    /// must chain to, instead of the webpki roots.
    pub(crate) tls_ca: Option<Vec<u8>>,
    /// Whether enqueues write the id → route index.
    pub(crate) id_index: bool,
    /// Whether a server that may evict keys is refused at connect time.
    pub(crate) require_noeviction: bool,
    /// Whether succeeded jobs with a result are indexed for listing.
    pub(crate) index_succeeded: bool,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("result_ttl", &self.result_ttl)
            .field("failure_ttl", &self.failure_ttl)
            .field("response_timeout", &self.response_timeout)
            .field("promote_batch", &self.promote_batch)
            .field("recover_batch", &self.recover_batch)
            .field("fetch_max_bytes", &self.fetch_max_bytes)
            .field("tls_ca", &self.tls_ca.as_ref().map(|pem| pem.len()))
            .field("id_index", &self.id_index)
            .field("require_noeviction", &self.require_noeviction)
            .field("index_succeeded", &self.index_succeeded)
            .finish()
    }
}

impl RedisConfig {
    /// Default settings for `url`.
    ///
    /// `url` is anything redis-rs reads (`redis://host:port/db`,
    /// `rediss://…` with the `tls` feature, `redis://user:pass@host`), or a
    /// Redis Cluster as `redis+cluster://host1:port1,host2:port2,…`
    /// (`rediss+cluster://` for TLS; credentials go before the first host).
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: "bananas".to_owned(),
            result_ttl: Duration::from_secs(24 * 3600),
            failure_ttl: Duration::from_secs(7 * 24 * 3600),
            response_timeout: Duration::from_secs(10),
            promote_batch: 1000,
            recover_batch: 1000,
            fetch_max_bytes: 16 << 20,
            tls_ca: None,
            id_index: true,
            require_noeviction: false,
            index_succeeded: true,
        }
    }

    /// The prefix of every key (default `bananas`). It may not contain
    /// `{`, `}` or whitespace.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long the result of a succeeded job is kept (default 24 hours;
    /// from 1 ms to 10 years, [`bananas_core::rules::MAX_TTL`]: `connect`
    /// refuses others).
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// How long a dead job is kept in the dead letter (default 7 days;
    /// from 1 ms to 10 years).
    pub fn failure_ttl(mut self, ttl: Duration) -> Self {
        self.failure_ttl = ttl;
        self
    }

    /// How long a non-blocking command may take before it fails
    /// (default 10 s; from 1 ms to a day).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The most due scheduled jobs one fetch promotes, and the most expired
    /// leases one recovery script handles (default 1000 each).
    pub fn batch_limit(mut self, n: usize) -> Self {
        self.promote_batch = n.max(1);
        self.recover_batch = n.max(1);
        self
    }

    /// The most bytes of job data (arguments and options) one fetch
    /// returns (default 16 MiB). A fetch leases jobs until the next one
    /// would pass this, and always at least one: the reply stays bounded
    /// whatever the jobs weigh (without it, 90 jobs of 1 MiB came back in
    /// one reply), and a reply lost on the way costs only the jobs in it.
    pub fn fetch_max_bytes(mut self, bytes: usize) -> Self {
        self.fetch_max_bytes = bytes.max(1);
        self
    }

    /// Trusts the CA certificate(s) in `pem` for a `rediss://` server
    /// (a private CA, a self-signed server certificate) instead of the
    /// public webpki roots. Needs the `tls` feature; the server's
    /// certificate must name the host of the URL.
    pub fn tls_ca_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca = Some(pem.into());
        self
    }

    /// Whether to keep the id → route index (default on), which lets a
    /// lookup by a bare job id (`GET /jobs/{id}`, `bananas jobs show`,
    /// requeueing a dead job) ask one route instead of every route. It
    /// costs about 70 bytes of Redis memory per enqueued job, kept for the
    /// longer of the result and failure TTLs plus a day, whether or not the
    /// job keeps a result (see docs/REDIS.md); without it such lookups cost
    /// one script call per route.
    pub fn id_index(mut self, on: bool) -> Self {
        self.id_index = on;
        self
    }

    /// Whether to refuse to connect to a Redis whose `maxmemory-policy` is
    /// not `noeviction` (default off: the broker connects and logs a loud
    /// warning naming the policy). Any other policy lets a Redis at
    /// `maxmemory` delete Bananas' keys (results, dead-letter records,
    /// waiter lists and, for `allkeys-*`, queues and lease sets), and jobs
    /// get stuck or lost; see "Running Redis" in docs/REDIS.md. On, the
    /// connect fails with [`Error::Config`] naming the policy. The policy
    /// is read with `CONFIG GET`, or from `INFO memory` where `CONFIG` is
    /// not allowed; if neither answers, the broker connects. In a
    /// `BANANAS_URL`: `?require_noeviction=true`.
    pub fn require_noeviction(mut self, on: bool) -> Self {
        self.require_noeviction = on;
        self
    }

    /// Whether to index the succeeded jobs whose result is kept in
    /// `{P:R}:done` (default on), which lets `Browse` list them
    /// (`GET /jobs?state=succeeded`, the dashboard). It costs each such
    /// job a sorted-set entry for the result TTL: about 136 bytes, and
    /// about 2–4 µs of Redis CPU at acknowledgement (measured: the drain
    /// with stored results ran about 19 % slower with it, see
    /// docs/PERFORMANCE.md). Off, succeeded jobs are not listed (each is
    /// still found by id) and acknowledgements cost what they did before.
    pub fn index_succeeded(mut self, on: bool) -> Self {
        self.index_succeeded = on;
        self
    }

    /// Connects with these settings.
    pub async fn connect(self) -> Result<RedisBroker> {
        RedisBroker::with_config(self).await
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let p = &self.prefix;
        if p.is_empty() || p.contains(['{', '}']) || p.contains(char::is_whitespace) {
            return Err(Error::Config(format!(
                "invalid Redis key prefix `{p}`: it must be non-empty, without `{{`, `}}` or whitespace"
            )));
        }
        if self.url.contains("tls_ca=") {
            return Err(Error::Config(
                "`tls_ca` in the URL is read by bananas::connect::connect_broker (BANANAS_URL); \
                 with RedisBroker::builder, pass the PEM with `.tls_ca_cert(…)`"
                    .into(),
            ));
        }
        if let Some(pem) = &self.tls_ca {
            if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::Config(
                    "the TLS CA holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into(),
                ));
            }
            if !cfg!(feature = "tls") {
                return Err(Error::Config(
                    "a TLS CA certificate needs the `tls` feature of bananas-redis (or of bananas)"
                        .into(),
                ));
            }
            if !self.url.starts_with("rediss://") && !self.url.starts_with("rediss+cluster://") {
                return Err(Error::Config(format!(
                    "a TLS CA certificate was given but `{}` is not a rediss:// URL",
                    redact(&self.url)
                )));
            }
        }
        use bananas_core::rules::{check_duration, MAX_TTL, MAX_WAIT, MIN_TTL};
        for (name, d, max) in [
            ("result_ttl", self.result_ttl, MAX_TTL),
            ("failure_ttl", self.failure_ttl, MAX_TTL),
            ("response_timeout", self.response_timeout, MAX_WAIT),
        ] {
            check_duration(d, MIN_TTL, max)
                .map_err(|e| Error::Config(format!("Redis `{name}` ({d:?}): {e}")))?;
        }
        Ok(())
    }
}

/// The URL without its password, for messages (the one copy lives in
/// `bananas-core`).
pub(crate) use bananas_core::url::redact;

/// Where to connect: one server, or the seed nodes of a cluster.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Single(String),
    Cluster(Vec<String>),
}

/// Reads `redis+cluster://[user:pass@]h1:p1,h2:p2` into per-node URLs;
/// anything else is left to redis-rs.
pub(crate) fn parse_endpoint(url: &str) -> Result<Endpoint> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        ("redis", rest)
    } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
        ("rediss", rest)
    } else {
        return Ok(Endpoint::Single(url.to_owned()));
    };
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let hosts = hosts.trim_end_matches('/');
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("{scheme}://{auth}{h}"))
        .collect();
    if nodes.is_empty() || hosts.contains('/') {
        return Err(Error::Config(format!(
            "invalid Redis Cluster URL `{url}`: expected redis+cluster://host1:port1,host2:port2,..."
        )));
    }
    Ok(Endpoint::Cluster(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_become_node_lists() {
        assert_eq!(
            parse_endpoint("redis+cluster://a:1,b:2").unwrap(),
            Endpoint::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert_eq!(
            parse_endpoint("rediss+cluster://u:p@a:1,b:2/").unwrap(),
            Endpoint::Cluster(vec!["rediss://u:p@a:1".into(), "rediss://u:p@b:2".into()])
        );
        assert!(parse_endpoint("redis+cluster://").is_err());
        assert_eq!(
            parse_endpoint("redis://h:1/2").unwrap(),
            Endpoint::Single("redis://h:1/2".into())
        );
    }

    #[test]
    fn bad_prefixes_are_rejected() {
        assert!(RedisConfig::new("redis://x")
            .prefix("a{b")
            .validate()
            .is_err());
        assert!(RedisConfig::new("redis://x").prefix("").validate().is_err());
        assert!(RedisConfig::new("redis://x")
            .prefix("bt-1")
            .validate()
            .is_ok());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let shown = format!(
            "{:?}",
            RedisConfig::new("redis://app:s3cret@127.0.0.1:6379/0")
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("127.0.0.1:6379"), "{shown}");
    }
}
