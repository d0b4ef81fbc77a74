//! Tick arithmetic: the next tick after an instant, and the latest ticks at
//! or before one, without walking from the last claimed tick.
//!
//! The `cron` crate walks wall-clock time in the schedule's zone, forwards
//! (`Schedule::after`) and backwards (`next_back`, from cron 0.12). Each step
//! costs the same however far apart the ticks are, so finding the latest
//! tick before now costs one step whether the scheduler was down for a
//! second or a year.
//!
//! Ticks are instants, and wall-clock order is not instant order in the
//! hour a zone sets its clocks back (a *fold*: 02:00–03:00 in Berlin on the
//! last Sunday of October happens twice). There the crate yields each
//! repeated wall time twice, as both instants, so its output jumps back and
//! forth by the shift. The walks below therefore compare instants, not wall
//! times, and stop only at a tick that no later step can undercut (a
//! *barrier*): outside a fold every tick is one; inside a fold, walking
//! backwards, the second of the two instants, walking forwards, the first.
//! A walk that starts inside a fold may also have to start from the fold's
//! edge, because the other pass through the fold holds ticks on the far side
//! of the start in wall time but on the near side in instants. So a walk
//! costs at most the ticks of one fold more than the ticks it returns.

use chrono::{DateTime, LocalResult, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// A repeated wall-clock interval around an instant: the zone's offset
/// drops by `shift` at `transition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fold {
    /// The first instant at the new (smaller) offset: the second pass
    /// through the repeated wall times starts here.
    transition: DateTime<Utc>,
    /// How far the clocks went back.
    shift: chrono::Duration,
}

fn offset_at(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

/// The fold `t`'s wall time falls in, if that wall time happens twice.
fn fold_of(tz: Tz, t: DateTime<Utc>) -> Option<Fold> {
    let wall = t.with_timezone(&tz).naive_local();
    let LocalResult::Ambiguous(first, second) = tz.from_local_datetime(&wall) else {
        return None;
    };
    let (first, second) = (first.with_timezone(&Utc), second.with_timezone(&Utc));
    let (mut lo, mut hi) = (first.timestamp(), second.timestamp());
    let new = offset_at(tz, second);
    if hi <= lo || offset_at(tz, first) == new {
        return None;
    }
    // The offset is the old one at `lo` and the new one at `hi`; zone
    // transitions fall on whole seconds.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, Utc.timestamp_opt(mid, 0).single()?) == new {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(Fold {
        transition: Utc.timestamp_opt(hi, 0).single()?,
        shift: second - first,
    })
}

const NANO: chrono::Duration = chrono::Duration::nanoseconds(1);

/// The first tick strictly after `after`.
pub(super) fn next_after(
    cron: &cron::Schedule,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // After the first pass through a fold, the second pass holds ticks
    // whose wall time is earlier than `after`'s: start at the fold's first
    // wall time (the crate's walk starts one second after its start).
    let start = match fold_of(tz, after) {
        Some(f) if after < f.transition => f.transition - f.shift - NANO,
        _ => after,
    };
    let mut best: Option<DateTime<Utc>> = None;
    for t in cron.after(&start.with_timezone(&tz)) {
        let t = t.with_timezone(&Utc);
        if t <= after {
            continue;
        }
        best = Some(best.map_or(t, |b| b.min(t)));
        // Walking forwards, a first instant is never undercut later; a
        // second one is when its fold's first pass is not all past.
        let barrier = match fold_of(tz, t) {
            None => true,
            Some(f) => t < f.transition || after >= f.transition,
        };
        if barrier {
            break;
        }
    }
    best
}

