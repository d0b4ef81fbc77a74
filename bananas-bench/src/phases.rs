//! The measurements. Each phase runs under its own key prefix and deletes
//! its keys when done.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use bananas::{
    broker::AnyBroker,
    worker::{Worker, WorkerConfig},
    Client,
};
use hdrhistogram::Histogram;
use redis::aio::MultiplexedConnection;
use tokio_util::sync::CancellationToken;

use crate::{
    store,
    tasks::{self, Kind},
};

/// What every phase needs.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The Redis URL, without a prefix.
    pub(crate) url: String,
    /// A plain connection for INFO, MEMORY and cleanup.
    pub(crate) raw: MultiplexedConnection,
    /// This invocation's prefix; phases add `-r<run>-<phase>`.
    pub(crate) base: String,
    /// Worker concurrency.
    pub(crate) concurrency: usize,
    /// Jobs per fetch (`None`: the worker's default).
    pub(crate) fetch_batch: Option<usize>,
    /// Jobs per enqueue call in bulk.
    pub(crate) batch: usize,
    /// Give up on a drain after this long.
    pub(crate) timeout: Duration,
}

impl Ctx {
    fn prefix(&self, run: usize, phase: &str) -> String {
        format!("{}-r{run}-{phase}", self.base)
    }

    fn worker_config(&self) -> WorkerConfig {
        let mut config = WorkerConfig {
            concurrency: self.concurrency,
            ..WorkerConfig::default()
        };
        if let Some(n) = self.fetch_batch {
            config.fetch_batch = n;
        }
        config
    }
}

/// The machine's idle round trip: `samples` unpipelined `LPUSH`es on the
/// plain connection, each after `gap` of doing nothing, the way each idle
/// pickup sample starts. On a VM whose idle vCPUs halt, waking the client
/// and the server costs far more than a back-to-back round trip (what
/// `redis-benchmark` measures), and an idle pickup is three such trips:
/// the enqueue, the wake-up delivered to the blocked worker, and its fetch.
pub(crate) async fn idle_round_trip(
    ctx: &mut Ctx,
    run: usize,
    samples: usize,
    gap: Duration,
) -> anyhow::Result<Single> {
    let key = format!("{{{}}}:rtt", ctx.prefix(run, "idle-rtt"));
    let mut h = histogram()?;
    let t0 = Instant::now();
    for _ in 0..samples {
        tokio::time::sleep(gap).await;
        let t = Instant::now();
        let _: i64 = redis::cmd("LPUSH")
            .arg(&key)
            .arg("x")
            .query_async(&mut ctx.raw)
            .await?;
        h.record(t.elapsed().as_nanos().max(1) as u64)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut ctx.raw)
        .await?;
    Ok(Single {
        rate: samples as f64 / secs,
        p50_us: us(&h, 0.50),
        p99_us: us(&h, 0.99),
    })
}

/// Latency percentiles and a rate.
#[derive(Debug)]
pub(crate) struct Single {
    pub(crate) rate: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000_000, 3)?)
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Enqueues `n` no-op jobs one at a time through the typed submit API,
/// each awaited before the next.
pub(crate) async fn single_enqueue(ctx: &mut Ctx, run: usize, n: usize) -> anyhow::Result<Single> {
    let prefix = ctx.prefix(run, "single");
    let client = Client::new(store::broker(&ctx.url, &prefix).await?);
    // Warm up: the route's registration and the script cache.
    for _ in 0..100 {
        tasks::bench_noop::submit().on(&client).send().await?;
    }
    let mut h = histogram()?;
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        tasks::bench_noop::submit().on(&client).send().await?;
        h.record(t.elapsed().as_nanos() as u64)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    store::cleanup(&mut ctx.raw, &prefix).await?;
    Ok(Single {
        rate: n as f64 / secs,
        p50_us: us(&h, 0.50),
        p99_us: us(&h, 0.99),
    })
}

/// Enqueues `n` jobs of `kind` in calls of `batch` jobs; returns how long
/// it took (building the envelopes included).
pub(crate) async fn fill(
    broker: &AnyBroker,
    kind: Kind,
    n: usize,
    batch: usize,
    pad: &str,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(batch.max(1));
        let jobs = (0..k)
            .map(|_| tasks::job(kind, pad))
            .collect::<bananas::Result<Vec<_>>>()?;
        let added = broker.enqueue(jobs).await?;
        if added != k {
            bail!("enqueued {k} new jobs but the broker added {added}");
        }
        left -= k;
    }
    Ok(t0.elapsed())
}

