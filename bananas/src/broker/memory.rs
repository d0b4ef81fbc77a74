//! The embedded in-memory broker: `memory://`, the zero-set-up default.
//!
//! It keeps the same semantics as the Redis broker (leases, retries, the dead
//! letter, result TTLs, idempotent enqueue, tick claims) inside one process,
//! so users can run their own tests on it. Everything lives behind one mutex;
//! waiting for jobs and results uses [`tokio::sync::Notify`], never polling.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    time::Duration,
};

use async_trait::async_trait;
use bananas_core::Result;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tokio::sync::Notify;

use crate::{
    broker::{
        Broker, Cancel, CancelOutcome, DeadLetter, FetchRequest, Inspect, Progress, QueueStats,
        ScheduleInfo, Schedules, TickMark, WorkerInfo, Workers,
    },
    job::{
        now_millis, Ack, Job, JobId, JobRecord, JobRef, JobState, Millis, Outcome, Priority, Route,
    },
    priority,
};

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
}

#[derive(Debug, Default)]
struct State {
    /// Every job the broker knows, by id.
    jobs: HashMap<JobId, Entry>,
    /// Ready queues per route, one per priority (high, normal, low).
    queues: HashMap<Route, [VecDeque<JobId>; 3]>,
    /// Jobs waiting for their eta.
    scheduled: BTreeSet<(Millis, JobId)>,
    /// Leased jobs by lease deadline.
    leases: BTreeSet<(Millis, JobId)>,
    /// Dead jobs by time of death.
    dead: BTreeSet<(Millis, JobId)>,
    /// Finished records by expiry.
    expiries: BTreeSet<(Millis, JobId)>,
    ticks: HashMap<String, TickMark>,
    schedules: HashMap<String, ScheduleInfo>,
    /// How many `wait` calls are blocked on each job.
    waiting: HashMap<JobId, usize>,
    workers: HashMap<String, (WorkerInfo, Millis)>,
}

#[derive(Debug)]
struct Entry {
    job: Job,
    record: JobRecord,
    /// Sort key in `scheduled`, `leases`, `dead` or `expiries`, whichever
    /// the state puts it in.
    at: Millis,
}

/// How long the bare record of a `result = false` job is kept when someone
/// waits for it (the Redis broker keeps its wake-up list as long).
const WAKE_TTL: Millis = 60_000;

/// Registers a blocked `wait` for as long as it lives.
struct Waiting<'a> {
    broker: &'a MemoryBroker,
    id: JobId,
}

impl<'a> Waiting<'a> {
    fn new(broker: &'a MemoryBroker, id: &JobId) -> Self {
        *broker.state.lock().waiting.entry(id.clone()).or_default() += 1;
        Waiting {
            broker,
            id: id.clone(),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut st = self.broker.state.lock();
        if let Some(n) = st.waiting.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                st.waiting.remove(&self.id);
            }
        }
    }
}

