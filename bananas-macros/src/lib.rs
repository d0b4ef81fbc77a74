//! The `#[task]` and `#[periodic]` attribute macros of Bananas.
//!
//! Use them through the `bananas` crate (`#[bananas::task]`,
//! `#[bananas::periodic]`), which re-exports them; the generated code calls
//! the runtime through `::bananas::__private`.
//!
//! This crate holds the entry points and their documentation only: argument
//! parsing and validation live in `args`, the expansion in `task` and
//! `periodic`.

// The examples of the README and docs/TASKS.md are compiled (and run, unless
// marked `no_run`) as doctests of this crate, warnings denied, so that they
// build as written in a fresh crate.
#![doc(test(attr(deny(warnings))))]

use proc_macro::TokenStream;

mod args;
mod cron_expr;
mod periodic;
mod task;

/// Turns an `async fn` into a task that workers run and producers submit.
///
/// ```ignore
/// #[bananas::task(route = "gpu", priority = high, retries = 3)]
/// pub async fn resize(path: String, width: u32) -> anyhow::Result<String> {
///     // ...
/// #   Ok(path)
/// }
///
/// // In a producer: typed arguments, a handle to the typed result.
/// let job = resize::delay("a.png".to_string(), 640).await?;
/// let out: String = job.wait(Duration::from_secs(30)).await?;
///
/// // Per-call options.
/// resize::submit("b.png".into(), 320)
///     .countdown(Duration::from_secs(60))
///     .priority(bananas::Priority::Low)
///     .send()
///     .await?;
///
/// // In a test: the function itself runs the body directly.
/// assert_eq!(resize("a.png".into(), 640).await?, "a.png");
/// ```
///
/// # Arguments
///
/// All are optional and may come in any order, each at most once:
///
/// | argument | meaning | default |
/// |---|---|---|
/// | `name = "wire_name"` | the task name on the wire | the function's name |
/// | `route = "gpu"` | the default route, `[A-Za-z0-9_-]{1,64}` | `"default"` |
/// | `priority = high` | `high`, `normal` or `low` (a bare name) | `normal` |
/// | `retries = 5` | retries after the first attempt, `0` to `1000` | `3` |
/// | `max_lost = 1` | how often a job may be taken back from a lost worker (killed, frozen, cut off) before the next worker dead-letters it unrun; lost attempts do not spend `retries`; `0` to `1000` | the worker's `WORKER_MAX_LOST`, default `3` |
/// | `backoff(base = "2s", cap = "10m")` | exponential backoff between retries; either part may be left out | `base = "2s", cap = "10m"` |
/// | `timeout = "30s"` | per-attempt timeout | none |
/// | `result = false` | don't store the result (like Celery's `ignore_result`) | `true` |
/// | `crate = "::my_lib::bananas"` | the path to the `bananas` crate, for crates that re-export it | `"::bananas"` |
///
/// Durations are a number and a unit, `ms`, `s`, `m` or `h`, and may be
/// summed: `"500ms"`, `"30s"`, `"1m30s"`, `"2h"`.
///
/// # The function
///
/// - It must be an `async fn` without generics or `self`.
/// - Every parameter is a plain name with an owned serde type (`Serialize +
///   DeserializeOwned`: `String`, not `&str`); the arguments travel as a
///   JSON object keyed by parameter name: `{"path":"a.png","width":640}`.
/// - The first parameter may be a `bananas::Context` (any type whose path
///   ends in `Context`). It is not an argument: the worker passes the job's
///   context; in tests pass `bananas::Context::detached("resize")`.
/// - The result type `T` is the success type: `T` for any `Result<T, E>`
///   (any type named `Result` with the success type first, so
///   `anyhow::Result<T>` and `io::Result<T>` too; `E: Display` becomes the
///   job's error), the return type otherwise, `()` when there is none. It
///   must be an owned `Serialize + DeserializeOwned` type too: the worker
///   stores it as JSON and `wait` reads it back.
///
/// Breaking any of these rules is a compile error pointing at the cause; a
/// type that is not serde is reported once, at that parameter or return
/// type, naming the trait it lacks (see the end of the next section).
///
/// # Expansion
///
/// The function stays as it is. Next to it comes a field-less struct of the
/// same name and visibility; a braced struct lives only in the type
/// namespace, so `resize(…)` still calls the function while `resize::delay(…)`
/// names the struct. The example above expands to (abridged: every
/// unqualified name below is `::bananas::__private::…`):
///
/// ```ignore
/// pub async fn resize(path: String, width: u32) -> anyhow::Result<String> { /* … */ }
///
/// #[allow(non_camel_case_types)]
/// #[derive(Debug, Clone, Copy)]
/// pub struct resize {}
///
/// impl resize {
///     pub const NAME: &'static str = "resize";
///     #[doc(hidden)]
///     pub const __DEF: ::bananas::__private::TaskDef = ::bananas::__private::TaskDef {
///         name: "resize",
///         route: "gpu",
///         priority: ::bananas::__private::Priority::High,
///         retries: 3,
///         backoff: ::bananas::__private::Backoff::DEFAULT,
///         timeout: None,
///         max_lost: None,
///         store_result: true,
///         params: &["path", "width"],
///         handler: Self::__handler,
///         check_args: Self::__check_args,
///         location: concat!(module_path!(), "::resize (", file!(), ":", line!(), ")"),
///         schedule: None,
///     };
///     pub fn def() -> &'static ::bananas::__private::TaskDef { &Self::__DEF }
///
///     // `(&&&Serde::<T>::NEW).method(…)` calls below, with the traits
///     // `IsSerde`, `SerializeOnly` and `NotSerde` in scope, are shown as
///     // `Serde::<T>.method(…)`.
///     pub fn submit(path: String, width: u32) -> ::bananas::__private::Submit<String> {
///         // `{"path":…,"width":…}`, in parameter order.
///         let w = args_writer();
///         let w = Serde::<String>.write_arg(w, "path", &path);
///         let w = Serde::<u32>.write_arg(w, "width", &width);
///         Serde::<String>.submit(Self::def(), w.finish())
///     }
///     pub async fn delay(path: String, width: u32)
///         -> Result<::bananas::__private::JobHandle<String>, ::bananas::Error>
///     {
///         Serde::<String>.send(Self::submit(path, width)).await
///     }
///
///     // Decodes `{"path":…,"width":…}`: unknown keys are an error, a missing
///     // key reads as `null` (so only an `Option` parameter may be left out).
///     #[doc(hidden)]
///     pub fn __decode(args: &RawValue) -> Result<(String, u32), String> {
///         let mut r = args_reader(args, Self::__DEF.params)?;
///         Ok((Serde::<String>.read_arg(&mut r, "path")?, Serde::<u32>.read_arg(&mut r, "width")?))
///     }
///     #[doc(hidden)]
///     pub fn __check_args(args: &RawValue) -> Result<(), String> {
///         Self::__decode(args).map(|_| ())
///     }
///     #[doc(hidden)]
///     pub fn __handler(ctx: Context, args: Box<RawValue>) -> BoxFuture<HandlerResult> {
///         let (path, width) = match Self::__decode(&args) {
///             Ok(a) => a,
///             Err(e) => return bad_args(e),
///         };
///         Box::pin(async move { Serde::<String>.result_output(resize(path, width).await, true) })
///     }
/// }
///
/// const _: () = {
///     // Type-checked, never called.
///     let _ = || {
///         Serde::<String>.check_arg(); // spanned at each parameter type
///         Serde::<u32>.check_arg();
///         Serde::<String>.check_result(); // spanned at the return type
///     };
/// };
///
/// ::bananas::__private::inventory::submit! { resize::__DEF }
/// ```
///
/// A type that is not serde gets one compile error, at the parameter or
/// return type that names it, saying which trait it lacks:
///
/// ```text
/// error[E0277]: `Handle` cannot be a task argument: it does not implement `serde::Serialize`
///  --> src/main.rs:4:41
///   |
/// 4 | async fn resize(path: String, handle: Handle) {}
///   |                                       ^^^^^^ not `serde::Serialize`
///   = note: task arguments travel as JSON: they must implement `serde::Serialize` and `serde::de::DeserializeOwned`
///   = note: for a type of your own, add `#[derive(serde::Serialize, serde::Deserialize)]`
/// ```
///
/// `Serde::<T>` picks, by method lookup, the real encoding and decoding when
/// `T` is `Serialize + DeserializeOwned` and stand-ins otherwise, so the
/// other uses of such a type add no errors of their own; `check_arg` and
/// `check_result` are the one error (the stand-ins never run: a crate that
/// picks them does not compile). A reference parameter or result (`&str`)
/// is refused by the macro itself: take an owned type such as `String`.
///
/// Generated items take the function's visibility (a private function gets
/// private `delay`/`submit`), and a `#[cfg(...)]` on the function applies to
/// all of them. Every task linked into a binary is found through
/// `inventory`; two tasks with the same wire name fail at start-up.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    task::task(attr.into(), item.into()).into()
}

