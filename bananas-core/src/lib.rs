//! The job model and the [`Broker`] contract of Bananas.
//!
//! This crate is what a broker implementation depends on: the job envelope
//! ([`job`]), the errors ([`error`]), the broker contract ([`broker`]), and
//! the domain rules ([`rules`]: route names, priority and missed-tick
//! names, retry bounds and attempt accounting, defaults) that the runtime,
//! the HTTP API and the macros share.
//! Applications depend on the `bananas` crate, which re-exports all of it.

pub mod broker;
pub mod error;
pub mod job;
pub mod priority;
pub mod rules;
pub mod url;

pub use broker::{AnyBroker, Broker};
pub use error::{Capability, Error, Result};
pub use job::{Ack, Job, JobId, JobRecord, JobRef, JobState, Outcome, Priority, Route};
