struct NotSerde;

#[bananas::task]
async fn resize(_path: String) -> anyhow::Result<NotSerde> {
    Ok(NotSerde)
}

fn main() {}
