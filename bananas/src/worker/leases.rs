//! The leases a worker holds: the in-flight set ([`Leases`]) and the
//! lease keeper that extends them, recovers expired ones and beats.

use std::{collections::HashSet, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{AnyBroker, WorkerInfo},
    job::{now_millis, JobRef},
};

use super::{fetcher::LocalQueue, WorkerConfig};

/// Every job this worker holds a lease on (running, or prefetched and
/// waiting for an executor): what the lease keeper extends, and what
/// shutdown hands back. A slab: a job's slot is its index, so adding and
/// removing costs no hashing and, once warm, no allocation.
#[derive(Debug, Default)]
pub(super) struct Leases {
    slots: Vec<Option<JobRef>>,
    free: Vec<usize>,
    len: usize,
}

impl Leases {
    pub(super) fn insert(&mut self, job: JobRef) -> usize {
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

    pub(super) fn remove(&mut self, slot: usize) -> Option<JobRef> {
        let job = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(job)
    }

    /// The held jobs with their slots.
    fn iter_slots(&self) -> impl Iterator<Item = (usize, &JobRef)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, j)| Some((i, j.as_ref()?)))
    }

    pub(super) fn drain(&mut self) -> Vec<JobRef> {
        self.free.clear();
        self.len = 0;
        self.slots.drain(..).flatten().collect()
    }
}

pub(super) type InFlight = Arc<Mutex<Leases>>;

/// How often a worker with this lease beats, and how long each beat lives:
/// as long as the lease, so a worker is listed exactly as long as its
/// running jobs are held, and its death (the heartbeat lapsing) is when they
/// can be taken over. Every third of the lease, between 100 ms and 5 s.
pub(super) fn heartbeat_timing(lease: Duration) -> (Duration, Duration) {
    let every = (lease / 3).clamp(Duration::from_millis(100), Duration::from_secs(5));
    (every, lease.max(every * 3))
}

/// Extends held jobs' leases, recovers expired ones, and beats. Jobs
/// still waiting in `queue` for a slot keep the short claim
/// ([`WorkerConfig::claim`]); running ones get the full lease.
pub(super) async fn keep_leases(
    broker: AnyBroker,
    in_flight: InFlight,
    queue: Arc<LocalQueue>,
    config: WorkerConfig,
    mut info: WorkerInfo,
    stop: CancellationToken,
) {
    let claim = config.claim.min(config.lease);
    let extend_every = (claim / 3).max(Duration::from_millis(10));
    let mut extend = tokio::time::interval(extend_every);
    let mut recover = tokio::time::interval(config.recover_interval);
    let (beat_every, beat_ttl) = heartbeat_timing(config.lease);
    let mut beat = tokio::time::interval(beat_every);
    for i in [&mut extend, &mut recover, &mut beat] {
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = extend.tick() => {
                let waiting: HashSet<usize> = queue.jobs.lock().iter().map(|(slot, _)| *slot).collect();
                let (mut running, mut prefetched) = (Vec::new(), Vec::new());
                for (slot, job) in in_flight.lock().iter_slots() {
                    if waiting.contains(&slot) { &mut prefetched } else { &mut running }.push(job.clone());
                }
                metrics::gauge!("bananas_jobs_in_flight").set((running.len() + prefetched.len()) as f64);
                for (jobs, lease) in [(running, config.lease), (prefetched, claim)] {
                    if jobs.is_empty() {
                        continue;
                    }
                    if let Err(e) = broker.extend_leases(&jobs, lease).await {
                        tracing::warn!(error = %e, jobs = jobs.len(), "extending leases failed");
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
                if let Err(e) = workers.heartbeat(&info, beat_ttl).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_lives_as_long_as_the_lease() {
        let s = Duration::from_secs;
        // The defaults: a beat every 5 s, alive 15 s, like the lease.
        assert_eq!(heartbeat_timing(s(15)), (s(5), s(15)));
        // A long lease: beats stay 5 s apart, and live as long as it.
        assert_eq!(heartbeat_timing(s(300)), (s(5), s(300)));
        // A tiny lease: beats no closer than 100 ms, alive three beats.
        let ms = Duration::from_millis;
        assert_eq!(heartbeat_timing(ms(10)), (ms(100), ms(300)));
    }
}
