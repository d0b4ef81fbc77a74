//! The worker's behaviour, run against every broker: results, retries,
//! backoff, the dead letter, panics, timeouts, bad jobs, routing, priorities,
//! leases and graceful shutdown.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use bananas::{
    broker::{AnyBroker, FetchRequest},
    job::{Job, JobState, Priority, Route},
    App, Context, Error,
};
use bananas_test_support::eventually;
use bananas_tests::{broker_suite, Kind, TestBroker};
use serde_json::value::RawValue;

const WAIT: Duration = Duration::from_secs(20);

// ---- tasks -----------------------------------------------------------------

#[bananas::task]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[bananas::task(retries = 3, backoff(base = "10ms", cap = "40ms"))]
async fn flaky(ctx: Context, succeed_on: u32) -> Result<u32, String> {
    if ctx.attempt() >= succeed_on {
        Ok(ctx.attempt())
    } else {
        Err(format!("attempt {} failed", ctx.attempt()))
    }
}

#[bananas::task(retries = 1, backoff(base = "10ms", cap = "10ms"))]
async fn always_fails(why: String) -> anyhow::Result<()> {
    anyhow::bail!("boom: {why}")
}

#[bananas::task(retries = 0)]
async fn panics(msg: String) {
    panic!("{msg}")
}

#[bananas::task(retries = 0, timeout = "100ms")]
async fn sleepy(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await
}

#[bananas::task]
async fn slow(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

/// Ids of `slow_marked` jobs whose body has started (not merely leased).
static BODY_STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[bananas::task]
async fn slow_marked(ctx: bananas::Context, ms: u64) -> u64 {
    BODY_STARTED.lock().unwrap().push(ctx.job_id().to_string());
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

#[bananas::task(route = "gpu")]
async fn on_gpu() -> String {
    "ran on gpu".to_owned()
}

#[bananas::task]
async fn whoami(ctx: Context) -> (String, u32, String) {
    (
        ctx.job_id().to_string(),
        ctx.attempt(),
        ctx.route().to_string(),
    )
}

/// What each test's `record` jobs did, keyed by the test's tag.
static LOG: Mutex<Option<HashMap<String, Vec<String>>>> = Mutex::new(None);

fn log(tag: &str) -> Vec<String> {
    LOG.lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(tag).cloned())
        .unwrap_or_default()
}

#[bananas::task]
async fn record(tag: String, what: String) {
    LOG.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(tag)
        .or_default()
        .push(what);
}

static RUNNING: Mutex<Option<HashMap<String, (usize, usize)>>> = Mutex::new(None);

/// Tracks how many jobs with the same tag run at once (current, max).
#[bananas::task]
async fn concurrent(tag: String, ms: u64) {
    {
        let mut g = RUNNING.lock().unwrap();
        let e = g
            .get_or_insert_with(HashMap::new)
            .entry(tag.clone())
            .or_default();
        e.0 += 1;
        e.1 = e.1.max(e.0);
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    RUNNING
        .lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .get_mut(&tag)
        .unwrap()
        .0 -= 1;
}

static ALLOWED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Fails until its tag is allowed.
#[bananas::task(retries = 0)]
async fn gated(tag: String) -> Result<String, String> {
    if ALLOWED.lock().unwrap().contains(&tag) {
        Ok(tag)
    } else {
        Err(format!("{tag} is not allowed yet"))
    }
}

static RELEASED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Reports progress, then waits until its tag is released.
#[bananas::task]
async fn reports(ctx: Context, tag: String) -> Result<String, String> {
    ctx.progress(serde_json::json!({ "step": 1, "tag": &tag }))
        .await
        .map_err(|e| e.to_string())?;
    while !RELEASED.lock().unwrap().contains(&tag) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(tag)
}

// ---- helpers ---------------------------------------------------------------

struct Running {
    app: App,
    handle: tokio::task::JoinHandle<bananas::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.app.shutdown();
        self.handle
            .await
            .expect("worker task")
            .expect("worker result");
    }
}

async fn start(
    tb: &TestBroker,
    configure: impl FnOnce(bananas::AppBuilder) -> bananas::AppBuilder,
) -> Running {
    let builder = App::builder()
        .broker(tb.broker.clone())
        .scheduler(false)
        .concurrency(4);
    let app = configure(builder).build().await.expect("build app");
    let handle = tokio::spawn(app.clone().run());
    Running { app, handle }
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

// ---- tests -----------------------------------------------------------------

async fn typed_result_and_record(kind: Kind) {
    let tb = TestBroker::new(kind, "typed_result").await;
    let w = start(&tb, |b| b).await;
    let client = w.app.client().clone();

    let handle = add::submit(40, 2).on(&client).send().await.unwrap();
    let sum: i64 = handle.wait(WAIT).await.unwrap();
    assert_eq!(sum, 42);

    let rec = handle.status().await.unwrap().expect("record kept");
    assert_eq!(rec.state, JobState::Succeeded);
    assert_eq!(rec.task, "add");
    assert_eq!(rec.attempts, 1);
    let args: serde_json::Value = serde_json::from_str(rec.args.get()).unwrap();
    assert_eq!(args, serde_json::json!({"a": 40, "b": 2}));
    assert_eq!(rec.result.as_ref().map(|r| r.get()), Some("42"));
    let (started, finished) = (rec.started_at.unwrap(), rec.finished_at.unwrap());
    assert!(rec.created_at <= started && started <= finished, "{rec:?}");

    // The context carries the job id, attempt and route.
    let h = whoami::submit().on(&client).send().await.unwrap();
    let (id, attempt, route) = h.wait(WAIT).await.unwrap();
    assert_eq!(
        (id.as_str(), attempt, route.as_str()),
        (h.id().as_str(), 1, "default")
    );

    w.stop().await;
    tb.cleanup().await;
}

/// A running task's `Context::progress` is visible in the job's record
/// while it runs, and gone once it finished.
async fn progress_is_visible_while_running(kind: Kind) {
    let tb = TestBroker::new(kind, "progress").await;
    let w = start(&tb, |b| b).await;
    let tag = format!("{kind:?}-progress");
    let h = reports::submit(tag.clone())
        .on(w.app.client())
        .send()
        .await
        .unwrap();
    let rec = eventually(WAIT, "the progress report", || async {
        h.status().await.unwrap().filter(|r| r.progress.is_some())
    })
    .await;
    assert_eq!(rec.state, JobState::Active);
    let p: serde_json::Value = serde_json::from_str(rec.progress.unwrap().get()).unwrap();
    assert_eq!(p, serde_json::json!({ "step": 1, "tag": &tag }));
    RELEASED.lock().unwrap().push(tag.clone());
    assert_eq!(h.wait(WAIT).await.unwrap(), tag);
    let rec = h.status().await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.progress.is_none()),
        (JobState::Succeeded, true)
    );
    w.stop().await;
    tb.cleanup().await;
}

