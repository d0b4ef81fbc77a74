#[bananas::task(rout = "gpu")]
async fn resize(_path: String) {}

fn main() {}
