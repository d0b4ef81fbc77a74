//! The Redis and Redis Cluster broker for Bananas.
//!
//! [`RedisBroker`] implements [`bananas_core::Broker`] and every capability
//! trait on one Redis server or a Redis Cluster. Every state transition is
//! one atomic Lua script (`lua/ops/*.lua`, helpers from `lua/include/`),
//! every route's keys share one hash tag so each script touches one cluster
//! slot, every key a script touches is in its KEYS, and enqueue, fetch and
//! ack each cost one round trip per batch. `docs/REDIS.md` lists every key.
//!
//! The crate, from the bottom up: `config` (settings, URLs), `conn`
//! (connections, errors), `eviction` (the server's `maxmemory-policy`,
//! checked at connect), `keys` (the key layout), `codec` (the stored
//! encodings, decoded only there), `value` (reading replies), `lua` (the
//! include mechanism), `script` (typed script calls) and `ops` (one module
//! per operation).
//!
//! ```no_run
//! # async fn demo() -> bananas_core::Result<()> {
//! use bananas_core::Broker;
//! use bananas_redis::RedisBroker;
//!
//! // One server; or "redis+cluster://127.0.0.1:7000,127.0.0.1:7001".
//! let broker = RedisBroker::connect("redis://127.0.0.1:6379").await?;
//! broker.ping().await?;
//!
//! // With settings: a key prefix of its own, results kept for an hour.
//! let broker = RedisBroker::builder("redis://127.0.0.1:6379")
//!     .prefix("myapp")
//!     .result_ttl(std::time::Duration::from_secs(3600))
//!     .connect()
//!     .await?;
//! # let _ = broker; Ok(()) }
//! ```
//!
//! Requires Redis 6.2 or later (`LPOP` with a count, `ZMSCORE`).

mod codec;
mod config;
mod conn;
mod eviction;
mod keys;
mod lua;
mod ops;
mod script;
mod value;

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
};

use bananas_core::{Result, Route};
use redis::AsyncCommands as _;

pub use config::RedisConfig;

use crate::{
    config::{parse_endpoint, redact, Endpoint},
    conn::{broker_err, BlockPool, Conn},
    keys::{GlobalKeys, RouteKeys},
    ops::{IdIndex, LeaseTokens, SCRIPTS},
    script::Scripts,
};

/// A [`Broker`](bananas_core::Broker) on Redis or Redis Cluster.
///
/// Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: RedisConfig,
    cluster: bool,
    conn: Conn,
    blocking: BlockPool,
    scripts: Scripts,
    global: GlobalKeys,
    /// Routes this process has registered in `{P}:routes`, with their keys.
    routes: Mutex<HashMap<String, Arc<RouteKeys>>>,
    /// The recovery epochs behind the lease tokens this broker handed out.
    tokens: LeaseTokens,
    /// The id → route index's buckets.
    index: IdIndex,
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("url", &redact(&self.inner.cfg.url))
            .field("prefix", &self.inner.cfg.prefix)
            .field("cluster", &self.inner.cluster)
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// Connects with default settings (see [`RedisConfig::new`] for the URL
    /// forms).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::with_config(RedisConfig::new(url)).await
    }

    /// Settings to adjust before [`RedisConfig::connect`].
    pub fn builder(url: &str) -> RedisConfig {
        RedisConfig::new(url)
    }

    /// Connects with `cfg`.
    pub async fn with_config(cfg: RedisConfig) -> Result<Self> {
        cfg.validate()?;
        let endpoint = parse_endpoint(&cfg.url)?;
        let cluster = matches!(endpoint, Endpoint::Cluster(_));
        let (conn, blocking) =
            conn::open(&endpoint, cfg.response_timeout, cfg.tls_ca.as_deref()).await?;
        let global = GlobalKeys::new(&cfg.prefix);
        eviction::check(&conn, &redact(&cfg.url), cfg.require_noeviction).await?;
        let scripts = Scripts::new(SCRIPTS);
        scripts.init(&conn).await;
        Ok(RedisBroker {
            inner: Arc::new(Inner {
                index: IdIndex::new(&cfg),
                cfg,
                cluster,
                conn,
                blocking,
                scripts,
                global,
                routes: Mutex::new(HashMap::new()),
                tokens: LeaseTokens::default(),
            }),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.cfg.prefix
    }

    /// The keys of `route`, registering the route in `{P}:routes` the first
    /// time this process uses it.
    async fn route_keys(&self, route: &Route) -> Result<Arc<RouteKeys>> {
        if let Some(k) = self.lock_routes().get(route.as_str()) {
            return Ok(k.clone());
        }
        let mut conn = self.inner.conn.clone();
        let _: i64 = conn
            .sadd(&self.inner.global.routes, route.as_str())
            .await
            .map_err(broker_err)?;
        let keys = Arc::new(RouteKeys::new(&self.inner.cfg.prefix, route.as_str()));
        self.lock_routes()
            .insert(route.as_str().to_owned(), keys.clone());
        Ok(keys)
    }

    fn lock_routes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<RouteKeys>>> {
        self.inner.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys of `route`, without registering it.
    fn keys_of(&self, route: &Route) -> Arc<RouteKeys> {
        self.lock_routes()
            .get(route.as_str())
            .cloned()
            .unwrap_or_else(|| Arc::new(RouteKeys::new(&self.inner.cfg.prefix, route.as_str())))
    }

    /// Every route in `{P}:routes`, and every route this process has used,
    /// with its keys. The registry may have lost routes this process still
    /// knows (a restart without persistence); workers register their routes
    /// again with each heartbeat.
    async fn known_routes(&self) -> Result<Vec<(Route, Arc<RouteKeys>)>> {
        let mut conn = self.inner.conn.clone();
        let mut names: Vec<String> = conn
            .smembers(&self.inner.global.routes)
            .await
            .map_err(broker_err)?;
        names.extend(self.lock_routes().keys().cloned());
        names.sort();
        names.dedup();
        Ok(names
            .into_iter()
            .filter_map(|n| Route::new(n).ok())
            .map(|r| {
                let keys = self.keys_of(&r);
                (r, keys)
            })
            .collect())
    }
}
