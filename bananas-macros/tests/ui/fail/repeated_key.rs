#[bananas::task(route = "gpu", retries = 2, route = "cpu")]
async fn resize(_path: String) {}

fn main() {}
