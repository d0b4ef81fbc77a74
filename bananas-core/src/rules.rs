//! The domain rules of Bananas, written once: which route names are valid,
//! the priority and missed-tick policy names, the bounds on retries and
//! missed ticks, the defaults, and how attempts are counted against
//! retries.
//!
//! The runtime, the HTTP API and the `#[task]` / `#[periodic]` macros (at
//! compile time) all call these, so a name the macro accepts is a name the
//! runtime accepts, with the same error text. Nothing here depends on the
//! rest of the crate: every other module may use it.
//!
//! The Redis scripts cannot call Rust; where they apply a rule (the retry
//! check in `bananas-redis/lua/recover.lua`), a comment there names the
//! function here.

use std::fmt;

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// Routes

/// The route a task uses unless told otherwise.
pub const DEFAULT_ROUTE: &str = "default";

/// The longest valid route name, in bytes.
pub const MAX_ROUTE_LEN: usize = 64;

/// Whether `name` is a valid route name: 1 to [`MAX_ROUTE_LEN`] characters
/// of `A-Z`, `a-z`, `0-9`, `_` or `-` (`[A-Za-z0-9_-]{1,64}`).
pub fn is_valid_route(name: &str) -> bool {
    (1..=MAX_ROUTE_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a route name (see [`is_valid_route`]).
pub fn check_route(name: &str) -> Result<(), InvalidName> {
    if is_valid_route(name) {
        Ok(())
    } else {
        Err(InvalidName::Route(name.to_owned()))
    }
}

// ---------------------------------------------------------------------------
// Priorities

/// How urgent a job is. Workers run high before normal before low, with a
/// weighted scheme that never starves low (see [`crate::priority`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Runs first.
    High,
    /// The default.
    #[default]
    Normal,
    /// Runs when there is spare capacity, and at least one slot in ten.
    Low,
}

impl Priority {
    /// All priorities, from high to low.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The lowercase name: `high`, `normal` or `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// The priority called `name` (`high`, `normal` or `low`; case matters).
    pub fn from_name(name: &str) -> Result<Self, InvalidName> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| InvalidName::Priority(name.to_owned()))
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Retries and attempts

/// The retries a task has unless told otherwise.
pub const DEFAULT_RETRIES: u32 = 3;

/// The most retries a task may ask for, in `#[task(retries = …)]` and in
/// the HTTP API.
pub const MAX_RETRIES: u32 = 1000;

/// `n` as a retry count, if it is at most [`MAX_RETRIES`].
pub fn retries_in_range(n: u64) -> Option<u32> {
    u32::try_from(n).ok().filter(|&n| n <= MAX_RETRIES)
}

/// Whether a job may run again after attempt `attempt` fails.
///
/// Attempts are counted from 1 when a worker leases the job, and
/// `max_retries` counts the runs allowed after the first, so a job runs at
/// most `max_retries + 1` times: another attempt is allowed while
/// `attempt <= max_retries`. `attempt` here leaves out the attempts whose
/// worker was lost ([`Job::lost`](crate::Job::lost)): those have their own
/// budget, [`lost_too_often`]. The same rule decides a failed attempt (the
/// worker) and what `Context::will_retry_on_failure` tells a task.
pub fn can_retry(attempt: u32, max_retries: u32) -> bool {
    attempt <= max_retries
}

/// How often a job may be taken back from a lost worker (one whose lease
/// expired: killed, frozen, cut off) unless its task or worker says
/// otherwise: 3, as Sidekiq Pro's super_fetch. Losing a worker does not
/// spend the job's retries.
pub const DEFAULT_MAX_LOST: u32 = 3;

/// Whether a job whose workers were lost `lost` times has used up its
/// budget of `max_lost`: then it goes to the dead letter instead of running
/// again (a job that keeps killing its workers ends there).
pub fn lost_too_often(lost: u32, max_lost: u32) -> bool {
    lost > max_lost
}

/// The delay before the first retry unless told otherwise, in
/// milliseconds: 2 s.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 2_000;

/// The longest delay between retries unless told otherwise, in
/// milliseconds: 10 minutes.
pub const DEFAULT_BACKOFF_CAP_MS: u64 = 600_000;

// ---------------------------------------------------------------------------
// Missed ticks of periodic tasks

/// How a periodic task treats ticks missed while no scheduler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missed {
    /// Forget missed ticks; run at the next one. The latest tick still
    /// runs if it is only a few seconds late (`bananas::scheduler::SKIP_GRACE`).
    Skip,
    /// Run once, for the latest missed tick (the latest tick at or before
    /// now). The default.
    #[default]
    Latest,
    /// Run every missed tick, oldest first, but at most this many: the
    /// latest ones.
    All(u32),
}

