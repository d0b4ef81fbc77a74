//! A worker process for the fault tests: `bananas::app::run()` with one task
//! that counts its runs in Redis, so a test can check that every job ran,
//! and how many times.
//!
//! Environment: the usual `BANANAS_URL`, `WORKER_*`, plus `FAULT_REDIS_URL`
//! (where to count) and `FAULT_RUNS_KEY` (the hash of run counts).

use std::{sync::OnceLock, time::Duration};

use bananas::Context;
use redis::AsyncCommands;

fn counter() -> &'static redis::Client {
    static CLIENT: OnceLock<redis::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let url = std::env::var("FAULT_REDIS_URL").expect("FAULT_REDIS_URL");
        redis::Client::open(url).expect("FAULT_REDIS_URL is a Redis URL")
    })
}

/// Sleeps `first_ms` on the first attempt only, then counts the run.
#[bananas::task(retries = 5)]
async fn fault_job(ctx: Context, first_ms: u64) -> anyhow::Result<u32> {
    if ctx.attempt() == 1 && first_ms > 0 {
        tokio::time::sleep(Duration::from_millis(first_ms)).await;
    }
    let key = std::env::var("FAULT_RUNS_KEY")?;
    let mut con = counter().get_multiplexed_async_connection().await?;
    let _: i64 = con.hincr(key, ctx.job_id().as_str(), 1).await?;
    Ok(ctx.attempt())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bananas::app::run().await
}
