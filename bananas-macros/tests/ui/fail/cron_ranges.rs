// Each field's range, in the words of the field.

#[bananas::periodic(cron = "0 0 32 * *")]
async fn day_of_month() {}

#[bananas::periodic(cron = "*/0 * * * *")]
async fn zero_step() {}

#[bananas::periodic(cron = "0 22-2 * * *")]
async fn backwards() {}

#[bananas::periodic(cron = "0 0 * * 8")]
async fn day_of_week() {}

fn main() {}
