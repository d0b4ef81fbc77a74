//! Start-up and configuration: [`run`], [`App`] and its builder, and the
//! [`Client`] that submits jobs.

use std::{
    future::Future,
    net::{SocketAddr, ToSocketAddrs},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{AnyBroker, MemoryBroker},
    job::{Job, JobId, JobRecord, Route},
    scheduler::{Clock, Scheduler, SystemClock},
    task::Registry,
    worker::{Worker, WorkerConfig},
    Error, Result,
};

/// Submits jobs and reads their results through a broker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    broker: AnyBroker,
}

impl Client {
    /// A client for `broker`.
    pub fn new(broker: impl Into<AnyBroker>) -> Self {
        Client {
            broker: broker.into(),
        }
    }

    /// Connects to the broker named by `url`: `memory://` (a new embedded
    /// broker), or with the `redis` feature `redis://`, `rediss://` and
    /// `redis+cluster://`.
    pub async fn connect(url: &str) -> Result<Self> {
        Ok(Client::new(connect_broker(url).await?))
    }

    /// The broker.
    pub fn broker(&self) -> &AnyBroker {
        &self.broker
    }

    /// Enqueues already-built jobs, in one batch.
    pub async fn enqueue(&self, jobs: Vec<Job>) -> Result<usize> {
        Ok(self.broker.enqueue(jobs).await?)
    }

    /// The job's record. The broker finds the job's route itself; a
    /// [`JobHandle`](crate::JobHandle) knows it and spares that.
    pub async fn job(&self, id: &JobId) -> Result<Option<JobRecord>> {
        Ok(self.broker.inspect()?.job(id, None).await?)
    }

    /// Waits for the job to finish; `None` on timeout.
    pub async fn wait(&self, id: &JobId, timeout: Duration) -> Result<Option<JobRecord>> {
        Ok(self.broker.inspect()?.wait(id, None, timeout).await?)
    }

    /// Cancels the job if it has not started (see
    /// [`Cancel::cancel`](crate::broker::Cancel::cancel)).
    pub async fn cancel(&self, id: &JobId) -> Result<crate::broker::CancelOutcome> {
        Ok(self.broker.cancel()?.cancel(id, None).await?)
    }
}