/// The latest `n` ticks strictly after `after` and at or before `until`,
/// oldest first. Costs `n` steps of the cron walk (plus the ticks of a
/// fold), however long ago `after` was.
pub(super) fn latest(
    cron: &cron::Schedule,
    tz: Tz,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    if n == 0 || until <= after {
        return Vec::new();
    }
    // In the second pass through a fold, the first pass holds ticks whose
    // wall time is later than `until`'s: start at the fold's last wall time.
    // A backward walk from `x` yields ticks whose wall time is at most
    // `x`'s, whole seconds included: so start a nanosecond past `until`.
    let start = match fold_of(tz, until) {
        Some(f) if until >= f.transition => f.transition - NANO,
        _ => until + NANO,
    };
    // Ticks collected: barriers (in decreasing order) and the first
    // instants of fold pairs (also decreasing), counted separately so that
    // "how many collected ticks are at or after this barrier" is cheap.
    let mut barriers: Vec<DateTime<Utc>> = Vec::new();
    let mut firsts: Vec<DateTime<Utc>> = Vec::new();
    let mut firsts_above = 0;
    for t in cron.after(&start.with_timezone(&tz)).rev() {
        let t = t.with_timezone(&Utc);
        if t > until {
            // Only the second instant of a repeated wall time can be; the
            // first one comes next.
            continue;
        }
        // Walking backwards, a second instant is never topped later; a
        // first one is when second instants of its fold are due.
        let barrier = match fold_of(tz, t) {
            None => true,
            Some(f) => t >= f.transition || until < f.transition,
        };
        let fresh = t > after;
        if fresh {
            if barrier {
                barriers.push(t);
            } else {
                firsts.push(t);
            }
        }
        if barrier {
            if !fresh {
                break;
            }
            while firsts_above < firsts.len() && firsts[firsts_above] >= t {
                firsts_above += 1;
            }
            if barriers.len() + firsts_above >= n {
                break;
            }
        }
    }
    let mut out = barriers;
    out.extend(firsts);
    out.sort_unstable();
    out.dedup();
    let skip = out.len().saturating_sub(n);
    out.drain(..skip);
    out
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Every tick in `[from, to]`, found by asking the schedule about each
    /// second: the truth the walks are checked against.
    fn brute(
        cron: &cron::Schedule,
        tz: Tz,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut s = from.timestamp();
        while s <= to.timestamp() {
            let at = Utc.timestamp_opt(s, 0).unwrap();
            if cron.includes(at.with_timezone(&tz)) {
                out.push(at);
            }
            s += 1;
        }
        out
    }

    /// Checks `next_after` and `latest` against [`brute`] for every
    /// `after`/`until` in `[from, to]` at `step` seconds (plus a fraction).
    fn check(expr: &str, zone: &str, from: &str, to: &str, step: i64) {
        let cron = cron::Schedule::from_str(expr).unwrap();
        let tz = Tz::from_str(zone).unwrap();
        let (from, to) = (t(from), t(to));
        let margin = chrono::Duration::hours(4);
        let truth = brute(&cron, tz, from - margin, to + margin);
        let mut x = from;
        while x <= to {
            for probe in [x, x + chrono::Duration::milliseconds(250)] {
                let got = next_after(&cron, tz, probe);
                match truth.iter().copied().find(|&k| k > probe) {
                    Some(want) => {
                        assert_eq!(got, Some(want), "next_after({probe}) of `{expr}` in {zone}")
                    }
                    // Beyond what `truth` covers.
                    None => assert!(got.is_some_and(|g| g > to + margin)),
                }
                for n in [1, 3, 70] {
                    let after = probe - chrono::Duration::minutes(150);
                    let mut want: Vec<_> = truth
                        .iter()
                        .copied()
                        .filter(|&k| k > after && k <= probe)
                        .collect();
                    want.drain(..want.len().saturating_sub(n));
                    assert_eq!(
                        latest(&cron, tz, after, probe, n),
                        want,
                        "latest {n} in ({after}, {probe}] of `{expr}` in {zone}"
                    );
                }
            }
            x += chrono::Duration::seconds(step);
        }
    }

    #[test]
    fn walks_match_the_schedule_in_utc() {
        check(
            "0 * * * * *",
            "UTC",
            "2026-03-01T00:00:00Z",
            "2026-03-01T02:00:00Z",
            53,
        );
        check(
            "*/7 * * * * *",
            "UTC",
            "2026-03-01T00:00:00Z",
            "2026-03-01T00:05:00Z",
            3,
        );
    }

    #[test]
    fn walks_match_the_schedule_through_clocks_going_back() {
        // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z.
        let (from, to) = ("2026-10-24T23:00:00Z", "2026-10-25T02:30:00Z");
        check("0 * * * * *", "Europe/Berlin", from, to, 97);
        check("0 30 * * * *", "Europe/Berlin", from, to, 97);
        check("0 30 2 * * *", "Europe/Berlin", from, to, 97);
        check("*/20 * 2 * * *", "Europe/Berlin", from, to, 97);
        // New York, 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00Z.
        check(
            "0 */10 * * * *",
            "America/New_York",
            "2026-11-01T04:30:00Z",
            "2026-11-01T07:30:00Z",
            89,
        );
        // Lord Howe Island sets its clocks back by half an hour.
        check(
            "0 */10 * * * *",
            "Australia/Lord_Howe",
            "2026-04-04T14:00:00Z",
            "2026-04-04T16:00:00Z",
            89,
        );
    }

    #[test]
    fn walks_match_the_schedule_through_clocks_going_forward() {
        // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z, so
        // 02:xx local does not exist that day.
        let (from, to) = ("2026-03-28T23:00:00Z", "2026-03-29T02:30:00Z");
        check("0 * * * * *", "Europe/Berlin", from, to, 97);
        check("0 30 2 * * *", "Europe/Berlin", from, to, 97);
    }

    #[test]
    fn the_cost_does_not_depend_on_the_outage() {
        // A per-second schedule last run in 1971: the latest tick before
        // now is found in one step (a walk from 1971 would take 1.7e9).
        let cron = cron::Schedule::from_str("* * * * * *").unwrap();
        let now = t("2026-06-01T12:00:00.300Z");
        let got = latest(&cron, Tz::UTC, t("1971-01-01T00:00:00Z"), now, 2);
        assert_eq!(got, [t("2026-06-01T11:59:59Z"), t("2026-06-01T12:00:00Z")]);
    }
}
