//! The HTTP API over real HTTP on loopback: every endpoint, each error case,
//! and auth. Runs on the in-memory broker.

mod http_util;

use std::{sync::Arc, time::Duration};

use bananas::{
    broker::{MemoryBroker, WorkerInfo},
    http::ApiState,
    job::{JobId, JobRecord},
    task::Registry,
    App, Client, JobState,
};
use http_util::{start, Server};
use serde_json::{json, Value};

/// Adds two numbers.
#[bananas::task]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Always fails, and is dead after its first attempt.
#[bananas::task(retries = 0, route = "slow", priority = low)]
async fn doomed(reason: String) -> anyhow::Result<()> {
    anyhow::bail!("doomed: {reason}")
}

fn registry() -> Registry {
    Registry::from_inventory().expect("no duplicate tasks")
}

/// An app with a worker on the memory broker, and the API over it with the
/// app's tasks.
async fn app_and_api(
    token: Option<&str>,
) -> (App, Server, tokio::task::JoinHandle<bananas::Result<()>>) {
    // As `App::run` does with BANANAS_HTTP_ADDR: the recorder goes in before
    // the worker records anything.
    bananas::metrics::install().unwrap();
    let app = App::builder()
        .broker(Arc::new(MemoryBroker::new()))
        .registry(registry())
        .build()
        .await
        .unwrap();
    let worker = tokio::spawn(app.clone().run());
    let state = ApiState::new(app.client().clone())
        .registry(app.registry().clone())
        .scheduler(app.scheduler().clone())
        .token(token.map(str::to_owned));
    let server = start(state).await;
    (app, server, worker)
}

/// The API over a memory broker with no worker and no task code, like
/// `bananas serve --allow-new-routes` (the tests using it submit to routes
/// nobody serves; `new_routes_are_refused_unless_allowed` tests the check).
async fn standalone() -> (Client, Server) {
    let client = Client::new(Arc::new(MemoryBroker::new()));
    let server = start(
        ApiState::new(client.clone())
            .body_limit(1024)
            .allow_new_routes(true),
    )
    .await;
    (client, server)
}

/// A worker elsewhere that serves `routes`, as its heartbeat announces it.
async fn worker_elsewhere(client: &Client, id: &str, routes: &[&str]) {
    let info = WorkerInfo {
        id: id.into(),
        host: "h".into(),
        pid: 1,
        routes: routes.iter().map(|r| r.to_string()).collect(),
        concurrency: 1,
        in_flight: 0,
        started_at: 1,
        seen_at: 2,
    };
    client
        .broker()
        .workers()
        .unwrap()
        .heartbeat(&info, Duration::from_secs(60))
        .await
        .unwrap();
}

async fn wait_final(client: &Client, id: &str) -> JobRecord {
    client
        .wait(&JobId::from(id), Duration::from_secs(10))
        .await
        .unwrap()
        .expect("job did not finish in time")
}

