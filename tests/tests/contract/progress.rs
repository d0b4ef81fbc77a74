//! Progress reports of running attempts.

use std::time::Duration;

use bananas::{
    broker::{AnyBroker, FetchRequest},
    job::{JobRef, JobState, Route},
};
use bananas_tests::{broker_suite, Kind, TestBroker};

use crate::support::*;

async fn progress(b: &AnyBroker, id: &bananas::job::JobId) -> Option<String> {
    let rec = b.inspect().unwrap().job(id, None).await.unwrap().unwrap();
    rec.progress.map(|p| p.get().to_owned())
}

/// Progress belongs to the attempt holding the lease: stored and replaced
/// while it runs, refused for any other attempt, and gone once the attempt
/// is settled, handed back or recovered.
async fn progress_lives_with_the_attempt(kind: Kind) {
    let tb = TestBroker::new(kind, "progress").await;
    let b = &tb.broker;
    let route = Route::default();
    let (a, c, d) = (job("t"), job("t"), job("t"));
    let (ida, idc, idd) = (a.id.clone(), c.id.clone(), d.id.clone());
    b.enqueue(vec![a]).await.unwrap();
    assert!(
        !b.progress()
            .unwrap()
            .set_progress(&route, &ida, 1, &json("1"))
            .await
            .unwrap(),
        "a queued job has no running attempt"
    );
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    assert_eq!(progress(b, &ida).await, None);
    assert!(b
        .progress()
        .unwrap()
        .set_progress(&route, &ida, 1, &json("10"))
        .await
        .unwrap());
    assert!(b
        .progress()
        .unwrap()
        .set_progress(&route, &ida, 1, &json(r#"{"done":3,"of":10}"#))
        .await
        .unwrap());
    assert_eq!(
        progress(b, &ida).await.as_deref(),
        Some(r#"{"done":3,"of":10}"#)
    );
    assert!(
        !b.progress()
            .unwrap()
            .set_progress(&route, &ida, 2, &json("99"))
            .await
            .unwrap(),
        "another attempt's report is refused"
    );
    b.ack(&got.into_iter().map(|j| done(j, "7")).collect::<Vec<_>>())
        .await
        .unwrap();
    let rec = b.inspect().unwrap().job(&ida, None).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.progress.is_none()),
        (JobState::Succeeded, true)
    );
    assert!(!b
        .progress()
        .unwrap()
        .set_progress(&route, &ida, 1, &json("11"))
        .await
        .unwrap());

    // Handed back: the next attempt starts without the old report.
    b.enqueue(vec![c]).await.unwrap();
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    assert!(b
        .progress()
        .unwrap()
        .set_progress(&route, &idc, 1, &json("50"))
        .await
        .unwrap());
    b.release(&got.iter().map(JobRef::from).collect::<Vec<_>>())
        .await
        .unwrap();
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    assert_eq!((got[0].id.clone(), got[0].attempt), (idc.clone(), 1));
    assert_eq!(progress(b, &idc).await, None);
    b.ack(&got.into_iter().map(|j| done(j, "1")).collect::<Vec<_>>())
        .await
        .unwrap();

    // Recovered after its lease expired: the report goes with the lease.
    b.enqueue(vec![d]).await.unwrap();
    let short = FetchRequest {
        lease: Duration::from_millis(50),
        ..fetch_req(1)
    };
    assert_eq!(b.fetch(&short).await.unwrap().len(), 1);
    assert!(b
        .progress()
        .unwrap()
        .set_progress(&route, &idd, 1, &json("60"))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        b.recover_expired(std::slice::from_ref(&route))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        b.inspect()
            .unwrap()
            .job(&idd, None)
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Queued
    );
    assert_eq!(progress(b, &idd).await, None);
    assert!(
        !b.progress()
            .unwrap()
            .set_progress(&route, &idd, 1, &json("61"))
            .await
            .unwrap(),
        "the recovered attempt lost its lease"
    );
    let got = b.fetch(&fetch_req(1)).await.unwrap();
    assert_eq!(got[0].attempt, 2);
    assert_eq!(progress(b, &idd).await, None);
    if let Some(space) = &tb.redis {
        let keys = space.keys();
        assert!(
            !keys.iter().any(|k| k.ends_with(":progress")),
            "no report outlives its attempt: {keys:?}"
        );
    }
    tb.cleanup().await;
}

broker_suite!(progress_lives_with_the_attempt);
