//! The worker: fetches jobs in batches, runs them with bounded concurrency,
//! and settles them in batches.
//!
//! One [`Worker`] runs these loops, all in one tokio runtime:
//! - the **fetcher** leases jobs in batches of up to `fetch_batch`, in one
//!   broker call, blocking (not polling) while the queues are empty. It keeps
//!   up to `concurrency + prefetch` jobs leased, so the next jobs are already
//!   here when an executor frees up; a prefetched job is leased, counted in
//!   the in-flight set (its lease is extended), waits in a local queue and
//!   is handed back on shutdown;
//! - `concurrency` long-lived **executors** take jobs from the local queue
//!   and run them one after another ([`execute`]), each with its timeout and
//!   with panics caught; a job ends as an [`Ack`] (success, retry or dead).
//!   No task is spawned per job;
//! - the **acker** sends finished jobs to the broker in batches, with up to
//!   [`ACKS_IN_FLIGHT`] batches in flight at once;
//! - the **lease keeper** extends the leases of running jobs in one call per
//!   interval, recovers jobs whose lease expired (a lost worker's), and
//!   reports a heartbeat.
//!
//! On shutdown the fetcher stops, the local queue is closed, prefetched jobs
//! that have not started are handed back at once, running jobs get `shutdown_timeout` to finish, and
//! the jobs still running after that are cancelled and handed back to the
//! broker for another worker. Last, the worker takes itself off the list of
//! live workers ([`Workers::deregister`](crate::broker::Workers::deregister)).

mod acker;
mod execute;
mod executor;
mod fetcher;
mod leases;

use std::{collections::VecDeque, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::{
    sync::{mpsc, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{AnyBroker, WorkerInfo},
    job::{now_millis, Ack, Job, JobRef, Route},
    task::Registry,
    Result,
};

use self::{
    acker::ack_loop,
    executor::executor,
    fetcher::LocalQueue,
    leases::{keep_leases, InFlight},
};

pub use acker::ACKS_IN_FLIGHT;
pub use execute::execute;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs run at once (`WORKER_CONCURRENCY`, default 10).
    pub concurrency: usize,
    /// Routes to take jobs from, in order (`WORKER_ROUTING_KEYS`, default `default`).
    pub routes: Vec<Route>,
    /// How long running jobs get to finish on shutdown
    /// (`WORKER_SHUTDOWN_TIMEOUT`, default 30 s).
    pub shutdown_timeout: Duration,
    /// How long a worker may go silent before it is presumed dead
    /// (`WORKER_LEASE`, default 15 s): its running jobs are leased for this
    /// long, and its heartbeat lives as long, so the moment its heartbeat
    /// lapses is the moment its running jobs may be taken over (at the next
    /// recovery pass, within [`recover_interval`](Self::recover_interval)).
    /// Leases are extended every third of [`claim`](Self::claim), heartbeats
    /// sent every third of the lease (at most every 5 s). Raise it if the
    /// broker can be out of reach for longer (a slow failover) and running
    /// a job twice is worse than taking it over late.
    pub lease: Duration,
    /// How long a fetched job that has not started yet (prefetched, waiting
    /// for a free slot) is leased (`WORKER_CLAIM`, default 5 s; at most
    /// `lease`). Once it starts, its lease is extended to `lease` at the
    /// next extension. Short, so the jobs a killed worker had only
    /// prefetched are taken over within seconds instead of a whole lease.
    pub claim: Duration,
    /// Jobs leased ahead of the free slots, waiting locally for one (default:
    /// eight times the concurrency). Each fetch then amortises its round trip
    /// over many jobs and the next jobs are already here when a slot frees.
    /// Prefetched jobs are leased (their leases are extended) and handed back
    /// on shutdown; the cost is that a busy worker holds them while another
    /// worker may be idle, and a job enqueued later at a higher priority waits
    /// behind them. Use 0 for long-running jobs spread over many workers.
    pub prefetch: Option<usize>,
    /// At most this many jobs per fetch (default: `concurrency + prefetch`).
    pub fetch_batch: usize,
    /// At most this many acknowledgements per broker call.
    pub ack_batch: usize,
    /// How long one idle fetch blocks before checking for shutdown.
    pub idle_block: Duration,
    /// How often expired leases are recovered.
    pub recover_interval: Duration,
    /// How often a job may be taken back from a lost worker before this
    /// worker dead-letters it instead of running it, for tasks that do not
    /// say (`WORKER_MAX_LOST`, default
    /// [`rules::DEFAULT_MAX_LOST`](crate::rules::DEFAULT_MAX_LOST)).
    pub max_lost: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 10,
            routes: vec![Route::default()],
            shutdown_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(15),
            claim: Duration::from_secs(5),
            prefetch: None,
            fetch_batch: 0,
            ack_batch: 1024,
            idle_block: Duration::from_secs(1),
            recover_interval: Duration::from_secs(5),
            max_lost: crate::rules::DEFAULT_MAX_LOST,
        }
    }
}

/// A worker for a set of tasks on one broker. See the [module docs](self).
#[derive(Debug)]
pub struct Worker {
    broker: AnyBroker,
    registry: Arc<Registry>,
    config: WorkerConfig,
    info: WorkerInfo,
}

