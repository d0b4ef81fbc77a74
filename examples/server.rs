//! A worker with the HTTP API: the shape of a real deployment.
//!
//! ```sh
//! BANANAS_HTTP_ADDR=127.0.0.1:8080 cargo run --example server
//! curl -X POST http://localhost:8080/jobs -H "Content-Type: application/json" \
//!   -d '{"name": "send_email", "payload": {"to": "user@example.com", "subject": "Hello!"}, "priority": "high"}'
//! ```

/// Sends an email (here: logs it) and returns a receipt.
#[bananas::task(retries = 5)]
async fn send_email(to: String, subject: String) -> anyhow::Result<String> {
    tracing::info!(%to, %subject, "email sent");
    Ok(format!("sent {subject:?} to {to}"))
}

/// Resizes an image on the GPU pool (`WORKER_ROUTING_KEYS=gpu,default`).
#[bananas::task(route = "gpu", priority = high, timeout = "60s")]
async fn resize(path: String, width: u32) -> anyhow::Result<String> {
    Ok(format!("{path} resized to {width}px"))
}

/// Every night at two, Berlin time.
#[bananas::periodic(cron = "0 2 * * *", tz = "Europe/Berlin")]
async fn nightly_report() -> anyhow::Result<()> {
    tracing::info!("nightly report done");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bananas::app::run().await
}
