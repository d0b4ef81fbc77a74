//! The acker: sends finished jobs' acknowledgements to the broker in
//! batches.

use std::sync::Arc;

use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{AnyBroker, Broker},
    job::Ack,
};

use super::ErrorBackoff;

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
pub(super) async fn ack_loop(
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

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use async_trait::async_trait;
    use parking_lot::Mutex;

    use super::*;
    use bananas_core::Result;

    use crate::{
        broker::{FetchRequest, MemoryBroker},
        job::{Job, JobId, JobRef, Outcome, Route},
    };

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
