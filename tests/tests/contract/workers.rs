//! Heartbeats and the list of live workers.

use std::time::Duration;

use bananas::{broker::WorkerInfo, job::now_millis};
use bananas_test_support::{eventually, unique_prefix};
use bananas_tests::{broker_suite, Kind, TestBroker};

/// A heartbeat lists its worker as it reported itself, until its TTL
/// passes without another beat.
async fn heartbeats_list_live_workers(kind: Kind) {
    let tb = TestBroker::new(kind, "workers").await;
    let b = &tb.broker;
    let info = |id: String, in_flight: usize| WorkerInfo {
        id,
        host: "h".into(),
        pid: 1,
        routes: vec!["default".into()],
        concurrency: 4,
        in_flight,
        started_at: now_millis(),
        seen_at: now_millis(),
    };
    let (live, short) = (
        info(format!("w-{}", unique_prefix("w1")), 2),
        info(format!("w-{}", unique_prefix("w2")), 0),
    );
    let w = b.workers().unwrap();
    w.heartbeat(&live, Duration::from_secs(60)).await.unwrap();
    w.heartbeat(&short, Duration::from_millis(50))
        .await
        .unwrap();
    let workers = w.workers().await.unwrap();
    assert!(workers.iter().any(|w| w == &live), "{workers:?}");
    eventually(
        Duration::from_secs(20),
        "only the short heartbeat expired",
        || async {
            let listed = w.workers().await.unwrap();
            (listed == [live.clone()]).then_some(())
        },
    )
    .await;
    b.ping().await.unwrap();
    tb.cleanup().await;
}

/// A deregistered worker is no longer listed, though its heartbeat has
/// not expired; deregistering an unknown worker is not an error.
async fn deregistered_workers_are_not_listed(kind: Kind) {
    let tb = TestBroker::new(kind, "deregister").await;
    let w = tb.broker.workers().unwrap();
    let info = |id: String| WorkerInfo {
        id,
        host: "h".into(),
        pid: 1,
        routes: vec!["default".into()],
        concurrency: 1,
        in_flight: 0,
        started_at: now_millis(),
        seen_at: now_millis(),
    };
    let (stays, goes) = (
        info(format!("w-{}", unique_prefix("stays"))),
        info(format!("w-{}", unique_prefix("goes"))),
    );
    for i in [&stays, &goes] {
        w.heartbeat(i, Duration::from_secs(60)).await.unwrap();
    }
    w.deregister(&goes.id).await.unwrap();
    assert_eq!(w.workers().await.unwrap(), std::slice::from_ref(&stays));
    w.deregister(&goes.id).await.unwrap();
    w.deregister("never-seen").await.unwrap();
    assert_eq!(w.workers().await.unwrap(), [stays]);
    tb.cleanup().await;
}

broker_suite!(
    heartbeats_list_live_workers,
    deregistered_workers_are_not_listed
);
