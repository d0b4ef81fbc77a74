//! The fetcher: leases jobs in batches into the worker's local queue.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{
    broker::FetchRequest,
    job::{Job, JobRef},
};

use super::{leases::InFlight, ErrorBackoff, Worker};

/// Fetched jobs waiting for an executor, with their slot in
/// [`Leases`](super::leases::Leases).
/// `ready` counts them: the fetcher adds a permit per job pushed, an
/// executor takes one before popping, and closing it stops the executors.
#[derive(Debug)]
pub(super) struct LocalQueue {
    pub(super) jobs: Mutex<VecDeque<(usize, Job)>>,
    pub(super) ready: Semaphore,
}

impl Worker {
    /// Leases jobs into the local queue until `stop`, keeping at most
    /// `held_max` held (running or queued locally).
    pub(super) async fn fetch_loop(
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
                // Not started yet: the short claim (see `keep_leases`).
                lease: self.config.claim.min(self.config.lease),
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