/// Connects to the broker named by `url`.
///
/// Bananas' own query parameters are taken out of the URL before it reaches
/// the broker: `prefix` (Redis key prefix, default `bananas`), and
/// `result_ttl` / `failure_ttl` (seconds results of succeeded and dead jobs
/// are kept; defaults one day and seven days), as in
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
                Some((k @ ("result_ttl" | "failure_ttl"), v)) => {
                    let ttl = parse_secs(v).filter(|d| !d.is_zero()).ok_or_else(|| {
                        bad(&format!("`{k}={v}`: expected a positive number of seconds"))
                    })?;
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

static INSTALLED: RwLock<Option<Client>> = RwLock::new(None);

/// The client of the installed app, used by the generated `delay` functions.
pub fn installed_client() -> Result<Client> {
    INSTALLED.read().clone().ok_or(Error::NoApp)
}

/// Settings of an [`App`], usually read from the environment by [`run`].
#[derive(Debug, Clone)]
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
            s.worker.shutdown_timeout = parse_secs(&v).ok_or_else(|| {
                Error::setting(
                    "WORKER_SHUTDOWN_TIMEOUT",
                    format!("`{v}`: expected seconds, like `30` or `2.5`"),
                )
            })?;
        }
        if let Some(v) = env("WORKER_PREFETCH") {
            let n = v.parse().map_err(|_| {
                Error::setting("WORKER_PREFETCH", format!("`{v}`: expected how many jobs to hold beyond the concurrency, like `0` or `80`"))
            })?;
            s.worker.prefetch = Some(n);
        }
        if let Some(v) = env("WORKER_LEASE") {
            let lease = parse_secs(&v).filter(|d| !d.is_zero()).ok_or_else(|| {
                Error::setting(
                    "WORKER_LEASE",
                    format!("`{v}`: expected a positive number of seconds, like `30`"),
                )
            })?;
            s.worker.lease = lease;
            s.worker.recover_interval =
                (lease / 2).clamp(Duration::from_millis(100), s.worker.recover_interval);
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

fn parse_secs(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().trim_end_matches('s').parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
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

/// Builds an [`App`] without reading the environment.
#[derive(Debug, Default)]
pub struct AppBuilder {
    settings: Settings,
    broker: Option<AnyBroker>,
    registry: Option<Registry>,
    clock: Option<Arc<dyn Clock>>,
}

impl AppBuilder {
    /// Starts from `settings` (for example [`Settings::from_env`]).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The broker URL (default `memory://`).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.settings.url = url.into();
        self
    }

    /// Uses this broker instead of connecting to a URL.
    pub fn broker(mut self, broker: impl Into<AnyBroker>) -> Self {
        let broker = broker.into();
        self.broker = Some(broker);
        self
    }

    /// How many jobs run at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.settings.worker.concurrency = n.max(1);
        self
    }

    /// The routes the worker takes jobs from.
    pub fn routes<I, S>(mut self, routes: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.worker.routes = routes
            .into_iter()
            .map(|r| Route::new(r))
            .collect::<std::result::Result<_, _>>()?;
        Ok(self)
    }

    /// How long in-flight jobs get to finish on shutdown.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.settings.worker.shutdown_timeout = d;
        self
    }

    /// Changes any worker setting.
    pub fn worker(mut self, f: impl FnOnce(&mut WorkerConfig)) -> Self {
        f(&mut self.settings.worker);
        self
    }

    /// Whether this app hosts the scheduler (default yes).
    pub fn scheduler(mut self, on: bool) -> Self {
        self.settings.scheduler = on;
        self
    }

    /// Whether this app runs a worker (default yes). An app without one only
    /// submits jobs (and schedules, if the scheduler is on).
    pub fn worker_enabled(mut self, on: bool) -> Self {
        self.settings.worker_enabled = on;
        self
    }

    /// Uses these tasks instead of every task linked into the binary.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The scheduler's clock (tests inject a manual one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Connects to the broker and checks the task registry (duplicate names
    /// fail here, naming both definitions).
    pub async fn build(self) -> Result<App> {
        let registry = match self.registry {
            Some(r) => r,
            None => Registry::from_inventory()?,
        };
        crate::scheduler::validate_schedules(&registry)?;
        let broker = match self.broker {
            Some(b) => b,
            None => connect_broker(&self.settings.url).await?,
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        // Built now, so a new schedule's first tick is the first one after
        // the app was built, not after `run` got going.
        let scheduler = Scheduler::new(broker.clone(), &registry, clock);
        Ok(App {
            inner: Arc::new(AppInner {
                client: Client::new(broker),
                registry,
                settings: self.settings,
                scheduler,
                shutdown: CancellationToken::new(),
            }),
        })
    }
}

/// A configured Bananas application: a client, a worker for its tasks, and
/// the scheduler of its periodic tasks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

#[derive(Debug)]
struct AppInner {
    client: Client,
    registry: Registry,
    settings: Settings,
    scheduler: Scheduler,
    shutdown: CancellationToken,
}

