//! `GET /schedules` of an app that has periodic tasks.

mod http_util;

use std::sync::Arc;

use bananas::{broker::MemoryBroker, http::ApiState, scheduler::ManualClock, task::Registry, App};
use chrono::{TimeZone, Utc};
use serde_json::json;

/// Runs every hour.
#[bananas::periodic(cron = "@hourly")]
async fn hourly_report() -> anyhow::Result<()> {
    Ok(())
}

#[tokio::test]
async fn schedules_show_next_run_last_run_and_last_outcome() {
    let start = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let app = App::builder()
        .broker(Arc::new(MemoryBroker::new()))
        .registry(Registry::from_inventory().unwrap())
        .clock(clock.clone())
        .worker_enabled(false)
        .build()
        .await
        .unwrap();
    let state = ApiState::new(app.client().clone())
        .registry(app.registry().clone())
        .scheduler(app.scheduler().clone());
    let server = http_util::start(state).await;

    // Before any tick: the next run only.
    let v = server.get("/schedules").await.json();
    let s = &v["schedules"][0];
    assert_eq!(s["id"], "hourly_report", "{v}");
    assert_eq!(s["cron"], "@hourly");
    assert_eq!(s["next_run"]["at"], "2030-01-01T01:00:00.000Z");
    assert_eq!(s["last_run"], json!(null));
    assert_eq!(s["last_outcome"], json!(null));

    // One tick claimed: its job is queued (no worker runs here).
    clock.advance(chrono::Duration::minutes(61));
    let ids = app.scheduler().tick().await.unwrap();
    assert_eq!(ids.len(), 1);
    let v = server.get("/schedules").await.json();
    let s = &v["schedules"][0];
    assert_eq!(s["last_run"]["at"], "2030-01-01T01:00:00.000Z", "{v}");
    assert_eq!(s["last_run"]["ms"], 1_893_459_600_000u64);
    assert_eq!(s["last_job_id"], ids[0].as_str());
    assert_eq!(s["last_outcome"], "queued");
    assert_eq!(s["next_run"]["at"], "2030-01-01T02:00:00.000Z");
}