/// Bulk enqueue and the memory it took.
#[derive(Debug)]
pub(crate) struct Bulk {
    pub(crate) rate: f64,
    /// `INFO memory` `used_memory` delta / jobs.
    pub(crate) info_bytes_per_job: f64,
    /// `MEMORY USAGE` of the route's job hash and queue / jobs.
    pub(crate) keys_bytes_per_job: f64,
}

/// How a drain went.
#[derive(Debug)]
pub(crate) struct Drain {
    /// Jobs per second, start-up included.
    pub(crate) rate: f64,
    /// Jobs per second from the first job starting to the last ack.
    pub(crate) steady_rate: Option<f64>,
    /// From starting the worker to the first job starting.
    pub(crate) startup_ms: Option<f64>,
    /// Jobs the broker dead-lettered (should be 0).
    pub(crate) dead: u64,
    /// Handler runs counted (at least `n`; more if a lease expired).
    pub(crate) handled: u64,
    /// Redis CPU time per job during the drain (µs).
    pub(crate) redis_cpu_us: f64,
    /// The worker process's CPU time per job (µs; one process, and only
    /// for drains of half a second or more).
    pub(crate) worker_cpu_us: Option<f64>,
}

/// How a drain phase runs its workers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DrainSpec<'a> {
    pub(crate) kind: Kind,
    pub(crate) jobs: usize,
    pub(crate) processes: usize,
    pub(crate) pad: &'a str,
    /// Report the fill as the bulk-enqueue figure (and measure memory).
    pub(crate) measure_fill: bool,
}

/// Queues `spec.jobs` jobs (measuring bulk enqueue and memory if asked),
/// then starts the worker(s) and times them until every job is acknowledged.
pub(crate) async fn fill_and_drain(
    ctx: &mut Ctx,
    run: usize,
    phase: &str,
    spec: DrainSpec<'_>,
) -> anyhow::Result<(Option<Bulk>, Drain)> {
    let prefix = ctx.prefix(run, phase);
    let client = store::broker(&ctx.url, &prefix).await?;
    let before = store::used_memory(&mut ctx.raw).await?;
    let took = fill(&client, spec.kind, spec.jobs, ctx.batch, spec.pad).await?;
    let bulk = if spec.measure_fill {
        let after = store::used_memory(&mut ctx.raw).await?;
        let mut keys = 0;
        for suffix in ["jobs", "q:n"] {
            keys += store::memory_usage(&mut ctx.raw, &store::route_key(&prefix, suffix)).await?;
        }
        Some(Bulk {
            rate: spec.jobs as f64 / took.as_secs_f64(),
            info_bytes_per_job: (after - before) as f64 / spec.jobs as f64,
            keys_bytes_per_job: keys as f64 / spec.jobs as f64,
        })
    } else {
        None
    };
    let cpu0 = store::server_cpu_us(&mut ctx.raw).await?;
    let drain = if spec.processes <= 1 {
        drain_here(ctx, &prefix, &client, spec.jobs as u64).await
    } else {
        drain_children(ctx, &prefix, &client, spec.processes).await
    };
    let cpu1 = store::server_cpu_us(&mut ctx.raw).await?;
    let drain = drain.map(|mut d| {
        d.redis_cpu_us = (cpu1 - cpu0) / spec.jobs as f64;
        d
    });
    store::cleanup(&mut ctx.raw, &prefix).await?;
    Ok((bulk, drain?))
}

/// Waits until the broker holds nothing live for the benchmark.
async fn until_settled(
    broker: &AnyBroker,
    deadline: Instant,
    poll: Duration,
) -> anyhow::Result<u64> {
    loop {
        let (live, dead) = store::pending(broker).await?;
        if live == 0 {
            return Ok(dead);
        }
        if Instant::now() > deadline {
            bail!("timed out with {live} jobs still queued or running");
        }
        tokio::time::sleep(poll).await;
    }
}

