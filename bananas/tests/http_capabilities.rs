//! A broker that has only the worker's hot path: the HTTP API answers 501
//! for every capability it lacks, naming the capability, from the
//! capability check of `AnyBroker` (no trait method fails at run time).

mod http_util;

use std::sync::Arc;

use bananas::{broker::AnyBroker, broker::MemoryBroker, http::ApiState, Client};

#[tokio::test]
async fn a_broker_without_a_capability_gets_501_naming_it() {
    // Only `Broker` (enqueue, fetch, ack, …): no Inspect, DeadLetter,
    // Cancel, Workers or Schedules.
    let broker = AnyBroker::new(Arc::new(MemoryBroker::new()));
    let server = http_util::start(ApiState::new(Client::new(broker))).await;

    for (path, capability) in [
        ("/jobs/some-id", "inspecting jobs"),
        ("/dead", "the dead letter"),
        ("/queues", "inspecting jobs"),
        ("/schedules", "periodic schedules"),
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status, 501, "GET {path}: {}", r.text());
        assert!(
            r.error().contains(capability),
            "GET {path} names the capability: {}",
            r.error()
        );
    }
    let r = server.delete("/jobs/some-id").await;
    assert_eq!(r.status, 501, "DELETE: {}", r.text());
    assert!(r.error().contains("cancelling jobs"), "{}", r.error());

    // The hot path itself works: a job is accepted.
    let r = server
        .post_json("/jobs", r#"{"name": "anything", "payload": {}}"#)
        .await;
    assert!((200..300).contains(&r.status), "{}", r.text());
}
