//! [`History`]: how many jobs each route processed, minute by minute.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    job::{Millis, Route},
};

/// How far back [`History::history`] goes: 24 hours, in minutes.
pub const HISTORY_MINUTES: u64 = 24 * 60;

/// One minute of a route's history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteCounts {
    /// The minute's start, ms since the epoch.
    pub minute: Millis,
    /// Attempts settled in that minute: succeeded, failed (retried), dead.
    pub processed: u64,
    /// Of those, the failed ones (retried or dead).
    pub failed: u64,
}

/// Per-minute counts of processed and failed attempts, per route.
#[async_trait]
pub trait History: Send + Sync + std::fmt::Debug + 'static {
    /// The minutes of the last [`HISTORY_MINUTES`] in which `route`
    /// processed anything, oldest first (a minute with nothing is left
    /// out). The broker keeps no more than that, whatever the traffic.
    async fn history(&self, route: &Route) -> Result<Vec<MinuteCounts>>;
}
