#[bananas::task]
fn resize(path: String) -> String {
    path
}

fn main() {
    // The function is still emitted, so this call compiles.
    let _ = resize(String::new());
}
