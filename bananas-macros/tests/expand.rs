//! What the generated code does at run time: the arguments' JSON, the
//! handler's decoding, the registration, and running the body directly.

use bananas::{task::Registry, Context, Priority};
use serde_json::value::RawValue;

/// Public, like most tasks.
#[bananas::task(route = "gpu", priority = high, retries = 3)]
pub async fn resize(path: String, width: u32) -> anyhow::Result<String> {
    anyhow::ensure!(width > 0, "width must be positive");
    Ok(format!("{path}@{width}"))
}

#[bananas::task]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[bananas::task(name = "expand.greet", result = false, timeout = "1m30s",
                backoff(base = "1s", cap = "1m"), route = "io", priority = low, retries = 0)]
async fn greet(ctx: Context, who: Option<String>) -> String {
    format!("{} {}", ctx.task(), who.unwrap_or_default())
}

#[bananas::task]
async fn nothing() {}

#[bananas::periodic(
    cron = "0 9 * * 1-5",
    tz = "Europe/Berlin",
    missed = "all",
    max_missed = 7
)]
async fn weekday_report() -> Result<u32, String> {
    Err("no data".to_owned())
}

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).unwrap()
}

#[test]
fn submit_encodes_an_object_keyed_by_parameter_name() {
    let (job, client) = resize::submit("a.png".into(), 640).into_job().unwrap();
    assert!(client.is_none());
    assert_eq!(job.task, "resize");
    assert_eq!(job.args.get(), r#"{"path":"a.png","width":640}"#);
    assert_eq!(job.route.as_str(), "gpu");
    assert_eq!(job.priority, Priority::High);
    assert_eq!(job.max_retries, 3);

    let (job, _) = greet::submit(Some("bob".into())).into_job().unwrap();
    assert_eq!(job.task, "expand.greet");
    assert_eq!(job.args.get(), r#"{"who":"bob"}"#);
    let (job, _) = nothing::submit().into_job().unwrap();
    assert_eq!(job.args.get(), "{}");

    // Per-call options override the task's.
    let (job, _) = add::submit(1, 2)
        .priority(Priority::Low)
        .route("other")
        .retries(9)
        .id("fixed")
        .into_job()
        .unwrap();
    assert_eq!(
        (
            job.priority,
            job.route.as_str(),
            job.max_retries,
            job.id.as_str()
        ),
        (Priority::Low, "other", 9, "fixed")
    );
}

#[tokio::test]
async fn handler_decodes_runs_and_encodes() {
    let ctx = || Context::detached("t");
    let out = resize::__handler(ctx(), raw(r#"{"width":2,"path":"p"}"#)).await;
    assert_eq!(out.unwrap().unwrap().get(), r#""p@2""#);

    let out = add::__handler(ctx(), raw(r#"{"a":1,"b":2}"#)).await;
    assert_eq!(out.unwrap().unwrap().get(), "3");

    // The body's error becomes the attempt's error.
    let err = resize::__handler(ctx(), raw(r#"{"path":"p","width":0}"#)).await;
    assert_eq!(
        err.unwrap_err(),
        bananas::task::TaskError::Failed("width must be positive".into())
    );
    let err = weekday_report::__handler(ctx(), raw("{}")).await;
    assert_eq!(
        err.unwrap_err(),
        bananas::task::TaskError::Failed("no data".into())
    );

    // result = false keeps nothing; the context reaches the body.
    assert!(greet::__handler(ctx(), raw("{}")).await.unwrap().is_none());
    assert_eq!(
        nothing::__handler(ctx(), raw("{}"))
            .await
            .unwrap()
            .unwrap()
            .get(),
        "null"
    );
}

#[tokio::test]
async fn bad_arguments_are_reported_not_run() {
    use bananas::task::TaskError::BadArgs;
    let ctx = || Context::detached("t");
    for (args, expect) in [
        (r#"{"path":"p"}"#, "missing argument `width`"),
        (
            r#"{"path":"p","width":"wide"}"#,
            "argument `width`: invalid type",
        ),
        (
            r#"{"path":"p","width":1,"height":2}"#,
            "unknown argument `height`",
        ),
        (r#"["p",1]"#, "expected a JSON object"),
    ] {
        match resize::__handler(ctx(), raw(args)).await {
            Err(BadArgs(reason)) => assert!(reason.contains(expect), "{args}: {reason}"),
            other => panic!("{args}: {other:?}"),
        }
        let reason = resize::__check_args(&raw(args)).unwrap_err();
        assert!(reason.contains(expect), "{args}: {reason}");
    }
    assert_eq!(
        resize::__check_args(&raw(r#"{"path":"p","width":1}"#)),
        Ok(())
    );
    // An `Option` parameter may be left out; a task without any takes `{}`.
    assert_eq!(greet::__check_args(&raw("{}")), Ok(()));
    assert_eq!(nothing::__check_args(&raw("{}")), Ok(()));
    assert!(nothing::__check_args(&raw(r#"{"x":1}"#)).is_err());
}

#[test]
fn tasks_are_registered_with_their_options() {
    let registry = Registry::from_inventory().unwrap();
    let def = registry.get("resize").unwrap();
    assert_eq!(def.route, "gpu");
    assert_eq!(def.priority, Priority::High);
    assert_eq!(def.retries, 3);
    assert_eq!(def.backoff, bananas::task::Backoff::DEFAULT);
    assert_eq!(def.timeout, None);
    assert!(def.store_result);
    assert_eq!(def.params, ["path", "width"]);
    assert!(def.schedule.is_none());
    assert!(
        def.location.starts_with("expand::resize (") && def.location.contains("expand.rs:"),
        "{}",
        def.location
    );
    assert_eq!(resize::NAME, "resize");
    assert_eq!(resize::def().name, "resize");

    let def = registry.get("expand.greet").unwrap();
    assert_eq!(def.route, "io");
    assert_eq!(def.priority, Priority::Low);
    assert_eq!(def.retries, 0);
    assert_eq!(def.timeout, Some(std::time::Duration::from_secs(90)));
    assert_eq!(
        def.backoff,
        bananas::task::Backoff {
            base: std::time::Duration::from_secs(1),
            cap: std::time::Duration::from_secs(60),
        }
    );
    assert!(!def.store_result);
    assert_eq!(def.params, ["who"], "the Context is not an argument");

    let def = registry.get("add").unwrap();
    assert_eq!(
        (def.route, def.priority, def.retries),
        ("default", Priority::Normal, 3)
    );

    let schedule = registry.get("weekday_report").unwrap().schedule.unwrap();
    assert_eq!(schedule.cron, "0 0 9 * * MON,TUE,WED,THU,FRI");
    assert_eq!(schedule.tz, "Europe/Berlin");
    assert_eq!(schedule.missed, bananas::task::Missed::All(7));
    // The runtime reads the stored expression with the cron crate.
    let parsed: cron::Schedule = schedule.cron.parse().unwrap();
    let next = parsed.upcoming(chrono::Utc).next().unwrap();
    assert!(!matches!(
        chrono::Datelike::weekday(&next),
        chrono::Weekday::Sat | chrono::Weekday::Sun
    ));
}

#[tokio::test]
async fn the_function_runs_the_body_directly() {
    assert_eq!(resize("a".into(), 2).await.unwrap(), "a@2");
    assert_eq!(add(2, 3).await, 5);
    assert_eq!(greet(Context::detached("greet"), None).await, "greet ");
    nothing().await;
}

#[tokio::test]
async fn delay_without_an_app_is_an_error() {
    // Nothing installed in this test binary: a clear error, not a panic.
    assert!(add::delay(1, 2).await.is_err());
}