/// A task that the scheduler submits on a cron schedule.
///
/// ```ignore
/// #[bananas::periodic(cron = "0 2 * * *", tz = "Europe/Berlin", missed = "latest")]
/// async fn nightly_report() -> anyhow::Result<()> {
///     // ...
/// #   Ok(())
/// }
/// ```
///
/// It is a [`task`](macro@task) in every way (same generated items, same
/// options: `name`, `route`, `priority`, `retries`, `backoff`, `timeout`,
/// `result`, `crate`), plus:
///
/// | argument | meaning | default |
/// |---|---|---|
/// | `cron = "0 2 * * *"` | **required**; see below | |
/// | `tz = "Europe/Berlin"` | the IANA time zone the expression is read in | `"UTC"` |
/// | `missed = "latest"` | ticks missed while no scheduler ran: `"skip"` them (run again at the next tick), run once for the `"latest"` tick at or before now, or run `"all"` of them | `"latest"` |
/// | `max_missed = 100` | with `missed = "all"`: at most this many, the latest ones, `1` to `100000` | `100` |
///
/// `docs/SCHEDULER.md` describes the missed-tick policies, daylight saving
/// and the scheduler's limits.
///
/// # Arguments of the scheduled call
///
/// A periodic function takes **no arguments**: a scheduled call has nobody
/// to supply them. It may take a `bananas::Context` as its only parameter
/// (to see the job id, for example). To run a task with arguments on a
/// schedule, submit it from a periodic task. The function can also be
/// submitted by hand like any task (`nightly_report::delay().await`).
///
/// # Cron expressions
///
/// - 5 fields: `minute hour day-of-month month day-of-week` (`"0 2 * * *"`);
/// - 6 fields, with seconds first (`"*/10 * * * * *"`);
/// - 7 fields, with a year last;
/// - `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
///
/// Day-of-week numbers are Unix cron's, `0` or `7` for Sunday, `1` for
/// Monday … `6` for Saturday; names (`MON-FRI`) work too. An invalid
/// expression or time zone is a compile error pointing at the string; a
/// number out of its field's range is reported with the range
/// (``hour `25` is out of range: hours are 0–23``), and so are a step out
/// of range and a range that runs backwards.
///
/// The expression is checked with the `cron` crate and stored in
/// `TaskDef::schedule` twice: as written (`ScheduleDef::written`, what
/// `bananas schedules` and `GET /schedules` show), and normalized to the
/// form `cron::Schedule::from_str` reads with the same meaning
/// (`ScheduleDef::cron`, what the scheduler parses): a 5-field expression
/// gets a `0` seconds field in front, and day-of-week numbers become names
/// (`"0 9 * * 1-5"` is parsed as `"0 0 9 * * MON,TUE,WED,THU,FRI"`, because
/// the `cron` crate counts days from `1` = Sunday).
#[proc_macro_attribute]
pub fn periodic(attr: TokenStream, item: TokenStream) -> TokenStream {
    periodic::periodic(attr.into(), item.into()).into()
}

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

#[cfg(doctest)]
#[doc = include_str!("../../docs/TASKS.md")]
struct TasksExamples;