impl Worker {
    /// A worker running `registry`'s tasks from `broker`.
    pub fn new(broker: AnyBroker, registry: Registry, mut config: WorkerConfig) -> Self {
        config.concurrency = config.concurrency.max(1);
        let prefetch = *config
            .prefetch
            .get_or_insert(config.concurrency.saturating_mul(8));
        if config.fetch_batch == 0 {
            config.fetch_batch = config.concurrency.saturating_add(prefetch);
        }
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
        let pid = std::process::id();
        let info = WorkerInfo {
            id: format!("{host}:{pid}:{:08x}", rand::random::<u32>()),
            host,
            pid,
            routes: config.routes.iter().map(|r| r.to_string()).collect(),
            concurrency: config.concurrency,
            in_flight: 0,
            started_at: now_millis(),
            seen_at: now_millis(),
        };
        Worker {
            broker,
            registry: Arc::new(registry),
            config,
            info,
        }
    }

    /// The worker's id, as reported in heartbeats.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Runs until `stop` is cancelled, then shuts down gracefully.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        let in_flight: InFlight = Arc::default();
        let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Ack>();
        let ack_closing = CancellationToken::new();
        let acker = tokio::spawn(ack_loop(
            self.broker.clone(),
            ack_rx,
            self.config.ack_batch,
            ack_closing.clone(),
        ));
        // `held` bounds the jobs this worker holds (running or waiting in
        // the local queue); the executors give a permit back per job done.
        let held_max = self
            .config
            .concurrency
            .saturating_add(self.config.prefetch.unwrap_or(0));
        let held = Arc::new(Semaphore::new(held_max));
        let queue = Arc::new(LocalQueue {
            jobs: Mutex::new(VecDeque::with_capacity(held_max.min(65_536))),
            ready: Semaphore::new(0),
        });
        let keeper_stop = CancellationToken::new();
        let keeper = tokio::spawn(keep_leases(
            self.broker.clone(),
            in_flight.clone(),
            queue.clone(),
            self.config.clone(),
            self.info.clone(),
            keeper_stop.clone(),
        ));
        tracing::info!(
            worker = %self.info.id,
            routes = ?self.config.routes,
            concurrency = self.config.concurrency,
            prefetch = self.config.prefetch,
            "worker started"
        );
        let mut executors = JoinSet::new();
        for _ in 0..self.config.concurrency {
            executors.spawn(executor(
                self.config.max_lost,
                self.registry.clone(),
                self.broker.clone(),
                queue.clone(),
                in_flight.clone(),
                held.clone(),
                ack_tx.clone(),
            ));
        }
        self.fetch_loop(&stop, &in_flight, &queue, &held, held_max)
            .await;

        // Graceful shutdown: no executor starts another job; prefetched
        // jobs that never started go back at once; running jobs may finish;
        // then the rest go back too.
        queue.ready.close();
        let unstarted: Vec<JobRef> = {
            let waiting: Vec<(usize, Job)> = queue.jobs.lock().drain(..).collect();
            let mut map = in_flight.lock();
            waiting
                .into_iter()
                .filter_map(|(slot, _)| map.remove(slot))
                .collect()
        };
        self.hand_back(unstarted).await;
        let drained = tokio::time::timeout(self.config.shutdown_timeout, async {
            while executors.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            executors.abort_all();
            while executors.join_next().await.is_some() {}
            let left = in_flight.lock().drain();
            if !left.is_empty() {
                tracing::warn!(
                    jobs = left.len(),
                    "shutdown timeout reached: handing unfinished jobs back to the broker"
                );
            }
            self.hand_back(left).await;
        }
        drop(ack_tx);
        ack_closing.cancel();
        let _ = acker.await;
        keeper_stop.cancel();
        let _ = keeper.await;
        self.deregister().await;
        tracing::info!(worker = %self.info.id, "worker stopped");
        Ok(())
    }

    /// Takes this worker off the broker's list of live workers, once its
    /// jobs are settled or handed back and the lease keeper (which beats)
    /// has stopped. Without it the worker would be listed, with its last
    /// in-flight count, until its heartbeat expired. A failure is only
    /// logged: the entry then expires with the heartbeat.
    async fn deregister(&self) {
        // A broker without the Workers capability never listed it.
        let Ok(workers) = self.broker.workers() else {
            return;
        };
        if let Err(e) = workers.deregister(&self.info.id).await {
            tracing::warn!(
                worker = %self.info.id,
                error = %e,
                "could not remove the stopped worker from the list of live workers; \
                 it stays listed until its heartbeat expires"
            );
        }
    }

    /// Releases leased jobs that did not run (or were cancelled); they
    /// are already out of the in-flight set.
    async fn hand_back(&self, jobs: Vec<JobRef>) {
        if jobs.is_empty() {
            return;
        }
        for chunk in jobs.chunks(1024) {
            if let Err(e) = self.broker.release(chunk).await {
                tracing::error!(error = %e, "could not hand jobs back; their leases will expire and another worker will run them");
            }
        }
    }
}

/// Exponential backoff for broker errors: 50 ms doubling to 5 s.
#[derive(Debug, Default)]
struct ErrorBackoff {
    failures: u32,
}

impl ErrorBackoff {
    fn next(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ms = 50u64.saturating_mul(1 << self.failures.min(7)).min(5_000);
        Duration::from_millis(ms)
    }

    fn exhausted(&self) -> bool {
        self.failures >= 8
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}
