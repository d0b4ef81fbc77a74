//! The error type shared by the runtime and the brokers.

use std::time::Duration;

/// A `Result` whose error is a Bananas [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when submitting, fetching or settling jobs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker could not be reached or answered with an error.
    #[error("broker error: {0}")]
    Broker(String),
    /// A URL, route name, priority or other setting was invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A value could not be encoded to or decoded from JSON.
    #[error("serialization error: {0}")]
    Serde(#[from] serde_json::Error),
    /// No app is installed, so `delay` has no broker to submit to.
    #[error(
        "no Bananas app is installed: call `bananas::app::run()` or \
         `bananas::App::builder()...install()` before submitting jobs"
    )]
    NoApp,
    /// A task with this name is not registered in this binary.
    #[error("unknown task `{0}`: no #[bananas::task] with that name is linked into this binary")]
    UnknownTask(String),
    /// The arguments did not match the task's parameters.
    #[error("invalid arguments for task `{task}`: {reason}")]
    InvalidArgs {
        /// The task name.
        task: String,
        /// What did not match.
        reason: String,
    },
    /// Two tasks were registered under the same name.
    #[error("duplicate task name `{name}`: registered by {first} and by {second}")]
    DuplicateTask {
        /// The shared task name.
        name: String,
        /// Where the first one is defined.
        first: String,
        /// Where the second one is defined.
        second: String,
    },
    /// The broker does not implement this operation.
    #[error("not supported by this broker: {0}")]
    Unsupported(String),
    /// The job does not exist (or its result has expired).
    #[error("job `{0}` not found")]
    NotFound(String),
    /// Waiting for a result ran out of time.
    #[error("timed out after {0:?} waiting for the job's result")]
    Timeout(Duration),
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
    /// The job ended in the dead letter; the string is its last error.
    #[error("job failed: {0}")]
    JobFailed(String),
}

impl Error {
    /// Builds a [`Error::Broker`] from anything that displays.
    pub fn broker(e: impl std::fmt::Display) -> Self {
        Error::Broker(e.to_string())
    }
}
