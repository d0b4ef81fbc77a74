//! The HTTP API of an app on the real Redis (127.0.0.1:6379 or `REDIS_URL`),
//! under a key prefix of its own.

#![cfg(feature = "redis")]

mod http_util;

use std::{sync::Arc, time::Duration};

use bananas::{http::ApiState, task::Registry, App, JobId, JobState};
use bananas_test_support::{redis_url, KeySpace};
use serde_json::json;

/// Adds two numbers.
#[bananas::task]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Always fails; dead after one attempt.
#[bananas::task(retries = 0)]
async fn doomed() -> anyhow::Result<()> {
    anyhow::bail!("doomed")
}

#[tokio::test]
async fn quickstart_over_http_on_redis() {
    // The test's keys are deleted (SCAN + DEL) when `space` is dropped.
    let space = KeySpace::new(&redis_url(), "http");
    let broker = bananas_redis::RedisBroker::builder(space.url())
        .prefix(space.prefix())
        .connect()
        .await
        .expect("Redis at REDIS_URL or 127.0.0.1:6379");
    let app = App::builder()
        .broker(Arc::new(broker))
        .registry(Registry::from_inventory().unwrap())
        .build()
        .await
        .unwrap();
    let worker = tokio::spawn(app.clone().run());
    let server = http_util::start(
        ApiState::new(app.client().clone())
            .registry(app.registry().clone())
            .token(Some("t".into())),
    )
    .await
    .with_token("t");

    assert_eq!(server.get("/health").await.status, 200);
    let r = server
        .post_json(
            "/jobs",
            r#"{"name": "add", "payload": {"a": 20, "b": 22}, "priority": "high"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let rec = app
        .client()
        .wait(&JobId::from(id.as_str()), Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, JobState::Succeeded);
    let v = server.get(&format!("/jobs/{id}")).await.json();
    assert_eq!(
        (v["state"].as_str(), v["result"].clone()),
        (Some("succeeded"), json!(42))
    );

    let r = server
        .post_json("/jobs", r#"{"name": "add", "payload": {"a": 1}}"#)
        .await;
    assert_eq!(r.status, 422);

    let r = server.post_json("/jobs", r#"{"name": "doomed"}"#).await;
    let dead = r.json()["id"].as_str().unwrap().to_owned();
    app.client()
        .wait(&JobId::from(dead.as_str()), Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    let v = server.get("/dead").await.json();
    assert_eq!(v["jobs"][0]["id"], dead.as_str(), "{v}");
    assert_eq!(server.get("/queues").await.json()["totals"]["dead"], 1);
    let r = server.post(&format!("/dead/{dead}/requeue")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    server
        .wait_for("/dead", |v| {
            v["jobs"].as_array().is_some_and(|j| j.len() == 1)
        })
        .await;
    assert_eq!(server.delete("/dead").await.json(), json!({"purged": 1}));
    let r = server.get("/metrics").await;
    assert!(
        r.text().contains("bananas_queue_dead{route=\"default\"}"),
        "{}",
        r.text()
    );

    app.shutdown();
    worker.await.unwrap().unwrap();
}