async fn retries_with_backoff_then_success(kind: Kind) {
    let tb = TestBroker::new(kind, "retries").await;
    let w = start(&tb, |b| b).await;
    let h = flaky::submit(3).on(w.app.client()).send().await.unwrap();
    assert_eq!(h.wait(WAIT).await.unwrap(), 3);
    let rec = h.status().await.unwrap().unwrap();
    assert_eq!(rec.attempts, 3);
    assert_eq!(rec.state, JobState::Succeeded);
    assert_eq!(
        rec.error, None,
        "a final success replaces the earlier failure"
    );
    w.stop().await;
    tb.cleanup().await;
}

async fn dead_after_last_retry(kind: Kind) {
    let tb = TestBroker::new(kind, "dead_after_retries").await;
    let w = start(&tb, |b| b).await;
    let client = w.app.client().clone();
    let h = always_fails::submit("x".into())
        .on(&client)
        .send()
        .await
        .unwrap();
    match h.wait(WAIT).await {
        Err(Error::JobFailed(e)) => assert_eq!(e, "boom: x"),
        other => panic!("expected JobFailed, got {other:?}"),
    }
    let rec = h.status().await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Dead, 2));
    let dead = client
        .broker()
        .dead_letter()
        .unwrap()
        .dead_jobs(100)
        .await
        .unwrap();
    assert!(dead
        .iter()
        .any(|d| d.id == *h.id() && d.error.as_deref() == Some("boom: x")));
    w.stop().await;
    tb.cleanup().await;
}

async fn panic_is_a_failed_attempt(kind: Kind) {
    let tb = TestBroker::new(kind, "panics").await;
    let w = start(&tb, |b| b).await;
    let client = w.app.client().clone();
    let h = panics::submit("kaboom".into())
        .on(&client)
        .send()
        .await
        .unwrap();
    match h.wait(WAIT).await {
        Err(Error::JobFailed(e)) => assert!(e.contains("panicked: kaboom"), "{e}"),
        other => panic!("expected JobFailed, got {other:?}"),
    }
    // The worker lives on.
    let h = add::submit(1, 1).on(&client).send().await.unwrap();
    assert_eq!(h.wait(WAIT).await.unwrap(), 2);
    w.stop().await;
    tb.cleanup().await;
}