#[tokio::test]
async fn quickstart_curl_lines_work_against_an_app() {
    let (app, server, worker) = app_and_api(None).await;
    // curl -X POST /jobs -H "Content-Type: application/json" -d '{…}'
    let r = server
        .post_json(
            "/jobs",
            r#"{"name": "add", "payload": {"a": 2, "b": 40}, "priority": "high"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.headers["location"], format!("/jobs/{id}").as_str());
    wait_final(app.client(), &id).await;

    // curl /jobs/{id}
    let r = server.get(&format!("/jobs/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["name"], "add");
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["priority"], "high");
    assert_eq!(v["route"], "default");
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["result"], 42);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["payload"], json!({"a": 2, "b": 40}));
    assert!(v["created_at"]["at"].as_str().unwrap().ends_with('Z'));
    assert!(v["created_at"]["ms"].as_u64().unwrap() > 0);
    assert!(v["finished_at"]["ms"].as_u64().unwrap() >= v["created_at"]["ms"].as_u64().unwrap());
    app.shutdown();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn enqueue_takes_the_tasks_defaults_and_the_requests_options() {
    let (client, server) = standalone().await;
    // A standalone server accepts any name and uses the global defaults.
    let r = server.post_json("/jobs", r#"{"name": "anything"}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["state"], "queued");
    let rec = client
        .job(&JobId::from(r.json()["id"].as_str().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rec.route.as_str(), rec.max_retries, rec.args.get()),
        ("default", 3, "{}")
    );

    let r = server
        .post_json(
            "/jobs",
            r#"{"name": "x", "payload": {"k": [1]}, "priority": "low", "route": "gpu",
                "countdown": 60, "retries": 7}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["state"], "scheduled");
    let v = server
        .get(&format!("/jobs/{}", r.json()["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(v["state"], "scheduled");
    assert_eq!(v["priority"], "low");
    assert_eq!(v["route"], "gpu");
    assert_eq!(v["max_retries"], 7);
    let eta = v["eta"]["ms"].as_u64().unwrap();
    assert!(
        eta >= v["created_at"]["ms"].as_u64().unwrap() + 59_000,
        "{v}"
    );

    // eta as RFC 3339 and as milliseconds.
    for eta in [json!("2100-01-01T00:00:00Z"), json!(4_102_444_800_000u64)] {
        let body = json!({"name": "x", "eta": eta}).to_string();
        let r = server.post_json("/jobs", &body).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let v = server
            .get(&format!("/jobs/{}", r.json()["id"].as_str().unwrap()))
            .await
            .json();
        assert_eq!(v["eta"]["ms"], 4_102_444_800_000u64);
        assert_eq!(v["eta"]["at"], "2100-01-01T00:00:00.000Z");
    }

    // With the app's registry, omitted options come from the task.
    let (app, server, worker) = app_and_api(None).await;
    app.shutdown();
    worker.await.unwrap().unwrap();
    let r = server
        .post_json("/jobs", r#"{"name": "doomed", "payload": {"reason": "x"}}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = server
        .get(&format!("/jobs/{}", r.json()["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(
        (
            v["route"].as_str(),
            v["priority"].as_str(),
            v["max_retries"].as_u64()
        ),
        (Some("slow"), Some("low"), Some(0))
    );
}

#[tokio::test]
async fn bad_requests_get_400_naming_the_problem() {
    let (_client, server) = standalone().await;
    let cases: &[(&str, &str)] = &[
        (r#"{"name": "x""#, "malformed JSON"),
        ("not json", "malformed JSON"),
        ("", "empty"),
        ("[1, 2]", "JSON object"),
        (r#"{"payload": {}}"#, "missing field `name`"),
        (r#"{"name": ""}"#, "`name` must not be empty"),
        (r#"{"name": 5}"#, "`name` must be a string"),
        (
            r#"{"name": "x", "payload": "a=1"}"#,
            "`payload` must be an object",
        ),
        (
            r#"{"name": "x", "priority": "urgent"}"#,
            "unknown priority `urgent`",
        ),
        (r#"{"name": "x", "priority": 1}"#, "`priority`"),
        (
            r#"{"name": "x", "route": "no spaces"}"#,
            "invalid route `no spaces`",
        ),
        (r#"{"name": "x", "route": 7}"#, "`route` must be a string"),
        (r#"{"name": "x", "retries": -1}"#, "`retries`"),
        (r#"{"name": "x", "retries": 1001}"#, "`retries`"),
        (r#"{"name": "x", "retries": "3"}"#, "`retries`"),
        (r#"{"name": "x", "countdown": -1}"#, "`countdown`"),
        (r#"{"name": "x", "countdown": "soon"}"#, "`countdown`"),
        (r#"{"name": "x", "eta": "next tuesday"}"#, "`eta`"),
        (r#"{"name": "x", "eta": 1.5}"#, "`eta`"),
        (r#"{"name": "x", "eta": 1, "countdown": 1}"#, "not both"),
        (r#"{"name": "x", "delay": 5}"#, "unknown field `delay`"),
    ];
    for (body, needle) in cases {
        let r = server.post_json("/jobs", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let e = r.error();
        assert!(e.contains(needle), "{body}: expected {needle:?} in {e:?}");
    }

    // Not JSON at all: 415, still a JSON error.
    let r = server
        .send(
            "POST",
            "/jobs",
            &[("content-type", "text/plain")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, 415);
    assert!(r.error().contains("application/json"));
    let r = server
        .send("POST", "/jobs", &[], Some(br#"{"name":"x"}"#.to_vec()))
        .await;
    assert_eq!(r.status, 415);
    assert!(r.error().contains("Content-Type"));

    // Over the body limit (1 KiB here): 413 with a JSON error.
    let big = json!({"name": "x", "payload": {"blob": "x".repeat(4096)}}).to_string();
    let r = server.post_json("/jobs", &big).await;
    assert_eq!(r.status, 413);
    assert!(r.error().contains("limit"));

    // Bad `limit` on /dead.
    for q in ["limit=0", "limit=abc", "limit=10001", "page=2"] {
        let r = server.get(&format!("/dead?{q}")).await;
        assert_eq!(r.status, 400, "{q}");
        assert!(r.error().contains(if q.starts_with("page") {
            "`page`"
        } else {
            "`limit`"
        }));
    }
}

#[tokio::test]
async fn payload_numbers_pass_through_with_every_digit() {
    // Beyond u64 and beyond an f64's 17 significant digits: a trip through
    // `serde_json::Value` would store 1.2345678901234568e29.
    const BIG: &str = "123456789012345678901234567890";
    const PRECISE: &str = "0.1000000000000000055511151231257827";
    let payload = format!(r#"{{"n": {BIG}, "x": [{PRECISE}, -{BIG}]}}"#);
    let (client, server) = standalone().await;
    let r = server
        .post_json(
            "/jobs",
            &format!(r#"{{"name": "big", "payload": {payload}}}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let rec = client
        .job(&JobId::from(id.as_str()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.args.get(), payload, "stored args changed");
    // And back out through GET /jobs/{id}, as text.
    let text = server.get(&format!("/jobs/{id}")).await.text();
    assert!(
        text.contains(&format!(r#""n": {BIG}"#)) && text.contains(PRECISE),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_tasks_and_bad_arguments_get_422_with_an_app() {
    let (app, server, worker) = app_and_api(None).await;
    let r = server
        .post_json("/jobs", r#"{"name": "nope", "payload": {}}"#)
        .await;
    assert_eq!(r.status, 422);
    assert!(r.error().contains("unknown task `nope`"), "{}", r.text());

    let r = server
        .post_json("/jobs", r#"{"name": "add", "payload": {"a": 1}}"#)
        .await;
    assert_eq!(r.status, 422);
    let e = r.error();
    assert!(e.contains("`add`") && e.contains('b'), "{e}");

    let r = server
        .post_json(
            "/jobs",
            r#"{"name": "add", "payload": {"a": "one", "b": 2}}"#,
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.error().contains("`add`"));

    // Nothing was enqueued by the rejected requests.
    let q = server.get("/queues").await.json();
    assert_eq!(q["totals"]["normal"], 0, "{q}");
    app.shutdown();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn unknown_ids_paths_and_methods_get_json_404_and_405() {
    let (_client, server) = standalone().await;
    let r = server.get("/jobs/does-not-exist").await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("`does-not-exist`"));

    let r = server.post("/dead/does-not-exist/requeue").await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("`does-not-exist`"));

    let r = server.get("/nowhere").await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("/nowhere"));

    let r = server.send("PUT", "/jobs", &[], None).await;
    assert_eq!(r.status, 405);
    assert!(r.error().contains("PUT /jobs"));
}

#[tokio::test]
async fn dead_letter_list_requeue_and_purge() {
    let (app, server, worker) = app_and_api(None).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let body =
            json!({"name": "doomed", "payload": {"reason": format!("r{i}")}, "route": "default"});
        let r = server.post_json("/jobs", &body.to_string()).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_owned();
        assert_eq!(wait_final(app.client(), &id).await.state, JobState::Dead);
        ids.push(id);
    }

    let r = server.get("/dead").await;
    assert_eq!(r.status, 200);
    let jobs = r.json()["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 3);
    assert!(jobs
        .iter()
        .all(|j| j["state"] == "dead" && j["error"].as_str().unwrap().contains("doomed: r")));
    assert_eq!(
        server.get("/dead?limit=2").await.json()["jobs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let q = server.get("/queues").await.json();
    assert_eq!(q["totals"]["dead"], 3, "{q}");

    // Requeue one: it runs again and dies again.
    let r = server.post(&format!("/dead/{}/requeue", ids[0])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"id": ids[0], "requeued": true}));
    server
        .wait_for(&format!("/jobs/{}", ids[0]), |v| {
            v["state"] == "dead" && v["attempts"] == 1
        })
        .await;

    let r = server.delete("/dead").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"purged": 3}));
    assert_eq!(server.get("/dead").await.json()["jobs"], json!([]));
    app.shutdown();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn queues_and_workers() {
    let (client, server) = standalone().await;
    for (prio, route) in [("high", "a"), ("low", "a"), ("low", "a"), ("normal", "b")] {
        let body = json!({"name": "x", "priority": prio, "route": route}).to_string();
        assert_eq!(server.post_json("/jobs", &body).await.status, 201);
    }
    server
        .post_json("/jobs", r#"{"name": "x", "route": "b", "countdown": 600}"#)
        .await;
    let v = server.get("/queues").await.json();
    let a = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["route"] == "a")
        .unwrap()
        .clone();
    assert_eq!(
        (a["high"].as_u64(), a["normal"].as_u64(), a["low"].as_u64()),
        (Some(1), Some(0), Some(2)),
        "{v}"
    );
    assert_eq!(v["totals"]["route"], "*");
    assert_eq!(v["totals"]["high"], 1);
    assert_eq!(v["totals"]["normal"], 1);
    assert_eq!(v["totals"]["scheduled"], 1, "{v}");

    let info = WorkerInfo {
        id: "w1".into(),
        host: "h".into(),
        pid: 1,
        routes: vec!["a".into()],
        concurrency: 4,
        in_flight: 0,
        started_at: 1,
        seen_at: 2,
    };
    client
        .broker()
        .workers()
        .unwrap()
        .heartbeat(&info, Duration::from_secs(60))
        .await
        .unwrap();
    let v = server.get("/workers").await.json();
    assert_eq!(v["workers"][0]["id"], "w1");
    assert_eq!(v["workers"][0]["concurrency"], 4);
}

#[tokio::test]
async fn schedules_without_a_scheduler_is_an_empty_list() {
    let (_client, server) = standalone().await;
    let r = server.get("/schedules").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"schedules": []}));
}

#[tokio::test]
async fn a_bad_schedule_announcement_is_skipped_not_fatal() {
    let (logs, _guard) = http_util::capture_logs();
    let (client, server) = standalone().await;
    let info = |id: &str, route: &str| bananas::broker::ScheduleInfo {
        id: id.to_owned(),
        route: route.to_owned(),
        cron: "0 0 2 * * *".to_owned(),
        tz: "UTC".to_owned(),
        next_run: Some(90_000_000),
        seen_at: 500,
    };
    bananas::broker::publish_schedules(
        client.broker().schedules().unwrap(),
        &[
            info("nightly", "default"),
            info("broken", "not a route!"),
            info("weekly", "default"),
        ],
    )
    .await
    .unwrap();
    let r = server.get("/schedules").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let ids: Vec<&str> = v["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["nightly", "weekly"], "{v}");
    let skipped = v["skipped"].as_array().expect("a skipped list");
    assert_eq!(skipped.len(), 1, "{v}");
    assert_eq!(skipped[0]["id"], "broken");
    assert!(
        skipped[0]["error"]
            .as_str()
            .unwrap()
            .contains("invalid route"),
        "{v}"
    );
    // And logged, with its id.
    let text = logs.wait_for("schedule skipped").await;
    assert!(text.contains(r#"schedule="broken""#), "{text}");
}

#[tokio::test]
async fn health_is_200_when_the_broker_answers_and_503_when_not() {
    let (_client, server) = standalone().await;
    let r = server.get("/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": "ok"}));

    // A real Redis broker whose private server then goes away.
    let mut redis = bananas_test_support::RedisServer::start();
    let broker = bananas_redis::RedisBroker::builder(&redis.url())
        .response_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect("connect to the private redis-server");
    let server = start(ApiState::new(Client::new(Arc::new(broker)))).await;
    assert_eq!(server.get("/health").await.status, 200);
    redis.kill();
    let r = server.get("/health").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "unavailable");
    assert!(
        r.json()["error"].as_str().unwrap().contains("redis"),
        "{:?}",
        r.json()
    );
    // Other endpoints say the broker is down with a 503, not a 500.
    let r = server.get("/queues").await;
    assert_eq!(r.status, 503);
    assert!(r.error().contains("redis"), "{}", r.error());
    let r = server.post_json("/jobs", r#"{"name": "x"}"#).await;
    assert_eq!(r.status, 503);
}

/// Issue #12 (#4): a route no task declares, no live worker serves and the
/// broker never saw is refused with 422 naming it (and is not registered),
/// in an app and standalone, unless new routes are allowed.
#[tokio::test]
async fn new_routes_are_refused_unless_allowed() {
    let (app, server, worker) = app_and_api(None).await;
    let add_on = |route: &str| {
        json!({"name": "add", "payload": {"a": 1, "b": 2}, "route": route}).to_string()
    };
    let r = server.post_json("/jobs", &add_on("nowhere")).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let error = r.error();
    assert!(
        error.contains("`nowhere`") && error.contains("BANANAS_HTTP_ALLOW_NEW_ROUTES"),
        "{error}"
    );
    let routes = app
        .client()
        .broker()
        .inspect()
        .unwrap()
        .routes()
        .await
        .unwrap();
    assert!(
        routes.iter().all(|r| r.as_str() != "nowhere"),
        "a refused route was registered: {routes:?}"
    );

    // Known: `default` (the app's worker serves it), `slow` (the task
    // `doomed` declares it), a route a live worker elsewhere serves, and a
    // route the broker has already seen.
    worker_elsewhere(app.client(), "w-gpu", &["gpu"]).await;
    let mut seen = bananas::job::Job::new(
        "add",
        serde_json::value::RawValue::from_string(r#"{"a":1,"b":2}"#.into()).unwrap(),
    );
    seen.route = bananas::job::Route::new("seen").unwrap();
    app.client().enqueue(vec![seen]).await.unwrap();
    for route in ["default", "slow", "gpu", "seen"] {
        let r = server.post_json("/jobs", &add_on(route)).await;
        assert_eq!(r.status, 201, "{route}: {}", r.text());
    }
    app.shutdown();
    worker.await.unwrap().unwrap();

    // Standalone (no task code), the same rule without the tasks' routes.
    let client = Client::new(Arc::new(MemoryBroker::new()));
    let server = start(ApiState::new(client.clone())).await;
    let r = server
        .post_json("/jobs", r#"{"name": "x", "route": "slow"}"#)
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.error().contains("`slow`"), "{}", r.text());
    let r = server.post_json("/jobs", r#"{"name": "x"}"#).await;
    assert_eq!(r.status, 201, "`default` is always known: {}", r.text());

    // Allowed, any valid route goes.
    let server = start(ApiState::new(client.clone()).allow_new_routes(true)).await;
    let r = server
        .post_json("/jobs", r#"{"name": "x", "route": "brand-new"}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let (app, server, worker) = app_and_api(None).await;
    let r = server
        .post_json("/jobs", r#"{"name": "add", "payload": {"a": 1, "b": 2}}"#)
        .await;
    wait_final(app.client(), r.json()["id"].as_str().unwrap()).await;
    worker_elsewhere(app.client(), "w-later", &["later"]).await;
    let r = server
        .post_json(
            "/jobs",
            r#"{"name": "add", "payload": {"a": 1, "b": 2}, "route": "later", "countdown": 600}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // The worker acknowledges in batches; wait until the counter shows up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let r = server.get("/metrics").await;
        assert_eq!(r.status, 200);
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let text = r.text();
        if text.contains(r#"bananas_jobs_total{task="add",outcome="succeeded"}"#) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no job counter in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        text.contains("# TYPE bananas_job_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(r#"bananas_job_duration_seconds_bucket{task="add",le="#),
        "{text}"
    );
    assert!(
        text.contains(r#"bananas_queue_scheduled{route="later"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"bananas_queue_depth{route="later",priority="high"} 0"#),
        "{text}"
    );
    app.shutdown();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn auth_requires_the_bearer_token_except_on_health() {
    let (app, server, worker) = app_and_api(Some("s3cret")).await;
    // Without a token: 401 with a JSON error everywhere but /health.
    for (method, path) in bananas::http::endpoints() {
        let path = path.replace("{id}", "some-id");
        let r = server
            .send(
                method,
                &path,
                &[("content-type", "application/json")],
                Some(b"{}".to_vec()),
            )
            .await;
        if path == "/health" {
            assert_eq!(r.status, 200, "{method} {path}");
        } else {
            assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
            assert!(r.error().contains("Authorization"), "{method} {path}");
            assert_eq!(r.headers["www-authenticate"], "Bearer");
        }
    }
    // Unknown paths do not reveal anything either.
    assert_eq!(server.get("/nowhere").await.status, 401);
    // A wrong token, or the right one in the wrong scheme.
    for header in [
        "Bearer s3cre",
        "Bearer s3cret2",
        "Basic s3cret",
        "s3cret",
        "Bearer ",
    ] {
        let r = server
            .send("GET", "/queues", &[("authorization", header)], None)
            .await;
        assert_eq!(r.status, 401, "{header}");
        assert!(r.error().contains("invalid API token"), "{header}");
    }
    // The right token.
    let server = server.with_token("s3cret");
    assert_eq!(server.get("/queues").await.status, 200);
    let r = server
        .post_json("/jobs", r#"{"name": "add", "payload": {"a": 1, "b": 1}}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    wait_final(app.client(), &id).await;
    assert_eq!(server.get(&format!("/jobs/{id}")).await.json()["result"], 2);
    app.shutdown();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn cross_site_requests_cannot_change_anything() {
    let (app, server, worker) = app_and_api(None).await;
    let r = server
        .post_json(
            "/jobs",
            r#"{"name": "doomed", "payload": {"reason": "x"}, "route": "default"}"#,
        )
        .await;
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(wait_final(app.client(), &id).await.state, JobState::Dead);
    let own = format!("http://{}", server.addr);
    let host = server.addr.to_string();
    let requeue = format!("/dead/{id}/requeue");

    // What a page on another site can make a browser send without a
    // preflight: a "simple" POST (text/plain, a form, or no type at all).
    // The review's request, as sent through DNS rebinding (Host and Origin
    // agree): refused for its content type.
    let r = server
        .send(
            "POST",
            &requeue,
            &[
                ("content-type", "text/plain"),
                ("origin", "http://evil.example"),
                ("host", "evil.example"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.text());
    assert!(r.error().contains("application/json"), "{}", r.text());
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = server
            .send("POST", &requeue, &[("content-type", ct)], None)
            .await;
        assert_eq!(r.status, 415, "{ct}: {}", r.text());
        let r = server
            .send(
                "POST",
                "/jobs",
                &[("content-type", ct)],
                Some(br#"{"name": "add", "payload": {"a": 1, "b": 2}}"#.to_vec()),
            )
            .await;
        assert_eq!(r.status, 415, "{ct}: {}", r.text());
    }
    let r = server.send("POST", &requeue, &[], None).await;
    assert_eq!(r.status, 415, "no content type: {}", r.text());

    // Any state-changing request from another origin, or from `null`.
    let other_port = format!("http://127.0.0.1:{}", server.addr.port() ^ 1);
    for origin in ["http://evil.example", "null", &other_port] {
        let json = [
            ("content-type", "application/json"),
            ("origin", origin),
            ("host", host.as_str()),
        ];
        let r = server.send("POST", &requeue, &json, None).await;
        assert_eq!(r.status, 403, "{origin}: {}", r.text());
        assert!(r.error().contains("cross-origin"), "{}", r.text());
        let body = br#"{"name": "add", "payload": {"a": 1, "b": 2}}"#.to_vec();
        let r = server.send("POST", "/jobs", &json, Some(body)).await;
        assert_eq!(r.status, 403, "{origin}: {}", r.text());
        let r = server.send("DELETE", "/dead", &json, None).await;
        assert_eq!(r.status, 403, "{origin}: {}", r.text());
        let r = server
            .send("DELETE", &format!("/jobs/{id}"), &json, None)
            .await;
        assert_eq!(r.status, 403, "{origin}: {}", r.text());
        // Reading is not refused (a browser keeps the answer from the page).
        let r = server.send("GET", "/queues", &json, None).await;
        assert_eq!(r.status, 200, "{origin}: {}", r.text());
    }
    // Nothing changed: the job is still dead, nothing was enqueued.
    let q = server.get("/queues").await.json();
    assert_eq!(
        (q["totals"]["dead"].as_u64(), q["totals"]["normal"].as_u64()),
        (Some(1), Some(0)),
        "{q}"
    );

    // The API's own origin (a page it served, or a proxy in front of it
    // that keeps the Host) is fine.
    let r = server
        .send(
            "POST",
            &requeue,
            &[("content-type", "application/json"), ("origin", &own)],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    app.shutdown();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    // RFC 7235 §2.1: auth schemes are case-insensitive tokens.
    let client = Client::new(Arc::new(MemoryBroker::new()));
    let server = start(ApiState::new(client).token(Some("s3cret".to_owned()))).await;
    for header in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "bEaReR s3cret",
    ] {
        let r = server
            .send("GET", "/queues", &[("authorization", header)], None)
            .await;
        assert_eq!(r.status, 200, "{header}: {}", r.text());
    }
    let r = server
        .send("GET", "/queues", &[("authorization", "BEARER wrong")], None)
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let (_client, server) = standalone().await;
    let r = server.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(bananas::http::OPENAPI_JSON).unwrap()
    );
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut served: Vec<(String, String)> = bananas::http::endpoints()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    served.sort();
    assert_eq!(
        documented, served,
        "the OpenAPI paths and the router's routes differ"
    );

    // Every documented operation reaches a handler: never the 404 of an
    // unknown path nor a 405.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "some-id");
        let r = server
            .send(
                method,
                &concrete,
                &[("content-type", "application/json")],
                Some(br#"{"name":"x"}"#.to_vec()),
            )
            .await;
        assert_ne!(r.status, 405, "{method} {path}");
        if r.status == 404 {
            assert!(
                !r.error().contains("no such endpoint"),
                "{method} {path} is not routed"
            );
        }
        // Every documented status is one the operation can give.
        let op = &doc["paths"][path.as_str()][method.to_lowercase()];
        assert!(
            op["responses"].get(r.status.to_string()).is_some(),
            "{method} {path} answered {} which is not documented",
            r.status
        );
    }
}

#[tokio::test]
async fn serve_binds_and_stops() {
    let stop = tokio_util::sync::CancellationToken::new();
    let client = Client::new(Arc::new(MemoryBroker::new()));
    // Port 0 through `serve` itself, then a port that is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = bananas::http::serve(
        ApiState::new(client.clone()),
        taken.local_addr().unwrap(),
        stop.clone(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot listen on"), "{err}");
    let task = tokio::spawn(bananas::http::serve(
        ApiState::new(client),
        "127.0.0.1:0".parse().unwrap(),
        stop.clone(),
    ));
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_public_address_without_a_token_is_warned_about() {
    const WARNING: &str = "THE HTTP API HAS NO TOKEN";
    let (logs, _guard) = http_util::capture_logs();
    let client = Client::new(Arc::new(MemoryBroker::new()));
    let serve = |state: ApiState, addr: &str| {
        let stop = tokio_util::sync::CancellationToken::new();
        let listener = std::net::TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let local = listener.local_addr().unwrap();
        tokio::spawn(bananas::http::serve_listener(state, listener, stop.clone()));
        (local, stop.drop_guard())
    };
    // Loopback without a token, and any address with one: no warning. The
    // warning would come before the "serving" line.
    let (a, _a) = serve(ApiState::new(client.clone()), "127.0.0.1:0");
    let (b, _b) = serve(
        ApiState::new(client.clone()).token(Some("t".into())),
        "0.0.0.0:0",
    );
    for addr in [a, b] {
        let text = logs
            .wait_for(&format!("serving the HTTP API addr={addr}"))
            .await;
        assert!(!text.contains(WARNING), "{text}");
    }
    // Every interface, no token: a loud warning naming the address.
    let (c, _c) = serve(ApiState::new(client), "0.0.0.0:0");
    let text = logs
        .wait_for(&format!("serving the HTTP API addr={c}"))
        .await;
    let warning = text
        .lines()
        .find(|l| l.contains(WARNING))
        .unwrap_or_else(|| panic!("no warning in:\n{text}"));
    assert!(
        warning.contains(" WARN ") && warning.contains(&c.to_string()),
        "{warning}"
    );
    assert!(warning.contains("BANANAS_API_TOKEN"), "{warning}");
}

#[tokio::test]
async fn untrusted_strings_cannot_forge_log_lines() {
    let (logs, _guard) = http_util::capture_logs();
    let (client, server) = standalone().await;
    // A task name that, written out as is, would end the log line and start
    // one of the attacker's choosing.
    let forged = "2030-01-01T00:00:00.000000Z  INFO bananas::http: FORGED admin logged in";
    let body = json!({"name": format!("x\n{forged}\r\n{forged}"), "countdown": 600});
    let r = server.post_json("/jobs", &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let rec = client
        .job(&JobId::from(id.as_str()))
        .await
        .unwrap()
        .unwrap();
    assert!(rec.task.contains('\n'), "the name is stored as sent");
    let r = server.delete(&format!("/jobs/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let text = logs.wait_for("job cancelled over HTTP").await;
    assert!(text.contains("job submitted over HTTP"), "{text}");
    for line in text.lines() {
        assert!(
            !line.contains("FORGED") || line.contains("job submitted over HTTP"),
            "a forged log line:\n{text}"
        );
    }
    // The name is there, escaped, on the submission's own line.
    assert!(
        text.contains(r#"task="x\n2030-01-01T00:00:00.000000Z  INFO bananas::http: FORGED"#),
        "{text}"
    );
}

/// The worker escapes untrusted strings too: a job whose task name no
/// worker knows, with a line break and a forged log line in it, is
/// dead-lettered with the name escaped on the worker's own log line.
#[tokio::test]
async fn a_forged_task_name_cannot_forge_worker_log_lines() {
    let (logs, _guard) = http_util::capture_logs();
    let (app, _server, worker) = app_and_api(None).await;
    let forged = "2030-01-01T00:00:00.000000Z ERROR bananas::worker: FORGED disk wiped";
    // The API refuses unknown tasks; another producer need not.
    let job = bananas::job::Job::new(
        format!("nope\n{forged}"),
        serde_json::value::RawValue::from_string("{}".into()).unwrap(),
    );
    app.client().enqueue(vec![job]).await.unwrap();
    let text = logs.wait_for("unknown task").await;
    for line in text.lines() {
        assert!(
            !line.contains("FORGED") || line.contains("unknown task"),
            "a forged log line:\n{text}"
        );
    }
    app.shutdown();
    let _ = worker.await;
}

/// A process that submits to its own memory:// broker with no worker
/// fetching from it (a producer that forgot `BANANAS_URL`) is warned.
#[tokio::test]
async fn submitting_to_a_memory_broker_nobody_fetches_from_warns() {
    let (logs, _guard) = http_util::capture_logs();
    let client = Client::new(Arc::new(MemoryBroker::new()));
    let job = bananas::job::Job::new(
        "anything",
        serde_json::value::RawValue::from_string("{}".into()).unwrap(),
    );
    client.enqueue(vec![job]).await.unwrap();
    let text = logs.wait_for("no worker has fetched from it").await;
    assert!(text.contains("BANANAS_URL"), "{text}");
}

#[tokio::test]
async fn delete_cancels_a_job_that_has_not_started() {
    let (client, server) = standalone().await;
    let r = server
        .post_json(
            "/jobs",
            r#"{"name": "anything", "payload": {}, "countdown": 3600}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();

    let r = server
        .send("DELETE", &format!("/jobs/{id}"), &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"id": id, "cancelled": true}));
    let job = server.get(&format!("/jobs/{id}")).await.json();
    assert_eq!(
        (job["state"].as_str(), job["error"].as_str()),
        (Some("dead"), Some("cancelled"))
    );

    // Again: it finished (as cancelled), so nothing changes.
    let r = server
        .send("DELETE", &format!("/jobs/{id}"), &[], None)
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.error().contains("already finished"), "{}", r.text());
    let r = server.send("DELETE", "/jobs/no-such-job", &[], None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.error().contains("not found"));

    // A running job is left alone.
    let r = server
        .post_json("/jobs", r#"{"name": "anything", "payload": {}}"#)
        .await;
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let leased = client
        .broker()
        .fetch(&bananas::broker::FetchRequest {
            routes: vec![bananas::job::Route::default()],
            max: 1,
            lease: Duration::from_secs(30),
            cursor: 0,
            block: Duration::ZERO,
        })
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    let r = server
        .send("DELETE", &format!("/jobs/{id}"), &[], None)
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.error().contains("is running"), "{}", r.text());
}

/// `POST /queues/{route}/pause` and `/resume` with the app's own worker: a
/// paused route accepts jobs and runs none until it resumes; the state
/// shows in `/queues` and `/metrics`; repeating says nothing changed; a bad
/// route is 400, an unknown one 422.
#[tokio::test]
async fn pausing_a_route_over_http_holds_its_jobs_until_resumed() {
    let (app, server, worker) = app_and_api(None).await;
    let r = server.post("/queues/default/pause").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"route": "default", "paused": true, "changed": true})
    );
    let r = server.post("/queues/default/pause").await;
    assert_eq!(r.json()["changed"], false);

    let r = server
        .post_json("/jobs", r#"{"name": "add", "payload": {"a": 2, "b": 3}}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    // The worker fetches at once when a job comes; give it time to (not)
    // take this one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        server.get(&format!("/jobs/{id}")).await.json()["state"],
        "queued"
    );
    let v = server.get("/queues").await.json();
    let q = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["route"] == "default")
        .unwrap()
        .clone();
    assert_eq!(
        (q["paused"].as_bool(), q["normal"].as_u64()),
        (Some(true), Some(1)),
        "{v}"
    );
    assert!(q["latency_ms"].as_u64().is_some(), "{v}");
    assert!(q["oldest_due"].as_u64().is_some(), "{v}");
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains(r#"bananas_queue_paused{route="default"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("bananas_queue_latency_seconds{route=\"default\"}"));

    assert_eq!(server.post("/queues/bad%20route/pause").await.status, 400);
    let r = server.post("/queues/nobody-knows/pause").await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("nobody-knows"), "{}", r.text());

    let r = server.post("/queues/default/resume").await;
    assert_eq!(
        r.json(),
        json!({"route": "default", "paused": false, "changed": true})
    );
    let rec = wait_final(app.client(), &id).await;
    assert_eq!(rec.state, JobState::Succeeded);
    assert_eq!(
        server.post("/queues/default/resume").await.json()["changed"],
        false
    );
    app.shutdown();
    worker.await.unwrap().unwrap();
}

/// `GET /jobs?state=…`: pages with a cursor, filters, and a 400 naming the
/// problem for a missing or unknown state, a bad cursor, a bad limit or an
/// unknown parameter.
#[tokio::test]
async fn jobs_are_listed_by_state_with_a_cursor() {
    let (_client, server) = standalone().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let body = json!({"name": "x", "route": "a", "payload": {"n": n}}).to_string();
        let r = server.post_json("/jobs", &body).await;
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    server
        .post_json("/jobs", r#"{"name": "y", "route": "b", "countdown": 600}"#)
        .await;
    let mut seen = Vec::new();
    let mut url = "/jobs?state=queued&limit=2".to_owned();
    loop {
        let r = server.get(&url).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        for j in v["jobs"].as_array().unwrap() {
            assert_eq!(j["state"], "queued");
            seen.push(j["id"].as_str().unwrap().to_owned());
        }
        match v["next"].as_str() {
            Some(next) => url = format!("/jobs?state=queued&limit=2&cursor={next}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first");
    let v = server
        .get("/jobs?state=queued&text=%22n%22%3A1")
        .await
        .json();
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["jobs"][0]["payload"]["n"], 1);
    let v = server
        .get("/jobs?state=scheduled&task=y&route=b")
        .await
        .json();
    assert_eq!(v["jobs"][0]["name"], "y", "{v}");
    assert_eq!(v["next"], Value::Null);

    for (url, says) in [
        ("/jobs", "`state` is required"),
        ("/jobs?state=done", "unknown job state `done`"),
        ("/jobs?state=queued&cursor=zzz", "invalid cursor"),
        (
            "/jobs?state=dead&cursor=q.0.0.a",
            "not a cursor of a `dead` listing",
        ),
        ("/jobs?state=queued&limit=0", "`limit`"),
        ("/jobs?state=queued&limit=5000", "`limit`"),
        ("/jobs?state=queued&route=a%20b", "`route`"),
        (
            "/jobs?state=queued&sort=asc",
            "unknown query parameter `sort`",
        ),
        ("/jobs?state=queued&state=dead", "given twice"),
    ] {
        let r = server.get(url).await;
        assert_eq!(r.status, 400, "{url}: {}", r.text());
        assert!(r.text().contains(says), "{url}: {}", r.text());
    }
}

/// `POST /jobs/bulk`: by ids and by filter, the maximum (nothing done past
/// it without `all`), and 400s naming each bad request.
#[tokio::test]
async fn bulk_actions_by_ids_and_filter() {
    let client = Client::new(Arc::new(MemoryBroker::new()));
    let server = start(
        ApiState::new(client.clone())
            .allow_new_routes(true)
            .bulk_max(2),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let body =
            json!({"name": "x", "route": "a", "countdown": 600, "payload": {"n": n}}).to_string();
        ids.push(
            server.post_json("/jobs", &body).await.json()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let filter = json!({"action": "run_now", "filter": {"state": "scheduled", "route": "a"}});
    let r = server.post_json("/jobs/bulk", &filter.to_string()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("more than the 2 allowed"), "{}", r.text());
    let v = server.get("/jobs?state=scheduled").await.json();
    assert_eq!(v["jobs"].as_array().unwrap().len(), 3, "nothing was done");
    let mut all = filter.clone();
    all["all"] = json!(true);
    let r = server.post_json("/jobs/bulk", &all.to_string()).await;
    assert_eq!(
        r.json(),
        json!({"action": "run_now", "touched": 3}),
        "{}",
        r.text()
    );
    let body = json!({"action": "cancel", "ids": [ids[0], ids[1]]}).to_string();
    assert_eq!(
        server.post_json("/jobs/bulk", &body).await.json()["touched"],
        2
    );
    let body = json!({"action": "retry", "filter": {"state": "cancelled", "text": "\"n\":1"}});
    assert_eq!(
        server
            .post_json("/jobs/bulk", &body.to_string())
            .await
            .json()["touched"],
        1
    );
    let body = json!({"action": "delete", "ids": [ids[0], "no-such-job"]}).to_string();
    assert_eq!(
        server.post_json("/jobs/bulk", &body).await.json()["touched"],
        1
    );
    assert_eq!(server.get(&format!("/jobs/{}", ids[0])).await.status, 404);

    for (body, says) in [
        (
            json!({"action": "explode", "ids": ["x"]}),
            "unknown action `explode`",
        ),
        (json!({"action": "retry", "ids": []}), "empty selection"),
        (json!({"action": "retry"}), "give either `ids`"),
        (
            json!({"action": "retry", "ids": ["x"], "filter": {"state": "dead"}}),
            "give either `ids`",
        ),
        (
            json!({"action": "retry", "filter": {"state": "gone"}}),
            "unknown job state `gone`",
        ),
        (
            json!({"action": "run_now", "filter": {"state": "dead"}}),
            "`run_now` moves scheduled, retrying jobs",
        ),
        (
            json!({"action": "retry", "ids": ["x"], "force": true}),
            "unknown field `force`",
        ),
        (
            json!({"action": "retry", "ids": ["a", "b", "c"]}),
            "more than the 2 allowed",
        ),
    ] {
        let r = server.post_json("/jobs/bulk", &body.to_string()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
    }
}

/// `GET /queues/{route}/history`: the app's worker's attempts, per minute.
#[tokio::test]
async fn history_shows_processed_and_failed_per_minute() {
    let (app, server, worker) = app_and_api(None).await;
    for body in [
        r#"{"name": "add", "payload": {"a": 1, "b": 2}}"#,
        r#"{"name": "add", "payload": {"a": 3, "b": 4}}"#,
    ] {
        let id = server.post_json("/jobs", body).await.json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        wait_final(app.client(), &id).await;
    }
    let v = server.get("/queues/default/history").await.json();
    let minutes = v["minutes"].as_array().unwrap();
    let sum = |k: &str| minutes.iter().map(|m| m[k].as_u64().unwrap()).sum::<u64>();
    // (Failures are counted apart: the contract and CLI tests show it.)
    assert_eq!((sum("processed"), sum("failed")), (2, 0), "{v}");
    assert_eq!(server.get("/queues/bad%20route/history").await.status, 400);
    let v = server.get("/queues/elsewhere/history").await.json();
    assert_eq!(v, json!({"route": "elsewhere", "minutes": []}));
    app.shutdown();
    worker.await.unwrap().unwrap();
}

/// Tags and metadata through `POST /jobs` and the typed `submit` builder:
/// shown by `GET /jobs/{id}`, searchable with `GET /jobs?tag=`, and bad
/// ones are a 400 naming the field.
#[tokio::test]
async fn tags_and_meta_are_submitted_shown_and_searched() {
    let (app, server, worker) = app_and_api(None).await;
    let r = server
        .post_json(
            "/jobs",
            r#"{"name": "add", "payload": {"a": 1, "b": 2}, "countdown": 600, "tags": ["tenant:42"], "meta": {"by": "ops"}}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let v = server.get(&format!("/jobs/{id}")).await.json();
    assert_eq!(
        (v["tags"].clone(), v["meta"].clone()),
        (json!(["tenant:42"]), json!({"by": "ops"})),
        "{v}"
    );
    let handle = add::submit(2, 3)
        .countdown(Duration::from_secs(600))
        .tag("tenant:7")
        .meta("attempted_by", json!({"user": 5}))
        .on(app.client())
        .send()
        .await
        .unwrap();
    let v = server.get(&format!("/jobs/{}", handle.id())).await.json();
    assert_eq!(v["tags"], json!(["tenant:7"]));
    assert_eq!(v["meta"], json!({"attempted_by": {"user": 5}}));
    let v = server
        .get("/jobs?state=scheduled&tag=tenant%3A7")
        .await
        .json();
    let ids: Vec<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [handle.id().as_str()]);
    let bad = add::submit(1, 1)
        .tag("")
        .on(app.client())
        .send()
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("invalid tag"), "{bad}");
    for (body, says) in [
        (
            r#"{"name": "add", "payload": {"a": 1, "b": 2}, "tags": "x"}"#,
            "field `tags` must be an array of strings",
        ),
        (
            r#"{"name": "add", "payload": {"a": 1, "b": 2}, "tags": [1]}"#,
            "array of strings",
        ),
        (
            r#"{"name": "add", "payload": {"a": 1, "b": 2}, "meta": []}"#,
            "field `meta` must be an object",
        ),
    ] {
        let r = server.post_json("/jobs", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
    }
    app.shutdown();
    worker.await.unwrap().unwrap();
}
