//! Redis mechanics against a real server: the shared one (`REDIS_URL`, or
//! 127.0.0.1:6379) with a prefix per test, or a private `redis-server` for
//! tests that kill connections or restart the server. The broker contract
//! is tested once for every broker, Redis and Redis Cluster included, by
//! `tests/tests/contract/`.

mod common;

use std::time::Duration;

use bananas_core::{
    broker::{Inspect, Schedules, TickClaim, Workers},
    job::now_millis,
    Broker, JobState, Priority, Route,
};
use bananas_test_support::{eventually, Raw, RedisServer};
use common::{scenarios, *};

macro_rules! shared_scenario {
    ($name:ident) => {
        #[tokio::test]
        async fn $name() {
            let (b, cleanup) = shared_broker(stringify!($name)).await;
            scenarios::$name(&b, cleanup.url(), cleanup.prefix()).await;
        }
    };
}

shared_scenario!(lease_tokens);
shared_scenario!(corrupt);
shared_scenario!(no_leftovers);
shared_scenario!(ticks);

#[tokio::test]
async fn only_results_are_left_behind() {
    let (b, cleanup) = shared_broker("leftovers").await;
    scenarios::no_leftovers(&b, cleanup.url(), cleanup.prefix()).await;
    let p = cleanup.prefix();
    let keys = cleanup.keys();
    let results = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{{{p}:mem}}:r:")))
        .count();
    let others: Vec<_> = keys
        .iter()
        .filter(|k| !k.starts_with(&format!("{{{p}:mem}}:r:")))
        .filter(|k| {
            **k != format!("{{{p}}}:routes")
                && **k != format!("{{{p}:mem}}:wake")
                && **k != format!("{{{p}:mem}}:epoch")
                // The index of the kept results, trimmed with them.
                && **k != format!("{{{p}:mem}}:done")
                // This hour's per-minute counts, which expire in a day.
                && !k.starts_with(&format!("{{{p}:mem}}:hist:"))
                // The id index's bucket, which expires as a whole.
                && !k.starts_with(&format!("{{{p}}}:ids:"))
        })
        .collect();
    assert!(others.is_empty(), "unexpected keys left: {others:?}");
    // Results of the jobs whose args contain a 7 (and only those).
    let expected = (0..300)
        .filter(|i: &usize| format!("{{\"n\":{i}}}").contains('7'))
        .count();
    assert_eq!(results, expected);
}

#[tokio::test]
async fn bad_settings_are_config_errors() {
    let err = bananas_redis::RedisBroker::builder("redis://127.0.0.1:1")
        .prefix("a{b}")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, bananas_core::Error::Config(_)), "{err}");
    let err = bananas_redis::RedisBroker::connect("nope://x")
        .await
        .unwrap_err();
    assert!(matches!(err, bananas_core::Error::Config(_)), "{err}");
    // A TTL Redis could not use (issue 12: `.result_ttl(Duration::MAX)`
    // made every acknowledgement that stores a result fail half-way).
    for (name, config) in [
        (
            "result_ttl",
            bananas_redis::RedisBroker::builder("redis://127.0.0.1:1").result_ttl(Duration::MAX),
        ),
        (
            "failure_ttl",
            bananas_redis::RedisBroker::builder("redis://127.0.0.1:1")
                .failure_ttl(Duration::from_secs(u64::MAX / 4)),
        ),
        (
            "response_timeout",
            bananas_redis::RedisBroker::builder("redis://127.0.0.1:1")
                .response_timeout(Duration::ZERO),
        ),
    ] {
        let err = config.connect().await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, bananas_core::Error::Config(_))
                && text.contains(name)
                && text.contains("out of range"),
            "{text}"
        );
    }
}

