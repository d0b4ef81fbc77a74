//! Cancelling jobs before they run.

use std::time::Duration;

use bananas::{
    broker::CancelOutcome,
    job::{now_millis, Ack, JobState, Outcome, Priority},
};
use bananas_tests::{broker_suite, Kind, TestBroker};

use crate::support::*;

/// Cancelling takes queued, scheduled and retrying jobs out before they
/// run and buries them as `cancelled` (waiters see it; a requeue undoes
/// it); running and finished jobs are left alone.
async fn cancel_takes_jobs_that_have_not_started(kind: Kind) {
    let tb = TestBroker::new(kind, "cancel").await;
    let b = &tb.broker;
    let (queued, mut high, mut delayed, retried) = (job("t"), job("t"), job("t"), job("t"));
    high.priority = Priority::High;
    delayed.eta = Some(now_millis() + 3_600_000);
    let ids = [&queued, &high, &delayed, &retried].map(|j| j.id.clone());
    b.enqueue(vec![retried.clone()]).await.unwrap();
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    b.ack(&[Ack {
        job: got[0].clone().into_parts().0,
        outcome: Outcome::Retry {
            at: now_millis() + 3_600_000,
            error: "try later".into(),
        },
        started_at: now_millis(),
        finished_at: now_millis(),
    }])
    .await
    .unwrap();
    b.enqueue(vec![queued, high, delayed]).await.unwrap();

    // A waiter on the queued job learns of the cancellation.
    let (waited, outcome) = tokio::join!(
        b.inspect()
            .unwrap()
            .wait(&ids[0], None, Duration::from_secs(10)),
        async {
            until_waiting(&tb, "default", &ids[0]).await;
            b.cancel().unwrap().cancel(&ids[0], None).await.unwrap()
        }
    );
    assert_eq!(outcome, CancelOutcome::Cancelled);
    let rec = waited.unwrap().expect("the waiter is told");
    assert_eq!(
        (rec.state, rec.error.as_deref()),
        (JobState::Dead, Some("cancelled"))
    );
    assert_eq!(
        b.cancel().unwrap().cancel(&ids[2], None).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        b.inspect()
            .unwrap()
            .job(&ids[3], None)
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Retrying
    );
    assert_eq!(
        b.cancel().unwrap().cancel(&ids[3], None).await.unwrap(),
        CancelOutcome::Cancelled
    );
    let rec = b
        .inspect()
        .unwrap()
        .job(&ids[3], None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Dead, 1));
    let stats = b.inspect().unwrap().stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "default").unwrap();
    assert_eq!((s.high, s.normal, s.scheduled, s.dead), (1, 0, 0, 3));

    // Only the job left is fetched; running, then finished, it stays.
    let got = b.fetch(&fetch_req(10)).await.unwrap();
    assert_eq!(
        got.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        [ids[1].clone()]
    );
    assert_eq!(
        b.cancel().unwrap().cancel(&ids[1], None).await.unwrap(),
        CancelOutcome::Running
    );
    b.ack(&got.into_iter().map(|j| done(j, "1")).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(
        b.cancel().unwrap().cancel(&ids[1], None).await.unwrap(),
        CancelOutcome::Finished
    );
    assert_eq!(
        b.cancel()
            .unwrap()
            .cancel(&bananas::job::JobId::new(), None)
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );

    // The dead letter holds the cancelled jobs; a requeue undoes one.
    let dead = b.dead_letter().unwrap().dead_jobs(10).await.unwrap();
    assert_eq!(dead.len(), 3);
    assert!(dead.iter().all(|d| d.error.as_deref() == Some("cancelled")));
    assert!(b
        .dead_letter()
        .unwrap()
        .requeue_dead(&ids[2])
        .await
        .unwrap());
    let got = b.fetch(&fetch_req(10)).await.unwrap();
    assert_eq!(
        got.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        [ids[2].clone()]
    );
    tb.cleanup().await;
}

broker_suite!(cancel_takes_jobs_that_have_not_started);
