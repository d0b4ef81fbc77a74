//! Broker URLs: Bananas' own query parameters ([`UrlOptions`]) and the
//! dispatch from a URL to a broker ([`connect_broker`]).

use std::{path::PathBuf, sync::Arc, time::Duration};

use crate::{
    broker::{AnyBroker, MemoryBroker},
    rules,
    settings::parse_switch,
    Error, Result,
};

pub use bananas_core::url::redact;

/// Connects to the broker named by `url`.
///
/// Bananas' own query parameters are taken out of the URL before it reaches
/// the broker: `prefix` (Redis key prefix, default `bananas`),
/// `result_ttl` / `failure_ttl` (seconds results of succeeded and dead jobs
/// are kept; defaults one day and seven days), `tls_ca` (a PEM file) and
/// `require_noeviction` (`true` refuses a Redis whose `maxmemory-policy`
/// may evict keys; the memory broker never evicts), as in
/// `redis://host:6379/0?prefix=myapp&result_ttl=3600`.
pub async fn connect_broker(url: &str) -> Result<AnyBroker> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    let opts = UrlOptions::parse(url)?;
    match scheme {
        "memory" => {
            if opts.tls_ca.is_some() {
                return Err(Error::broker_config(
                    "`tls_ca` is a Redis setting; memory:// has no connection",
                ));
            }
            let mut ttls = crate::broker::memory::Ttls::default();
            if let Some(t) = opts.result_ttl {
                ttls.success = t;
            }
            if let Some(t) = opts.failure_ttl {
                ttls.failure = t;
            }
            Ok(AnyBroker::full(Arc::new(MemoryBroker::with_ttls(ttls))))
        }
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => {
            let mut config = bananas_redis::RedisBroker::builder(&opts.url);
            if let Some(prefix) = opts.prefix {
                config = config.prefix(prefix);
            }
            if let Some(t) = opts.result_ttl {
                config = config.result_ttl(t);
            }
            if let Some(t) = opts.failure_ttl {
                config = config.failure_ttl(t);
            }
            if let Some(on) = opts.require_noeviction {
                config = config.require_noeviction(on);
            }
            if let Some(path) = &opts.tls_ca {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::broker_config(format!(
                        "broker URL `{}`: cannot read `tls_ca` file {}: {e}",
                        redact(url),
                        path.display()
                    ))
                })?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(Error::broker_config(format!(
                        "broker URL `{}`: `tls_ca` file {} holds no PEM certificate",
                        redact(url),
                        path.display()
                    )));
                }
                config = config.tls_ca_cert(pem);
            }
            Ok(AnyBroker::full(Arc::new(config.connect().await?)))
        }
        #[cfg(not(feature = "redis"))]
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => Err(Error::broker_config(format!(
            "BANANAS_URL `{}` needs the Redis broker: enable the `redis` feature of `bananas`",
            redact(url)
        ))),
        _ => Err(Error::broker_config(format!(
            "unsupported broker URL `{}`: expected memory://, redis://, rediss:// or redis+cluster://",
            redact(url)
        ))),
    }
}

/// Bananas' query parameters of a broker URL, and the URL without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlOptions {
    /// The URL for the broker itself.
    pub url: String,
    /// `prefix`: the Redis key prefix.
    pub prefix: Option<String>,
    /// `result_ttl`: how long results of succeeded jobs are kept.
    pub result_ttl: Option<Duration>,
    /// `failure_ttl`: how long dead jobs are kept.
    pub failure_ttl: Option<Duration>,
    /// `tls_ca`: a PEM file of the CA(s) a `rediss://` server's certificate
    /// must chain to (feature `tls`).
    pub tls_ca: Option<PathBuf>,
    /// `require_noeviction`: refuse a Redis whose `maxmemory-policy` is not
    /// `noeviction`.
    pub require_noeviction: Option<bool>,
}

impl UrlOptions {
    /// Splits Bananas' parameters off `url`, failing with an error that
    /// names a bad value.
    pub fn parse(url: &str) -> Result<Self> {
        let mut opts = UrlOptions {
            url: url.to_owned(),
            prefix: None,
            result_ttl: None,
            failure_ttl: None,
            tls_ca: None,
            require_noeviction: None,
        };
        // A fragment (`#…`) follows the query; it stays on the URL.
        let (url_only, fragment) = match url.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (url, None),
        };
        let Some((base, query)) = url_only.split_once('?') else {
            return Ok(opts);
        };
        let bad =
            |what: &str| Error::broker_config(format!("broker URL `{}`: {what}", redact(url)));
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("prefix", "")) => return Err(bad("`prefix` must not be empty")),
                Some(("prefix", v)) => opts.prefix = Some(v.to_owned()),
                Some(("tls_ca", "")) => return Err(bad("`tls_ca` must name a PEM file")),
                Some(("tls_ca", v)) => opts.tls_ca = Some(PathBuf::from(v)),
                Some(("require_noeviction", v)) => {
                    let on = parse_switch(v)
                        .map_err(|e| bad(&format!("`require_noeviction={v}`: {e}")))?;
                    opts.require_noeviction = Some(on);
                }
                Some((k @ ("result_ttl" | "failure_ttl"), v)) => {
                    let ttl = rules::parse_secs_in(v, rules::MIN_TTL, rules::MAX_TTL)
                        .map_err(|e| bad(&format!("`{k}={v}`: {e}")))?;
                    if k == "result_ttl" {
                        opts.result_ttl = Some(ttl);
                    } else {
                        opts.failure_ttl = Some(ttl);
                    }
                }
                _ => rest.push(pair),
            }
        }
        opts.url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        if let Some(f) = fragment {
            opts.url = format!("{}#{f}", opts.url);
        }
        Ok(opts)
    }
}
