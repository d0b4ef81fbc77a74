#[bananas::periodic(cron = "0 2 * * *", tz = "Europe/Atlantis")]
async fn nightly() {}

fn main() {}
