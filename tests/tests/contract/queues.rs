//! Queue control: pausing and resuming a route, and queue latency.

use std::time::Duration;

use bananas::job::{now_millis, Priority};
use bananas_tests::{broker_suite, Kind, TestBroker};

use crate::support::*;

/// A paused route keeps accepting jobs and leases none, on every fetch;
/// the state shows in the queue stats; resuming lets the jobs run, and
/// wakes a fetch that was waiting. Pausing twice, or resuming a running
/// route, changes nothing and says so. Other routes are not affected.
async fn a_paused_route_accepts_jobs_and_leases_none(kind: Kind) {
    let tb = TestBroker::new(kind, "pause").await;
    let b = &tb.broker;
    let pause = b.pause().unwrap();
    let inspect = b.inspect().unwrap();
    let (held, other) = (route("held"), route("free"));
    b.enqueue(vec![job_on("held", Priority::High, 1)])
        .await
        .unwrap();
    assert!(pause.pause(&held).await.unwrap(), "it was running");
    assert!(!pause.pause(&held).await.unwrap(), "already paused");
    // Still accepts jobs, at every priority, and a scheduled one that
    // falls due while paused.
    let mut due = job_on("held", Priority::Normal, 2);
    due.eta = Some(now_millis() + 100);
    b.enqueue(vec![
        job_on("held", Priority::Low, 3),
        due,
        job_on("free", Priority::Normal, 4),
    ])
    .await
    .unwrap();
    wait_past(now_millis() + 150).await;
    let got = b.fetch(&req(&["held", "free"], 10)).await.unwrap();
    assert_eq!(got.len(), 1, "only the other route's job: {got:?}");
    assert_eq!(got[0].route, other);
    assert!(b.fetch(&req(&["held"], 10)).await.unwrap().is_empty());

    let stats = inspect.stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "held").unwrap();
    assert!(s.paused, "{s:?}");
    assert_eq!(s.high + s.normal + s.low + s.scheduled, 3, "{s:?}");
    assert!(!stats.iter().find(|s| s.route == "free").unwrap().paused);

    // A fetch waiting on the paused route gets its jobs once it resumes.
    let mut waiting = req(&["held"], 10);
    waiting.block = Duration::from_secs(20);
    let (fetched, resumed) = tokio::join!(b.fetch(&waiting), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        pause.resume(&held).await.unwrap()
    });
    assert!(resumed);
    let mut got = fetched.unwrap();
    if got.len() < 3 {
        got.extend(fetch_n(b, &["held"], 3 - got.len()).await);
    }
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(!pause.resume(&held).await.unwrap(), "not paused any more");
    let s = inspect.stats().await.unwrap();
    assert!(!s.iter().find(|s| s.route == "held").unwrap().paused);
    tb.cleanup().await;
}

/// Queue latency: when the oldest queued job became due, over every
/// priority; nothing queued, no latency.
async fn latency_is_the_age_of_the_oldest_queued_job(kind: Kind) {
    let tb = TestBroker::new(kind, "latency").await;
    let b = &tb.broker;
    let inspect = b.inspect().unwrap();
    let mut old = job_on("lat", Priority::Low, 1);
    old.created_at = now_millis() - 60_000;
    let young = job_on("lat", Priority::High, 2);
    b.enqueue(vec![young.clone(), old.clone()]).await.unwrap();
    let stats = inspect.stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "lat").unwrap();
    assert_eq!(s.oldest_due, Some(old.created_at), "{s:?}");
    assert!(s.latency(now_millis()) >= Duration::from_secs(60));
    let _ = fetch_n(b, &["lat"], 2).await;
    let stats = inspect.stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "lat").unwrap();
    assert_eq!(s.oldest_due, None, "{s:?}");
    assert_eq!(s.latency(now_millis()), Duration::ZERO);
    tb.cleanup().await;
}

broker_suite!(
    a_paused_route_accepts_jobs_and_leases_none,
    latency_is_the_age_of_the_oldest_queued_job,
);
