#[bananas::task(backoff = (1000, 60000))]
async fn a() {}

#[bananas::task(backoff(base = "1h", cap = "1s"))]
async fn b() {}

#[bananas::task(backoff(base = "2x"))]
async fn c() {}

fn main() {}