/// Redis memory per queued no-op job, on a private server so nothing else
/// moves the figure. The benchmark reports the number; this only guards
/// against a gross regression.
#[tokio::test]
async fn queued_jobs_are_compact() {
    let server = RedisServer::start();
    let (b, _cleanup) = broker_on(&server.url(), "mem", |c| c).await;
    b.enqueue(vec![job_on("default", Priority::Normal, 0)])
        .await
        .unwrap();
    let used = |s: &RedisServer| -> i64 {
        let info = s.cli(&["info", "memory"]);
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = used(&server);
    let n = 20_000;
    let jobs: Vec<_> = (0..n).map(|_| common::job("noop", "{}")).collect();
    assert_eq!(b.enqueue(jobs).await.unwrap(), n);
    let per_job = (used(&server) - before) / n as i64;
    println!("redis memory per queued no-op job: {per_job} bytes");
    assert!(per_job < 400, "{per_job} bytes per queued job");
}

/// `CLIENT KILL TYPE normal` drops every connection, including one blocked in
/// an idle fetch; the broker reconnects by itself.
#[tokio::test]
async fn reconnects_after_client_kill() {
    let server = RedisServer::start();
    let (b, _cleanup) = broker_on(&server.url(), "kill", |c| c).await;
    b.enqueue(vec![job_on("k", Priority::Normal, 0)])
        .await
        .unwrap();
    assert_eq!(fetch_n(&b, &["k"], 1).await.len(), 1);
    let idle = {
        let b = b.clone();
        let mut r = req(&["k"], 10);
        r.block = Duration::from_secs(30);
        tokio::spawn(async move { b.fetch(&r).await })
    };
    eventually(
        Duration::from_secs(20),
        "the idle fetch is blocked",
        || async {
            server
                .cli(&["client", "list"])
                .contains("cmd=blpop")
                .then_some(())
        },
    )
    .await;
    server.cli(&["client", "kill", "type", "normal"]);
    // The blocked fetch returns (empty or with an error) instead of hanging.
    let _ = idle.await.unwrap();
    let j = job_on("k", Priority::Normal, 1);
    eventually(Duration::from_secs(20), "enqueue works again", || {
        let b = b.clone();
        let j = j.clone();
        async move { b.enqueue(vec![j]).await.ok() }
    })
    .await;
    let got = fetch_n(&b, &["k"], 1).await;
    assert_eq!(got[0].id, j.id);
    b.ack(&[ok(&got[0], "1")]).await.unwrap();
    assert_eq!(
        b.job(&j.id, None).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
}

/// A restart of an append-only server loses no acknowledged enqueue, and the
/// broker resumes without help.
#[tokio::test]
async fn resumes_after_a_restart_without_losing_jobs() {
    let mut server = RedisServer::builder().appendonly().start();
    let (b, _cleanup) = broker_on(&server.url(), "restart", |c| c).await;
    let jobs: Vec<_> = (0..100)
        .map(|i| job_on("rs", Priority::Normal, i))
        .collect();
    assert_eq!(b.enqueue(jobs).await.unwrap(), 100);
    let first = fetch_n(&b, &["rs"], 10).await;
    b.ack(&first.iter().map(|j| ok(j, "1")).collect::<Vec<_>>())
        .await
        .unwrap();
    server.stop();
    let err = b.ping().await.unwrap_err();
    assert!(
        matches!(err, bananas_core::Error::Unavailable { .. }),
        "a stopped server is unavailable: {err:?}"
    );
    assert!(b
        .enqueue(vec![job_on("rs", Priority::Normal, 999)])
        .await
        .is_err());
    server.start_again();
    eventually(Duration::from_secs(20), "the broker answers again", || {
        let b = b.clone();
        async move { b.ping().await.ok() }
    })
    .await;
    let rest = fetch_n(&b, &["rs"], 90).await;
    assert_eq!(rest.len(), 90);
    for j in &first {
        let rec = b.job(&j.id, None).await.unwrap().unwrap();
        assert_eq!(rec.state, JobState::Succeeded);
    }
}

/// The scripts run as a Redis 7 function library. When the server loses it
/// (`FUNCTION FLUSH`, as after a restart without persistence), the next call
/// loads it again and nothing fails.
#[tokio::test]
async fn reloads_its_functions_when_the_server_lost_them() {
    let server = RedisServer::start();
    let (b, _cleanup) = broker_on(&server.url(), "reload", |c| c).await;
    assert!(
        server.cli(&["function", "list"]).contains("bananas_"),
        "the library is loaded on connect"
    );
    b.enqueue(vec![job_on("fl", Priority::Normal, 0)])
        .await
        .unwrap();
    server.cli(&["function", "flush"]);
    let got = fetch_n(&b, &["fl"], 1).await;
    assert_eq!(got.len(), 1);
    server.cli(&["function", "flush"]);
    b.ack(&[ok(&got[0], "1")]).await.unwrap();
    assert_eq!(
        b.job(&got[0].id, None).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    assert!(server.cli(&["function", "list"]).contains("bananas_"));
}

/// A user who may not load functions (as on Redis before 7, which has none)
/// gets the same scripts through EVALSHA.
/// A private server and the URL of a user who may do anything but load
/// functions: the broker runs its scripts with `EVALSHA` there.
fn server_without_functions() -> (RedisServer, String) {
    let server = RedisServer::start();
    server.cli(&[
        "acl",
        "setuser",
        "nofn",
        "on",
        ">pw",
        "~*",
        "&*",
        "+@all",
        "-function",
    ]);
    let url = format!("redis://nofn:pw@127.0.0.1:{}", server.port());
    (server, url)
}

#[tokio::test]
async fn runs_scripts_with_evalsha_where_functions_are_unavailable() {
    let (server, url) = server_without_functions();
    let (b, _cleanup) = broker_on(&url, "evalsha", |c| c).await;
    b.enqueue(vec![job_on("ev", Priority::Normal, 0)])
        .await
        .unwrap();
    let got = fetch_n(&b, &["ev"], 1).await;
    b.ack(&[ok(&got[0], "1")]).await.unwrap();
    assert_eq!(
        b.job(&got[0].id, None).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    // A tick claim reads the server's TIME before it writes: allowed in a
    // script too.
    let now = now_millis();
    let mut tick = job_on("ev", Priority::Normal, 1);
    tick.id = format!("sched-ev-{now}").into();
    assert_eq!(
        b.claim_tick("ev", now, tick).await.unwrap(),
        TickClaim::Enqueued
    );
    let mut early = job_on("ev", Priority::Normal, 2);
    early.id = format!("sched-ev-{}", now + 3_600_000).into();
    assert!(matches!(
        b.claim_tick("ev", now + 3_600_000, early).await.unwrap(),
        TickClaim::Early { .. }
    ));
    assert_eq!(fetch_n(&b, &["ev"], 1).await.len(), 1);
    assert!(!server.cli(&["function", "list"]).contains("bananas_"));
    assert!(server
        .cli(&["info", "commandstats"])
        .contains("cmdstat_evalsha"));
}

/// `{P}:routes` lost (a restart without persistence): the process that
/// enqueued still finds its jobs, and a worker's next heartbeat registers
/// its routes again for every other process (the CLI, the HTTP API).
#[tokio::test]
async fn a_lost_route_registry_is_rebuilt() {
    let (b, cleanup) = shared_broker("lost-routes").await;
    let j = job_on("lost", Priority::Normal, 1);
    let id = j.id.clone();
    b.enqueue(vec![j]).await.unwrap();
    let other = bananas_redis::RedisBroker::builder(cleanup.url())
        .prefix(cleanup.prefix())
        .connect()
        .await
        .unwrap();
    let listed = |stats: Vec<bananas_core::broker::QueueStats>| {
        stats.iter().any(|s| s.route == "lost" && s.normal == 1)
    };
    assert!(listed(other.stats().await.unwrap()));

    let mut raw = Raw::connect(cleanup.url()).await;
    let _: i64 = raw
        .query(redis::cmd("DEL").arg(format!("{{{}}}:routes", cleanup.prefix())))
        .await;
    assert!(
        !listed(other.stats().await.unwrap()),
        "the registry is gone"
    );
    let rec = b
        .job(&id, None)
        .await
        .unwrap()
        .expect("the enqueuing process still finds it");
    assert_eq!(rec.state, JobState::Queued);

    let now = now_millis();
    let info = bananas_core::broker::WorkerInfo {
        id: "w-lost".into(),
        host: "h".into(),
        pid: 1,
        routes: vec!["lost".into()],
        concurrency: 1,
        in_flight: 0,
        started_at: now,
        seen_at: now,
    };
    b.heartbeat(&info, Duration::from_secs(5)).await.unwrap();
    assert!(
        listed(other.stats().await.unwrap()),
        "the heartbeat registered the route again"
    );
    assert!(other.job(&id, None).await.unwrap().is_some());
}

/// The fetch an idle worker pipelines behind its `BLPOP` fails when the
/// function library is gone (`FUNCTION FLUSH` here; a restart without
/// persistence does the same): the blocked fetch returns an empty batch at
/// once instead of an error, and the next fetch reloads the library and
/// gets the job.
#[tokio::test]
async fn an_idle_fetch_survives_a_lost_function_library() {
    let server = RedisServer::start();
    let (b, cleanup) = broker_on(&server.url(), "flush", |c| c).await;
    let blocking = bananas_core::broker::FetchRequest {
        block: Duration::from_secs(5),
        ..req(&["default"], 10)
    };
    let raw = Raw::connect(&server.url()).await;
    let wake = format!("{{{}:default}}:wake", cleanup.prefix());
    let (got, _) = tokio::join!(
        async {
            let t = std::time::Instant::now();
            (b.fetch(&blocking).await, t.elapsed())
        },
        async {
            // Wait until the fetch is blocked in its BLPOP (this server is
            // the test's own: no other client blocks on it).
            let mut probe = raw.clone();
            eventually(
                Duration::from_secs(20),
                "the fetch blocked in BLPOP",
                || {
                    let mut probe = probe.clone();
                    async move {
                        let clients: String = probe.query(redis::cmd("CLIENT").arg("LIST")).await;
                        clients.contains("cmd=blpop").then_some(())
                    }
                },
            )
            .await;
            let _: String = probe.query(redis::cmd("FUNCTION").arg("FLUSH")).await;
            let _: i64 = probe.query(redis::cmd("LPUSH").arg(&wake).arg("1")).await;
        }
    );
    let (jobs, took) = got;
    assert!(jobs.expect("an empty batch, not an error").is_empty());
    assert!(took < Duration::from_secs(4), "returned after {took:?}");

    let j = job("after_flush", "{}");
    b.enqueue(vec![j.clone()]).await.unwrap();
    let jobs = b.fetch(&req(&["default"], 10)).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, j.id);
}

/// `ack.lua` checks a whole batch before it writes anything: a TTL Redis
/// would refuse is an error with nothing settled, not a dead job buried and
/// the result after it refused (Lua does not roll back). Driven by `FCALL`,
/// since the broker itself refuses such TTLs at `connect`.
#[tokio::test]
async fn ack_checks_the_whole_batch_before_writing() {
    // A private server: the shared one may hold other builds' libraries.
    let server = RedisServer::start();
    let (b, space) = broker_on(&server.url(), "ackcheck", |c| c).await;
    let (dead, kept) = (
        job_on("v", Priority::Normal, 1),
        job_on("v", Priority::Normal, 2),
    );
    b.enqueue(vec![dead.clone(), kept.clone()]).await.unwrap();
    assert_eq!(fetch_n(&b, &["v"], 2).await.len(), 2);

    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let libraries: redis::Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("bananas_*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let library = format!("{libraries:?}");
    let name = library
        .split('"')
        .find(|s| s.starts_with("bananas_") && s.ends_with("_ack"))
        .unwrap_or_else(|| panic!("no ack function in {library}"))
        .to_owned();
    let k = |s: &str| format!("{{{}:v}}:{s}", space.prefix());
    let mut fcall = redis::cmd("FCALL");
    fcall.arg(&name).arg(11);
    for key in [
        "jobs", "meta", "sched", "lease", "dead", "wake", "waiters", "progress", "epoch",
    ] {
        fcall.arg(k(key));
    }
    fcall
        .arg(k(&format!("r:{}", dead.id)))
        .arg(k(&format!("r:{}", kept.id)));
    let now = bananas_core::job::now_millis();
    fcall
        .arg(now)
        .arg("1e30")
        .arg(60_000)
        .arg(0)
        .arg("")
        .arg("")
        .arg("")
        .arg("");
    fcall
        .arg("dead")
        .arg(dead.id.as_str())
        .arg(1)
        .arg(now)
        .arg("bad")
        .arg("");
    fcall
        .arg("result")
        .arg(kept.id.as_str())
        .arg(1)
        .arg(now)
        .arg("1")
        .arg("");
    let err = fcall
        .query_async::<redis::Value>(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TTLs"), "{err}");
    let record: Option<String> = redis::cmd("GET")
        .arg(k(&format!("r:{}", dead.id)))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(record, None, "the first ack was settled before the error");
    let leased: usize = redis::cmd("ZCARD")
        .arg(k("lease"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(leased, 2);
}

/// A job `fetch.lua` leases but cannot run (here an unreadable attempt
/// counter) is dead-lettered by `bury.lua`, which wakes its waiters with the
/// dead record, as an ack would, instead of leaving them to their timeout
/// and their count in `waiters`.
#[tokio::test]
async fn a_buried_job_wakes_its_waiters() {
    let (b, space) = shared_broker("buried").await;
    let j = job_on("v", Priority::Normal, 1);
    b.enqueue(vec![j.clone()]).await.unwrap();
    let mut raw = Raw::connect(&bananas_test_support::redis_url()).await;
    let k = |s: &str| format!("{{{}:v}}:{s}", space.prefix());
    let _: () = raw
        .query(
            redis::cmd("HSET")
                .arg(k("meta"))
                .arg(j.id.as_str())
                .arg("garbage"),
        )
        .await;
    let (waited, ()) = tokio::join!(b.wait(&j.id, None, Duration::from_secs(20)), async {
        eventually(Duration::from_secs(20), "the waiter registered", || {
            let mut raw = raw.clone();
            let cmd = redis::cmd("HEXISTS")
                .arg(k("waiters"))
                .arg(j.id.as_str())
                .clone();
            async move { raw.query::<bool>(&cmd).await.then_some(()) }
        })
        .await;
        assert!(b.fetch(&req(&["v"], 1)).await.unwrap().is_empty());
    });
    let rec = waited.unwrap().expect("the waiter was woken");
    assert_eq!(rec.state, JobState::Dead);
    assert!(rec.error.unwrap().contains("corrupt attempt counter"));
    let left: bool = raw
        .query(redis::cmd("HEXISTS").arg(k("waiters")).arg(j.id.as_str()))
        .await;
    assert!(!left, "the waiter count was left behind");
}

/// One schedule announcement that is not UTF-8 (written by something else,
/// or damaged) is skipped and reported; the others are still listed.
#[tokio::test]
async fn a_non_utf8_announcement_is_skipped() {
    let (b, space) = shared_broker("badannounce").await;
    let now = now_millis();
    let info = bananas_core::broker::ScheduleInfo {
        id: "good".to_owned(),
        route: "default".to_owned(),
        cron: "0 * * * * *".to_owned(),
        tz: "UTC".to_owned(),
        next_run: Some(now + 10_000),
        seen_at: now,
    };
    b.announce(std::slice::from_ref(&info)).await.unwrap();
    let mut raw = Raw::connect(&bananas_test_support::redis_url()).await;
    let _: () = raw
        .query(
            redis::cmd("HSET")
                .arg(format!("{{{}}}:schedules", space.prefix()))
                .arg(&b"bad\xff"[..])
                .arg(&b"{\"id\":\"\xff\xfe\"}"[..]),
        )
        .await;
    let listed = b.announcements().await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["good"]
    );
}

/// Where the user may not load functions, the scripts run with `EVAL`, and
/// on Redis 7 with their flags (`#!lua flags=…`): a server at `maxmemory`
/// still takes the acks that store results and free the jobs, as the
/// function library's `allow-oom` allows. Without the flags, the ack's
/// first write (a `SET`) was refused.
#[tokio::test]
async fn eval_scripts_keep_draining_at_maxmemory() {
    let (server, url) = server_without_functions();
    let (b, _cleanup) = broker_on(&url, "evaloom", |c| c).await;
    b.enqueue(vec![job_on("ev", Priority::Normal, 0)])
        .await
        .unwrap();
    let got = fetch_n(&b, &["ev"], 1).await;
    server.cli(&["config", "set", "maxmemory", "1"]);
    let acked = b.ack(&[ok(&got[0], "\"kept\"")]).await;
    server.cli(&["config", "set", "maxmemory", "0"]);
    acked.unwrap();
    let rec = b.job(&got[0].id, None).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Succeeded);
}

/// A leased job whose lease entry vanished (the lease set evicted, or
/// deleted by hand) is found by the next recovery pass and queued again,
/// counted as lost once, like a job whose lease expired (issue 12, item 6:
/// before, no expiry could ever bring it back). With nothing missing,
/// recovery finds nothing.
#[tokio::test]
async fn a_job_whose_lease_vanished_is_recovered() {
    let (b, space) = shared_broker("vanished").await;
    let route = Route::new("v").unwrap();
    let leased: Vec<_> = (0..3).map(|n| job_on("v", Priority::Normal, n)).collect();
    b.enqueue(leased.clone()).await.unwrap();
    assert_eq!(b.fetch(&req(&["v"], 3)).await.unwrap().len(), 3);
    // Also a queued job and a scheduled one, which are not lost.
    let queued = job_on("v", Priority::High, 3);
    let mut scheduled = job_on("v", Priority::Normal, 4);
    scheduled.eta = Some(now_millis() + 3_600_000);
    b.enqueue(vec![queued.clone(), scheduled]).await.unwrap();
    let routes = std::slice::from_ref(&route);
    assert_eq!(b.recover_expired(routes).await.unwrap(), 0);

    let mut raw = Raw::connect(&bananas_test_support::redis_url()).await;
    let lease = format!("{{{}:v}}:lease", space.prefix());
    let _: () = raw.query(redis::cmd("DEL").arg(&lease)).await;
    assert_eq!(b.recover_expired(routes).await.unwrap(), 3);
    assert_eq!(b.recover_expired(routes).await.unwrap(), 0);

    let again = b.fetch(&req(&["v"], 10)).await.unwrap();
    let mut ids: Vec<_> = again.iter().map(|j| j.id.clone()).collect();
    ids.sort();
    let mut want: Vec<_> = leased
        .iter()
        .chain([&queued])
        .map(|j| j.id.clone())
        .collect();
    want.sort();
    assert_eq!(ids, want, "the three lost jobs and the queued one");
    for j in &again {
        let lost = u32::from(j.id != queued.id);
        assert_eq!(j.lost, lost, "{}", j.id);
    }
}

/// One fetch returns at most `fetch_max_bytes` of job data (at least one
/// job, however large): the jobs past the budget go back to the front of
/// the queues they came from, in their order (issue 12 suspicion: 90 jobs
/// of 1 MiB came back in one reply).
#[tokio::test]
async fn a_fetch_reply_is_bounded_in_bytes() {
    let (b, _space) = broker_on(&bananas_test_support::redis_url(), "fetchbytes", |c| {
        c.fetch_max_bytes(2_500)
    })
    .await;
    let big = |route: &str, prio: Priority, n: usize| {
        let mut j = job(
            "noop",
            &format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(1_000)),
        );
        j.route = Route::new(route).unwrap();
        j.priority = prio;
        j
    };
    // One queue: two jobs fit, the third would pass the budget.
    let jobs: Vec<_> = (0..5).map(|n| big("one", Priority::Normal, n)).collect();
    b.enqueue(jobs.clone()).await.unwrap();
    let mut got = Vec::new();
    for want in [2, 2, 1] {
        let batch = b.fetch(&req(&["one"], 10)).await.unwrap();
        assert_eq!(
            batch.len(),
            want,
            "{:?}",
            batch.iter().map(|j| &j.id).collect::<Vec<_>>()
        );
        got.extend(batch.into_iter().map(|j| j.id));
    }
    let want: Vec<_> = jobs.iter().map(|j| j.id.clone()).collect();
    assert_eq!(got, want, "the jobs came in their queue order");

    // Jobs from two priorities in one fetch go back to their own queues.
    let high: Vec<_> = (0..3).map(|n| big("two", Priority::High, n)).collect();
    let low: Vec<_> = (0..3).map(|n| big("two", Priority::Low, n)).collect();
    b.enqueue(high.iter().chain(&low).cloned().collect())
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 6 {
        let batch = b.fetch(&req(&["two"], 10)).await.unwrap();
        assert!(
            (1..=2).contains(&batch.len()),
            "{} jobs in one fetch",
            batch.len()
        );
        got.extend(batch.into_iter().map(|j| j.id));
    }
    let pos = |id| got.iter().position(|g| g == id).unwrap();
    for queue in [&high, &low] {
        for w in queue.windows(2) {
            assert!(pos(&w[0].id) < pos(&w[1].id), "{got:?}");
        }
    }

    // A job larger than the whole budget still comes, alone.
    let mut huge = job("noop", &format!(r#"{{"pad":"{}"}}"#, "x".repeat(10_000)));
    huge.route = Route::new("three").unwrap();
    let mut small = job("noop", "{}");
    small.route = huge.route.clone();
    b.enqueue(vec![huge.clone(), small]).await.unwrap();
    let batch = b.fetch(&req(&["three"], 10)).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].id, huge.id);
}

/// Tags and metadata live beside the job (`{P:R}:x:<id>`), never in the
/// spec a worker reads: an older worker, which knows nothing of them,
/// fetches exactly the job it would have without them.
#[tokio::test]
async fn tags_never_reach_the_spec_workers_read() {
    let (b, space) = shared_broker("tagspec").await;
    let mut tagged = job_on("t", Priority::Normal, 1);
    let mut plain = tagged.clone();
    plain.id = bananas_core::JobId::from("plain-twin");
    tagged.extra = Some(Box::new(bananas_core::job::Extra {
        tags: vec!["tenant:42".into()],
        meta: serde_json::from_str(r#"{"k":"v"}"#).unwrap(),
    }));
    b.enqueue(vec![tagged.clone(), plain.clone()])
        .await
        .unwrap();
    let mut raw = Raw::connect(&bananas_test_support::redis_url()).await;
    let jobs = format!("{{{}:t}}:jobs", space.prefix());
    let specs: Vec<String> = raw
        .query(
            redis::cmd("HMGET")
                .arg(&jobs)
                .arg(tagged.id.as_str())
                .arg("plain-twin"),
        )
        .await;
    assert_eq!(specs[0], specs[1], "the same spec with or without tags");
    let x: String = raw
        .query(redis::cmd("GET").arg(format!("{{{}:t}}:x:{}", space.prefix(), tagged.id)))
        .await;
    assert_eq!(x, r#"{"tags":["tenant:42"],"meta":{"k":"v"}}"#);
    let got = b.fetch(&req(&["t"], 2)).await.unwrap();
    assert!(
        got.iter().all(|j| j.extra.is_none()),
        "workers get the job alone"
    );
}

/// Listing pages through any number of jobs that share one time (here
/// 2,600 jobs with one eta, more than a call's scan budget): every job
/// once, in order, and a retrying job among them is found by following
/// the cursor. (Before, each page re-read the whole group, and a group
/// longer than the budget read as the end of the listing.)
#[tokio::test]
async fn listings_page_through_jobs_that_share_a_time() {
    use bananas_core::broker::{Browse, JobFilter, ListState, SCAN_BUDGET};
    let (b, _space) = shared_broker("ties").await;
    let eta = now_millis() + 3_600_000;
    let n = SCAN_BUDGET + 600;
    let jobs: Vec<_> = (0..n)
        .map(|i| {
            let mut j = job_on("tie", Priority::Normal, i);
            j.eta = Some(eta);
            j
        })
        .collect();
    for chunk in jobs.chunks(1000) {
        b.enqueue(chunk.to_vec()).await.unwrap();
    }
    // One retrying job, due at the same time, at the far end.
    let r = job_on("tie", Priority::Normal, n);
    b.enqueue(vec![r.clone()]).await.unwrap();
    let got = b.fetch(&req(&["tie"], 1)).await.unwrap();
    assert_eq!(got[0].id, r.id);
    b.ack(&[ack(
        &got[0],
        bananas_core::Outcome::Retry {
            at: eta,
            error: "e".into(),
        },
    )])
    .await
    .unwrap();

    let all = |state: ListState, limit: usize| {
        let b = &b;
        async move {
            let f = JobFilter::state(state);
            let (mut ids, mut cursor, mut calls) = (Vec::new(), None::<String>, 0);
            loop {
                let page = b.list_jobs(&f, cursor.as_deref(), limit).await.unwrap();
                ids.extend(page.jobs.into_iter().map(|j| j.id.to_string()));
                calls += 1;
                assert!(calls < 100, "no end");
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => return ids,
                }
            }
        }
    };
    let scheduled = all(ListState::Scheduled, 1000).await;
    assert_eq!(scheduled.len(), n, "every job once");
    let mut want: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    want.sort();
    want.reverse(); // one time: by id, descending
    assert_eq!(scheduled, want);
    assert_eq!(all(ListState::Retrying, 50).await, vec![r.id.to_string()]);
}

/// `index_succeeded(false)`: a succeeded job keeps its result (found by
/// id) but is not indexed for listing, so acknowledgements cost what they
/// did before the index.
#[tokio::test]
async fn succeeded_jobs_are_not_indexed_when_asked_not_to() {
    use bananas_core::broker::{Browse, JobFilter, ListState};
    let (b, space) = broker_on(&bananas_test_support::redis_url(), "noindex", |c| {
        c.index_succeeded(false)
    })
    .await;
    let j = job_on("ni", Priority::Normal, 1);
    b.enqueue(vec![j.clone()]).await.unwrap();
    let got = b.fetch(&req(&["ni"], 1)).await.unwrap();
    b.ack(&[ok(&got[0], "5")]).await.unwrap();
    let rec = b.job(&j.id, None).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Succeeded);
    let page = b
        .list_jobs(&JobFilter::state(ListState::Succeeded), None, 10)
        .await
        .unwrap();
    assert!(page.jobs.is_empty(), "{:?}", page.jobs);
    let mut raw = Raw::connect(&bananas_test_support::redis_url()).await;
    let exists: bool = raw
        .query(redis::cmd("EXISTS").arg(format!("{{{}:ni}}:done", space.prefix())))
        .await;
    assert!(!exists);
}
