//! [`Browse`]: listing and searching jobs by state, page by page.

use std::{fmt, str::FromStr};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    job::{JobRecord, JobState, Millis, Route},
};

/// The largest page.
pub const MAX_PAGE: usize = 1000;

/// The most index entries one [`Browse::list_jobs`] call looks at, per
/// route, while a filter skips jobs: a search over a long queue comes back
/// with a short (even empty) page and a cursor to go on from, instead of
/// reading the whole queue in one call.
pub const SCAN_BUDGET: usize = 2000;

/// The states jobs are listed by: the [`JobState`]s, with cancelled jobs
/// (in the dead letter with the reason `cancelled`) apart from dead ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListState {
    /// Waiting in their route's queue.
    Queued,
    /// Waiting for their eta (delayed), never failed.
    Scheduled,
    /// Failed, waiting out their backoff.
    Retrying,
    /// Leased by workers.
    Active,
    /// Finished, while their result is kept.
    Succeeded,
    /// In the dead letter, except cancelled ones.
    Dead,
    /// Cancelled before they ran (kept in the dead letter).
    Cancelled,
}

impl ListState {
    /// Every state, in the order a dashboard shows them.
    pub const ALL: [ListState; 7] = [
        ListState::Queued,
        ListState::Scheduled,
        ListState::Retrying,
        ListState::Active,
        ListState::Succeeded,
        ListState::Dead,
        ListState::Cancelled,
    ];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ListState::Queued => "queued",
            ListState::Scheduled => "scheduled",
            ListState::Retrying => "retrying",
            ListState::Active => "active",
            ListState::Succeeded => "succeeded",
            ListState::Dead => "dead",
            ListState::Cancelled => "cancelled",
        }
    }

    /// Whether `record` is in this state.
    pub fn holds(self, record: &JobRecord) -> bool {
        let cancelled = record.error.as_deref() == Some(CANCELLED);
        match self {
            ListState::Queued => record.state == JobState::Queued,
            ListState::Scheduled => record.state == JobState::Scheduled,
            ListState::Retrying => record.state == JobState::Retrying,
            ListState::Active => record.state == JobState::Active,
            ListState::Succeeded => record.state == JobState::Succeeded,
            ListState::Dead => record.state == JobState::Dead && !cancelled,
            ListState::Cancelled => record.state == JobState::Dead && cancelled,
        }
    }
}

/// The dead-letter reason of a cancelled job.
pub const CANCELLED: &str = "cancelled";

impl fmt::Display for ListState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ListState {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ListState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ListState::ALL.iter().map(|s| s.as_str()).collect();
                Error::Invalid(format!(
                    "unknown job state `{}`: expected one of {}",
                    s.escape_debug(),
                    names.join(", ")
                ))
            })
    }
}

/// Which jobs to list.
#[derive(Clone, Debug)]
pub struct JobFilter {
    /// The state.
    pub state: ListState,
    /// Only this route; `None`: every route the broker has seen.
    pub route: Option<Route>,
    /// Only this task.
    pub task: Option<String>,
    /// Only jobs whose arguments (as JSON text) or last error contain this
    /// text (case-sensitive).
    pub text: Option<String>,
    /// Only jobs with this tag.
    pub tag: Option<String>,
}

impl JobFilter {
    /// Every job in `state`.
    pub fn state(state: ListState) -> Self {
        JobFilter {
            state,
            route: None,
            task: None,
            text: None,
            tag: None,
        }
    }

    /// Whether the filter skips jobs of the state (so a page may come back
    /// short).
    pub fn narrows(&self) -> bool {
        self.task.is_some() || self.text.is_some() || self.tag.is_some()
    }

    /// Whether `record` passes the filter.
    pub fn matches(&self, record: &JobRecord) -> bool {
        self.state.holds(record)
            && self.route.as_ref().is_none_or(|r| *r == record.route)
            && self.task.as_deref().is_none_or(|t| t == record.task)
            && self.tag.as_deref().is_none_or(|t| {
                record
                    .extra
                    .as_ref()
                    .is_some_and(|x| x.tags.iter().any(|g| g == t))
            })
            && self.text.as_deref().is_none_or(|t| {
                record.args.get().contains(t)
                    || record.error.as_deref().is_some_and(|e| e.contains(t))
            })
    }
}

