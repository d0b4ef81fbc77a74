//! `bananas-bench`: how fast Bananas enqueues, drains and picks up jobs on
//! one Redis. See `docs/PERFORMANCE.md` for the figures and how to read them.
//!
//! ```text
//! cargo run --release -p bananas-bench -- --jobs 100000 --concurrency 20 \
//!     --url redis://127.0.0.1:6379 --baseline
//! ```
//!
//! `bananas-bench browse --jobs 1000000` times instead the calls a dashboard
//! makes (job listing by state and cursor, searches, `stats`, `history`) by
//! their Redis server time, with a million jobs queued (see `browse.rs`).
//!
//! Every phase uses its own key prefix (`bench-<pid>-<random>-r<run>-<phase>`)
//! and deletes its keys (`SCAN MATCH` + `DEL`) when it ends; a final sweep
//! removes anything left under the invocation's prefix, also after an error
//! or Ctrl-C. The table goes to stdout, followed by one JSON line; progress
//! goes to stderr.

mod baseline;
mod browse;
mod phases;
mod report;
mod store;
mod tasks;

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Map};

use crate::{
    phases::{Ctx, DrainSpec},
    report::{Better, Figures},
    tasks::Kind,
};

/// Measures Bananas on Redis: enqueue, drain, pickup latency and memory.
#[derive(Debug, Parser)]
#[command(
    name = "bananas-bench",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs one worker until stdin closes (used by `--processes`).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        url: String,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        concurrency: usize,
        #[arg(long)]
        fetch_batch: Option<usize>,
    },
    /// Times the calls a dashboard makes (listing jobs by state and by
    /// cursor, searches, stats, history) by their Redis server time, with
    /// a million jobs queued.
    Browse(browse::BrowseOpts),
}

/// The phases of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Enqueue one job at a time, each awaited.
    Single,
    /// Bulk enqueue, memory per job, then drain with `result = false`.
    Drain,
    /// Drain a task that stores its result.
    Stored,
    /// Submit-to-start latency on an idle worker.
    Pickup,
}

#[derive(Debug, clap::Args)]
struct Opts {
    /// The Redis server.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    url: String,
    /// Jobs queued before each drain (and bulk-enqueued).
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Worker concurrency.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Jobs per fetch (default: the worker's, which is the concurrency).
    #[arg(long)]
    fetch_batch: Option<usize>,
    /// Worker processes for the drains; 1 runs the worker in this process.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Size of the string argument of the `result = false` drain's jobs;
    /// 0 uses a task without arguments.
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// Jobs per call in bulk enqueue.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Jobs enqueued one at a time.
    #[arg(long, default_value_t = 10_000)]
    single_jobs: usize,
    /// Samples of the idle pickup latency.
    #[arg(long, default_value_t = 500)]
    pickup_samples: usize,
    /// Pause before each pickup sample, so the worker is idle (ms).
    #[arg(long, default_value_t = 5)]
    pickup_gap_ms: u64,
    /// Runs; the table reports the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Phases to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "single,drain,stored,pickup"
    )]
    phases: Vec<Phase>,
    /// Also run redis-benchmark's unpipelined LPUSH (50 and 1 clients).
    #[arg(long)]
    baseline: bool,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Give up on one drain after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.cmd {
        Some(_) => None,
        None => cli.opts.threads,
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build().context("starting tokio")?;
    rt.block_on(async move {
        match cli.cmd {
            Some(Cmd::Worker {
                url,
                prefix,
                concurrency,
                fetch_batch,
            }) => phases::child_worker(&url, &prefix, concurrency, fetch_batch).await,
            Some(Cmd::Browse(opts)) => browse::run(opts).await,
            None => bench(cli.opts).await,
        }
    })
}