async fn timeout_cancels_the_attempt(kind: Kind) {
    let tb = TestBroker::new(kind, "timeout").await;
    let w = start(&tb, |b| b).await;
    let h = sleepy::submit(60_000)
        .on(w.app.client())
        .send()
        .await
        .unwrap();
    match h.wait(WAIT).await {
        Err(Error::JobFailed(e)) => assert!(e.contains("timed out after 100ms"), "{e}"),
        other => panic!("expected JobFailed, got {other:?}"),
    }
    w.stop().await;
    tb.cleanup().await;
}

async fn bad_jobs_go_to_the_dead_letter(kind: Kind) {
    let tb = TestBroker::new(kind, "bad_jobs").await;
    let w = start(&tb, |b| b).await;
    let client = w.app.client().clone();

    let unknown = Job::new("no_such_task", raw("{}"));
    let bad_args = Job::new("add", raw(r#"{"a":"one","b":2}"#));
    let missing = Job::new("add", raw(r#"{"a":1}"#));
    let ids = [unknown.id.clone(), bad_args.id.clone(), missing.id.clone()];
    client
        .enqueue(vec![unknown, bad_args, missing])
        .await
        .unwrap();
    let mut errors = Vec::new();
    for id in &ids {
        let rec = client.wait(id, WAIT).await.unwrap().expect("finished");
        assert_eq!(rec.state, JobState::Dead);
        assert_eq!(rec.attempts, 1, "bad jobs are not retried");
        errors.push(rec.error.unwrap());
    }
    assert!(
        errors[0].contains("unknown task `no_such_task`"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("invalid arguments for task `add`"),
        "{}",
        errors[1]
    );
    assert!(errors[2].contains("missing argument `b`"), "{}", errors[2]);

    // The worker keeps running.
    let h = add::submit(2, 2).on(&client).send().await.unwrap();
    assert_eq!(h.wait(WAIT).await.unwrap(), 4);
    w.stop().await;
    tb.cleanup().await;
}

async fn routes_keep_jobs_to_their_pool(kind: Kind) {
    let tb = TestBroker::new(kind, "routes").await;
    let default_pool = start(&tb, |b| b).await;
    let client = default_pool.app.client().clone();
    let gpu_job = on_gpu::submit().on(&client).send().await.unwrap();
    let cpu_job = add::submit(1, 2).on(&client).send().await.unwrap();
    assert_eq!(cpu_job.wait(WAIT).await.unwrap(), 3);
    // The default pool finished its job but did not touch the gpu one.
    let rec = gpu_job.status().await.unwrap().unwrap();
    assert_eq!((rec.state, rec.route.as_str()), (JobState::Queued, "gpu"));

    let gpu_pool = start(&tb, |b| b.routes(["gpu"]).unwrap()).await;
    assert_eq!(gpu_job.wait(WAIT).await.unwrap(), "ran on gpu");

    // A per-call route override.
    let h = add::submit(5, 5)
        .route("gpu")
        .on(&client)
        .send()
        .await
        .unwrap();
    assert_eq!(h.wait(WAIT).await.unwrap(), 10);
    assert_eq!(h.status().await.unwrap().unwrap().route.as_str(), "gpu");

    // An invalid route is rejected at submit, naming it.
    let err = add::submit(1, 1)
        .route("no spaces")
        .on(&client)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid route `no spaces`"),
        "{err}"
    );

    default_pool.stop().await;
    gpu_pool.stop().await;
    tb.cleanup().await;
}

async fn priorities_do_not_starve_low(kind: Kind) {
    let tb = TestBroker::new(kind, "priorities").await;
    let tag = bananas_test_support::unique_prefix("prio");
    let client = bananas::Client::new(tb.broker.clone());
    // A steady stream: 300 high jobs queued ahead of 10 low ones.
    let mut jobs = Vec::new();
    for i in 0..300 {
        let s = record::submit(tag.clone(), format!("high-{i}")).priority(Priority::High);
        jobs.push(s.into_job().unwrap().0);
    }
    for i in 0..10 {
        let s = record::submit(tag.clone(), format!("low-{i}")).priority(Priority::Low);
        jobs.push(s.into_job().unwrap().0);
    }
    client.enqueue(jobs).await.unwrap();
    let w = start(&tb, |b| b.concurrency(1)).await;
    eventually(WAIT, "all jobs ran", || {
        let n = log(&tag).len();
        async move { (n == 310).then_some(()) }
    })
    .await;
    let order = log(&tag);
    let last_low = order.iter().rposition(|s| s.starts_with("low-")).unwrap();
    let first_low = order.iter().position(|s| s.starts_with("low-")).unwrap();
    // High runs first, but low gets one slot in ten: all ten low jobs are
    // done long before the high queue drains.
    assert!(order[0].starts_with("high-"), "{order:?}");
    assert!(first_low < 20, "first low job ran at position {first_low}");
    assert!(
        last_low < 150,
        "last low job ran at position {last_low} of 310"
    );
    w.stop().await;
    tb.cleanup().await;
}

async fn concurrency_is_bounded(kind: Kind) {
    let tb = TestBroker::new(kind, "concurrency").await;
    let tag = bananas_test_support::unique_prefix("conc");
    let client = bananas::Client::new(tb.broker.clone());
    let mut handles = Vec::new();
    for _ in 0..12 {
        handles.push(
            concurrent::submit(tag.clone(), 50)
                .on(&client)
                .send()
                .await
                .unwrap(),
        );
    }
    let w = start(&tb, |b| b.concurrency(3)).await;
    for h in handles {
        h.wait(WAIT).await.unwrap();
    }
    let max = RUNNING.lock().unwrap().as_ref().unwrap()[&tag].1;
    assert!(max <= 3, "ran {max} at once with concurrency 3");
    assert!(max >= 2, "never ran jobs concurrently (max {max})");
    w.stop().await;
    tb.cleanup().await;
}

async fn delayed_jobs_wait_for_their_eta(kind: Kind) {
    let tb = TestBroker::new(kind, "delayed").await;
    let w = start(&tb, |b| b).await;
    let client = w.app.client().clone();
    let h = add::submit(1, 2)
        .countdown(Duration::from_millis(300))
        .on(&client)
        .send()
        .await
        .unwrap();
    let rec = h.status().await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Scheduled);
    assert_eq!(h.wait(WAIT).await.unwrap(), 3);
    let rec = h.status().await.unwrap().unwrap();
    assert!(
        rec.started_at.unwrap() >= rec.eta.unwrap(),
        "ran before its eta: {rec:?}"
    );
    w.stop().await;
    tb.cleanup().await;
}

async fn dead_letter_requeue_and_purge(kind: Kind) {
    let tb = TestBroker::new(kind, "dead_letter").await;
    let w = start(&tb, |b| b).await;
    let client = w.app.client().clone();
    let broker = client.broker().clone();
    let tag = bananas_test_support::unique_prefix("gate");
    let h = gated::submit(tag.clone()).on(&client).send().await.unwrap();
    assert!(matches!(h.wait(WAIT).await, Err(Error::JobFailed(_))));
    let other = always_fails::submit("y".into())
        .on(&client)
        .send()
        .await
        .unwrap();
    assert!(other.wait(WAIT).await.is_err());
    assert_eq!(
        broker
            .dead_letter()
            .unwrap()
            .dead_jobs(10)
            .await
            .unwrap()
            .len(),
        2
    );

    ALLOWED.lock().unwrap().push(tag.clone());
    assert!(broker
        .dead_letter()
        .unwrap()
        .requeue_dead(h.id())
        .await
        .unwrap());
    assert!(
        !broker
            .dead_letter()
            .unwrap()
            .requeue_dead(h.id())
            .await
            .unwrap(),
        "no longer dead"
    );
    assert_eq!(h.wait(WAIT).await.unwrap(), tag);
    let rec = h.status().await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.attempts, rec.error),
        (JobState::Succeeded, 1, None)
    );

    assert_eq!(broker.dead_letter().unwrap().purge_dead().await.unwrap(), 1);
    assert!(broker
        .dead_letter()
        .unwrap()
        .dead_jobs(10)
        .await
        .unwrap()
        .is_empty());
    assert!(
        broker
            .inspect()
            .unwrap()
            .job(other.id(), None)
            .await
            .unwrap()
            .is_none(),
        "purged"
    );
    w.stop().await;
    tb.cleanup().await;
}

async fn graceful_shutdown_finishes_in_flight(kind: Kind) {
    let tb = TestBroker::new(kind, "graceful").await;
    let w = start(&tb, |b| b).await;
    let client = w.app.client().clone();
    let h = slow_marked::submit(300).on(&client).send().await.unwrap();
    // Started means its body runs: "active" also covers a job leased and
    // still waiting for an executor, which shutdown hands back instead.
    eventually(WAIT, "job body started", || {
        let id = h.id().to_string();
        async move { BODY_STARTED.lock().unwrap().contains(&id).then_some(()) }
    })
    .await;
    w.stop().await;
    let rec = client.job(h.id()).await.unwrap().unwrap();
    assert_eq!(
        rec.state,
        JobState::Succeeded,
        "in-flight job finished before exit"
    );
    tb.cleanup().await;
}

async fn shutdown_timeout_hands_jobs_back(kind: Kind) {
    let tb = TestBroker::new(kind, "handback").await;
    let w = start(&tb, |b| b.shutdown_timeout(Duration::from_millis(100))).await;
    let client = w.app.client().clone();
    let h = slow::submit(60_000).on(&client).send().await.unwrap();
    eventually(WAIT, "job started", || {
        let h = h.clone();
        async move { (h.status().await.unwrap()?.state == JobState::Active).then_some(()) }
    })
    .await;
    w.stop().await;
    let rec = client.job(h.id()).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.attempts),
        (JobState::Queued, 0),
        "handed back, attempt not counted"
    );
    tb.cleanup().await;
}