impl App {
    /// An [`AppBuilder`] with default settings.
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }

    /// An app configured from the environment.
    pub async fn from_env() -> Result<Self> {
        App::builder().settings(Settings::from_env()?).build().await
    }

    /// Makes this app the one `delay` submits through.
    pub fn install(&self) {
        *INSTALLED.write() = Some(self.inner.client.clone());
    }

    /// The app's client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The app's tasks.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The app's settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// A scheduler for this app's periodic tasks, on its broker and clock.
    pub fn scheduler(&self) -> &Scheduler {
        &self.inner.scheduler
    }

    /// Asks [`App::run`] to stop: the worker stops fetching, lets in-flight
    /// jobs finish within the shutdown timeout and hands back the rest.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Runs the worker (and the scheduler, unless turned off) until
    /// [`App::shutdown`] is called.
    pub async fn run(self) -> Result<()> {
        let token = self.inner.shutdown.clone();
        self.run_until(async move { token.cancelled().await }).await
    }

    /// Runs the worker and the scheduler until `signal` completes.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send) -> Result<()> {
        let inner = &self.inner;
        let stop = inner.shutdown.clone();
        // Servers first: the metrics recorder must be in place before the
        // worker records anything, and a bad address fails start-up.
        let servers = self.start_servers(&stop).await?;
        let scheduler = if inner.settings.scheduler && inner.scheduler.has_schedules() {
            let s = inner.scheduler.clone();
            let stop = stop.clone();
            Some(tokio::spawn(async move { s.run(stop).await }))
        } else {
            None
        };
        let worker = if inner.settings.worker_enabled {
            let w = Worker::new(
                inner.client.broker().clone(),
                inner.registry.clone(),
                inner.settings.worker.clone(),
            );
            let stop = stop.clone();
            Some(tokio::spawn(async move { w.run(stop).await }))
        } else {
            None
        };
        tokio::select! {
            _ = signal => {}
            _ = stop.cancelled() => {}
        }
        stop.cancel();
        let mut result = Ok(());
        if let Some(w) = worker {
            result = w.await.map_err(|source| Error::Crashed {
                what: "worker",
                source,
            })?;
        }
        if let Some(s) = scheduler {
            let _ = s.await;
        }
        for server in servers {
            match server.await {
                Ok(Err(e)) => tracing::error!(error = %e, "server failed"),
                Err(e) => tracing::error!(error = %e, "server task failed"),
                Ok(Ok(())) => {}
            }
        }
        result
    }

    /// Starts the HTTP API and the metrics endpoint the settings ask for.
    #[cfg(feature = "http")]
    async fn start_servers(
        &self,
        stop: &CancellationToken,
    ) -> Result<Vec<tokio::task::JoinHandle<Result<()>>>> {
        let settings = &self.inner.settings;
        let mut servers = Vec::new();
        if settings.http_addr.is_none() && settings.metrics_addr.is_none() {
            return Ok(servers);
        }
        let handle = crate::metrics::install()?;
        if let Some(addr) = settings.http_addr {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Listen {
                    what: "the HTTP API (BANANAS_HTTP_ADDR)",
                    addr,
                    source,
                })?;
            let mut state = crate::http::ApiState::new(self.inner.client.clone())
                .registry(self.inner.registry.clone())
                .scheduler(self.inner.scheduler.clone())
                .token(settings.api_token.clone())
                .metrics(handle);
            if let Some(limit) = settings.http_body_limit {
                state = state.body_limit(limit);
            }
            servers.push(tokio::spawn(crate::http::serve_listener(
                state,
                listener,
                stop.clone(),
            )));
        }
        if let Some(addr) = settings.metrics_addr {
            servers.push(tokio::spawn(crate::metrics::serve_metrics(
                addr,
                stop.clone(),
            )));
            let broker = self.inner.client.broker().clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                crate::metrics::track_queue_depth(broker, Duration::from_secs(5), stop).await
            });
        }
        Ok(servers)
    }

    /// Without the `http` feature there is no server to start.
    #[cfg(not(feature = "http"))]
    async fn start_servers(
        &self,
        _stop: &CancellationToken,
    ) -> Result<Vec<tokio::task::JoinHandle<Result<()>>>> {
        let s = &self.inner.settings;
        if s.http_addr.is_some() || s.metrics_addr.is_some() {
            return Err(Error::setting(
                "BANANAS_HTTP_ADDR / BANANAS_METRICS_ADDR",
                "needs the `http` feature of `bananas`",
            ));
        }
        Ok(Vec::new())
    }
}

/// Runs a worker (and the scheduler) for every task linked into this binary,
/// configured from the environment, until SIGINT or SIGTERM.
///
/// Reads `BANANAS_URL` (default `memory://`), `WORKER_CONCURRENCY`,
/// `WORKER_ROUTING_KEYS` (default `default`), `WORKER_SHUTDOWN_TIMEOUT` and
/// `BANANAS_SCHEDULER`, sets up `tracing` output (filtered by `RUST_LOG`),
/// and installs the app so `delay` works in the same process.
///
/// It returns `anyhow::Result` so it can be the tail of an application's
/// `main`.
pub async fn run() -> anyhow::Result<()> {
    // Handlers first: a SIGTERM during start-up still shuts down gracefully.
    let signal = shutdown_signal();
    init_tracing();
    let app = App::from_env().await?;
    app.install();
    tracing::info!(
        url = %redact(&app.settings().url),
        tasks = app.registry().len(),
        concurrency = app.settings().worker.concurrency,
        routes = ?app.settings().worker.routes,
        "bananas starting"
    );
    app.run_until(signal).await?;
    Ok(())
}

/// Sets up `tracing` output to stderr, filtered by `RUST_LOG` (default
/// `info`). Does nothing if a subscriber is already set.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is
/// first polled, so a signal that arrives while the app is still starting
/// is not lost (and does not kill the process with the default action).
/// Must be called inside a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut int, mut term) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = int => {}
                _ = term => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received");
    }
}

/// Hides the password in a URL for logging.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}
