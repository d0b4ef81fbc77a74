//! Every shape of function a task can have.

use bananas::Context;

#[bananas::task(route = "gpu", priority = high, retries = 3)]
pub async fn resize(path: String, width: u32) -> anyhow::Result<String> {
    Ok(format!("{path}@{width}"))
}

/// Plain value, and a second task in the same module.
#[bananas::task]
pub async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[bananas::task]
async fn unit(_message: String) {}

#[bananas::task]
async fn no_args() -> u8 {
    7
}

#[bananas::task]
async fn string_error(x: u32) -> Result<Vec<u32>, String> {
    Ok(vec![x])
}

#[bananas::task]
async fn io_result(x: u32) -> std::io::Result<u32> {
    Ok(x)
}

#[bananas::task]
async fn with_context(ctx: Context, n: u32) -> anyhow::Result<()> {
    let _ = (ctx.job_id(), n);
    Ok(())
}

#[bananas::task]
async fn only_context(ctx: bananas::Context) -> String {
    ctx.task().to_owned()
}

#[bananas::task]
pub(crate) async fn mut_param(mut n: u32, r#type: String) -> u32 {
    n += r#type.len() as u32;
    n
}

fn assert_types() {
    let _: bananas::Submit<String> = resize::submit("a".into(), 1);
    let _: bananas::Submit<i64> = add::submit(1, 2);
    let _: bananas::Submit<()> = unit::submit(String::new());
    let _: bananas::Submit<u8> = no_args::submit();
    let _: bananas::Submit<Vec<u32>> = string_error::submit(1);
    let _: bananas::Submit<u32> = io_result::submit(1);
    let _: bananas::Submit<()> = with_context::submit(1);
    let _: bananas::Submit<String> = only_context::submit();
    let _: bananas::Submit<u32> = mut_param::submit(1, String::new());
    let _: &'static str = resize::NAME;
    let _: &'static bananas::task::TaskDef = add::def();
    let _ = async {
        let _: Result<bananas::JobHandle<i64>, bananas::Error> = add::delay(1, 2).await;
        let _: anyhow::Result<String> = resize("a".into(), 1).await;
        let _: i64 = add(1, 2).await;
        let _: () = unit(String::new()).await;
        let _: anyhow::Result<()> = with_context(Context::detached("with_context"), 1).await;
    };
}

fn main() {
    assert_types();
}
