//! The errors of the broker contract.
//!
//! This is what a broker reports, and all a broker author needs: the
//! runtime (the `bananas` crate) has its own error type for what only it
//! can get wrong (an unknown task, no installed app, a result that never
//! came), which wraps this one.

use std::fmt;

/// A `Result` whose error is a broker [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error, as the source of a broker [`Error`]: a brokers keeps the
/// error of its client library (`redis::RedisError`, `io::Error`, …) so a
/// caller can look at it with [`std::error::Error::source`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a broker can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker could not be reached: the connection was refused,
    /// dropped or timed out. Trying again later may work.
    #[error("broker unavailable: {message}")]
    Unavailable {
        /// What was being done, and what went wrong.
        message: String,
        /// The client library's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The broker answered, with an error.
    #[error("broker error: {message}")]
    Backend {
        /// What was being done, and what went wrong.
        message: String,
        /// The client library's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The broker holds or returned data this version cannot read: a
    /// corrupt record, or a reply of the wrong shape.
    #[error("unexpected data from the broker: {0}")]
    Corrupt(String),
    /// The broker's configuration (its URL, a TLS file, an option) is
    /// invalid.
    #[error("invalid broker configuration: {0}")]
    Config(String),
    /// A value handed to the broker is invalid: a route name, a priority,
    /// a duration out of range. The message names the value and the rule.
    #[error("{0}")]
    Invalid(String),
    /// A value could not be encoded to or decoded from JSON.
    #[error("serialization error: {0}")]
    Serde(#[from] serde_json::Error),
    /// The broker does not have this capability (see
    /// [`crate::broker::AnyBroker`]).
    #[error("not supported by this broker: {0}")]
    Unsupported(Capability),
    /// A running attempt reported progress after losing its lease: the
    /// lease expired and the job went back to its queue (and perhaps to
    /// another worker), so this attempt's outcome will be ignored.
    #[error("job `{id}`: attempt {attempt} no longer holds the job (its lease expired and the job was recovered)")]
    NotLeased {
        /// The job id.
        id: String,
        /// The attempt that lost its lease.
        attempt: u32,
    },
}

impl Error {
    /// A [`Error::Unavailable`] with `message` and the client's error.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A [`Error::Backend`] with `message` and the client's error.
    pub fn backend(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A [`Error::Backend`] with only a message.
    pub fn backend_msg(message: impl Into<String>) -> Self {
        Error::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// Whether trying again later may succeed (the broker was unreachable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// A broker capability beyond the worker's hot path: one of the traits in
/// [`crate::broker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// [`crate::broker::Inspect`]: jobs by id, waiting, queue depths.
    Inspect,
    /// [`crate::broker::DeadLetter`]: listing, requeueing and purging dead jobs.
    DeadLetter,
    /// [`crate::broker::Cancel`]: cancelling jobs.
    Cancel,
    /// [`crate::broker::Progress`]: storing job progress.
    Progress,
    /// [`crate::broker::Workers`]: heartbeats and the list of live workers.
    Workers,
    /// [`crate::broker::Schedules`]: schedule ticks and announcements.
    Schedules,
    /// [`crate::broker::Pause`]: pausing and resuming routes.
    Pause,
    /// [`crate::broker::Browse`]: listing and searching jobs.
    Browse,
    /// [`crate::broker::Manage`]: running jobs now, deleting jobs.
    Manage,
    /// [`crate::broker::History`]: per-minute counts.
    History,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::Inspect => "inspecting jobs",
            Capability::DeadLetter => "the dead letter",
            Capability::Cancel => "cancelling jobs",
            Capability::Progress => "storing job progress",
            Capability::Workers => "listing workers",
            Capability::Schedules => "periodic schedules",
            Capability::Pause => "pausing routes",
            Capability::Browse => "listing jobs",
            Capability::Manage => "moving and deleting jobs",
            Capability::History => "per-minute history",
        })
    }
}
