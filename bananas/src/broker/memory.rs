//! The embedded in-memory broker: `memory://`, the zero-set-up default.
//!
//! It keeps the same semantics as the Redis broker (leases, retries, the dead
//! letter, result TTLs, idempotent enqueue, tick claims) inside one process,
//! so users can run their own tests on it. Everything lives behind one mutex;
//! waiting for jobs and results uses [`tokio::sync::Notify`], never polling.
//!
//! The broker's bookkeeping is in `state.rs`; the hot path ([`Broker`]) is
//! implemented here, the capability traits in `capabilities.rs`, listing
//! jobs ([`Browse`](crate::broker::Browse)) in `browse.rs`.

mod browse;
mod capabilities;
mod state;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use bananas_core::Result;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::{
    broker::{Broker, FetchRequest},
    job::{now_millis, Ack, Job, JobRef, JobState, Millis, Outcome, Route},
    priority,
};

use self::state::State;

/// How long the memory broker keeps results.
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    /// Results of succeeded jobs.
    pub success: Duration,
    /// Dead jobs.
    pub failure: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Ttls {
            success: Duration::from_secs(24 * 3600),
            failure: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The in-memory broker. See the [module docs](self).
#[derive(Debug, Default)]
pub struct MemoryBroker {
    state: Mutex<State>,
    /// Woken when jobs become ready.
    ready: Notify,
    /// Woken when a job reaches a final state.
    finished: Notify,
    ttls: Ttls,
    /// Whether anything fetched from this broker yet, and whether the
    /// check that warns when nothing does is already set (see
    /// [`UNFETCHED_WARNING`]).
    fetched: Arc<AtomicBool>,
    watching: AtomicBool,
}

/// How long after the first enqueue the broker warns if no worker has
/// fetched from it: a producer that forgot `BANANAS_URL` submits into its
/// own in-process broker, where no other process's worker will ever see
/// the job.
pub const UNFETCHED_WARNING: Duration = Duration::from_secs(5);

/// How long the bare record of a `result = false` job is kept when someone
/// waits for it (the Redis broker keeps its wake-up list as long).
const WAKE_TTL: Millis = 60_000;

impl MemoryBroker {
    /// Once, at the first enqueue: warns if nothing has fetched from this
    /// broker [`UNFETCHED_WARNING`] later.
    fn watch_for_a_worker(&self) {
        if self.fetched.load(Ordering::Relaxed) || self.watching.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let fetched = self.fetched.clone();
        runtime.spawn(async move {
            tokio::time::sleep(UNFETCHED_WARNING).await;
            if !fetched.load(Ordering::Relaxed) {
                tracing::warn!(
                    "jobs were submitted to the in-process memory:// broker, and no worker has fetched from it: \
                     a worker in another process will never see them. To share jobs between processes, set \
                     BANANAS_URL to a Redis URL in both"
                );
            }
        });
    }

    /// A new, empty broker with default result TTLs (1 day for results,
    /// 7 days for dead jobs).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new broker with these result TTLs.
    pub fn with_ttls(ttls: Ttls) -> Self {
        MemoryBroker {
            ttls,
            ..Self::default()
        }
    }

    fn try_fetch(&self, req: &FetchRequest) -> (Vec<Job>, Option<Millis>) {
        self.fetched.store(true, Ordering::Relaxed);
        let now = now_millis();
        let mut st = self.state.lock();
        st.promote_due(now);
        let mut out = Vec::new();
        // Taken out while jobs are popped, and put back (a move, no copy).
        let paused = std::mem::take(&mut st.paused);
        for prefer in priority::plan(req.cursor, req.max) {
            let next = req
                .routes
                .iter()
                .filter(|r| !paused.contains(*r))
                .find_map(|r| st.pop(r, prefer));
            let Some(id) = next else { break };
            if let Some(job) = st.lease(&id, now, req.lease) {
                out.push(job);
            }
        }
        st.paused = paused;
        let next_eta = st.scheduled.first().map(|(at, _)| *at);
        (out, next_eta)
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn enqueue(&self, jobs: Vec<Job>) -> Result<usize> {
        for extra in jobs.iter().filter_map(|j| j.extra.as_deref()) {
            extra.check()?;
        }
        let now = now_millis();
        let added = {
            let mut st = self.state.lock();
            jobs.into_iter()
                .map(|j| st.insert(j, now))
                .filter(|&b| b)
                .count()
        };
        if added > 0 {
            self.ready.notify_waiters();
            self.watch_for_a_worker();
        }
        Ok(added)
    }

    async fn fetch(&self, req: &FetchRequest) -> Result<Vec<Job>> {
        let deadline = tokio::time::Instant::now() + req.block;
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (jobs, next_eta) = self.try_fetch(req);
            let now = tokio::time::Instant::now();
            if !jobs.is_empty() || req.max == 0 || now >= deadline {
                return Ok(jobs);
            }
            let mut wake = deadline;
            if let Some(eta) = next_eta {
                let wait = Duration::from_millis(eta.saturating_sub(now_millis()));
                wake = wake.min(now + wait);
            }
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }

    async fn ack(&self, acks: &[Ack]) -> Result<()> {
        let now = now_millis();
        let mut requeued = false;
        {
            let mut st = self.state.lock();
            st.expire(now);
            for ack in acks {
                let id = &ack.job.id;
                if !st.end_lease(id, ack.job.attempt, ack.job.lease_token) {
                    tracing::warn!(job_id = %id, "stale ack ignored: the job's lease had expired");
                    continue;
                }
                st.count(id, now, !matches!(ack.outcome, Outcome::Succeeded(_)));
                match ack.outcome.clone() {
                    Outcome::Succeeded(None) if st.waiting.contains_key(id) => {
                        // The task keeps no result, but someone waits for it:
                        // keep the bare record just long enough to wake them.
                        let e = st.jobs.get_mut(id).expect("leased job exists");
                        e.record.state = JobState::Succeeded;
                        e.record.error = None;
                        e.record.started_at = Some(ack.started_at);
                        e.record.finished_at = Some(ack.finished_at);
                        e.at = now + WAKE_TTL;
                        st.expiries.insert((now + WAKE_TTL, id.clone()));
                    }
                    Outcome::Succeeded(None) => {
                        // The task keeps no result: nothing is left behind.
                        st.jobs.remove(id);
                    }
                    Outcome::Succeeded(value) => {
                        let ttl = self.ttls.success.as_millis() as u64;
                        let e = st.jobs.get_mut(id).expect("leased job exists");
                        e.record.state = JobState::Succeeded;
                        e.record.result = value;
                        e.record.error = None;
                        e.record.started_at = Some(ack.started_at);
                        e.record.finished_at = Some(ack.finished_at);
                        e.at = now + ttl;
                        st.expiries.insert((now + ttl, id.clone()));
                    }
                    Outcome::Retry { at, error } => {
                        let e = st.jobs.get_mut(id).expect("leased job exists");
                        e.record.state = JobState::Retrying;
                        e.record.error = Some(error);
                        e.record.eta = Some(at);
                        e.job.eta = Some(at);
                        e.at = at;
                        st.scheduled.insert((at, id.clone()));
                        requeued = true;
                    }
                    Outcome::Dead { reason } => {
                        st.bury(id, reason, now, self.ttls.failure);
                    }
                }
            }
        }
        self.finished.notify_waiters();
        if requeued {
            self.ready.notify_waiters();
        }
        Ok(())
    }

    async fn release(&self, jobs: &[JobRef]) -> Result<()> {
        {
            let mut st = self.state.lock();
            for job in jobs.iter().rev() {
                if st.end_lease(&job.id, job.attempt, job.lease_token) {
                    if let Some(e) = st.jobs.get_mut(&job.id) {
                        e.job.attempt = e.job.attempt.saturating_sub(1);
                        e.record.attempts = e.job.attempt;
                    }
                    st.make_ready(&job.id, true);
                }
            }
        }
        self.ready.notify_waiters();
        Ok(())
    }

    async fn extend_leases(&self, jobs: &[JobRef], lease: Duration) -> Result<()> {
        let deadline = now_millis() + lease.as_millis() as u64;
        let mut st = self.state.lock();
        for job in jobs {
            let Some(e) = st.leased_mut(&job.id, job.attempt, job.lease_token) else {
                continue;
            };
            let old = e.at;
            e.at = deadline;
            st.leases.remove(&(old, job.id.clone()));
            st.leases.insert((deadline, job.id.clone()));
        }
        Ok(())
    }

    async fn recover_expired(&self, routes: &[Route]) -> Result<usize> {
        let now = now_millis();
        let mut n = 0;
        {
            let mut st = self.state.lock();
            let expired: Vec<_> = st
                .leases
                .iter()
                .take_while(|(at, _)| *at <= now)
                .cloned()
                .collect();
            for (at, id) in expired {
                let Some(e) = st.jobs.get(&id) else { continue };
                if !routes.contains(&e.job.route) {
                    continue;
                }
                st.leases.remove(&(at, id.clone()));
                let e = st.jobs.get_mut(&id).expect("checked above");
                e.record.progress = None;
                // A lost worker does not spend a retry: the job runs again,
                // and the worker that takes it dead-letters it instead once
                // it has been lost too often (`rules::lost_too_often`).
                e.job.lost += 1;
                st.make_ready(&id, true);
                n += 1;
            }
        }
        if n > 0 {
            self.ready.notify_waiters();
            self.finished.notify_waiters();
        }
        Ok(n)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
