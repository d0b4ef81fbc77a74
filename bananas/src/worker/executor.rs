//! The executors: each runs jobs from the local queue one after another.

use std::{panic::AssertUnwindSafe, sync::Arc};

use futures::FutureExt;
use tokio::sync::{mpsc, Semaphore};

use crate::{broker::AnyBroker, job::Ack, task::Registry};

use super::{execute, fetcher::LocalQueue, leases::InFlight};

/// One of the `concurrency` executors: runs queued jobs one after another
/// until the queue is closed (shutdown). Each job's timeout and panics are
/// handled by [`execute`]; a panic outside the handler is caught too, so
/// the executor survives it.
pub(super) async fn executor(
    max_lost: u32,
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
        let ack = AssertUnwindSafe(execute(&registry, &broker, job, max_lost))
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
