// A borrowed parameter or result is refused where it is written (the serde
// check would only fail later, in the borrow checker).

#[bananas::task]
async fn shout(text: &str) -> String {
    text.to_uppercase()
}

#[bananas::task]
async fn greeting() -> anyhow::Result<&'static str> {
    Ok("hello")
}

fn main() {}
