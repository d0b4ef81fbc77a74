struct NotSerde;

#[bananas::task]
async fn resize(_path: String, _handle: NotSerde) {}

fn main() {}
