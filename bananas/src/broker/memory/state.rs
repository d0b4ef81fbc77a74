//! The memory broker's bookkeeping: every job, the ready queues, and the
//! sets ordered by time (scheduled, leased, dead, expiring).

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    time::Duration,
};

use crate::{
    broker::{ScheduleInfo, TickMark, WorkerInfo},
    job::{Job, JobId, JobRecord, JobState, Millis, Priority, Route},
    priority,
};

#[derive(Debug, Default)]
pub(super) struct State {
    /// Every job the broker knows, by id.
    pub(super) jobs: HashMap<JobId, Entry>,
    /// Ready queues per route, one per priority (high, normal, low).
    pub(super) queues: HashMap<Route, [VecDeque<JobId>; 3]>,
    /// Jobs waiting for their eta.
    pub(super) scheduled: BTreeSet<(Millis, JobId)>,
    /// Leased jobs by lease deadline.
    pub(super) leases: BTreeSet<(Millis, JobId)>,
    /// Dead jobs by time of death.
    pub(super) dead: BTreeSet<(Millis, JobId)>,
    /// Finished records by expiry.
    pub(super) expiries: BTreeSet<(Millis, JobId)>,
    pub(super) ticks: HashMap<String, TickMark>,
    pub(super) schedules: HashMap<String, ScheduleInfo>,
    /// How many `wait` calls are blocked on each job.
    pub(super) waiting: HashMap<JobId, usize>,
    pub(super) workers: HashMap<String, (WorkerInfo, Millis)>,
    /// The last lease handed out: every lease gets the next number as its
    /// token, so a lease is told apart from every other lease of its job,
    /// also once the job runs again from attempt 1 (requeued, or its id
    /// reused).
    pub(super) last_lease: u64,
    /// Paused routes: no job is leased from them.
    pub(super) paused: HashSet<Route>,
    /// Per route, minute (ms) → attempts processed and failed in it, for
    /// the last day.
    pub(super) history: HashMap<Route, std::collections::BTreeMap<Millis, (u64, u64)>>,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) job: Job,
    pub(super) record: JobRecord,
    /// Sort key in `scheduled`, `leases`, `dead` or `expiries`, whichever
    /// the state puts it in.
    pub(super) at: Millis,
}

pub(super) fn slot(p: Priority) -> usize {
    match p {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

impl State {
    pub(super) fn route_queues(&mut self, route: &Route) -> &mut [VecDeque<JobId>; 3] {
        self.queues.entry(route.clone()).or_default()
    }

    /// Puts a known job in its ready queue.
    pub(super) fn make_ready(&mut self, id: &JobId, front: bool) {
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

    pub(super) fn insert(&mut self, mut job: Job, now: Millis) -> bool {
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

    pub(super) fn promote_due(&mut self, now: Millis) -> bool {
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

    pub(super) fn expire(&mut self, now: Millis) {
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

    pub(super) fn pop(&mut self, route: &Route, prefer: Priority) -> Option<JobId> {
        let queues = self.queues.get_mut(route)?;
        priority::fallback(prefer)
            .into_iter()
            .find_map(|p| queues[slot(p)].pop_front())
    }

    pub(super) fn lease(&mut self, id: &JobId, now: Millis, lease: Duration) -> Option<Job> {
        let e = self.jobs.get_mut(id)?;
        self.last_lease += 1;
        e.job.lease_token = self.last_lease;
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
    pub(super) fn end_lease(&mut self, id: &JobId, attempt: u32, token: u64) -> bool {
        let Some(e) = self.leased_mut(id, attempt, token) else {
            return false;
        };
        e.record.progress = None;
        let key = (e.at, id.clone());
        self.leases.remove(&key);
        true
    }

    /// The entry of `id` if `attempt` holds its lease, and its lease token
    /// is `token` (0: not known, the attempt decides).
    pub(super) fn leased_mut(
        &mut self,
        id: &JobId,
        attempt: u32,
        token: u64,
    ) -> Option<&mut Entry> {
        self.jobs.get_mut(id).filter(|e| {
            e.record.state == JobState::Active
                && e.job.attempt == attempt
                && (token == 0 || e.job.lease_token == token)
        })
    }

    /// Counts a settled attempt of `id` in its route's history.
    pub(super) fn count(&mut self, id: &JobId, now: Millis, failed: bool) {
        const MINUTE: Millis = 60_000;
        let Some(route) = self.jobs.get(id).map(|e| e.job.route.clone()) else {
            return;
        };
        let minutes = self.history.entry(route).or_default();
        let e = minutes.entry(now / MINUTE * MINUTE).or_default();
        e.0 += 1;
        e.1 += u64::from(failed);
        let from =
            (now / MINUTE).saturating_sub(bananas_core::broker::HISTORY_MINUTES - 1) * MINUTE;
        while minutes.first_key_value().is_some_and(|(m, _)| *m < from) {
            minutes.pop_first();
        }
    }

    pub(super) fn bury(&mut self, id: &JobId, reason: String, now: Millis, ttl: Duration) {
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