/// One page of a listing.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JobPage {
    /// The jobs, newest first (see [`Browse::list_jobs`]).
    pub jobs: Vec<JobRecord>,
    /// Where the next page starts, or `None` when this was the last.
    pub next: Option<String>,
}

/// Where a listing goes on from: an opaque text to clients, read back by
/// the broker that made it. `At(time, id)` continues after that entry of a
/// time-ordered index (scheduled, retrying, active, succeeded, dead,
/// cancelled), so pages stay put while jobs come and go above them;
/// `Queue(route, queue, skip)` continues in a route's queue (0 high,
/// 1 normal, 2 low) past the `skip` newest jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// After the entry `(time, id)`, going back in time.
    At(Millis, String),
    /// In `route`'s queue `queue`, past its `skip` newest jobs.
    Queue(Route, u8, u64),
}

impl Cursor {
    /// The cursor as clients see it.
    pub fn encode(&self) -> String {
        match self {
            Cursor::At(t, id) => format!("t.{t}.{id}"),
            Cursor::Queue(route, q, skip) => format!("q.{q}.{skip}.{route}"),
        }
    }

    /// The error for a cursor of another kind of listing than `state`'s.
    pub fn wrong_kind(&self, state: ListState) -> Error {
        Error::Invalid(format!(
            "invalid cursor `{}`: it is not a cursor of a `{state}` listing",
            self.encode()
        ))
    }

    /// Reads a cursor of [`Cursor::encode`]; `Error::Invalid` names what is
    /// wrong with it.
    pub fn decode(s: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "invalid cursor `{}`: pass the `next` of the previous page as it was",
                s.escape_debug()
            ))
        };
        if let Some(rest) = s.strip_prefix("t.") {
            let (t, id) = rest.split_once('.').ok_or_else(bad)?;
            if id.is_empty() {
                return Err(bad());
            }
            return Ok(Cursor::At(t.parse().map_err(|_| bad())?, id.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("q.") {
            let mut it = rest.splitn(3, '.');
            let q: u8 = it.next().and_then(|q| q.parse().ok()).ok_or_else(bad)?;
            let skip: u64 = it.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
            let route = it.next().and_then(|r| Route::new(r).ok()).ok_or_else(bad)?;
            if q > 2 {
                return Err(bad());
            }
            return Ok(Cursor::Queue(route, q, skip));
        }
        Err(bad())
    }
}

/// Listing and searching jobs.
#[async_trait]
pub trait Browse: Send + Sync + std::fmt::Debug + 'static {
    /// Up to `limit` (1 to [`MAX_PAGE`]) jobs that pass `filter`, from
    /// `cursor` (a page's `next`; `None` for the first page).
    ///
    /// Order: queued jobs route by route (sorted by name), each route's
    /// queues by priority (high first), each newest first; every other
    /// state newest first over all routes (by when they became due, were
    /// leased until, finished or died). A page costs O(`limit`) reads of
    /// the broker's indexes and the jobs on them, whatever the number of
    /// jobs, except that a filter by task or text reads on through at
    /// most [`SCAN_BUDGET`] entries per route: a page may then be short,
    /// or empty, with a `next` to go on from. `next` is `None` only at the
    /// end. A bad cursor is [`Error::Invalid`].
    async fn list_jobs(
        &self,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<JobPage>;
}

/// Checks a page size.
pub fn check_limit(limit: usize) -> Result<usize> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::Invalid(format!(
            "page size {limit} is out of range: expected 1 to {MAX_PAGE}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_bad_ones_are_named() {
        for c in [
            Cursor::At(1_700_000_000_000, "0192-ab.c".into()),
            Cursor::Queue(Route::new("emails").unwrap(), 2, 40),
        ] {
            assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }
        for bad in [
            "",
            "x",
            "t.",
            "t.12",
            "t.abc.id",
            "q.3.0.r",
            "q.1.x.r",
            "q.1.0.",
            "q.1.0.a b",
        ] {
            let e = Cursor::decode(bad).unwrap_err().to_string();
            assert!(e.contains("invalid cursor"), "{bad}: {e}");
        }
    }

    #[test]
    fn states_parse_and_unknown_ones_list_the_known() {
        for s in ListState::ALL {
            assert_eq!(s.as_str().parse::<ListState>().unwrap(), s);
        }
        let e = "done".parse::<ListState>().unwrap_err().to_string();
        assert!(
            e.contains("unknown job state `done`") && e.contains("cancelled"),
            "{e}"
        );
    }
}
