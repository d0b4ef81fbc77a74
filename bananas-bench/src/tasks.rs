//! The benchmark's tasks and the in-process counters their handlers bump.
//!
//! The handlers touch nothing but process memory (an atomic counter, or a
//! channel for the pickup probe), so every Redis round trip the benchmark
//! sees is one the runtime made.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        LazyLock, Mutex,
    },
    time::Instant,
};

use bananas::{Job, Result};
use tokio::sync::mpsc;

/// Jobs handled since the last [`reset`].
static DONE: AtomicU64 = AtomicU64::new(0);
/// When the first job since the last [`reset`] started, in ns after [`EPOCH`]
/// (0: none yet).
static FIRST_NS: AtomicU64 = AtomicU64::new(0);
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
/// Where [`bench_pickup`](fn@bench_pickup) reports the instant it started.
static PICKUPS: Mutex<Option<mpsc::UnboundedSender<Instant>>> = Mutex::new(None);

fn count() {
    if DONE.fetch_add(1, Ordering::Relaxed) == 0 {
        let ns = EPOCH.elapsed().as_nanos().max(1) as u64;
        FIRST_NS.store(ns, Ordering::Relaxed);
    }
}

/// A no-op that keeps no result.
#[bananas::task(result = false, retries = 0)]
pub(crate) async fn bench_noop() {
    count();
}

/// A no-op whose (tiny) result is stored.
#[bananas::task(retries = 0)]
pub(crate) async fn bench_stored() -> u32 {
    count();
    1
}

/// A no-op that keeps no result, with a string argument of any size.
#[bananas::task(result = false, retries = 0)]
pub(crate) async fn bench_padded(pad: String) {
    drop(pad);
    count();
}

/// Reports the instant it started, for the idle-pickup latency.
#[bananas::task(result = false, retries = 0)]
pub(crate) async fn bench_pickup() {
    let now = Instant::now();
    if let Some(tx) = PICKUPS.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let _ = tx.send(now);
    }
}

/// Every benchmark task.
pub(crate) fn registry() -> Result<bananas::task::Registry> {
    bananas::task::Registry::from_defs([
        bench_noop::def(),
        bench_stored::def(),
        bench_padded::def(),
        bench_pickup::def(),
    ])
}

/// Zeroes the counters before a drain.
pub(crate) fn reset() {
    LazyLock::force(&EPOCH);
    DONE.store(0, Ordering::Relaxed);
    FIRST_NS.store(0, Ordering::Relaxed);
}

/// Jobs handled since the last [`reset`].
pub(crate) fn done() -> u64 {
    DONE.load(Ordering::Relaxed)
}

/// When the first job since the last [`reset`] started.
pub(crate) fn first_started() -> Option<Instant> {
    match FIRST_NS.load(Ordering::Relaxed) {
        0 => None,
        ns => Some(*EPOCH + std::time::Duration::from_nanos(ns)),
    }
}

/// Routes [`bench_pickup`](fn@bench_pickup)'s reports to a new receiver.
pub(crate) fn pickups() -> mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = mpsc::unbounded_channel();
    *PICKUPS.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    rx
}

/// Which task a benchmark job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// [`bench_noop`](fn@bench_noop) (`result = false`).
    Noop,
    /// [`bench_stored`](fn@bench_stored) (stores its result).
    Stored,
    /// [`bench_padded`](fn@bench_padded) with an argument of `--payload-bytes`.
    Padded,
}

/// Builds one job envelope through the public submit API (without sending).
pub(crate) fn job(kind: Kind, pad: &str) -> Result<Job> {
    Ok(match kind {
        Kind::Noop => bench_noop::submit().into_job()?.0,
        Kind::Stored => bench_stored::submit().into_job()?.0,
        Kind::Padded => bench_padded::submit(pad.to_owned()).into_job()?.0,
    })
}
