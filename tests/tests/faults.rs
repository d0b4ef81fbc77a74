//! Fault tests on private `redis-server`s: a worker killed with SIGKILL, a
//! Redis restart, killed connections, two workers racing, and worker
//! processes on a paused route.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

use bananas::{
    broker::AnyBroker,
    job::{Job, JobId, JobState},
    Client,
};
use bananas_test_support::{eventually, RedisServer};
use bananas_tests::TestBroker;
use serde_json::value::RawValue;

const RUNS_KEY: &str = "fault-runs";

/// A worker process, SIGKILLed when dropped: a test that fails half-way
/// leaves no worker behind.
struct WorkerProcess(Child);

impl std::ops::Deref for WorkerProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for WorkerProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn worker(server: &RedisServer, prefix: &str, concurrency: usize) -> WorkerProcess {
    worker_with(server, prefix, concurrency, &[])
}

/// A fault worker with more settings (`WORKER_*` variables) than
/// [`worker`]'s, which they override; an empty value leaves the variable
/// unset, for the default.
fn worker_with(
    server: &RedisServer,
    prefix: &str,
    concurrency: usize,
    env: &[(&str, &str)],
) -> WorkerProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fault_worker"));
    command
        .env("BANANAS_URL", format!("{}?prefix={prefix}", server.url()))
        .env("FAULT_REDIS_URL", server.url())
        .env("FAULT_RUNS_KEY", RUNS_KEY)
        .env("WORKER_CONCURRENCY", concurrency.to_string())
        .env("WORKER_LEASE", "2")
        .env("WORKER_SHUTDOWN_TIMEOUT", "5")
        .env("BANANAS_SCHEDULER", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        if value.is_empty() {
            command.env_remove(name);
        } else {
            command.env(name, value);
        }
    }
    WorkerProcess(command.spawn().expect("start fault_worker"))
}

