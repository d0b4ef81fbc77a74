//! Acting on many jobs at once: run now, retry, cancel or delete a list of
//! ids, or every job a [`JobFilter`] selects, in bounded batches. What the
//! HTTP API (`POST /jobs/bulk`) and the CLI (`bananas jobs retry …`) do,
//! built on the broker capabilities [`Browse`](crate::broker::Browse),
//! [`Manage`](crate::broker::Manage), [`DeadLetter`](crate::broker::DeadLetter)
//! and [`Cancel`](crate::broker::Cancel).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    broker::{AnyBroker, CancelOutcome, JobFilter, ListState},
    error::{BrokerError, Result},
    job::{JobId, Route},
};

/// How many jobs a filter may select before the caller must say it means
/// all of them (`all`, `--all`), unless configured otherwise.
pub const DEFAULT_MAX: usize = 10_000;

/// Jobs read and acted on per round.
const BATCH: usize = 500;

/// What to do to the selected jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A scheduled or retrying job to the front of its queue.
    RunNow,
    /// A dead (or cancelled) job back to its queue, attempts reset.
    Retry,
    /// A queued, scheduled or retrying job to the dead letter, `cancelled`.
    Cancel,
    /// A job no worker holds, gone with everything about it.
    Delete,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 4] = [
        Action::RunNow,
        Action::Retry,
        Action::Cancel,
        Action::Delete,
    ];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RunNow => "run_now",
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Delete => "delete",
        }
    }

    /// The states whose jobs the action moves.
    pub fn states(self) -> &'static [ListState] {
        use ListState::*;
        match self {
            Action::RunNow => &[Scheduled, Retrying],
            Action::Retry => &[Dead, Cancelled],
            Action::Cancel => &[Queued, Scheduled, Retrying],
            Action::Delete => &[Queued, Scheduled, Retrying, Succeeded, Dead, Cancelled],
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = BrokerError;

    fn from_str(s: &str) -> std::result::Result<Self, BrokerError> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                BrokerError::Invalid(format!(
                    "unknown action `{}`: expected run_now, retry, cancel or delete",
                    s.escape_debug()
                ))
            })
    }
}

/// Which jobs an action applies to.
#[derive(Clone, Debug)]
pub enum Selection {
    /// These jobs (ids, and routes where known).
    Ids(Vec<(JobId, Option<Route>)>),
    /// Every job the filter selects.
    Filter(JobFilter),
}

/// Does `action` to every selected job it applies to, and returns how many
/// it changed (a job in a state the action does not move, or gone
/// meanwhile, is left alone and not counted).
///
/// `max`: with `Some(n)`, a selection of more than `n` jobs is refused
/// with [`BrokerError::Invalid`] before anything is done (the filter's
/// jobs are counted first, up to `n + 1`); `None` acts on every one. An
/// empty list of ids, or a filter on a state the action does not move, is
/// refused the same way. A filter's jobs are read and acted on
/// 500 at a time, so the broker is never asked for more at once.
pub async fn apply(
    broker: &AnyBroker,
    action: Action,
    selection: Selection,
    max: Option<usize>,
) -> Result<usize> {
    match selection {
        Selection::Ids(ids) => {
            if ids.is_empty() {
                return Err(BrokerError::Invalid(
                    "empty selection: give at least one job id, or a filter".into(),
                )
                .into());
            }
            if let Some(max) = max.filter(|m| ids.len() > *m) {
                return Err(too_many(ids.len(), max).into());
            }
            let mut touched = 0;
            for (id, route) in &ids {
                touched += usize::from(act(broker, action, id, route.as_ref()).await?);
            }
            Ok(touched)
        }
        Selection::Filter(filter) => {
            if !action.states().contains(&filter.state) {
                let states: Vec<&str> = action.states().iter().map(|s| s.as_str()).collect();
                return Err(BrokerError::Invalid(format!(
                    "`{action}` moves {} jobs, not `{}` ones",
                    states.join(", "),
                    filter.state
                ))
                .into());
            }
            if let Some(max) = max {
                let n = count(broker, &filter, max + 1).await?;
                if n > max {
                    return Err(too_many(n, max).into());
                }
            }
            let browse = broker.browse()?;
            let mut touched = 0;
            let mut cursor: Option<String> = None;
            loop {
                let page = browse.list_jobs(&filter, cursor.as_deref(), BATCH).await?;
                let mut here = 0;
                for rec in &page.jobs {
                    here += usize::from(act(broker, action, &rec.id, Some(&rec.route)).await?);
                }
                touched += here;
                cursor = match page.next {
                    None => return Ok(touched),
                    // A queued listing's cursor counts jobs from the newest:
                    // the ones just moved are gone, so start again from the
                    // top (the ones left are the ones not moved).
                    Some(_) if filter.state == ListState::Queued && here > 0 => None,
                    Some(next) => Some(next),
                };
            }
        }
    }
}

fn too_many(n: usize, max: usize) -> BrokerError {
    let n = if n > max {
        format!("more than {max}")
    } else {
        n.to_string()
    };
    BrokerError::Invalid(format!(
        "the selection holds {n} jobs, more than the {max} allowed at once: narrow it, or say \
         that you mean all of them (`\"all\": true`, `--all`)"
    ))
}

/// How many jobs `filter` selects, counting up to `cap`.
async fn count(broker: &AnyBroker, filter: &JobFilter, cap: usize) -> Result<usize> {
    let browse = broker.browse()?;
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = browse
            .list_jobs(filter, cursor.as_deref(), crate::broker::MAX_PAGE)
            .await?;
        n += page.jobs.len();
        match page.next {
            Some(next) if n < cap => cursor = Some(next),
            _ => return Ok(n),
        }
    }
}

/// `action` on one job; whether it changed it.
async fn act(
    broker: &AnyBroker,
    action: Action,
    id: &JobId,
    route: Option<&Route>,
) -> Result<bool> {
    Ok(match action {
        Action::RunNow => broker.manage()?.run_now(id, route).await?,
        Action::Delete => broker.manage()?.delete(id, route).await?,
        Action::Retry => broker.dead_letter()?.requeue_dead(id).await?,
        Action::Cancel => broker.cancel()?.cancel(id, route).await? == CancelOutcome::Cancelled,
    })
}
