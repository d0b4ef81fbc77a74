//! Connections: one shared multiplexed connection for ordinary commands and
//! a pool of dedicated connections for blocking pops.

use std::{sync::Mutex, time::Duration};

use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    AsyncConnectionConfig, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, Value,
};

use bananas_core::{Error, Result};

use crate::config::{redact, Endpoint};

/// Turns a Redis error into the broker error the runtime logs and backs
/// off on; the Redis error is its source.
pub(crate) fn broker_err(e: RedisError) -> Error {
    classify(format!("redis: {e}"), e)
}

/// [`broker_err`] for a failed call of the script `name`.
pub(crate) fn script_err(name: &str, e: RedisError) -> Error {
    classify(format!("redis: script `{name}`: {e}"), e)
}

/// Unreachable, or in a passing state a retry waits out (loading its data,
/// a failover, a slot migration: `LOADING`, `MASTERDOWN`, `CLUSTERDOWN`,
/// `TRYAGAIN`, `READONLY`), is [`Error::Unavailable`]: callers retry it
/// (the worker's acker does not give up on such a batch). Anything else is
/// [`Error::Backend`].
fn classify(message: String, e: RedisError) -> Error {
    let passing = matches!(
        e.retry_method(),
        redis::RetryMethod::WaitAndRetry | redis::RetryMethod::RefreshSlotsAndRetry
    );
    if passing
        || e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
    {
        Error::unavailable(message, e)
    } else {
        Error::backend(message, e)
    }
}

/// The Redis error a broker error came from, if any.
pub(crate) fn redis_source(e: &Error) -> Option<&RedisError> {
    std::error::Error::source(e)?.downcast_ref::<RedisError>()
}

/// The shared connection: it reconnects by itself after a restart or a
/// killed connection (the command in flight fails; the next one succeeds).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Whether this is a Redis Cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection used by one blocking call at a time.
pub(crate) enum BlockConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl BlockConn {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            BlockConn::Single(c) => cmd.query_async(c).await,
            BlockConn::Cluster(c) => cmd.query_async(c).await,
        }
    }

    async fn query_pipe<T: FromRedisValue>(&mut self, pipe: &Pipeline) -> RedisResult<T> {
        match self {
            BlockConn::Single(c) => pipe.query_async(c).await,
            BlockConn::Cluster(c) => pipe.query_async(c).await,
        }
    }
}

enum Source {
    Single(Box<redis::Client>),
    Cluster(Box<ClusterClient>),
}

/// Dedicated connections for blocking pops, kept for reuse. A connection
/// whose call failed or was abandoned is dropped, which closes it (and
/// unblocks it on the server).
pub(crate) struct BlockPool {
    source: Source,
    idle: Mutex<Vec<BlockConn>>,
    /// The response timeout of ordinary commands.
    response_timeout: Duration,
}

const POOL_KEEP: usize = 64;

impl BlockPool {
    async fn get(&self) -> Result<BlockConn> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(c);
        }
        match &self.source {
            Source::Single(client) => {
                let cfg = AsyncConnectionConfig::new()
                    .set_response_timeout(None)
                    .set_connection_timeout(Some(Duration::from_secs(2)));
                let c = client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await
                    .map_err(broker_err)?;
                Ok(BlockConn::Single(c))
            }
            Source::Cluster(client) => Ok(BlockConn::Cluster(
                client.get_async_connection().await.map_err(broker_err)?,
            )),
        }
    }

    fn put(&self, c: BlockConn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_KEEP {
            idle.push(c);
        }
    }

    /// `BLPOP keys… timeout` on a dedicated connection. Returns the popped
    /// value, or `None` on timeout.
    pub(crate) async fn blpop(&self, keys: &[&str], wait: Duration) -> Result<Option<Vec<u8>>> {
        let cmd = blpop_cmd(keys, wait);
        let v: Option<(Vec<u8>, Vec<u8>)> = self
            .blocking(wait, |conn| Box::pin(async move { conn.query(&cmd).await }))
            .await?;
        Ok(v.map(|(_, v)| v))
    }

    /// `BLPOP key timeout` and then the command `then` builds, sent in one
    /// write: a blocked client's next command waits in the server's input
    /// buffer and runs the moment the pop returns (a value or the timeout),
    /// with no round trip in between. `then` is called once the connection
    /// is ready, so a clock it reads is not older than the pop. Returns the
    /// command's reply. The local bound on the answer is `wait` plus the
    /// response timeout of ordinary commands, as the command may be one
    /// that must not lose its reply (a fetch that leased jobs).
    pub(crate) async fn blpop_then(
        &self,
        key: &str,
        wait: Duration,
        then: impl FnOnce() -> Result<Cmd>,
    ) -> Result<Value> {
        let mut conn = self.get().await?;
        let mut pipe = redis::pipe();
        pipe.add_command(blpop_cmd(&[key], wait))
            .ignore()
            .add_command(then()?);
        let guard = wait.saturating_add(self.response_timeout.max(Duration::from_secs(2)));
        let (v,): (Value,) = self
            .blocking_on(&mut conn, guard, |conn| {
                Box::pin(async move { conn.query_pipe(&pipe).await })
            })
            .await?;
        self.put(conn);
        Ok(v)
    }

    /// Runs `call`, which blocks on the server for up to `wait`, on a
    /// dedicated connection. The server answers by itself when `wait` is
    /// over; the local bound (2 s more) only guards against a connection
    /// that silently died. A connection whose call failed is dropped.
    async fn blocking<T>(
        &self,
        wait: Duration,
        call: impl for<'c> FnOnce(&'c mut BlockConn) -> RedisFuture<'c, T>,
    ) -> Result<T> {
        let mut conn = self.get().await?;
        let v = self
            .blocking_on(&mut conn, wait.saturating_add(Duration::from_secs(2)), call)
            .await?;
        self.put(conn);
        Ok(v)
    }

    /// `call` on `conn`, bounded by `guard`. On an error the caller drops
    /// the connection (which closes it and unblocks it on the server).
    async fn blocking_on<T>(
        &self,
        conn: &mut BlockConn,
        guard: Duration,
        call: impl for<'c> FnOnce(&'c mut BlockConn) -> RedisFuture<'c, T>,
    ) -> Result<T> {
        match tokio::time::timeout(guard, call(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(broker_err(e)),
            Err(_) => Err(Error::Unavailable {
                message: "redis: a blocking pop got no answer in time; the connection was dropped"
                    .into(),
                source: None,
            }),
        }
    }
}

