#[bananas::task(priority = urgent)]
async fn resize(_path: String) {}

fn main() {}