fn fault_job(first_ms: u64) -> Job {
    let args = RawValue::from_string(format!(r#"{{"first_ms":{first_ms}}}"#)).unwrap();
    Job::new("fault_job", args)
}

async fn runs(server: &RedisServer) -> HashMap<String, u32> {
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HGETALL")
        .arg(RUNS_KEY)
        .query_async(&mut con)
        .await
        .unwrap()
}

async fn all_succeeded(broker: &AnyBroker, ids: &[JobId], within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    for id in ids {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let rec = broker
            .inspect()
            .unwrap()
            .wait(id, None, left)
            .await
            .unwrap();
        let rec = rec.unwrap_or_else(|| panic!("job {id} did not finish"));
        assert_eq!(rec.state, JobState::Succeeded, "{rec:?}");
    }
}

fn stop(mut child: WorkerProcess) {
    // SIGTERM for a graceful stop; SIGKILL if that does not work.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Enqueues `jobs`, retrying while the broker is unreachable, as a real
/// producer would; only an `Ok` counts as acknowledged. Gives up (fails the
/// test) after about 10 s of errors.
async fn enqueue_retrying(broker: &AnyBroker, jobs: Vec<Job>) {
    let mut tries = 0;
    loop {
        match broker.enqueue(jobs.clone()).await {
            Ok(_) => return,
            Err(e) => {
                tries += 1;
                assert!(tries < 100, "enqueue kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// (a) A worker is SIGKILLed with 100 jobs in flight; they all complete on a
/// second worker, none lost. They allow no retries: losing a worker does
/// not spend one (it counts against the job's `max_lost` instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_jobs_run_elsewhere() {
    let server = RedisServer::start();
    let tb = TestBroker::redis(&server.url(), "sigkill").await;
    let prefix = tb.redis.as_ref().unwrap().prefix().to_owned();
    let broker = tb.broker.clone();
    let jobs: Vec<Job> = (0..100)
        .map(|_| Job {
            max_retries: 0,
            ..fault_job(60_000)
        })
        .collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
    broker.enqueue(jobs).await.unwrap();

    let mut first = worker(&server, &prefix, 100);
    eventually(Duration::from_secs(30), "100 jobs in flight", || {
        let b = broker.clone();
        async move {
            let active: u64 = b
                .inspect()
                .unwrap()
                .stats()
                .await
                .unwrap()
                .iter()
                .map(|s| s.active)
                .sum();
            (active == 100).then_some(())
        }
    })
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let second = worker(&server, &prefix, 20);
    all_succeeded(&broker, &ids, Duration::from_secs(60)).await;
    stop(second);
    let runs = runs(&server).await;
    for id in &ids {
        assert_eq!(runs.get(id.as_str()), Some(&1), "job {id} completed once");
        let rec = broker
            .inspect()
            .unwrap()
            .job(id, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.attempts, 2, "the killed attempt is counted");
    }
}

/// (a') The jobs a SIGKILLed worker had only prefetched (leased, waiting
/// for a free slot) are taken over after their short claim (5 s), not
/// after the whole lease (60 s here), which only the jobs it was running
/// wait out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_prefetched_jobs_are_taken_over_soon() {
    let server = RedisServer::start();
    let tb = TestBroker::redis(&server.url(), "prefetched").await;
    let prefix = tb.redis.as_ref().unwrap().prefix().to_owned();
    let broker = tb.broker.clone();
    let slow = [("WORKER_LEASE", "60"), ("WORKER_PREFETCH", "16")];
    // Two run (their first attempt sleeps a minute), sixteen wait.
    let jobs: Vec<Job> = (0..18).map(|_| fault_job(60_000)).collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
    broker.enqueue(jobs).await.unwrap();
    let mut first = worker_with(&server, &prefix, 2, &slow);
    eventually(Duration::from_secs(30), "18 jobs held", || {
        let b = broker.clone();
        async move {
            let stats = b.inspect().unwrap().stats().await.unwrap();
            (stats.iter().map(|s| s.active).sum::<u64>() == 18).then_some(())
        }
    })
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let second = worker_with(&server, &prefix, 20, &slow);
    // Well within the 60 s lease: the claims ran out. (The two running
    // jobs may have been killed before their first extension, while they
    // still had the claim: then they are taken over as soon.)
    eventually(Duration::from_secs(30), "the prefetched jobs ran", || {
        let (b, ids) = (broker.clone(), ids.clone());
        async move {
            let mut done = 0;
            for id in &ids {
                let rec = b.inspect().unwrap().job(id, None).await.unwrap();
                done += usize::from(rec.is_some_and(|r| r.state == JobState::Succeeded));
            }
            (done >= 16).then_some(())
        }
    })
    .await;
    stop(second);
}

/// (a'') The jobs a SIGKILLed worker was running are taken over once its
/// heartbeat lapses, with the default settings: the lease of a running job
/// is as long as the heartbeat's life (15 s), so pickup comes within it
/// plus a recovery pass, not after a longer lease (30 s before). When they
/// are taken over, the dead worker is no longer listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_running_jobs_are_taken_over_when_its_heartbeat_lapses() {
    let server = RedisServer::start();
    let tb = TestBroker::redis(&server.url(), "running").await;
    let prefix = tb.redis.as_ref().unwrap().prefix().to_owned();
    let broker = tb.broker.clone();
    // The defaults: no WORKER_LEASE, WORKER_CLAIM or recovery interval.
    let defaults = [("WORKER_LEASE", ""), ("WORKER_PREFETCH", "0")];
    let jobs: Vec<Job> = (0..2).map(|_| fault_job(60_000)).collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
    broker.enqueue(jobs).await.unwrap();
    let mut first = worker_with(&server, &prefix, 2, &defaults);
    eventually(Duration::from_secs(30), "2 jobs running", || {
        let b = broker.clone();
        async move {
            let stats = b.inspect().unwrap().stats().await.unwrap();
            (stats.iter().map(|s| s.active).sum::<u64>() == 2).then_some(())
        }
    })
    .await;
    // Until both running jobs' claims (5 s) were extended to the lease
    // (15 s): their lease deadlines lie more than the claim ahead.
    let lease_key = format!("{{{prefix}:default}}:lease");
    eventually(
        Duration::from_secs(30),
        "the running jobs hold the full lease",
        || {
            let (url, key) = (server.url(), lease_key.clone());
            async move {
                let client = redis::Client::open(url).unwrap();
                let mut con = client.get_multiplexed_async_connection().await.unwrap();
                let far: usize = redis::cmd("ZCOUNT")
                    .arg(&key)
                    .arg(bananas::job::now_millis() + 8_000)
                    .arg("+inf")
                    .query_async(&mut con)
                    .await
                    .unwrap();
                (far == 2).then_some(())
            }
        },
    )
    .await;
    let listed = broker.workers().unwrap().workers().await.unwrap();
    assert_eq!(listed.len(), 1, "the worker is listed while it runs");
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let killed = std::time::Instant::now();

    let second = worker_with(&server, &prefix, 2, &defaults);
    // The lease ran out at most 15 s after the kill; a recovery pass comes
    // every 5 s. A 30 s lease could not be taken over before 28 s.
    all_succeeded(&broker, &ids, Duration::from_secs(25)).await;
    let taken_after = killed.elapsed();
    assert!(
        taken_after < Duration::from_secs(25),
        "taken over after {taken_after:?}"
    );
    let listed = broker.workers().unwrap().workers().await.unwrap();
    assert_eq!(
        listed.len(),
        1,
        "only the second worker is listed: {listed:?}"
    );
    let runs = runs(&server).await;
    for id in &ids {
        assert_eq!(runs.get(id.as_str()), Some(&1), "job {id} completed once");
    }
    stop(second);
}

/// A paused route's jobs stay queued while worker processes run, also
/// across a worker restart (the state is in Redis), and run once it is
/// resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_route_holds_its_jobs_across_worker_restarts() {
    let server = RedisServer::start();
    let tb = TestBroker::redis(&server.url(), "paused").await;
    let prefix = tb.redis.as_ref().unwrap().prefix().to_owned();
    let broker = tb.broker.clone();
    let route = bananas::job::Route::default();
    assert!(broker.pause().unwrap().pause(&route).await.unwrap());
    let first = worker(&server, &prefix, 4);
    let jobs: Vec<Job> = (0..5).map(|_| fault_job(0)).collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
    broker.enqueue(jobs).await.unwrap();
    let held = |broker: AnyBroker| async move {
        // The worker is up (it beats), and its fetches find nothing.
        eventually(Duration::from_secs(30), "the worker is live", || {
            let b = broker.clone();
            async move { (!b.workers().unwrap().workers().await.unwrap().is_empty()).then_some(()) }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stats = broker.inspect().unwrap().stats().await.unwrap();
        let s = stats.iter().find(|s| s.route == "default").unwrap();
        assert!(s.paused, "{s:?}");
        assert_eq!((s.normal, s.active), (5, 0), "{s:?}");
    };
    held(broker.clone()).await;
    stop(first);
    let listed = broker.workers().unwrap().workers().await.unwrap();
    assert!(
        listed.is_empty(),
        "still listed after a clean stop: {listed:?}"
    );
    let second = worker(&server, &prefix, 4);
    held(broker.clone()).await;
    assert!(runs(&server).await.is_empty());

    assert!(broker.pause().unwrap().resume(&route).await.unwrap());
    all_succeeded(&broker, &ids, Duration::from_secs(30)).await;
    stop(second);
}

/// (b) Redis (appendonly, fsync always) is killed and restarted mid-run; the
/// worker recovers and every job whose enqueue was acknowledged completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_loses_no_acknowledged_job() {
    let mut server = RedisServer::builder().appendonly().start();
    let tb = TestBroker::redis(&server.url(), "restart").await;
    let prefix = tb.redis.as_ref().unwrap().prefix().to_owned();
    let broker = tb.broker.clone();
    let w = worker(&server, &prefix, 10);

    let mut acked = Vec::new();
    for round in 0..20 {
        if round == 10 {
            server.restart();
        }
        let jobs: Vec<Job> = (0..50).map(|_| fault_job(5)).collect();
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
        // An enqueue that fails during the outage was not acknowledged; the
        // producer retries it, as a real one would.
        enqueue_retrying(&broker, jobs).await;
        acked.extend(ids);
    }
    all_succeeded(&broker, &acked, Duration::from_secs(90)).await;
    stop(w);
    let runs = runs(&server).await;
    for id in &acked {
        assert!(
            runs.get(id.as_str()).copied().unwrap_or(0) >= 1,
            "job {id} never ran"
        );
    }
}

/// (c) `CLIENT KILL` cuts every connection mid-run; workers reconnect and
/// carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_reconnect() {
    let server = RedisServer::start();
    let tb = TestBroker::redis(&server.url(), "clientkill").await;
    let prefix = tb.redis.as_ref().unwrap().prefix().to_owned();
    let broker = tb.broker.clone();
    let w = worker(&server, &prefix, 10);
    let admin = redis::Client::open(server.url()).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();

    let mut ids = Vec::new();
    for round in 0..5 {
        let jobs: Vec<Job> = (0..100).map(|_| fault_job(1)).collect();
        ids.extend(jobs.iter().map(|j| j.id.clone()));
        enqueue_retrying(&broker, jobs).await;
        if round % 2 == 0 {
            let killed: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes")
                .query_async(&mut admin)
                .await
                .unwrap();
            assert!(killed > 0);
        }
    }
    // The test's own broker connections were cut too; it reconnects as well.
    let client = Client::new(broker.clone());
    eventually(Duration::from_secs(30), "test client reconnected", || {
        let c = client.clone();
        async move { c.broker().ping().await.ok() }
    })
    .await;
    all_succeeded(&broker, &ids, Duration::from_secs(60)).await;
    stop(w);
}

/// (d) Two worker processes race over 10,000 jobs; with no faults each job
/// runs exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_run_each_job_exactly_once() {
    let server = RedisServer::start();
    let tb = TestBroker::redis(&server.url(), "race").await;
    let prefix = tb.redis.as_ref().unwrap().prefix().to_owned();
    let broker = tb.broker.clone();
    let jobs: Vec<Job> = (0..10_000).map(|_| fault_job(0)).collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
    for chunk in jobs.chunks(1000) {
        broker.enqueue(chunk.to_vec()).await.unwrap();
    }
    let a = worker(&server, &prefix, 20);
    let b = worker(&server, &prefix, 20);
    eventually(Duration::from_secs(120), "all 10,000 jobs ran", || {
        let s = &server;
        async move { (runs(s).await.len() == 10_000).then_some(()) }
    })
    .await;
    all_succeeded(&broker, &ids, Duration::from_secs(60)).await;
    stop(a);
    stop(b);
    let runs = runs(&server).await;
    let twice: Vec<_> = runs.iter().filter(|(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "jobs that ran more than once: {twice:?}");
    assert_eq!(runs.len(), 10_000);
}

/// A non-blocking fetch of up to `max` jobs from the default route.
fn fetch_default(max: usize) -> bananas::broker::FetchRequest {
    bananas::broker::FetchRequest {
        routes: vec![bananas::job::Route::default()],
        max,
        lease: Duration::from_secs(60),
        cursor: 0,
        block: Duration::ZERO,
    }
}

/// (e) A restart that rolls the data back to a snapshot taken before a
/// fetch (RDB, or AOF with `everysec`) keeps the route's epoch key, so the
/// epoch also carries the server's run id: an ack leased before the restart
/// is checked against the leases, not trusted, even when it is sent again
/// with its lease token. The rolled-back job is still queued and runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_leased_before_a_rollback_are_checked() {
    let mut server = RedisServer::start();
    let tb = TestBroker::redis(&server.url(), "rollback").await;
    let broker = tb.broker.clone();
    let fetch = fetch_default(10);
    // A first fetch on the empty route makes its epoch key, so the key is
    // in the snapshot: the restart keeps it.
    assert!(broker.fetch(&fetch).await.unwrap().is_empty());
    let job = fault_job(0);
    let id = job.id.clone();
    broker.enqueue(vec![job]).await.unwrap();
    // Snapshot with the job queued, then lease it.
    server.save();
    let leased = broker.fetch(&fetch).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_ne!(leased[0].lease_token, 0);

    // Restart from the snapshot: the job is queued again, not leased.
    server.restart();
    let ack = bananas::job::Ack {
        job: leased[0].clone().into_parts().0,
        outcome: bananas::job::Outcome::Succeeded(None),
        started_at: bananas::job::now_millis(),
        finished_at: bananas::job::now_millis(),
    };
    eventually(
        Duration::from_secs(20),
        "the ack lands after the restart",
        || {
            let broker = broker.clone();
            let ack = ack.clone();
            async move { broker.ack(std::slice::from_ref(&ack)).await.ok() }
        },
    )
    .await;
    let rec = broker
        .inspect()
        .unwrap()
        .job(&id, None)
        .await
        .unwrap()
        .expect("the job survived the stale ack");
    assert_eq!(rec.state, JobState::Queued);
    let again = broker.fetch(&fetch).await.unwrap();
    assert_eq!(again.len(), 1, "the job runs again");
    assert_eq!(again[0].id, id);
    assert_eq!(again[0].args.get(), leased[0].args.get());
}

/// (f) A failover gives the server a new replication id, which is part of
/// the epoch: the same process demoted to a replica and promoted again
/// (its data now the other server's) hands out a new epoch, so tokens from
/// before are not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_starts_a_new_epoch() {
    let first = RedisServer::start();
    let second = RedisServer::start();
    let tb = TestBroker::redis(&first.url(), "failover").await;
    let broker = tb.broker.clone();
    let fetch = fetch_default(10);
    broker.enqueue(vec![fault_job(0)]).await.unwrap();
    let before = broker.fetch(&fetch).await.unwrap();
    assert_eq!(before.len(), 1);

    // `second` follows `first`, takes over, and `first` follows it; then
    // `first` is promoted back: same process, same run id, new history.
    // (Each `replicate` waits until the replica is in sync.)
    second.replicate(&first);
    second.promote();
    first.replicate(&second);
    first.promote();

    // The job is still leased (the lease was replicated); a new job fetched
    // now carries a token for a different epoch.
    broker.enqueue(vec![fault_job(0)]).await.unwrap();
    let after = eventually(
        Duration::from_secs(20),
        "a fetch after the failover",
        || {
            let broker = broker.clone();
            let fetch = fetch.clone();
            async move { broker.fetch(&fetch).await.ok().filter(|j| !j.is_empty()) }
        },
    )
    .await;
    assert_ne!(after[0].lease_token, 0);
    assert_ne!(
        after[0].lease_token, before[0].lease_token,
        "the failover started a new epoch"
    );
}
