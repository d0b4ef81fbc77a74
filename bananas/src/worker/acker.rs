//! The acker: sends finished jobs' acknowledgements to the broker in
//! batches.

use std::sync::Arc;

use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{AnyBroker, Broker},
    job::{Ack, Outcome},
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

/// How often one acknowledgement the broker refuses is sent before its
/// job is dead-lettered instead.
const REFUSED_TRIES: u32 = 3;

/// Acknowledges one batch. While the broker is unreachable the batch is
/// retried with backoff. A failed call may have landed before the error,
/// so a retry sends the batch without its lease tokens: the broker then
/// checks every ack against its leases.
///
/// A batch the broker *refuses* (any other error: a script error, a reply
/// it cannot read) is split in halves until the refused acknowledgement is
/// alone, so the rest of the batch lands and the acker moves on; that one
/// is tried [`REFUSED_TRIES`] times, then its job goes to the dead letter
/// with the broker's error as the reason. If even that is refused, the job
/// is left to its lease, which expires and recovery handles it.
async fn send_acks(broker: &dyn Broker, batch: Vec<Ack>, closing: &CancellationToken) {
    // The pieces still to send, the next one last.
    let mut pending = vec![batch];
    while let Some(mut piece) = pending.pop() {
        let mut backoff = ErrorBackoff::default();
        loop {
            let Err(e) = broker.ack(&piece).await else {
                break;
            };
            for ack in &mut piece {
                ack.job.lease_token = 0;
            }
            if e.is_unavailable() {
                let wait = backoff.next();
                tracing::warn!(error = %e, jobs = piece.len(), retry_in = ?wait, "acknowledging failed; retrying");
                if closing.is_cancelled() && backoff.exhausted() {
                    let jobs = piece.len() + pending.iter().map(Vec::len).sum::<usize>();
                    tracing::error!(jobs, "giving up acknowledging at shutdown; these jobs' leases will expire and they will run again");
                    return;
                }
                tokio::time::sleep(wait).await;
            } else if piece.len() > 1 {
                tracing::warn!(error = %e, jobs = piece.len(), "the broker refused a batch of acknowledgements; sending it in halves");
                let back = piece.split_off(piece.len() / 2);
                pending.push(back);
                pending.push(piece);
                break;
            } else if backoff.failures + 1 < REFUSED_TRIES {
                let wait = backoff.next();
                tracing::warn!(error = %e, job = %piece[0].job.id, retry_in = ?wait, "the broker refused an acknowledgement; retrying");
                tokio::time::sleep(wait).await;
            } else {
                bury_refused(broker, piece.remove(0), &e).await;
                break;
            }
        }
    }
}