async fn bench(opts: Opts) -> anyhow::Result<()> {
    let raw = store::raw(&opts.url).await?;
    let base = format!(
        "bench-{}-{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    );
    let mut ctx = Ctx {
        url: opts.url.clone(),
        raw,
        base: base.clone(),
        concurrency: opts.concurrency.max(1),
        fetch_batch: opts.fetch_batch,
        batch: opts.batch,
        timeout: Duration::from_secs(opts.timeout_secs),
    };
    let version = store::server_version(&mut ctx.raw).await?;
    eprintln!(
        "bananas-bench: Redis {version} at {}, key prefix {base}",
        opts.url
    );
    let mut figures = Figures::default();
    let outcome = tokio::select! {
        r = runs(&opts, &mut ctx, &mut figures) => r,
        _ = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    // Whatever happened, leave nothing behind.
    let swept = store::delete_matching(&mut ctx.raw, &format!("{{{base}-*")).await;
    match (&outcome, swept) {
        (_, Ok(0)) => {}
        (Ok(()), Ok(n)) => eprintln!("warning: {n} keys were left behind and are now deleted"),
        (Err(_), Ok(n)) => eprintln!("deleted {n} keys left by the interrupted run"),
        (_, Err(e)) => eprintln!("warning: could not delete keys under {{{base}-*: {e:#}"),
    }
    outcome?;

    print!("{}", figures.table());
    let mut context = Map::new();
    context.insert("bench".into(), json!("bananas"));
    context.insert("redis_version".into(), json!(version));
    context.insert(
        "nproc".into(),
        json!(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)),
    );
    context.insert("jobs".into(), json!(opts.jobs));
    context.insert("concurrency".into(), json!(opts.concurrency));
    context.insert("processes".into(), json!(opts.processes));
    context.insert("payload_bytes".into(), json!(opts.payload_bytes));
    context.insert("batch".into(), json!(opts.batch));
    context.insert("runs".into(), json!(opts.runs));
    println!("{}", figures.json(context));
    Ok(())
}

/// Ctrl-C, or (on Unix) SIGTERM: either way the run stops and the final
/// sweep deletes its keys.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn runs(opts: &Opts, ctx: &mut Ctx, f: &mut Figures) -> anyhow::Result<()> {
    let has = |p: Phase| opts.phases.contains(&p);
    let pad = "x".repeat(opts.payload_bytes);
    let jobs = opts.jobs.max(1);
    for run in 1..=opts.runs.max(1) {
        eprintln!("run {run}/{}", opts.runs.max(1));
        if has(Phase::Single) {
            let s = phases::single_enqueue(ctx, run, opts.single_jobs.max(1)).await?;
            eprintln!(
                "  single enqueue: {:.0}/s, p50 {:.0} us, p99 {:.0} us",
                s.rate, s.p50_us, s.p99_us
            );
            f.record(
                "single_enqueue_per_s",
                "single enqueue",
                "jobs/s",
                None,
                s.rate,
            );
            f.record(
                "single_enqueue_p50_us",
                "single enqueue p50",
                "us",
                None,
                s.p50_us,
            );
            f.record(
                "single_enqueue_p99_us",
                "single enqueue p99",
                "us",
                Some((200.0, Better::Lower)),
                s.p99_us,
            );
        }
        if has(Phase::Drain) {
            let kind = if opts.payload_bytes > 0 {
                Kind::Padded
            } else {
                Kind::Noop
            };
            let spec = DrainSpec {
                kind,
                jobs,
                processes: opts.processes,
                pad: &pad,
                measure_fill: true,
            };
            let (bulk, d) = phases::fill_and_drain(ctx, run, "drain", spec).await?;
            if let Some(b) = bulk {
                eprintln!(
                    "  bulk enqueue: {:.0}/s; memory {:.0} B/job (INFO), {:.0} B/job (MEMORY USAGE)",
                    b.rate, b.info_bytes_per_job, b.keys_bytes_per_job
                );
                f.record(
                    "bulk_enqueue_per_s",
                    "bulk enqueue",
                    "jobs/s",
                    Some((300_000.0, Better::Higher)),
                    b.rate,
                );
                let target = (opts.payload_bytes == 0).then_some((250.0, Better::Lower));
                f.record(
                    "memory_per_job_bytes",
                    "memory per queued job, INFO delta",
                    "bytes",
                    target,
                    b.info_bytes_per_job,
                );
                f.record(
                    "memory_usage_per_job_bytes",
                    "memory per queued job, MEMORY USAGE",
                    "bytes",
                    None,
                    b.keys_bytes_per_job,
                );
            }
            report_drain(f, "noop", &d);
        }
        if has(Phase::Stored) {
            let spec = DrainSpec {
                kind: Kind::Stored,
                jobs,
                processes: opts.processes,
                pad: "",
                measure_fill: false,
            };
            let (_, d) = phases::fill_and_drain(ctx, run, "stored", spec).await?;
            report_drain(f, "stored", &d);
        }
        if has(Phase::Pickup) {
            let gap = Duration::from_millis(opts.pickup_gap_ms);
            let p = phases::pickup(ctx, run, opts.pickup_samples.max(1), gap).await?;
            eprintln!(
                "  idle pickup: p50 {:.0} us, p99 {:.0} us",
                p.p50_us, p.p99_us
            );
            f.record("pickup_p50_us", "idle pickup p50", "us", None, p.p50_us);
            f.record(
                "pickup_p99_us",
                "idle pickup p99",
                "us",
                Some((1000.0, Better::Lower)),
                p.p99_us,
            );
            let rtt = phases::idle_round_trip(ctx, run, opts.pickup_samples.max(1), gap).await?;
            eprintln!(
                "  idle round trip (LPUSH after the same gap): p50 {:.0} us, p99 {:.0} us",
                rtt.p50_us, rtt.p99_us
            );
            f.record(
                "idle_rtt_p50_us",
                "  idle LPUSH round trip p50",
                "us",
                None,
                rtt.p50_us,
            );
            f.record(
                "idle_rtt_p99_us",
                "  idle LPUSH round trip p99",
                "us",
                None,
                rtt.p99_us,
            );
        }
        if opts.baseline {
            let key = format!("{{{}-lpush}}", ctx.base);
            for (clients, name, label) in [
                (
                    50,
                    "redis_benchmark_lpush_c50_per_s",
                    "redis-benchmark LPUSH, 50 clients",
                ),
                (
                    1,
                    "redis_benchmark_lpush_c1_per_s",
                    "redis-benchmark LPUSH, 1 client",
                ),
            ] {
                let url = opts.url.clone();
                let k = key.clone();
                let got = tokio::task::spawn_blocking(move || {
                    baseline::lpush(&url, &k, 100_000, clients)
                })
                .await??;
                store::delete_matching(&mut ctx.raw, &key).await?;
                eprintln!(
                    "  {label}: {:.0}/s, p50 {:.0} us, p99 {:.0} us",
                    got.rate, got.p50_us, got.p99_us
                );
                f.record(name, label, "req/s", None, got.rate);
                if clients == 1 {
                    f.record(
                        "redis_benchmark_lpush_c1_p50_us",
                        "redis-benchmark LPUSH, 1 client, p50",
                        "us",
                        None,
                        got.p50_us,
                    );
                    f.record(
                        "redis_benchmark_lpush_c1_p99_us",
                        "redis-benchmark LPUSH, 1 client, p99",
                        "us",
                        None,
                        got.p99_us,
                    );
                }
            }
        }
    }
    Ok(())
}

