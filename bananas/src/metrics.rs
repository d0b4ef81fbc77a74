//! Prometheus metrics: the exporter, the queue-depth gauges, and a
//! standalone `/metrics` server for `BANANAS_METRICS_ADDR`.
//!
//! Workers record through the [`metrics`] facade; [`install`] puts the
//! Prometheus recorder behind it (once per process) and returns the handle
//! that renders the text format. The HTTP API serves that text on
//! `GET /metrics`; a process without the API serves it with
//! [`serve_metrics`].
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `bananas_jobs_total` | counter | `task`, `outcome` (`succeeded`, `retried`, `dead`) |
//! | `bananas_jobs_failed_total` | counter | `task` |
//! | `bananas_jobs_failed_total` | counter | `task` (every failed attempt: retried or dead) |
//! | `bananas_job_duration_seconds` | histogram | `task` |
//! | `bananas_jobs_in_flight` | gauge | |
//! | `bananas_lease_recoveries_total` | counter | |
//! | `bananas_queue_depth` | gauge | `route`, `priority` |
//! | `bananas_queue_scheduled` | gauge | `route` |
//! | `bananas_queue_active` | gauge | `route` |
//! | `bananas_queue_dead` | gauge | `route` |
//!
//! The queue gauges are read from the broker: by [`track_queue_depth`] on an
//! interval, and by the HTTP API's `/metrics` on every scrape.

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use axum::{http::header, response::IntoResponse, routing::get, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{AnyBroker, QueueStats},
    job::Priority,
    Error, Result,
};

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of `bananas_job_duration_seconds`, in seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

static HANDLE: OnceLock<std::result::Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder and
/// returns the handle that renders it. Idempotent: every call returns a
/// handle to the same recorder.
///
/// Fails when another `metrics` recorder was installed first.
pub fn install() -> Result<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("bananas_job_duration_seconds".to_owned()),
                    DURATION_BUCKETS,
                )
                .map_err(|e| e.to_string())?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| {
                format!("cannot install the Prometheus recorder (another metrics recorder is installed): {e}")
            })?;
            describe();
            Ok(handle)
        })
        .clone()
        .map_err(|reason| Error::setting("metrics", reason))
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "bananas_jobs_total",
        "Finished attempts per task, by outcome: succeeded, retried or dead."
    );
    describe_counter!(
        "bananas_jobs_failed_total",
        "Failed attempts per task (retried or dead-lettered)."
    );
    describe_histogram!(
        "bananas_job_duration_seconds",
        Unit::Seconds,
        "How long attempts ran, per task."
    );
    describe_gauge!("bananas_jobs_in_flight", "Jobs this worker is running now.");
    describe_counter!(
        "bananas_lease_recoveries_total",
        "Jobs whose lease expired and that were put back in their queue."
    );
    describe_gauge!(
        "bananas_queue_depth",
        "Jobs queued, per route and priority."
    );
    describe_gauge!(
        "bananas_queue_scheduled",
        "Jobs waiting for their eta (delayed or in retry backoff), per route."
    );
    describe_gauge!("bananas_queue_active", "Jobs leased by workers, per route.");
    describe_gauge!("bananas_queue_dead", "Jobs in the dead letter, per route.");
}

/// Renders every metric in the Prometheus text format.
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}

/// Sets the queue gauges from the broker's [`QueueStats`].
pub fn record_queue_stats(stats: &[QueueStats]) {
    let now = crate::job::now_millis();
    for q in stats {
        for p in Priority::ALL {
            metrics::gauge!("bananas_queue_depth", "route" => q.route.clone(), "priority" => p.as_str())
                .set(q.depth(p) as f64);
        }
        metrics::gauge!("bananas_queue_scheduled", "route" => q.route.clone())
            .set(q.scheduled as f64);
        metrics::gauge!("bananas_queue_active", "route" => q.route.clone()).set(q.active as f64);
        metrics::gauge!("bananas_queue_dead", "route" => q.route.clone()).set(q.dead as f64);
        metrics::gauge!("bananas_queue_paused", "route" => q.route.clone())
            .set(f64::from(u8::from(q.paused)));
        metrics::gauge!("bananas_queue_latency_seconds", "route" => q.route.clone())
            .set(q.latency(now).as_secs_f64());
    }
}

/// Reads the broker's queue depths into the gauges once.
pub async fn refresh_queue_depth(broker: &AnyBroker) -> Result<()> {
    let stats = broker.inspect()?.stats().await?;
    record_queue_stats(&stats);
    Ok(())
}

/// Reads the queue depths every `interval` until `stop` is cancelled.
/// Broker errors are logged and the next interval tries again.
pub async fn track_queue_depth(broker: AnyBroker, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = refresh_queue_depth(&broker).await {
            tracing::warn!(error = ?e.to_string(), "cannot read queue depths for metrics");
        }
    }
}

/// A router with only `GET /metrics`, rendering `handle`.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&handle)).into_response() }
        }),
    )
}

/// Serves `GET /metrics` on `addr` until `stop` is cancelled (what
/// `BANANAS_METRICS_ADDR` turns on). Installs the recorder if needed.
/// The endpoint has no authentication: bind it to an internal address.
pub async fn serve_metrics(addr: SocketAddr, stop: CancellationToken) -> Result<()> {
    let handle = install()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen {
            what: "the metrics server",
            addr,
            source,
        })?;
    tracing::info!(%addr, "serving Prometheus metrics on /metrics");
    axum::serve(listener, metrics_router(handle))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .map_err(|source| Error::Serve {
            what: "the metrics server",
            addr,
            source,
        })
}