fn blpop_cmd(keys: &[&str], wait: Duration) -> Cmd {
    let mut cmd = redis::cmd("BLPOP");
    cmd.arg(keys)
        .arg(wait.as_secs_f64().clamp(0.001, 365.0 * 86400.0));
    cmd
}

/// The client for one server, trusting `tls_ca` if given (validated
/// before: only with the `tls` feature).
fn single_client(url: &str, tls_ca: Option<&[u8]>) -> redis::RedisResult<redis::Client> {
    #[cfg(feature = "tls")]
    if let Some(pem) = tls_ca {
        return redis::Client::build_with_tls(url, tls_certs(pem));
    }
    let _ = tls_ca;
    redis::Client::open(url)
}

#[cfg(feature = "tls")]
fn tls_certs(pem: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    }
}

/// A cluster client builder for `nodes`, trusting `tls_ca` if given.
fn cluster_builder(nodes: &[String], tls_ca: Option<&[u8]>) -> ClusterClientBuilder {
    let builder = ClusterClientBuilder::new(nodes.to_vec());
    #[cfg(feature = "tls")]
    if let Some(pem) = tls_ca {
        return builder.certs(tls_certs(pem));
    }
    let _ = tls_ca;
    builder
}

/// Opens the shared connection and the blocking pool.
pub(crate) async fn open(
    endpoint: &Endpoint,
    response_timeout: Duration,
    tls_ca: Option<&[u8]>,
) -> Result<(Conn, BlockPool)> {
    // rustls needs a process-wide crypto provider. Install `ring` unless
    // the application installed one of its own (then this does nothing);
    // relying on crate features instead would panic in an application
    // whose dependencies enable both `ring` and `aws-lc-rs`.
    #[cfg(feature = "tls")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    match endpoint {
        Endpoint::Single(url) => {
            let client = single_client(url, tls_ca)
                .map_err(|e| Error::Config(format!("invalid Redis URL `{}`: {e}", redact(url))))?;
            let cfg = ConnectionManagerConfig::new()
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_max_delay(Duration::from_secs(2));
            let manager = client
                .get_connection_manager_with_config(cfg)
                .await
                .map_err(broker_err)?;
            let pool = BlockPool {
                source: Source::Single(Box::new(client)),
                idle: Mutex::new(Vec::new()),
                response_timeout,
            };
            Ok((Conn::Single(manager), pool))
        }
        Endpoint::Cluster(nodes) => {
            let shared = cluster_builder(nodes, tls_ca)
                .response_timeout(response_timeout)
                .connection_timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| Error::Config(format!("invalid Redis Cluster URL: {e}")))?;
            let conn = shared.get_async_connection().await.map_err(broker_err)?;
            let blocking = cluster_builder(nodes, tls_ca)
                .connection_timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| Error::Config(format!("invalid Redis Cluster URL: {e}")))?;
            let pool = BlockPool {
                source: Source::Cluster(Box::new(blocking)),
                idle: Mutex::new(Vec::new()),
                response_timeout,
            };
            Ok((Conn::Cluster(conn), pool))
        }
    }
}

/// Whether the error says the script is not cached on the server.
pub(crate) fn is_noscript(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

/// Whether the server answered with a plain `ERR` (no more specific code):
/// how a missing function, among other things, is reported.
pub(crate) fn is_plain_error(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that is loading its data or failing over answers for a
    /// while with errors a retry waits out: callers must retry them, not
    /// take them as a refusal (the worker's acker dead-letters the job of
    /// an acknowledgement the broker keeps refusing).
    #[test]
    fn passing_server_states_are_unavailable() {
        for kind in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::MasterDown,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::TryAgain,
            ServerErrorKind::ReadOnly,
        ] {
            let e = RedisError::from((ErrorKind::Server(kind), "passing"));
            assert!(broker_err(e).is_unavailable(), "{kind:?}");
        }
        let refused = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "invalid expire time",
        ));
        assert!(!broker_err(refused).is_unavailable());
    }
}
