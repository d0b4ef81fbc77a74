//! The worker: fetches jobs in batches, runs them with bounded concurrency,
//! and settles them in batches.
//!
//! One [`Worker`] runs these loops, all in one tokio runtime:
//! - the **fetcher** leases jobs in batches of up to `fetch_batch`, in one
//!   broker call, blocking (not polling) while the queues are empty. It keeps
//!   up to `concurrency + prefetch` jobs leased, so the next jobs are already
//!   here when a slot frees up; a prefetched job is leased, counted in the
//!   in-flight set (its lease is extended) and handed back on shutdown;
//! - each job runs in its own task ([`execute`]) once one of the
//!   `concurrency` slots is free, with its timeout and with panics caught; it
//!   ends as an [`Ack`] (success, retry or dead);
//! - the **acker** sends finished jobs to the broker in batches, with up to
//!   [`ACKS_IN_FLIGHT`] batches in flight at once;
//! - the **lease keeper** extends the leases of running jobs in one call per
//!   interval, recovers jobs whose lease expired (a lost worker's), and
//!   reports a heartbeat.
//!
//! On shutdown the fetcher stops, prefetched jobs that have not started are
//! handed back at once, running jobs get `shutdown_timeout` to finish, and
//! the jobs still running after that are cancelled and handed back to the
//! broker for another worker.

mod execute;

use std::{collections::HashMap, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{Broker, FetchRequest, WorkerInfo},
    job::{now_millis, Ack, Job, JobId, Route},
    task::Registry,
    Result,
};

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
    /// How long a fetched job is leased before another worker may take it
    /// over. Leases of running jobs are extended every `lease / 3`.
    pub lease: Duration,
    /// Jobs leased ahead of the free slots, waiting locally for one (default:
    /// four times the concurrency). Each fetch then amortises its round trip
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
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 10,
            routes: vec![Route::default()],
            shutdown_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            prefetch: None,
            fetch_batch: 0,
            ack_batch: 1024,
            idle_block: Duration::from_secs(1),
            recover_interval: Duration::from_secs(5),
        }
    }
}

/// A worker for a set of tasks on one broker. See the [module docs](self).
#[derive(Debug)]
pub struct Worker {
    broker: Arc<dyn Broker>,
    registry: Arc<Registry>,
    config: WorkerConfig,
    info: WorkerInfo,
}

/// Jobs running now, by id: what the lease keeper extends, and what
/// shutdown hands back.
type InFlight = Arc<Mutex<HashMap<JobId, Job>>>;

