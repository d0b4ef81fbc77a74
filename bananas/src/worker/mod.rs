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
//! broker for another worker.

mod execute;

use std::{collections::VecDeque, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use parking_lot::Mutex;
use tokio::{
    sync::{mpsc, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{AnyBroker, Broker, FetchRequest, WorkerInfo},
    job::{now_millis, Ack, Job, JobId, JobRef, Route},
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
    broker: AnyBroker,
    registry: Arc<Registry>,
    config: WorkerConfig,
    info: WorkerInfo,
}

/// Every job this worker holds a lease on (running, or prefetched and
/// waiting for an executor): what the lease keeper extends, and what
/// shutdown hands back. A slab: a job's slot is its index, so adding and
/// removing costs no hashing and, once warm, no allocation.
#[derive(Debug, Default)]
struct Leases {
    slots: Vec<Option<JobRef>>,
    free: Vec<usize>,
    len: usize,
}

impl Leases {
    fn insert(&mut self, job: JobRef) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(job);
                i
            }
            None => {
                self.slots.push(Some(job));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, slot: usize) -> Option<JobRef> {
        let job = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(job)
    }

    fn iter(&self) -> impl Iterator<Item = &JobRef> {
        self.slots.iter().flatten()
    }

    fn drain(&mut self) -> Vec<JobRef> {
        self.free.clear();
        self.len = 0;
        self.slots.drain(..).flatten().collect()
    }
}

type InFlight = Arc<Mutex<Leases>>;

/// Fetched jobs waiting for an executor, with their slot in [`Leases`].
/// `ready` counts them: the fetcher adds a permit per job pushed, an
/// executor takes one before popping, and closing it stops the executors.
#[derive(Debug)]
struct LocalQueue {
    jobs: Mutex<VecDeque<(usize, Job)>>,
    ready: Semaphore,
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
        let mut executors = JoinSet::new();
        for _ in 0..self.config.concurrency {
            executors.spawn(executor(
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
        tracing::info!(worker = %self.info.id, "worker stopped");
        Ok(())
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

    /// Leases jobs into the local queue until `stop`, keeping at most
    /// `held_max` held (running or queued locally).
    async fn fetch_loop(
        &self,
        stop: &CancellationToken,
        in_flight: &InFlight,
        queue: &LocalQueue,
        held: &Semaphore,
        held_max: usize,
    ) {
        let low_water =
            (self.config.fetch_batch.min(held_max) / 2).clamp(1, u32::MAX as usize) as u32;
        let mut cursor = 0usize;
        let mut backoff = ErrorBackoff::default();
        loop {
            // Wait for room for half a batch (or shutdown), then take all
            // the room there is up to the batch size: one fetch fills it.
            // Waiting for half a batch, not one job, keeps fetches large
            // while the jobs still held keep the executors busy.
            let permit = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                p = held.acquire_many(low_water) => match p { Ok(p) => p, Err(_) => return },
            };
            permit.forget();
            let extra = held
                .available_permits()
                .min(self.config.fetch_batch.saturating_sub(low_water as usize));
            let mut want = low_water as usize;
            if extra > 0 {
                if let Ok(more) = held.try_acquire_many(extra as u32) {
                    more.forget();
                    want += extra;
                }
            }
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
                    held.add_permits(want);
                    let wait = backoff.next();
                    tracing::warn!(error = %e, retry_in = ?wait, "fetch failed");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            let mut jobs = jobs.into_iter();
            if jobs.len() > want {
                tracing::error!(
                    asked = want,
                    got = jobs.len(),
                    "broker returned more jobs than asked; handing the extra back"
                );
            }
            let got = jobs.len().min(want);
            // Every fetched job is in flight before any of them runs.
            let slotted: Vec<(usize, Job)> = {
                let mut map = in_flight.lock();
                jobs.by_ref()
                    .take(want)
                    .map(|job| (map.insert(JobRef::from(&job)), job))
                    .collect()
            };
            queue.jobs.lock().extend(slotted);
            queue.ready.add_permits(got);
            if want > got {
                held.add_permits(want - got);
            }
            let extra: Vec<JobRef> = jobs.map(|j| j.into_parts().0).collect();
            if !extra.is_empty() {
                if let Err(e) = self.broker.release(&extra).await {
                    tracing::warn!(error = %e, "could not hand back extra jobs; their leases will expire");
                }
            }
        }
    }
}

/// One of the `concurrency` executors: runs queued jobs one after another
/// until the queue is closed (shutdown). Each job's timeout and panics are
/// handled by [`execute`]; a panic outside the handler is caught too, so
/// the executor survives it.
async fn executor(
    registry: Arc<Registry>,
    broker: AnyBroker,
    queue: Arc<LocalQueue>,
    in_flight: InFlight,
    held: Arc<Semaphore>,
    ack_tx: mpsc::UnboundedSender<Ack>,
) {
    loop {
        match queue.ready.acquire().await {
            Ok(p) => p.forget(),
            Err(_) => return,
        }
        // Shutdown may have taken the job back in the meantime.
        let Some((slot, job)) = queue.jobs.lock().pop_front() else {
            continue;
        };
        let ack = AssertUnwindSafe(execute(&registry, &broker, job))
            .catch_unwind()
            .await;
        // The in-flight entry names the job if the worker itself panicked.
        let held_ref = in_flight.lock().remove(slot);
        held.add_permits(1);
        match ack {
            Ok(ack) => {
                let _ = ack_tx.send(ack);
            }
            Err(_) => tracing::error!(
                job_id = %held_ref.map(|j| j.id.to_string()).unwrap_or_default(),
                "the worker panicked outside the task; the job's lease will expire and it will run again"
            ),
        }
    }
}

/// Acknowledgement batches in flight at once. One: while a batch is in
/// flight the acks that finish meanwhile gather into the next, so a busy
/// broker gets fewer, larger calls (with two in flight the batches were
/// half the size and the drain of tasks that store results ran about 20 %
/// slower on Redis).
pub const ACKS_IN_FLIGHT: usize = 1;

/// Sends acknowledgements in batches: whatever has queued up while earlier
/// batches were in flight goes in the next one, with up to
/// [`ACKS_IN_FLIGHT`] batches in flight.
/// `closing` is cancelled once no more acks will come (shutdown): from then
/// on a failing batch is given up after a bounded number of retries.
async fn ack_loop(
    broker: AnyBroker,
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

/// Acknowledges one batch, retrying with backoff. A failed call may have
/// landed before the error, so a retry sends the batch without its lease
/// tokens: the broker then checks every ack against its leases.
async fn send_acks(broker: &dyn Broker, mut batch: Vec<Ack>, closing: &CancellationToken) {
    let mut backoff = ErrorBackoff::default();
    loop {
        match broker.ack(&batch).await {
            Ok(()) => return,
            Err(e) => {
                for ack in &mut batch {
                    ack.job.lease_token = 0;
                }
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
    broker: AnyBroker,
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
                    .iter()
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
                // A broker without the Workers capability has no one to
                // tell; the worker runs all the same.
                let Ok(workers) = broker.workers() else { continue };
                info.in_flight = in_flight.lock().len;
                info.seen_at = now_millis();
                if let Err(e) = workers.heartbeat(&info, Duration::from_secs(15)).await {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use bananas_core::Result;

    use crate::{broker::MemoryBroker, job::Outcome};

    /// A memory broker whose first `ack` lands and then reports an error
    /// (a reply lost on the way back); it records the tokens of every ack.
    /// It implements only the hot path: that is all `send_acks` needs.
    #[derive(Debug, Default)]
    struct LostReply {
        inner: MemoryBroker,
        calls: AtomicUsize,
        tokens: Mutex<Vec<Vec<u64>>>,
    }

    #[async_trait]
    impl Broker for LostReply {
        async fn ack(&self, acks: &[Ack]) -> Result<()> {
            self.tokens
                .lock()
                .push(acks.iter().map(|a| a.job.lease_token).collect());
            self.inner.ack(acks).await?;
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(bananas_core::Error::Unavailable {
                    message: "connection reset".into(),
                    source: None,
                });
            }
            Ok(())
        }
        async fn enqueue(&self, jobs: Vec<Job>) -> Result<usize> {
            self.inner.enqueue(jobs).await
        }
        async fn fetch(&self, req: &FetchRequest) -> Result<Vec<Job>> {
            self.inner.fetch(req).await
        }
        async fn release(&self, jobs: &[JobRef]) -> Result<()> {
            self.inner.release(jobs).await
        }
        async fn extend_leases(&self, jobs: &[(Route, JobId)], lease: Duration) -> Result<()> {
            self.inner.extend_leases(jobs, lease).await
        }
        async fn recover_expired(&self, routes: &[Route]) -> Result<usize> {
            self.inner.recover_expired(routes).await
        }
        async fn ping(&self) -> Result<()> {
            self.inner.ping().await
        }
    }

    /// A batch whose first send may have landed is sent again without its
    /// lease tokens, so a broker that trusts tokens checks the repeat.
    #[tokio::test]
    async fn a_repeated_ack_batch_drops_its_lease_tokens() {
        let broker = LostReply::default();
        let mut job = Job::new(
            "t",
            serde_json::value::RawValue::from_string("{}".into()).unwrap(),
        );
        job.lease_token = 7;
        let ack = |job: &Job| Ack {
            job: JobRef::from(job),
            outcome: Outcome::Succeeded(None),
            started_at: 1,
            finished_at: 2,
        };
        let batch = vec![ack(&job), ack(&job)];
        send_acks(&broker, batch, &CancellationToken::new()).await;
        assert_eq!(*broker.tokens.lock(), vec![vec![7, 7], vec![0, 0]]);
    }
}