/// A cleanly stopped worker is off the list of live workers when its run
/// returns, not only once its heartbeat expires (issue #12, item #15).
async fn a_stopped_worker_is_no_longer_listed(kind: Kind) {
    let tb = TestBroker::new(kind, "deregister").await;
    let w = start(&tb, |b| b.routes(["gone"]).unwrap()).await;
    let workers = tb.broker.workers().unwrap();
    eventually(WAIT, "the worker is listed", || async {
        let listed = workers.workers().await.unwrap();
        listed.iter().any(|w| w.routes == ["gone"]).then_some(())
    })
    .await;
    w.stop().await;
    let listed = workers.workers().await.unwrap();
    assert!(
        listed.iter().all(|w| w.routes != ["gone"]),
        "a stopped worker is still listed: {listed:?}"
    );
    tb.cleanup().await;
}

async fn expired_leases_are_recovered(kind: Kind) {
    let tb = TestBroker::new(kind, "leases").await;
    let broker = tb.broker.clone();
    let client = bananas::Client::new(broker.clone());
    let h = add::submit(2, 3)
        .retries(1)
        .on(&client)
        .send()
        .await
        .unwrap();
    // A worker that takes the job and dies without a word.
    let req = FetchRequest {
        routes: vec![Route::default()],
        max: 10,
        lease: Duration::from_millis(50),
        cursor: 0,
        block: Duration::from_millis(10),
    };
    let got = broker.fetch(&req).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attempt, 1);
    // While the lease lives, nobody else gets the job.
    assert!(broker.fetch(&req).await.unwrap().is_empty());
    let n = eventually(WAIT, "lease expired and job recovered", || {
        let b = broker.clone();
        async move {
            let n = b.recover_expired(&[Route::default()]).await.unwrap();
            (n > 0).then_some(n)
        }
    })
    .await;
    assert_eq!(n, 1);
    // It runs elsewhere, with the lost attempt counted.
    let w = start(&tb, |b| b).await;
    assert_eq!(h.wait(WAIT).await.unwrap(), 5);
    assert_eq!(h.status().await.unwrap().unwrap().attempts, 2);
    w.stop().await;
    tb.cleanup().await;
}

