#[bananas::task(cron = "@daily")]
async fn not_periodic() {}

#[bananas::periodic(tz = "UTC")]
async fn no_cron() {}

#[bananas::periodic(cron = "@daily", missed = "some", max_missed = 0)]
async fn bad_missed() {}

#[bananas::periodic(cron = "@daily", max_missed = 5)]
async fn max_without_all() {}

fn main() {}
