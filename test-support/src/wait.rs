//! Waiting for a condition with a deadline.

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// Calls `check` every 10 ms until it returns `Some`, and returns the value;
/// panics with `what` if that takes longer than `within`. For a plain
/// condition, return `cond.then_some(())`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
