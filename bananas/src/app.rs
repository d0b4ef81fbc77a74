//! Start-up: [`run`], and [`App`] with its builder: the run loop of the
//! worker, the scheduler and the servers.

use std::{future::Future, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    broker::AnyBroker,
    client::{self, Client},
    connect::{connect_broker, redact},
    job::Route,
    scheduler::{Clock, Scheduler, SystemClock},
    settings::Settings,
    signal::shutdown_signal,
    task::Registry,
    worker::{Worker, WorkerConfig},
    Error, Result,
};

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

    /// Whether the HTTP API accepts jobs on routes no task declares, no
    /// worker serves and the broker never saw (default no: 422 naming the
    /// route). `BANANAS_HTTP_ALLOW_NEW_ROUTES` in the environment.
    pub fn allow_new_routes(mut self, allow: bool) -> Self {
        self.settings.http_allow_new_routes = allow;
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
        client::install(self.inner.client.clone());
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
                .allow_new_routes(settings.http_allow_new_routes)
                .metrics(handle);
            if settings.worker_enabled {
                state = state.known_routes(settings.worker.routes.iter().cloned());
            }
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