#[bananas::task(retries = 0)]
async fn counted(ctx: Context) -> (u32, u32) {
    (ctx.attempt(), ctx.lost())
}

#[bananas::task(retries = 0, max_lost = 0)]
async fn fragile() {}

/// Leases the next job on the default route and lets the lease expire, as
/// a worker that was killed would, `times` times.
async fn lose(broker: &AnyBroker, times: u32) {
    let req = FetchRequest {
        routes: vec![Route::default()],
        max: 1,
        lease: Duration::from_millis(50),
        cursor: 0,
        block: Duration::from_millis(200),
    };
    for _ in 0..times {
        let got = eventually(WAIT, "the job to lose", || {
            let b = broker.clone();
            let req = req.clone();
            async move { Some(b.fetch(&req).await.unwrap()).filter(|g| !g.is_empty()) }
        })
        .await;
        assert_eq!(got.len(), 1);
        eventually(WAIT, "lease expired and job recovered", || {
            let b = broker.clone();
            async move { (b.recover_expired(&[Route::default()]).await.unwrap() > 0).then_some(()) }
        })
        .await;
    }
}

/// Losing a worker does not spend the retry budget: a `retries = 0` job
/// whose worker was lost runs again, and knows it was lost. It has a budget
/// of its own (the worker's `max_lost`, 3 by default, or the task's): a job
/// that keeps killing its workers ends in the dead letter, unrun, with a
/// reason that says so.
async fn lost_workers_have_their_own_budget(kind: Kind) {
    let tb = TestBroker::new(kind, "lost").await;
    let broker = tb.broker.clone();
    let client = bananas::Client::new(broker.clone());

    let h = counted::submit().on(&client).send().await.unwrap();
    lose(&broker, 1).await;
    let w = start(&tb, |b| b).await;
    assert_eq!(h.wait(WAIT).await.unwrap(), (2, 1), "(attempt, lost)");
    w.stop().await;

    // Lost as often as allowed: it still runs.
    let h = counted::submit().on(&client).send().await.unwrap();
    lose(&broker, 2).await;
    let w = start(&tb, |b| b.worker(|c| c.max_lost = 2)).await;
    assert_eq!(h.wait(WAIT).await.unwrap(), (3, 2));
    w.stop().await;

    // Lost once more than allowed: dead, unrun.
    let h = counted::submit().on(&client).send().await.unwrap();
    lose(&broker, 3).await;
    let w = start(&tb, |b| b.worker(|c| c.max_lost = 2)).await;
    let err = h.wait(WAIT).await.unwrap_err().to_string();
    assert!(err.contains("worker lost 3 times"), "{err}");
    let rec = h.status().await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Dead, 4));
    w.stop().await;

    // The task's own budget wins over the worker's.
    let h = fragile::submit().on(&client).send().await.unwrap();
    lose(&broker, 1).await;
    let w = start(&tb, |b| b).await;
    let err = h.wait(WAIT).await.unwrap_err().to_string();
    assert!(err.contains("worker lost 1 time:"), "{err}");
    w.stop().await;
    tb.cleanup().await;
}

