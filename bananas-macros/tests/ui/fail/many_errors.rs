// Every argument error is reported at once, and the function still exists.
#[bananas::task(priority = "high", retries = 5, retries = 6, timeout = "soon", colour = "red")]
async fn resize(_path: String) {}

fn main() {
    let _ = resize(String::new());
}
