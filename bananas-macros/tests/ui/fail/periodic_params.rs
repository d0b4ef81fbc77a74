#[bananas::periodic(cron = "@daily")]
async fn nightly(_ctx: bananas::Context, _day: u32) {}

fn main() {}