/// How many missed ticks `missed = "all"` runs unless told otherwise.
pub const DEFAULT_MAX_MISSED: u32 = 100;

/// The most missed ticks `missed = "all"` may be told to run.
pub const MAX_MISSED: u32 = 100_000;

impl Missed {
    /// The policy names, as written in `#[periodic(missed = "…")]`.
    pub const NAMES: [&'static str; 3] = ["skip", "latest", "all"];

    /// The policy's name: `skip`, `latest` or `all`.
    pub fn name(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::Latest => "latest",
            Missed::All(_) => "all",
        }
    }

    /// The policy called `name`; `all` runs at most `max_missed` ticks.
    pub fn from_name(name: &str, max_missed: u32) -> Result<Self, InvalidName> {
        match name {
            "skip" => Ok(Missed::Skip),
            "latest" => Ok(Missed::Latest),
            "all" => Ok(Missed::All(max_missed)),
            other => Err(InvalidName::Missed(other.to_owned())),
        }
    }
}

// Every default obeys its own rule.
const _: () = {
    assert!(DEFAULT_RETRIES <= MAX_RETRIES);
    assert!(DEFAULT_BACKOFF_BASE_MS <= DEFAULT_BACKOFF_CAP_MS);
    assert!(1 <= DEFAULT_MAX_MISSED && DEFAULT_MAX_MISSED <= MAX_MISSED);
};

// ---------------------------------------------------------------------------
// Errors

/// A name that breaks one of the rules above. The message names the value
/// and what is allowed; the macros report it as a compile error, the
/// runtime wraps it in its own error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidName {
    /// Not a valid route name (see [`is_valid_route`]).
    #[error("invalid route `{0}`: a route is 1 to 64 characters of A-Z, a-z, 0-9, `_` or `-`")]
    Route(String),
    /// Not a priority name (see [`Priority::from_name`]).
    #[error("unknown priority `{0}`: expected one of `high`, `normal`, `low`")]
    Priority(String),
    /// Not a missed-tick policy name (see [`Missed::from_name`]).
    #[error("unknown missed-tick policy {0:?}: expected one of \"skip\", \"latest\" or \"all\"")]
    Missed(String),
}

// ---- Durations ----------------------------------------------------------

/// The longest result or dead-job TTL: ten years. Longer is taken as a
/// mistake (`result_ttl=1e16`): Redis would refuse the expiry half-way
/// through an acknowledgement batch.
pub const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

/// The longest lease, shutdown timeout or task timeout a setting may ask
/// for: one day.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The shortest TTL: one millisecond (Redis counts in milliseconds).
pub const MIN_TTL: std::time::Duration = std::time::Duration::from_millis(1);

/// Parses a duration in seconds (`30`, `2.5`, `30s`) and checks it is
/// within `min..=max`. The error says what was expected and the bounds; the
/// caller names the setting and the value.
pub fn parse_secs_in(
    v: &str,
    min: std::time::Duration,
    max: std::time::Duration,
) -> Result<std::time::Duration, String> {
    let secs: f64 = v
        .trim()
        .trim_end_matches('s')
        .parse()
        .map_err(|_| "expected seconds, like `30` or `2.5`".to_owned())?;
    let d = std::time::Duration::try_from_secs_f64(secs).map_err(|_| {
        format!(
            "out of range: expected from {} to {} seconds",
            show(min),
            show(max)
        )
    })?;
    check_duration(d, min, max)?;
    Ok(d)
}

/// Checks that `d` is within `min..=max`.
pub fn check_duration(
    d: std::time::Duration,
    min: std::time::Duration,
    max: std::time::Duration,
) -> Result<(), String> {
    if d < min || d > max {
        return Err(format!(
            "out of range: expected from {} to {} seconds",
            show(min),
            show(max)
        ));
    }
    Ok(())
}

