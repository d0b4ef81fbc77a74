//! The Bananas quickstart: a few tasks, a worker, and jobs that succeed,
//! fail and retry, and fail for good. Runs on the embedded broker by default
//! (`BANANAS_URL=redis://127.0.0.1:6379` to use Redis), prints what happened
//! and exits by itself.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use std::time::Duration;

use anyhow::Context as _;
use bananas::{App, Context, Error};

/// A plain task: typed arguments, typed result.
#[bananas::task]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Fails on its first attempt, then succeeds on the retry.
#[bananas::task(retries = 3, backoff(base = "200ms", cap = "2s"))]
async fn fetch_page(ctx: Context, url: String) -> anyhow::Result<String> {
    // Reports are stored while the job runs: `GET /jobs/{id}` shows them.
    ctx.progress(format!("attempt {}: connecting", ctx.attempt()))
        .await?;
    if ctx.attempt() == 1 {
        anyhow::bail!("connection reset while fetching {url}");
    }
    Ok(format!("fetched {url} on attempt {}", ctx.attempt()))
}

/// High priority, no result worth keeping.
#[bananas::task(priority = high, result = false)]
async fn send_email(to: String, subject: String) -> anyhow::Result<()> {
    tracing::info!(%to, %subject, "email sent");
    Ok(())
}

/// Always fails: after its retries it lands in the dead letter.
#[bananas::task(retries = 1, backoff(base = "100ms", cap = "100ms"))]
async fn resize_image(path: String, width: u32) -> Result<String, String> {
    Err(format!("cannot resize {path} to {width}px: file not found"))
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bananas::app::init_tracing();
    let app = App::from_env().await?;
    app.install();
    println!(
        "bananas quickstart: broker {}, {} tasks registered: {}",
        bananas::connect::redact(&app.settings().url),
        app.registry().len(),
        app.registry()
            .iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .join(", "),
    );
    let worker = tokio::spawn(app.clone().run());

    // Submit, then wait for the typed result.
    let sum: i64 = add::delay(2, 40).await?.wait(WAIT).await?;
    println!("add(2, 40) = {sum}");

    // Fire and forget: `send_email` keeps no result (`result = false`).
    let email = send_email::delay("ada@example.com".to_owned(), "Hello!".to_owned()).await?;
    println!("send_email: submitted {}", email.id());

    // A job that fails once and is retried with backoff.
    let page = fetch_page::delay("https://example.com".to_owned()).await?;
    let text = page.wait(WAIT).await?;
    let rec = page.status().await?.context("record of fetch_page")?;
    println!(
        "fetch_page: {text} ({} attempts, state {})",
        rec.attempts, rec.state
    );

    // Per-call options: a countdown and a priority override.
    let later = add::submit(1, 1)
        .countdown(Duration::from_millis(200))
        .priority(bananas::Priority::Low)
        .send()
        .await?;
    println!(
        "add(1, 1) with a 200 ms countdown = {}",
        later.wait(WAIT).await?
    );

    // A job that fails for good ends in the dead letter with its error.
    let resize = resize_image::delay("cat.png".to_owned(), 640).await?;
    match resize.wait(WAIT).await {
        Err(Error::JobFailed(reason)) => println!("resize_image: dead-lettered: {reason}"),
        other => anyhow::bail!("resize_image should have failed, got {other:?}"),
    }
    // A delayed job can be cancelled before it runs; it goes to the dead
    // letter as `cancelled` (a requeue would undo that).
    let reminder = send_email::submit("bob@example.com".to_owned(), "Reminder".to_owned())
        .countdown(Duration::from_secs(3600))
        .send()
        .await?;
    println!("send_email in an hour: {:?}", reminder.cancel().await?);

    let dead = app.client().broker().dead_letter()?.dead_jobs(10).await?;
    println!(
        "dead letter: {} job(s) ({})",
        dead.len(),
        dead.iter()
            .map(|d| format!("{} {}: {}", d.task, d.id, d.error.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>()
            .join("; ")
    );
    // The `bananas` CLI talks to Redis: an embedded broker lives inside this
    // process and is gone when it exits.
    if app.settings().url.starts_with("memory://") {
        println!(
            "  the embedded broker ends with this process: requeue in code with \
             `client.broker().dead_letter()?.requeue_dead(&id)`, or run with \
             BANANAS_URL=redis://127.0.0.1:6379 and use `bananas dead list` and \
             `bananas dead requeue ID` afterwards"
        );
    } else {
        println!("  requeue one with `bananas dead requeue ID` (same BANANAS_URL)");
    }

    // Graceful shutdown: in-flight jobs finish, nothing is lost.
    app.shutdown();
    worker.await??;
    println!("worker stopped; bye");
    Ok(())
}
