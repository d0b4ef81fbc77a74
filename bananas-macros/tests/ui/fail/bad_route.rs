#[bananas::task(route = "gpu queue!")]
async fn resize(_path: String) {}

fn main() {}
