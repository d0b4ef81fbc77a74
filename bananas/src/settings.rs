//! [`Settings`] of an app, read from the environment, and the parsers
//! they share with broker URLs.

use std::{
    fmt,
    net::{SocketAddr, ToSocketAddrs},
    time::Duration,
};

use bananas_core::url::redact;

use crate::{job::Route, rules, worker::WorkerConfig, Error, Result};

/// Settings of an [`App`], usually read from the environment by [`run`].
///
/// [`App`]: crate::App
/// [`run`]: crate::app::run
///
/// Its `Debug` output hides secrets: the password in the broker URL and
/// the API token.
#[derive(Clone)]
pub struct Settings {
    /// `BANANAS_URL`: the broker. Default `memory://`.
    pub url: String,
    /// The worker's settings (`WORKER_CONCURRENCY`, `WORKER_ROUTING_KEYS`,
    /// `WORKER_SHUTDOWN_TIMEOUT`).
    pub worker: WorkerConfig,
    /// Whether this app hosts the scheduler of periodic tasks (default yes;
    /// `BANANAS_SCHEDULER=0` turns it off).
    pub scheduler: bool,
    /// Whether this app runs a worker at all (default yes).
    pub worker_enabled: bool,
    /// `BANANAS_HTTP_ADDR`: serve the HTTP API here (feature `http`).
    pub http_addr: Option<SocketAddr>,
    /// `BANANAS_API_TOKEN`: the bearer token the HTTP API requires.
    pub api_token: Option<String>,
    /// `BANANAS_METRICS_ADDR`: serve Prometheus metrics here (feature `http`).
    pub metrics_addr: Option<SocketAddr>,
    /// `BANANAS_HTTP_BODY_LIMIT`: the largest request body the HTTP API
    /// takes, in bytes (default 1 MiB).
    pub http_body_limit: Option<usize>,
    /// `BANANAS_HTTP_ALLOW_NEW_ROUTES`: whether `POST /jobs` may submit to
    /// a route no task declares, no worker serves and the broker never saw
    /// (default no: 422). See `docs/HTTP.md`.
    pub http_allow_new_routes: bool,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &redact(&self.url))
            .field("worker", &self.worker)
            .field("scheduler", &self.scheduler)
            .field("worker_enabled", &self.worker_enabled)
            .field("http_addr", &self.http_addr)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("metrics_addr", &self.metrics_addr)
            .field("http_body_limit", &self.http_body_limit)
            .field("http_allow_new_routes", &self.http_allow_new_routes)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            url: "memory://".to_owned(),
            worker: WorkerConfig::default(),
            scheduler: true,
            worker_enabled: true,
            http_addr: None,
            api_token: None,
            metrics_addr: None,
            http_body_limit: None,
            http_allow_new_routes: false,
        }
    }
}

impl Settings {
    /// Reads the settings from the environment, failing with an error that
    /// names the variable when one is invalid.
    pub fn from_env() -> Result<Self> {
        let mut s = Settings::default();
        if let Some(url) = env("BANANAS_URL") {
            s.url = url;
        }
        if let Some(v) = env("WORKER_CONCURRENCY") {
            s.worker.concurrency = v.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
                Error::setting(
                    "WORKER_CONCURRENCY",
                    format!("`{v}`: expected a positive integer"),
                )
            })?;
        }
        if let Some(v) = env("WORKER_ROUTING_KEYS") {
            s.worker.routes = parse_routes(&v)
                .map_err(|e| Error::setting("WORKER_ROUTING_KEYS", format!("`{v}`: {e}")))?;
        }
        if let Some(v) = env("WORKER_SHUTDOWN_TIMEOUT") {
            s.worker.shutdown_timeout = rules::parse_secs_in(&v, Duration::ZERO, rules::MAX_WAIT)
                .map_err(|e| {
                Error::setting("WORKER_SHUTDOWN_TIMEOUT", format!("`{v}`: {e}"))
            })?;
        }
        if let Some(v) = env("WORKER_PREFETCH") {
            let n = v.parse().map_err(|_| {
                Error::setting("WORKER_PREFETCH", format!("`{v}`: expected how many jobs to hold beyond the concurrency, like `0` or `80`"))
            })?;
            s.worker.prefetch = Some(n);
        }
        if let Some(v) = env("WORKER_LEASE") {
            let lease = rules::parse_secs_in(&v, Duration::from_millis(1), rules::MAX_WAIT)
                .map_err(|e| Error::setting("WORKER_LEASE", format!("`{v}`: {e}")))?;
            s.worker.lease = lease;
            s.worker.recover_interval =
                (lease / 2).clamp(Duration::from_millis(100), s.worker.recover_interval);
        }
        if let Some(v) = env("WORKER_CLAIM") {
            s.worker.claim = rules::parse_secs_in(&v, Duration::from_millis(1), rules::MAX_WAIT)
                .map_err(|e| Error::setting("WORKER_CLAIM", format!("`{v}`: {e}")))?;
        }
        if let Some(v) = env("WORKER_MAX_LOST") {
            s.worker.max_lost = v
                .parse::<u64>()
                .ok()
                .and_then(rules::retries_in_range)
                .ok_or_else(|| {
                    Error::setting(
                        "WORKER_MAX_LOST",
                        format!(
                            "`{v}`: expected how often a job may be taken back from a lost worker, from 0 to {}",
                            rules::MAX_RETRIES
                        ),
                    )
                })?;
        }
        if let Some(v) = env("BANANAS_SCHEDULER") {
            s.scheduler = !matches!(v.as_str(), "0" | "false" | "off" | "no");
        }
        s.http_addr = env_addr("BANANAS_HTTP_ADDR")?;
        s.metrics_addr = env_addr("BANANAS_METRICS_ADDR")?;
        s.api_token = env("BANANAS_API_TOKEN");
        if let Some(v) = env("BANANAS_HTTP_BODY_LIMIT") {
            let n = v.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
                Error::setting(
                    "BANANAS_HTTP_BODY_LIMIT",
                    format!("`{v}`: expected a positive number of bytes"),
                )
            })?;
            s.http_body_limit = Some(n);
        }
        if let Some(v) = env("BANANAS_HTTP_ALLOW_NEW_ROUTES") {
            s.http_allow_new_routes = parse_switch(&v).map_err(|e| {
                Error::setting("BANANAS_HTTP_ALLOW_NEW_ROUTES", format!("`{v}`: {e}"))
            })?;
        }
        Ok(s)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_addr(name: &str) -> Result<Option<SocketAddr>> {
    let Some(v) = env(name) else { return Ok(None) };
    let addr = v
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            Error::setting(
                name,
                format!("`{v}`: expected an address to listen on, like `0.0.0.0:8080`"),
            )
        })?;
    Ok(Some(addr))
}

/// Parses an on/off value: `1`, `true`, `yes`, `on` or `0`, `false`, `no`,
/// `off` (any case). Anything else is an error, so a typo does not silently
/// pick one.
pub fn parse_switch(v: &str) -> std::result::Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected `true` or `false` (or 1/0, yes/no, on/off)".to_owned()),
    }
}

/// Parses a comma-separated list of routes, like `gpu,default`.
pub fn parse_routes(v: &str) -> Result<Vec<Route>> {
    let routes = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Route::new)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if routes.is_empty() {
        return Err(Error::Invalid("no routes given".to_owned()));
    }
    Ok(routes)
}