fn slot(p: Priority) -> usize {
    match p {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

impl State {
    fn route_queues(&mut self, route: &Route) -> &mut [VecDeque<JobId>; 3] {
        self.queues.entry(route.clone()).or_default()
    }

    /// Puts a known job in its ready queue.
    fn make_ready(&mut self, id: &JobId, front: bool) {
        let Some(e) = self.jobs.get_mut(id) else {
            return;
        };
        e.record.state = JobState::Queued;
        let (route, p) = (e.job.route.clone(), e.job.priority);
        let q = &mut self.route_queues(&route)[slot(p)];
        if front {
            q.push_front(id.clone());
        } else {
            q.push_back(id.clone());
        }
    }

    fn insert(&mut self, mut job: Job, now: Millis) -> bool {
        if self.jobs.contains_key(&job.id) {
            return false;
        }
        job.attempt = 0;
        let id = job.id.clone();
        let delayed = job.is_delayed(now);
        let state = if delayed {
            JobState::Scheduled
        } else {
            JobState::Queued
        };
        let at = job.eta.unwrap_or(now);
        self.route_queues(&job.route);
        let record = JobRecord::new(&job, state);
        self.jobs.insert(id.clone(), Entry { job, record, at });
        if delayed {
            self.scheduled.insert((at, id));
        } else {
            self.make_ready(&id, false);
        }
        true
    }

    fn promote_due(&mut self, now: Millis) -> bool {
        let mut any = false;
        while let Some((at, id)) = self.scheduled.first().cloned() {
            if at > now {
                break;
            }
            self.scheduled.pop_first();
            self.make_ready(&id, false);
            any = true;
        }
        any
    }

    fn expire(&mut self, now: Millis) {
        while let Some((at, id)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            if let Some(e) = self.jobs.remove(&id) {
                if e.record.state == JobState::Dead {
                    self.dead.remove(&(e.at, id));
                }
            }
        }
    }

    fn pop(&mut self, route: &Route, prefer: Priority) -> Option<JobId> {
        let queues = self.queues.get_mut(route)?;
        priority::fallback(prefer)
            .into_iter()
            .find_map(|p| queues[slot(p)].pop_front())
    }

    fn lease(&mut self, id: &JobId, now: Millis, lease: Duration) -> Option<Job> {
        let e = self.jobs.get_mut(id)?;
        e.job.attempt += 1;
        e.at = now + lease.as_millis() as u64;
        e.record.state = JobState::Active;
        e.record.attempts = e.job.attempt;
        e.record.started_at = Some(now);
        let job = e.job.clone();
        self.leases.insert((e.at, id.clone()));
        Some(job)
    }

    /// Ends a lease; returns false if the job is not leased any more (it was
    /// recovered and possibly re-run), in which case the ack is stale.
    fn end_lease(&mut self, id: &JobId, attempt: u32) -> bool {
        let Some(e) = self.leased_mut(id, attempt) else {
            return false;
        };
        e.record.progress = None;
        let key = (e.at, id.clone());
        self.leases.remove(&key);
        true
    }

    /// The entry of `id` if `attempt` holds its lease.
    fn leased_mut(&mut self, id: &JobId, attempt: u32) -> Option<&mut Entry> {
        self.jobs
            .get_mut(id)
            .filter(|e| e.record.state == JobState::Active && e.job.attempt == attempt)
    }

    fn bury(&mut self, id: &JobId, reason: String, now: Millis, ttl: Duration) {
        let Some(e) = self.jobs.get_mut(id) else {
            return;
        };
        e.record.state = JobState::Dead;
        e.record.error = Some(reason);
        e.record.finished_at = Some(now);
        e.at = now;
        self.dead.insert((now, id.clone()));
        self.expiries
            .insert((now + ttl.as_millis() as u64, id.clone()));
    }
}

impl MemoryBroker {
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
        let now = now_millis();
        let mut st = self.state.lock();
        st.promote_due(now);
        let mut out = Vec::new();
        for prefer in priority::plan(req.cursor, req.max) {
            let next = req.routes.iter().find_map(|r| st.pop(r, prefer));
            let Some(id) = next else { break };
            if let Some(job) = st.lease(&id, now, req.lease) {
                out.push(job);
            }
        }
        let next_eta = st.scheduled.first().map(|(at, _)| *at);
        (out, next_eta)
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn enqueue(&self, jobs: Vec<Job>) -> Result<usize> {
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
                if !st.end_lease(id, ack.job.attempt) {
                    tracing::warn!(job_id = %id, "stale ack ignored: the job's lease had expired");
                    continue;
                }
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
                if st.end_lease(&job.id, job.attempt) {
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

    async fn extend_leases(&self, jobs: &[(Route, JobId)], lease: Duration) -> Result<()> {
        let deadline = now_millis() + lease.as_millis() as u64;
        let mut st = self.state.lock();
        for (_, id) in jobs {
            let Some(e) = st.jobs.get_mut(id) else {
                continue;
            };
            if e.record.state != JobState::Active {
                continue;
            }
            let old = e.at;
            e.at = deadline;
            st.leases.remove(&(old, id.clone()));
            st.leases.insert((deadline, id.clone()));
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
                if e.job.can_retry() {
                    st.make_ready(&id, true);
                } else {
                    let reason = format!(
                        "lease expired: the worker was lost during attempt {} and no retries are left",
                        e.job.attempt
                    );
                    st.bury(&id, reason, now, self.ttls.failure);
                }
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

#[async_trait]
impl Inspect for MemoryBroker {
    async fn job(&self, id: &JobId, _route: Option<&Route>) -> Result<Option<JobRecord>> {
        let mut st = self.state.lock();
        st.expire(now_millis());
        Ok(st.jobs.get(id).map(|e| e.record.clone()))
    }

    async fn wait(
        &self,
        id: &JobId,
        _route: Option<&Route>,
        timeout: Duration,
    ) -> Result<Option<JobRecord>> {
        let _registered = Waiting::new(self, id);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(rec) = self.job(id, None).await? {
                if rec.state.is_final() {
                    return Ok(Some(rec));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        let st = self.state.lock();
        let mut out: Vec<QueueStats> = st
            .queues
            .iter()
            .map(|(route, q)| QueueStats {
                route: route.to_string(),
                high: q[0].len() as u64,
                normal: q[1].len() as u64,
                low: q[2].len() as u64,
                ..QueueStats::default()
            })
            .collect();
        out.sort_by(|a, b| a.route.cmp(&b.route));
        let mut bump = |id: &JobId, f: fn(&mut QueueStats)| {
            if let Some(e) = st.jobs.get(id) {
                if let Some(s) = out.iter_mut().find(|s| s.route == e.job.route.as_str()) {
                    f(s);
                }
            }
        };
        for (_, id) in &st.scheduled {
            bump(id, |s| s.scheduled += 1);
        }
        for (_, id) in &st.leases {
            bump(id, |s| s.active += 1);
        }
        for (_, id) in &st.dead {
            bump(id, |s| s.dead += 1);
        }
        Ok(out)
    }
}

#[async_trait]
impl DeadLetter for MemoryBroker {
    async fn dead_jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
        let mut st = self.state.lock();
        st.expire(now_millis());
        Ok(st
            .dead
            .iter()
            .rev()
            .take(limit)
            .filter_map(|(_, id)| st.jobs.get(id).map(|e| e.record.clone()))
            .collect())
    }

    async fn requeue_dead(&self, id: &JobId) -> Result<bool> {
        {
            let mut st = self.state.lock();
            let Some(e) = st.jobs.get_mut(id) else {
                return Ok(false);
            };
            if e.record.state != JobState::Dead {
                return Ok(false);
            }
            let at = e.at;
            e.job.attempt = 0;
            e.job.eta = None;
            e.record = JobRecord::new(&e.job, JobState::Queued);
            st.dead.remove(&(at, id.clone()));
            st.expiries.retain(|(_, i)| i != id);
            st.make_ready(id, false);
        }
        self.ready.notify_waiters();
        Ok(true)
    }

    async fn purge_dead(&self) -> Result<usize> {
        let mut st = self.state.lock();
        let dead = std::mem::take(&mut st.dead);
        for (_, id) in &dead {
            st.jobs.remove(id);
        }
        let State { expiries, jobs, .. } = &mut *st;
        expiries.retain(|(_, id)| jobs.contains_key(id));
        Ok(dead.len())
    }
}

#[async_trait]
impl Cancel for MemoryBroker {
    async fn cancel(&self, id: &JobId, _route: Option<&Route>) -> Result<CancelOutcome> {
        {
            let mut st = self.state.lock();
            let now = now_millis();
            st.expire(now);
            let Some(e) = st.jobs.get(id) else {
                return Ok(CancelOutcome::NotFound);
            };
            match e.record.state {
                JobState::Active => return Ok(CancelOutcome::Running),
                JobState::Succeeded | JobState::Dead => return Ok(CancelOutcome::Finished),
                JobState::Queued => {
                    let (route, p) = (e.job.route.clone(), e.job.priority);
                    if let Some(q) = st.queues.get_mut(&route) {
                        q[slot(p)].retain(|i| i != id);
                    }
                }
                JobState::Scheduled | JobState::Retrying => {
                    let key = (e.at, id.clone());
                    st.scheduled.remove(&key);
                }
            }
            st.bury(id, "cancelled".to_owned(), now, self.ttls.failure);
        }
        self.finished.notify_waiters();
        Ok(CancelOutcome::Cancelled)
    }
}

#[async_trait]
impl Progress for MemoryBroker {
    async fn set_progress(
        &self,
        route: &Route,
        id: &JobId,
        attempt: u32,
        progress: &RawValue,
    ) -> Result<bool> {
        let mut st = self.state.lock();
        Ok(match st.leased_mut(id, attempt) {
            Some(e) if e.job.route == *route => {
                e.record.progress = Some(progress.to_owned());
                true
            }
            _ => false,
        })
    }
}

#[async_trait]
impl Workers for MemoryBroker {
    async fn heartbeat(&self, info: &WorkerInfo, ttl: Duration) -> Result<()> {
        let until = now_millis() + ttl.as_millis() as u64;
        self.state
            .lock()
            .workers
            .insert(info.id.clone(), (info.clone(), until));
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let now = now_millis();
        let mut st = self.state.lock();
        st.workers.retain(|_, (_, until)| *until > now);
        let mut v: Vec<_> = st.workers.values().map(|(w, _)| w.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }
}

#[async_trait]
impl Schedules for MemoryBroker {
    async fn claim_tick(&self, schedule: &str, tick: Millis, job: Job) -> Result<bool> {
        let now = now_millis();
        {
            let mut st = self.state.lock();
            if st.ticks.get(schedule).is_some_and(|m| m.tick >= tick) {
                return Ok(false);
            }
            st.ticks.insert(
                schedule.to_owned(),
                TickMark {
                    tick,
                    job_id: job.id.clone(),
                },
            );
            st.insert(job, now);
        }
        self.ready.notify_waiters();
        Ok(true)
    }

    async fn last_tick(&self, schedule: &str, _route: &Route) -> Result<Option<TickMark>> {
        Ok(self.state.lock().ticks.get(schedule).cloned())
    }

    async fn announce(&self, schedules: &[ScheduleInfo]) -> Result<()> {
        let mut st = self.state.lock();
        for s in schedules {
            st.schedules.insert(s.id.clone(), s.clone());
        }
        Ok(())
    }

    async fn announcements(&self) -> Result<Vec<ScheduleInfo>> {
        Ok(self.state.lock().schedules.values().cloned().collect())
    }

    async fn forget(&self, ids: &[String]) -> Result<()> {
        let mut st = self.state.lock();
        for id in ids {
            st.schedules.remove(id);
        }
        Ok(())
    }
}
