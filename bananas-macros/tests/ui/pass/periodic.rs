//! The forms of `#[bananas::periodic]`.

#[bananas::periodic(cron = "0 2 * * *", tz = "Europe/Berlin")]
async fn nightly_report() -> anyhow::Result<()> {
    Ok(())
}

#[bananas::periodic(cron = "*/10 * * * * *", missed = "all", max_missed = 5)]
async fn every_ten_seconds(ctx: bananas::Context) {
    let _ = ctx;
}

#[bananas::periodic(cron = "@daily", missed = "skip", route = "reports", priority = low,
                    retries = 0, timeout = "5m", result = false)]
async fn daily() -> u32 {
    1
}

#[bananas::periodic(cron = "0 9 * * 1-5", tz = "America/New_York", missed = "latest")]
async fn weekdays() {}

#[bananas::periodic(cron = "0 0 0 1 1 * 2030")]
async fn with_year() {}

fn main() {
    let _ = nightly_report::def().schedule.unwrap();
    let _ = every_ten_seconds::def();
    let _ = daily::def();
    let _ = weekdays::def();
    let _ = with_year::def();
    // A periodic task can be submitted by hand like any other.
    let _: bananas::Submit<()> = nightly_report::submit();
}
