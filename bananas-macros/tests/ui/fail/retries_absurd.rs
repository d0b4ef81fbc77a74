#[bananas::task(retries = 1000000)]
async fn resize(_path: String) {}

fn main() {}