fn report_drain(f: &mut Figures, which: &'static str, d: &phases::Drain) {
    let (key, steady, startup, redis_cpu, worker_cpu, label, target) = match which {
        "noop" => (
            "drain_noop_per_s",
            "drain_noop_steady_per_s",
            "drain_noop_startup_ms",
            "drain_noop_redis_cpu_us_per_job",
            "drain_noop_worker_cpu_us_per_job",
            "drain, result = false",
            200_000.0,
        ),
        _ => (
            "drain_stored_per_s",
            "drain_stored_steady_per_s",
            "drain_stored_startup_ms",
            "drain_stored_redis_cpu_us_per_job",
            "drain_stored_worker_cpu_us_per_job",
            "drain, result stored",
            100_000.0,
        ),
    };
    eprintln!(
        "  drain ({which}): {:.0}/s (steady {}), handled {}, dead {}, Redis CPU {:.2} us/job, worker CPU {}",
        d.rate,
        d.steady_rate
            .map(|r| format!("{r:.0}/s"))
            .unwrap_or_else(|| "n/a".into()),
        d.handled,
        d.dead,
        d.redis_cpu_us,
        d.worker_cpu_us
            .map(|c| format!("{c:.2} us/job"))
            .unwrap_or_else(|| "n/a".into()),
    );
    if d.dead > 0 {
        eprintln!("  warning: {} jobs were dead-lettered", d.dead);
    }
    f.record(key, label, "jobs/s", Some((target, Better::Higher)), d.rate);
    if let Some(s) = d.steady_rate {
        f.record(steady, "  same, from first job start", "jobs/s", None, s);
    }
    if let Some(ms) = d.startup_ms {
        f.record(startup, "  start-up to first job", "ms", None, ms);
    }
    f.record(redis_cpu, "  Redis CPU per job", "us", None, d.redis_cpu_us);
    if let Some(c) = d.worker_cpu_us {
        f.record(worker_cpu, "  worker process CPU per job", "us", None, c);
    }
}