impl Worker {
    /// A worker running `registry`'s tasks from `broker`.
    pub fn new(broker: Arc<dyn Broker>, registry: Registry, mut config: WorkerConfig) -> Self {
        config.concurrency = config.concurrency.max(1);
        let prefetch = *config
            .prefetch
            .get_or_insert(config.concurrency.saturating_mul(4));
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
        let keeper_stop = CancellationToken::new();
        let keeper = tokio::spawn(keep_leases(
            self.broker.clone(),
            in_flight.clone(),
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

        let mut running = JoinSet::new();
        self.fetch_loop(&stop, &in_flight, &ack_tx, &mut running)
            .await;

        // Graceful shutdown: prefetched jobs that never started go back at
        // once; running jobs may finish; then the rest go back too.
        let mut unstarted = Vec::new();
        let drained = tokio::time::timeout(self.config.shutdown_timeout, async {
            while let Some(r) = running.join_next().await {
                if let Ok(Some(job)) = r {
                    unstarted.push(job);
                    if unstarted.len() >= 1024 {
                        self.hand_back(&in_flight, std::mem::take(&mut unstarted))
                            .await;
                    }
                }
            }
        })
        .await;
        if drained.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
            let left: Vec<Job> = in_flight.lock().drain().map(|(_, j)| j).collect();
            if !left.is_empty() {
                tracing::warn!(
                    jobs = left.len(),
                    "shutdown timeout reached: handing unfinished jobs back to the broker"
                );
            }
            unstarted = left;
        }
        self.hand_back(&in_flight, unstarted).await;
        drop(ack_tx);
        ack_closing.cancel();
        let _ = acker.await;
        keeper_stop.cancel();
        let _ = keeper.await;
        tracing::info!(worker = %self.info.id, "worker stopped");
        Ok(())
    }

    /// Releases leased jobs that did not run (or were cancelled).
    async fn hand_back(&self, in_flight: &InFlight, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        {
            let mut map = in_flight.lock();
            for j in &jobs {
                map.remove(&j.id);
            }
        }
        if let Err(e) = self.broker.release(jobs).await {
            tracing::error!(error = %e, "could not hand jobs back; their leases will expire and another worker will run them");
        }
    }

    async fn fetch_loop(
        &self,
        stop: &CancellationToken,
        in_flight: &InFlight,
        ack_tx: &mpsc::UnboundedSender<Ack>,
        running: &mut JoinSet<Option<Job>>,
    ) {
        // `held` bounds the jobs this worker holds (running or prefetched);
        // `slots` bounds the jobs running at once.
        let held_max = self
            .config
            .concurrency
            .saturating_add(self.config.prefetch.unwrap_or(0));
        let held = Arc::new(tokio::sync::Semaphore::new(held_max));
        let low_water =
            (self.config.fetch_batch.min(held_max) / 2).clamp(1, u32::MAX as usize) as u32;
        let slots = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency));
        let mut cursor = 0usize;
        let mut backoff = ErrorBackoff::default();
        loop {
            // Wait for room for half a batch (or shutdown), then take all
            // the room there is up to the batch size: one fetch fills it.
            // Waiting for half a batch, not one job, keeps fetches large
            // while the jobs still held keep the slots busy.
            let mut permit = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                p = held.clone().acquire_many_owned(low_water) => match p { Ok(p) => p, Err(_) => return },
            };
            let extra = held
                .available_permits()
                .min(self.config.fetch_batch.saturating_sub(low_water as usize));
            if extra > 0 {
                if let Ok(more) = held.clone().try_acquire_many_owned(extra as u32) {
                    permit.merge(more);
                }
            }
            let want = permit.num_permits();
            let req = FetchRequest {
                routes: self.config.routes.clone(),
                max: want,
                lease: self.config.lease,
                cursor,
                block: self.config.idle_block,
            };
            cursor = cursor.wrapping_add(want);
            let jobs = match self.broker.fetch(&req).await {
                Ok(jobs) => {
                    backoff.reset();
                    jobs
                }
                Err(e) => {
                    let wait = backoff.next();
                    tracing::warn!(error = %e, retry_in = ?wait, "fetch failed");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            if jobs.len() > want {
                tracing::error!(
                    asked = want,
                    got = jobs.len(),
                    "broker returned more jobs than asked; handing the extra back"
                );
            }
            let mut jobs = jobs.into_iter();
            {
                // Every fetched job is in flight before any of them runs.
                let mut map = in_flight.lock();
                for job in jobs.as_slice().iter().take(want) {
                    map.insert(job.id.clone(), job.clone());
                }
            }
            // One permit per job; unused permits return to the pool on drop.
            let mut pool = Some(permit);
            for job in jobs.by_ref().take(want) {
                let one = match pool.as_mut() {
                    Some(p) if p.num_permits() > 1 => p.split(1),
                    _ => pool.take(),
                };
                let registry = self.registry.clone();
                let ack_tx = ack_tx.clone();
                let in_flight = in_flight.clone();
                let slots = slots.clone();
                let stop = stop.clone();
                running.spawn(async move {
                    let _held = one;
                    // Wait for a slot; on shutdown, a job that never started
                    // goes back to the broker unrun.
                    let slot = tokio::select! {
                        biased;
                        _ = stop.cancelled() => return Some(job),
                        s = slots.acquire_owned() => match s { Ok(s) => s, Err(_) => return Some(job) },
                    };
                    let id = job.id.clone();
                    let ack = execute(&registry, job).await;
                    in_flight.lock().remove(&id);
                    let _ = ack_tx.send(ack);
                    drop(slot);
                    None
                });
            }
            let extra: Vec<Job> = jobs.collect();
            if !extra.is_empty() {
                let _ = self.broker.release(extra).await;
            }
            // Reap finished tasks so the set does not grow. A job that saw
            // the shutdown before it started goes back now.
            let mut unstarted = Vec::new();
            while let Some(r) = running.try_join_next() {
                if let Ok(Some(job)) = r {
                    unstarted.push(job);
                }
            }
            self.hand_back(in_flight, unstarted).await;
        }
    }
}

