//! Every option, and the `crate` path for re-exporters.

mod reexport {
    pub use bananas;
}

#[bananas::task(
    name = "all.options",
    route = "gpu-1_x",
    priority = low,
    retries = 0,
    backoff(base = "500ms", cap = "1m30s"),
    timeout = "2h",
    result = false,
    crate = "crate::reexport::bananas",
)]
async fn all_options(x: u32) -> u32 {
    x
}

#[bananas::task(backoff(cap = "1h"), retries = 1000, priority = normal)]
async fn partial_backoff() {}

#[bananas::periodic(cron = "@hourly", crate = "::bananas")]
async fn reexported_periodic() {}

fn main() {
    let def = all_options::def();
    assert_eq!(def.name, "all.options");
    assert_eq!(def.route, "gpu-1_x");
    assert_eq!(def.retries, 0);
    assert!(!def.store_result);
    let _ = partial_backoff::def();
    let _ = reexported_periodic::def();
}
