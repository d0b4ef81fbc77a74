//! The memory broker's capabilities beyond the hot path: inspection, the
//! dead letter, cancel, progress, workers and schedules.

use std::time::Duration;

use async_trait::async_trait;
use bananas_core::Result;
use serde_json::value::RawValue;

use crate::{
    broker::{
        Cancel, CancelOutcome, DeadLetter, History, Inspect, Manage, MinuteCounts, Pause, Progress,
        QueueStats, ScheduleInfo, Schedules, TickClaim, TickMark, WorkerInfo, Workers,
    },
    job::{now_millis, Job, JobId, JobRecord, JobState, Millis, Route},
};

use super::{
    state::{slot, State},
    MemoryBroker,
};

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
                paused: st.paused.contains(route),
                // The heads of the queues: jobs join at the back, and only
                // jobs taken back from a worker at the front.
                oldest_due: q
                    .iter()
                    .filter_map(|q| q.front())
                    .filter_map(|id| st.jobs.get(id))
                    .map(|e| e.job.eta.unwrap_or(e.job.created_at))
                    .min(),
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

    async fn routes(&self) -> Result<Vec<Route>> {
        let mut routes: Vec<Route> = self.state.lock().queues.keys().cloned().collect();
        routes.sort();
        Ok(routes)
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
        Ok(match st.leased_mut(id, attempt, 0) {
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

    async fn deregister(&self, id: &str) -> Result<()> {
        self.state.lock().workers.remove(id);
        Ok(())
    }
}

#[async_trait]
impl Schedules for MemoryBroker {
    /// One mark per schedule, whatever the job's route. Never
    /// [`TickClaim::Early`]: this broker lives in its scheduler's process
    /// and has no clock to compare with but that scheduler's.
    async fn claim_tick(&self, schedule: &str, tick: Millis, job: Job) -> Result<TickClaim> {
        let now = now_millis();
        {
            let mut st = self.state.lock();
            if st.ticks.get(schedule).is_some_and(|m| m.tick >= tick) {
                return Ok(TickClaim::Taken);
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
        Ok(TickClaim::Enqueued)
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

#[async_trait]
impl Pause for MemoryBroker {
    async fn pause(&self, route: &Route) -> Result<bool> {
        let mut st = self.state.lock();
        st.route_queues(route);
        Ok(st.paused.insert(route.clone()))
    }

    async fn resume(&self, route: &Route) -> Result<bool> {
        let resumed = self.state.lock().paused.remove(route);
        if resumed {
            self.ready.notify_waiters();
        }
        Ok(resumed)
    }
}

#[async_trait]
impl Manage for MemoryBroker {
    async fn run_now(&self, id: &JobId, _route: Option<&Route>) -> Result<bool> {
        {
            let mut st = self.state.lock();
            st.expire(now_millis());
            let Some(e) = st.jobs.get(id) else {
                return Ok(false);
            };
            if !matches!(e.record.state, JobState::Scheduled | JobState::Retrying) {
                return Ok(false);
            }
            let key = (e.at, id.clone());
            st.scheduled.remove(&key);
            st.make_ready(id, true);
        }
        self.ready.notify_waiters();
        Ok(true)
    }

    async fn delete(&self, id: &JobId, _route: Option<&Route>) -> Result<bool> {
        let mut st = self.state.lock();
        st.expire(now_millis());
        let Some(e) = st.jobs.get(id) else {
            return Ok(false);
        };
        let key = (e.at, id.clone());
        match e.record.state {
            JobState::Active => return Ok(false),
            JobState::Queued => {
                let (route, p) = (e.job.route.clone(), e.job.priority);
                if let Some(q) = st.queues.get_mut(&route) {
                    q[slot(p)].retain(|i| i != id);
                }
            }
            JobState::Scheduled | JobState::Retrying => {
                st.scheduled.remove(&key);
            }
            JobState::Dead => {
                st.dead.remove(&key);
                st.expiries.retain(|(_, i)| i != id);
            }
            JobState::Succeeded => {
                st.expiries.remove(&key);
            }
        }
        st.jobs.remove(id);
        Ok(true)
    }
}

#[async_trait]
impl History for MemoryBroker {
    async fn history(&self, route: &Route) -> Result<Vec<MinuteCounts>> {
        let now = now_millis();
        let from = (now / 60_000).saturating_sub(crate::broker::HISTORY_MINUTES - 1) * 60_000;
        let st = self.state.lock();
        Ok(st
            .history
            .get(route)
            .map(|minutes| {
                minutes
                    .range(from..)
                    .map(|(m, (processed, failed))| MinuteCounts {
                        minute: *m,
                        processed: *processed,
                        failed: *failed,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}