/// Acknowledgement batches sent at once: the shared connection pipelines
/// them, so one batch's round trip overlaps the next.
pub const ACKS_IN_FLIGHT: usize = 2;

/// Sends acknowledgements in batches: whatever has queued up while earlier
/// batches were in flight goes in the next one, with up to
/// [`ACKS_IN_FLIGHT`] batches in flight.
/// `closing` is cancelled once no more acks will come (shutdown): from then
/// on a failing batch is given up after a bounded number of retries.
async fn ack_loop(
    broker: Arc<dyn Broker>,
    mut rx: mpsc::UnboundedReceiver<Ack>,
    max: usize,
    closing: CancellationToken,
) {
    let max = max.max(1);
    let gate = Arc::new(tokio::sync::Semaphore::new(ACKS_IN_FLIGHT));
    let mut sending = JoinSet::new();
    loop {
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let mut batch = Vec::with_capacity(max.min(1024));
        if rx.recv_many(&mut batch, max).await == 0 {
            break;
        }
        let broker = broker.clone();
        let closing = closing.clone();
        sending.spawn(async move {
            send_acks(&*broker, batch, &closing).await;
            drop(permit);
        });
        while sending.try_join_next().is_some() {}
    }
    while sending.join_next().await.is_some() {}
}

/// Acknowledges one batch, retrying with backoff.
async fn send_acks(broker: &dyn Broker, batch: Vec<Ack>, closing: &CancellationToken) {
    let mut backoff = ErrorBackoff::default();
    loop {
        match broker.ack(batch.clone()).await {
            Ok(()) => return,
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(error = %e, jobs = batch.len(), retry_in = ?wait, "acknowledging failed; retrying");
                if closing.is_cancelled() && backoff.exhausted() {
                    tracing::error!(jobs = batch.len(), "giving up acknowledging at shutdown; these jobs' leases will expire and they will run again");
                    return;
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Extends running jobs' leases, recovers expired ones, and beats.
async fn keep_leases(
    broker: Arc<dyn Broker>,
    in_flight: InFlight,
    config: WorkerConfig,
    mut info: WorkerInfo,
    stop: CancellationToken,
) {
    let extend_every = (config.lease / 3).max(Duration::from_millis(10));
    let mut extend = tokio::time::interval(extend_every);
    let mut recover = tokio::time::interval(config.recover_interval);
    let mut beat = tokio::time::interval(Duration::from_secs(5));
    for i in [&mut extend, &mut recover, &mut beat] {
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = extend.tick() => {
                let ids: Vec<(Route, JobId)> = in_flight
                    .lock()
                    .values()
                    .map(|j| (j.route.clone(), j.id.clone()))
                    .collect();
                metrics::gauge!("bananas_jobs_in_flight").set(ids.len() as f64);
                if !ids.is_empty() {
                    if let Err(e) = broker.extend_leases(&ids, config.lease).await {
                        tracing::warn!(error = %e, jobs = ids.len(), "extending leases failed");
                    }
                }
            }
            _ = recover.tick() => {
                match broker.recover_expired(&config.routes).await {
                    Ok(0) => {}
                    Ok(n) => {
                        metrics::counter!("bananas_lease_recoveries_total").increment(n as u64);
                        tracing::warn!(jobs = n, "recovered jobs whose worker was lost");
                    }
                    Err(e) => tracing::warn!(error = %e, "recovering expired leases failed"),
                }
            }
            _ = beat.tick() => {
                info.in_flight = in_flight.lock().len();
                info.seen_at = now_millis();
                if let Err(e) = broker.heartbeat(&info, Duration::from_secs(15)).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
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