fn show(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn durations_are_bounded() {
        use std::time::Duration;
        let one_day = Duration::from_secs(86_400);
        assert_eq!(
            parse_secs_in("2.5", Duration::ZERO, one_day),
            Ok(Duration::from_millis(2500))
        );
        assert_eq!(
            parse_secs_in("30s", Duration::ZERO, one_day),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(parse_secs_in("86400", Duration::ZERO, one_day), Ok(one_day));
        for bad in ["86401", "1e20", "1e30", "inf", "NaN", "-1"] {
            let e = parse_secs_in(bad, Duration::ZERO, one_day).unwrap_err();
            assert!(e.contains("86400"), "{bad}: {e}");
        }
        assert!(parse_secs_in("soon", Duration::ZERO, one_day)
            .unwrap_err()
            .contains("expected seconds"));
        assert!(parse_secs_in("0", MIN_TTL, MAX_TTL).is_err());
        assert!(check_duration(Duration::MAX, MIN_TTL, MAX_TTL).is_err());
        assert!(check_duration(MAX_TTL, MIN_TTL, MAX_TTL).is_ok());
    }
    use super::*;

    #[test]
    fn routes_at_the_boundaries() {
        assert!(is_valid_route("a"));
        assert!(is_valid_route("gpu-1_A"));
        assert!(is_valid_route(DEFAULT_ROUTE));
        assert!(is_valid_route(&"x".repeat(MAX_ROUTE_LEN)));
        assert!(!is_valid_route(""));
        assert!(!is_valid_route(&"x".repeat(MAX_ROUTE_LEN + 1)));
        for bad in ["a b", "a.b", "a/b", "a:b", "é", "a\n", "{a}"] {
            assert!(!is_valid_route(bad), "{bad:?}");
        }
        // Only ASCII: 32 two-byte letters fit in 64 bytes and are still out.
        assert!(!is_valid_route(&"é".repeat(32)));
    }

    #[test]
    fn route_error_names_the_route_and_the_rule() {
        assert_eq!(check_route("gpu"), Ok(()));
        let err = check_route("bad route").unwrap_err();
        assert_eq!(err, InvalidName::Route("bad route".into()));
        assert_eq!(
            err.to_string(),
            "invalid route `bad route`: a route is 1 to 64 characters of A-Z, a-z, 0-9, `_` or `-`"
        );
        assert!(check_route("").is_err());
    }

    #[test]
    fn priority_names_round_trip() {
        for p in Priority::ALL {
            assert_eq!(Priority::from_name(p.as_str()), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
            // The wire name (serde) is the same name.
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
        }
        assert_eq!(Priority::default(), Priority::Normal);
        assert_eq!(Priority::from_name("high"), Ok(Priority::High));
        assert_eq!(Priority::from_name("low"), Ok(Priority::Low));
    }

    #[test]
    fn priority_names_are_exact() {
        for bad in ["", "High", "HIGH", " high", "urgent", "medium"] {
            assert_eq!(
                Priority::from_name(bad),
                Err(InvalidName::Priority(bad.into()))
            );
        }
        assert_eq!(
            Priority::from_name("urgent").unwrap_err().to_string(),
            "unknown priority `urgent`: expected one of `high`, `normal`, `low`"
        );
    }

    #[test]
    fn retries_bounds() {
        assert_eq!(DEFAULT_RETRIES, 3);
        assert_eq!(retries_in_range(0), Some(0));
        assert_eq!(retries_in_range(u64::from(MAX_RETRIES)), Some(1000));
        assert_eq!(retries_in_range(u64::from(MAX_RETRIES) + 1), None);
        assert_eq!(retries_in_range(u64::from(u32::MAX) + 1), None);
        assert_eq!(retries_in_range(u64::MAX), None);
    }

    #[test]
    fn attempts_against_retries() {
        // No retries: the first attempt is the last.
        assert!(!can_retry(1, 0));
        // Three retries: attempts 1 to 3 may be retried, the fourth may not.
        assert!(can_retry(1, 3));
        assert!(can_retry(3, 3));
        assert!(!can_retry(4, 3));
        assert!(can_retry(MAX_RETRIES, MAX_RETRIES));
        assert!(!can_retry(MAX_RETRIES + 1, MAX_RETRIES));
        // Exactly `max_retries` failed attempts are followed by another.
        for max in [0, 1, 3, 10] {
            assert_eq!((1..=100).filter(|&a| can_retry(a, max)).count() as u32, max);
        }
    }

    #[test]
    fn backoff_defaults() {
        assert_eq!(DEFAULT_BACKOFF_BASE_MS, 2_000);
        assert_eq!(DEFAULT_BACKOFF_CAP_MS, 600_000);
    }

    #[test]
    fn missed_policy_names() {
        assert_eq!(Missed::default(), Missed::Latest);
        assert_eq!(Missed::from_name("skip", 5), Ok(Missed::Skip));
        assert_eq!(Missed::from_name("latest", 5), Ok(Missed::Latest));
        assert_eq!(Missed::from_name("all", 5), Ok(Missed::All(5)));
        for m in [
            Missed::Skip,
            Missed::Latest,
            Missed::All(DEFAULT_MAX_MISSED),
        ] {
            assert!(Missed::NAMES.contains(&m.name()));
            assert_eq!(Missed::from_name(m.name(), DEFAULT_MAX_MISSED), Ok(m));
        }
        for bad in ["", "some", "All", "none"] {
            assert_eq!(
                Missed::from_name(bad, 1),
                Err(InvalidName::Missed(bad.into()))
            );
        }
        assert_eq!(
            Missed::from_name("some", 1).unwrap_err().to_string(),
            r#"unknown missed-tick policy "some": expected one of "skip", "latest" or "all""#
        );
    }
}