#[bananas::task(result = false)]
async fn fire_and_forget(n: u32) -> u32 {
    n
}

/// A task with `result = false` leaves nothing behind, but a waiter is
/// still woken when it finishes.
async fn no_result_tasks_leave_nothing(kind: Kind) {
    let tb = TestBroker::new(kind, "no_result").await;
    let w = start(&tb, |b| b).await;
    let client = w.app.client().clone();
    // The countdown orders the wait before the finish: a job that keeps no
    // result and finished before anyone waited leaves nothing to wait on.
    let h = fire_and_forget::submit(7)
        .countdown(Duration::from_secs(2))
        .on(&client)
        .send()
        .await
        .unwrap();
    let waited = client
        .wait(h.id(), WAIT)
        .await
        .unwrap()
        .expect("waiter woken");
    assert_eq!(
        (waited.state, waited.result.is_none()),
        (JobState::Succeeded, true)
    );

    let quiet = fire_and_forget::submit(8).on(&client).send().await.unwrap();
    let done_marker = add::submit(0, 0).on(&client).send().await.unwrap();
    done_marker.wait(WAIT).await.unwrap();
    eventually(WAIT, "no-result job gone", || {
        let q = quiet.clone();
        async move { q.status().await.unwrap().is_none().then_some(()) }
    })
    .await;
    w.stop().await;
    tb.cleanup().await;
}

broker_suite!(
    typed_result_and_record,
    progress_is_visible_while_running,
    retries_with_backoff_then_success,
    dead_after_last_retry,
    panic_is_a_failed_attempt,
    timeout_cancels_the_attempt,
    bad_jobs_go_to_the_dead_letter,
    routes_keep_jobs_to_their_pool,
    priorities_do_not_starve_low,
    concurrency_is_bounded,
    delayed_jobs_wait_for_their_eta,
    dead_letter_requeue_and_purge,
    graceful_shutdown_finishes_in_flight,
    shutdown_timeout_hands_jobs_back,
    a_stopped_worker_is_no_longer_listed,
    expired_leases_are_recovered,
    lost_workers_have_their_own_budget,
    no_result_tasks_leave_nothing,
);
