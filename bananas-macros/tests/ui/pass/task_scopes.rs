//! Private tasks in a module and inside a function body.

mod jobs {
    #[bananas::task]
    async fn private_in_module(x: u32) -> u32 {
        x
    }

    #[bananas::task(name = "jobs.public")]
    pub async fn public_in_module(x: u32) -> u32 {
        private_in_module::submit(x).into_job().map(|_| x).unwrap_or(0)
    }

    #[bananas::task]
    pub(crate) async fn crate_visible() {}
}

// A `#[cfg]` below the attribute applies to everything generated.
#[bananas::task]
#[cfg(any())]
async fn configured_out(x: NotEvenAType) {}

fn main() {
    #[bananas::task]
    async fn in_fn_body(s: String) -> usize {
        s.len()
    }

    let _ = in_fn_body::submit("x".into());
    let _ = jobs::public_in_module::submit(1);
    let _ = jobs::crate_visible::def();
    assert_eq!(jobs::public_in_module::NAME, "jobs.public");
}
