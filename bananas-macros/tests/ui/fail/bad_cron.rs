#[bananas::periodic(cron = "0 25 * * *")]
async fn nightly() {}

#[bananas::periodic(cron = "every day")]
async fn daily() {}

fn main() {}
