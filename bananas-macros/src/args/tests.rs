//! Unit tests of argument parsing and validation.

use super::*;
use crate::cron_expr::normalize_cron;

fn options(kind: Kind, tokens: TokenStream) -> Result<Options, String> {
    let args: Args = syn::parse2(tokens).map_err(|e| e.to_string())?;
    args.validate(kind).map_err(|e| {
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

#[test]
fn defaults() {
    let o = options(Kind::Task, quote!()).unwrap();
    assert_eq!(o.route, "default");
    assert_eq!(o.priority, Priority::Normal);
    assert_eq!(o.retries, 3);
    assert_eq!(o.backoff, None);
    assert_eq!(o.timeout_ms, None);
    assert!(o.store_result);
    assert!(o.schedule.is_none());
}

#[test]
fn every_option() {
    let o = options(
        Kind::Task,
        quote!(
            name = "n",
            route = "gpu-1",
            priority = high,
            retries = 0,
            backoff(base = "500ms", cap = "1m"),
            timeout = "1m30s",
            result = false,
            crate = "::x::bananas"
        ),
    )
    .unwrap();
    assert_eq!(o.name.as_deref(), Some("n"));
    assert_eq!(o.route, "gpu-1");
    assert_eq!(o.priority, Priority::High);
    assert_eq!(o.retries, 0);
    assert_eq!(o.backoff, Some((500, 60_000)));
    assert_eq!(o.timeout_ms, Some(90_000));
    assert!(!o.store_result);
    assert_eq!(o.krate.to_string(), ":: x :: bananas");
}

#[test]
fn errors_are_collected_and_name_the_choices() {
    let e = options(
        Kind::Task,
        quote!(
            foo = 1,
            route = "a",
            route = "b",
            priority = urgent,
            retries = -1,
            cron = "x"
        ),
    )
    .unwrap_err();
    assert!(
        e.contains("unknown argument `foo`") && e.contains("`timeout`"),
        "{e}"
    );
    assert!(e.contains("`route` specified more than once"), "{e}");
    assert!(e.contains("`high`, `normal`, `low`"), "{e}");
    assert!(e.contains("from 0 to 1000") && e.contains("got -1"), "{e}");
    assert!(
        e.contains("`cron` is an argument of #[bananas::periodic]"),
        "{e}"
    );
}

#[test]
fn retries_bounds() {
    assert!(options(Kind::Task, quote!(retries = 1000)).is_ok());
    assert!(options(Kind::Task, quote!(retries = 1001)).is_err());
    assert!(options(Kind::Task, quote!(retries = 99999999999999999999999)).is_err());
}

#[test]
fn routes() {
    assert_eq!(
        options(Kind::Task, quote!(route = "gpu_1-a"))
            .unwrap()
            .route,
        "gpu_1-a"
    );
    let long = "x".repeat(65);
    assert!(options(Kind::Task, quote!(route = #long)).is_err());
    assert!(options(Kind::Task, quote!(route = "")).is_err());
    let e = options(Kind::Task, quote!(route = "no way")).unwrap_err();
    assert!(e.contains("invalid route `no way`"), "{e}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration_ms("250ms"), Ok(250));
    assert_eq!(parse_duration_ms("2s"), Ok(2_000));
    assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
    assert!(parse_duration_ms("10").is_err());
    assert!(parse_duration_ms("10 days").is_err());
    assert!(parse_duration_ms("").is_err());
    assert!(options(Kind::Task, quote!(timeout = "0s")).is_err());
    assert!(options(Kind::Task, quote!(backoff(base = "1m", cap = "1s"))).is_err());
    assert!(options(Kind::Task, quote!(backoff = (1, 2))).is_err());
}

#[test]
fn cron_normalization() {
    assert_eq!(normalize_cron("0 2 * * *").unwrap(), "0 0 2 * * *");
    assert_eq!(normalize_cron("*/5 * * * * *").unwrap(), "*/5 * * * * *");
    assert_eq!(normalize_cron("@daily").unwrap(), "@daily");
    assert_eq!(normalize_cron("@hourly").unwrap(), "@hourly");
    assert_eq!(
        normalize_cron("0 9 * * 1-5").unwrap(),
        "0 0 9 * * MON,TUE,WED,THU,FRI"
    );
    assert_eq!(normalize_cron("0 9 * * 0").unwrap(), "0 0 9 * * SUN");
    assert_eq!(
        normalize_cron("0 9 * * 5-7").unwrap(),
        "0 0 9 * * FRI,SAT,SUN"
    );
    assert_eq!(
        normalize_cron("0 9 * * MON-FRI").unwrap(),
        "0 0 9 * * MON-FRI"
    );
    assert_eq!(
        normalize_cron("0 9 * * */2").unwrap(),
        "0 0 9 * * SUN,TUE,THU,SAT"
    );
    assert_eq!(
        normalize_cron("0 9 * * 1/2").unwrap(),
        "0 0 9 * * MON,WED,FRI"
    );
    assert!(normalize_cron("0 9 * * 8").is_err());
    assert!(normalize_cron("not a cron").is_err());
    assert!(normalize_cron("61 * * * *").is_err());
    assert!(normalize_cron("@sometimes").is_err());
    // Every named field with its range, in the words the user needs.
    for (expr, msg) in [
        ("0 25 * * *", "hour `25` is out of range: hours are 0–23"),
        (
            "60 * * * *",
            "minute `60` is out of range: minutes are 0–59",
        ),
        (
            "0 0 32 * *",
            "day of month `32` is out of range: days of month are 1–31",
        ),
        (
            "0 0 0 * *",
            "day of month `0` is out of range: days of month are 1–31",
        ),
        (
            "0 0 * 13 *",
            "month `13` is out of range: months are 1–12 or JAN–DEC",
        ),
        (
            "0 0 * * 8",
            "day of week `8` is out of range: days of week are 0–7",
        ),
        (
            "61 0 0 * * *",
            "second `61` is out of range: seconds are 0–59",
        ),
        (
            "0 0 0 * * * 2200",
            "year `2200` is out of range: years are 1970–2100",
        ),
        ("0 9-25 * * *", "hour `25` is out of range"),
        ("0 1,2,99 * * *", "hour `99` is out of range"),
        ("0 99999999999 * * *", "hour `99999999999` is out of range"),
        (
            "0 22-2 * * *",
            "hour range `22-2` runs backwards: write `22-23,0-2`",
        ),
        (
            "*/0 * * * *",
            "minute step `0` is out of range: steps are 1–59",
        ),
        (
            "0 */24 * * *",
            "hour step `24` is out of range: steps are 1–23",
        ),
    ] {
        let e = normalize_cron(expr).unwrap_err();
        assert!(e.starts_with(msg), "{expr}: {e}");
    }
    // The ends of each range are valid.
    for e in [
        "59 23 31 12 *",
        "0 0 1 1 0",
        "0 0 * * 7",
        "0 0 * * 5-7",
        "*/59 */23 * * *",
    ] {
        cron::Schedule::from_str(&normalize_cron(e).unwrap()).unwrap();
    }
    // Everything we produce, the runtime can parse.
    for e in ["0 2 * * *", "@weekly", "0 9 * * 1-5", "*/10 * * * * *"] {
        cron::Schedule::from_str(&normalize_cron(e).unwrap()).unwrap();
    }
}

#[test]
fn periodic_options() {
    let o = options(
        Kind::Periodic,
        quote!(cron = "0 2 * * *", tz = "Europe/Berlin"),
    )
    .unwrap();
    let s = o.schedule.unwrap();
    assert_eq!(s.cron, "0 0 2 * * *");
    assert_eq!(s.written, "0 2 * * *");
    assert_eq!(s.tz, "Europe/Berlin");
    assert_eq!(s.missed, Missed::Latest);
    let o = options(
        Kind::Periodic,
        quote!(cron = "@hourly", missed = "all", max_missed = 7),
    )
    .unwrap();
    assert_eq!(o.schedule.unwrap().missed, Missed::All(7));
    let o = options(Kind::Periodic, quote!(cron = "@hourly", missed = "all")).unwrap();
    assert_eq!(o.schedule.unwrap().missed, Missed::All(100));
    assert!(options(Kind::Periodic, quote!(tz = "UTC")).is_err());
    assert!(options(Kind::Periodic, quote!(cron = "@daily", tz = "Mars/Base")).is_err());
    assert!(options(Kind::Periodic, quote!(cron = "@daily", missed = "some")).is_err());
    assert!(options(Kind::Periodic, quote!(cron = "@daily", max_missed = 3)).is_err());
}