/// One worker in this process. Done when the handlers counted `n` runs
/// (no Redis traffic) and the broker confirms nothing is queued or leased.
async fn drain_here(ctx: &Ctx, prefix: &str, client: &AnyBroker, n: u64) -> anyhow::Result<Drain> {
    tasks::reset();
    let own0 = store::own_cpu_us();
    let t0 = Instant::now();
    let deadline = t0 + ctx.timeout;
    // The worker's own connection, as a worker process would have.
    let broker = store::broker(&ctx.url, prefix).await?;
    let worker = Worker::new(broker, tasks::registry()?, ctx.worker_config());
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    let outcome = async {
        while tasks::done() < n {
            if Instant::now() > deadline {
                bail!("timed out: {} of {n} jobs ran", tasks::done());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        until_settled(client, deadline, Duration::from_micros(200)).await
    }
    .await;
    let total = t0.elapsed();
    // `/proc` counts CPU time in 10 ms ticks: too coarse for a short drain.
    let own = own0
        .zip(store::own_cpu_us())
        .filter(|_| total >= Duration::from_millis(500))
        .map(|(a, b)| (b - a) / n as f64);
    stop.cancel();
    handle.await.context("the worker panicked")??;
    let dead = outcome?;
    let first = tasks::first_started().map(|f| f.saturating_duration_since(t0));
    Ok(Drain {
        rate: n as f64 / total.as_secs_f64(),
        steady_rate: first.map(|f| n as f64 / (total - f).as_secs_f64()),
        startup_ms: first.map(|f| f.as_secs_f64() * 1000.0),
        dead,
        handled: tasks::done(),
        redis_cpu_us: 0.0,
        worker_cpu_us: own,
    })
}

/// `processes` worker processes (this binary's hidden `worker`
/// subcommand). Done when the broker holds nothing queued or leased,
/// polled every 2 ms (two round trips per poll, not per job).
async fn drain_children(
    ctx: &Ctx,
    prefix: &str,
    client: &AnyBroker,
    processes: usize,
) -> anyhow::Result<Drain> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let (live, _) = store::pending(client).await?;
    let t0 = Instant::now();
    let mut children = Vec::with_capacity(processes);
    for _ in 0..processes {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("worker")
            .arg("--url")
            .arg(&ctx.url)
            .arg("--prefix")
            .arg(prefix)
            .arg("--concurrency")
            .arg(ctx.concurrency.to_string());
        if let Some(n) = ctx.fetch_batch {
            cmd.arg("--fetch-batch").arg(n.to_string());
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a worker process")?;
        children.push(child);
    }
    let settled = until_settled(client, t0 + ctx.timeout, Duration::from_millis(2)).await;
    let total = t0.elapsed();
    let mut handled = 0;
    for mut child in children {
        // Closing stdin tells the child to shut down and report.
        drop(child.stdin.take());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await?
            .context("waiting for a worker process")?;
        let text = String::from_utf8_lossy(&out.stdout);
        handled += text
            .lines()
            .find_map(|l| l.strip_prefix("handled "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .with_context(|| format!("a worker process reported nothing ({})", out.status))?;
    }
    let dead = settled?;
    Ok(Drain {
        rate: live as f64 / total.as_secs_f64(),
        steady_rate: None,
        startup_ms: None,
        dead,
        handled,
        redis_cpu_us: 0.0,
        worker_cpu_us: None,
    })
}

/// The hidden `worker` subcommand: runs a worker until stdin closes, then
/// prints `handled <n>`.
pub(crate) async fn child_worker(
    url: &str,
    prefix: &str,
    concurrency: usize,
    fetch_batch: Option<usize>,
) -> anyhow::Result<()> {
    tasks::reset();
    let broker = store::broker(url, prefix).await?;
    let mut config = WorkerConfig {
        concurrency,
        ..WorkerConfig::default()
    };
    if let Some(n) = fetch_batch {
        config.fetch_batch = n;
    }
    let worker = Worker::new(broker, tasks::registry()?, config);
    let stop = CancellationToken::new();
    let on_eof = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        on_eof.cancel();
    });
    worker.run(stop).await?;
    println!("handled {}", tasks::done());
    Ok(())
}

/// Submit-to-start latency on an idle worker.
pub(crate) async fn pickup(
    ctx: &mut Ctx,
    run: usize,
    samples: usize,
    gap: Duration,
) -> anyhow::Result<Single> {
    let prefix = ctx.prefix(run, "pickup");
    let client = Client::new(store::broker(&ctx.url, &prefix).await?);
    let mut started = tasks::pickups();
    let worker = Worker::new(
        store::broker(&ctx.url, &prefix).await?,
        tasks::registry()?,
        ctx.worker_config(),
    );
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    let warm = 20;
    let mut h = histogram()?;
    let t0 = Instant::now();
    let outcome = async {
        for i in 0..warm + samples {
            // Long enough for the worker to ack, find the queue empty and
            // block on Redis again.
            tokio::time::sleep(gap).await;
            let t = Instant::now();
            tasks::bench_pickup::submit().on(&client).send().await?;
            let at = tokio::time::timeout(Duration::from_secs(10), started.recv())
                .await
                .context("a pickup job did not start within 10 s")?
                .context("pickup channel closed")?;
            if i >= warm {
                h.record(at.saturating_duration_since(t).as_nanos().max(1) as u64)?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    let secs = t0.elapsed().as_secs_f64();
    stop.cancel();
    handle.await.context("the worker panicked")??;
    store::cleanup(&mut ctx.raw, &prefix).await?;
    outcome?;
    Ok(Single {
        rate: (warm + samples) as f64 / secs,
        p50_us: us(&h, 0.50),
        p99_us: us(&h, 0.99),
    })
}
