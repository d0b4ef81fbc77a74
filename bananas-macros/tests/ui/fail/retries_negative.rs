#[bananas::task(retries = -1)]
async fn resize(_path: String) {}

fn main() {}
