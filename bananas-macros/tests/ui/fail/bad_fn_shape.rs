struct S;

impl S {
    #[bananas::task]
    async fn method(&self, _x: u32) {}
}

#[bananas::task]
async fn generic<T: serde::Serialize>(_x: T) {}

#[bananas::task]
async fn pattern((_a, _b): (u32, u32)) {}

fn main() {}
