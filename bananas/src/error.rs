//! The runtime's errors.
//!
//! A broker reports [`BrokerError`] (the `bananas-core` error, which is all
//! a broker author needs); the runtime wraps it and adds what only it can
//! get wrong: an unknown task, arguments that do not fit, no installed app,
//! a setting out of range, a result that never came. Each cause has its own
//! variant, and the HTTP API's status codes follow the variants.

use std::{net::SocketAddr, time::Duration};

pub use bananas_core::error::{BoxError, Capability};

/// The broker contract's error (`bananas_core::Error`).
pub type BrokerError = bananas_core::Error;

/// A `Result` whose error is a Bananas [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when submitting, running or inspecting jobs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker could not be reached, answered with an error, or holds
    /// data this version cannot read.
    #[error(transparent)]
    Broker(BrokerError),
    /// A value is invalid: a route name, a priority, a request field. The
    /// message names the value and the rule.
    #[error("{0}")]
    Invalid(String),
    /// A setting (an environment variable or a builder option) is invalid.
    #[error("{name}: {reason}")]
    Setting {
        /// The variable or option, as the user wrote it (`WORKER_LEASE`).
        name: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A server (HTTP API, metrics) could not listen on its address.
    #[error("cannot listen on {addr} for {what}: {source}")]
    Listen {
        /// Which server.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// A server (HTTP API, metrics) failed while serving.
    #[error("{what} on {addr} failed: {source}")]
    Serve {
        /// Which server.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// A part of the app (the worker, the scheduler, a server) stopped
    /// because its task panicked or was aborted.
    #[error("the {what} stopped unexpectedly: {source}")]
    Crashed {
        /// Which part.
        what: &'static str,
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A value could not be encoded to or decoded from JSON.
    #[error("serialization error: {0}")]
    Serde(#[from] serde_json::Error),
    /// The broker lacks this capability.
    #[error("not supported by this broker: {0}")]
    Unsupported(Capability),
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
    /// A broker URL or option is invalid
    /// ([`BrokerError::Config`] wrapped in [`Error::Broker`]).
    pub fn broker_config(message: impl Into<String>) -> Self {
        Error::Broker(BrokerError::Config(message.into()))
    }

    /// A [`Error::Setting`] for `name`.
    pub fn setting(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Setting {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

impl From<BrokerError> for Error {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::Invalid(m) => Error::Invalid(m),
            BrokerError::Serde(e) => Error::Serde(e),
            BrokerError::Unsupported(c) => Error::Unsupported(c),
            BrokerError::NotLeased { id, attempt } => Error::NotLeased { id, attempt },
            other => Error::Broker(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_errors_map_to_their_own_variants() {
        assert!(matches!(
            Error::from(BrokerError::Invalid("bad route".into())),
            Error::Invalid(m) if m == "bad route"
        ));
        assert!(matches!(
            Error::from(BrokerError::Unsupported(Capability::Cancel)),
            Error::Unsupported(Capability::Cancel)
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::from(BrokerError::unavailable("redis: refused", io));
        assert!(matches!(&e, Error::Broker(b) if b.is_unavailable()));
        // The client's error stays reachable as the source.
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.to_string().contains("refused"), "{source}");
    }
}