/// Dead-letters the job of an acknowledgement the broker keeps refusing,
/// with the broker's error as the reason.
async fn bury_refused(broker: &dyn Broker, ack: Ack, refusal: &bananas_core::Error) {
    let id = ack.job.id.clone();
    if matches!(ack.outcome, Outcome::Dead { .. }) {
        tracing::error!(job = %id, error = %refusal, "the broker refused to dead-letter this job; its lease will expire and recovery will handle it");
        return;
    }
    let dead = Ack {
        outcome: Outcome::Dead {
            reason: format!("the broker refused this attempt's acknowledgement: {refusal}"),
        },
        ..ack
    };
    match broker.ack(std::slice::from_ref(&dead)).await {
        Ok(()) => {
            tracing::error!(job = %id, error = %refusal, "the broker refused this job's acknowledgement; it is in the dead letter")
        }
        Err(e) => {
            tracing::error!(job = %id, error = %refusal, dead_letter_error = %e, "the broker refused this job's acknowledgement and its dead-lettering; its lease will expire and recovery will handle it")
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

    /// What a [`Flaky`] broker does with an `ack` call: the call's number
    /// (from 0) and its acks in, `None` to forward it, or an error and
    /// whether the acks land before it is reported.
    type Rule = fn(usize, &[Ack]) -> Option<(bool, bananas_core::Error)>;

    /// A memory broker whose `ack` fails as its rule says; it records the
    /// lease tokens of every ack call. It implements only the hot path:
    /// that is all `send_acks` needs.
    #[derive(Debug)]
    struct Flaky {
        inner: MemoryBroker,
        rule: Rule,
        calls: AtomicUsize,
        tokens: Mutex<Vec<Vec<u64>>>,
    }

    impl Flaky {
        fn new(rule: Rule) -> Self {
            Flaky {
                inner: MemoryBroker::default(),
                rule,
                calls: AtomicUsize::new(0),
                tokens: Mutex::default(),
            }
        }
    }

    #[async_trait]
    impl Broker for Flaky {
        async fn ack(&self, acks: &[Ack]) -> Result<()> {
            self.tokens
                .lock()
                .push(acks.iter().map(|a| a.job.lease_token).collect());
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            match (self.rule)(call, acks) {
                None => self.inner.ack(acks).await,
                Some((lands, e)) => {
                    if lands {
                        self.inner.ack(acks).await?;
                    }
                    Err(e)
                }
            }
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
        async fn extend_leases(&self, jobs: &[JobRef], lease: Duration) -> Result<()> {
            self.inner.extend_leases(jobs, lease).await
        }
        async fn recover_expired(&self, routes: &[Route]) -> Result<usize> {
            self.inner.recover_expired(routes).await
        }
        async fn ping(&self) -> Result<()> {
            self.inner.ping().await
        }
    }

    fn success(job: &Job) -> Ack {
        Ack {
            job: JobRef::from(job),
            outcome: Outcome::Succeeded(Some(
                serde_json::value::RawValue::from_string("1".into()).unwrap(),
            )),
            started_at: 1,
            finished_at: 2,
        }
    }

    /// A batch whose first send may have landed is sent again without its
    /// lease tokens, so a broker that trusts tokens checks the repeat.
    #[tokio::test]
    async fn a_repeated_ack_batch_drops_its_lease_tokens() {
        // The first call lands, then its reply is lost.
        let broker = Flaky::new(|call, _| {
            (call == 0).then(|| {
                let e = bananas_core::Error::Unavailable {
                    message: "connection reset".into(),
                    source: None,
                };
                (true, e)
            })
        });
        let mut job = Job::new(
            "t",
            serde_json::value::RawValue::from_string("{}".into()).unwrap(),
        );
        job.lease_token = 7;
        let batch = vec![success(&job), success(&job)];
        send_acks(&broker, batch, &CancellationToken::new()).await;
        assert_eq!(*broker.tokens.lock(), vec![vec![7, 7], vec![0, 0]]);
    }

    /// An acknowledgement the broker always refuses (issue 12: a TTL its
    /// script could not use) does not hold up the rest of its batch, nor
    /// the acker: the others land, and its job goes to the dead letter
    /// with the broker's error.
    #[tokio::test]
    async fn a_refused_ack_is_dead_lettered_and_the_rest_land() {
        let broker = Flaky::new(|_, acks| {
            let poisoned = acks.iter().any(|a| {
                a.job.id.as_str() == "poison" && !matches!(a.outcome, Outcome::Dead { .. })
            });
            poisoned.then(|| {
                (
                    false,
                    bananas_core::Error::backend_msg("ERR invalid expire time in 'set' command"),
                )
            })
        });
        let mut jobs = Vec::new();
        for id in ["a", "b", "poison", "c", "d"] {
            let mut job = Job::new(
                "t",
                serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            );
            job.id = JobId::from(id);
            jobs.push(job);
        }
        broker.enqueue(jobs).await.unwrap();
        let leased = broker
            .fetch(&FetchRequest {
                routes: vec![Route::default()],
                max: 10,
                lease: Duration::from_secs(60),
                cursor: 0,
                block: Duration::ZERO,
            })
            .await
            .unwrap();
        assert_eq!(leased.len(), 5);
        let batch = leased.iter().map(success).collect();
        tokio::time::timeout(
            Duration::from_secs(20),
            send_acks(&broker, batch, &CancellationToken::new()),
        )
        .await
        .expect("the acker is stuck on the refused acknowledgement");
        use crate::broker::Inspect;
        for id in ["a", "b", "c", "d"] {
            let id = JobId::from(id);
            let rec = broker.inner.job(&id, None).await.unwrap().unwrap();
            assert_eq!(rec.state, crate::job::JobState::Succeeded, "{id}");
        }
        let poison = JobId::from("poison");
        let rec = broker.inner.job(&poison, None).await.unwrap().unwrap();
        assert_eq!(rec.state, crate::job::JobState::Dead);
        let reason = rec.error.unwrap();
        assert!(
            reason.contains("refused") && reason.contains("invalid expire time"),
            "{reason}"
        );
    }
}
