//! # Bananas
//!
//! A typed, fast, at-least-once distributed task queue.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! #[bananas::task]
//! async fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     // A worker for every task in this binary, on the in-memory broker.
//!     let app = bananas::App::builder().build().await?;
//!     app.install();
//!     let worker = tokio::spawn(app.clone().run());
//!
//!     let sum: i64 = add::delay(1, 2).await?.wait(Duration::from_secs(5)).await?;
//!     assert_eq!(sum, 3);
//!     app.shutdown();
//!     worker.await??;
//!     Ok(())
//! }
//! ```
//!
//! The pieces, each in its own module:
//! - [`task`](mod@task): what `#[bananas::task]` registers;
//! - [`submit`]: the typed submission API it generates;
//! - [`client`]: the [`Client`] that submits jobs and reads results;
//! - [`broker`]: the broker contract and the in-memory broker;
//! - [`connect`]: broker URLs, and connecting to the broker one names;
//! - [`worker`]: fetching, running, retrying and acknowledging jobs;
//! - [`scheduler`]: periodic tasks;
//! - [`settings`]: configuration from the environment;
//! - [`app`]: start-up and the run loop;
//! - [`signal`]: the shutdown signal.

pub mod app;
pub mod broker;
pub mod client;
pub mod connect;
pub mod context;
pub mod control;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "http")]
pub mod metrics;
pub mod scheduler;
pub mod settings;
pub mod signal;
pub mod submit;
pub mod task;
pub mod worker;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use bananas_core::{job, priority, rules};
pub use error::{Error, Result};

pub use app::{App, AppBuilder};
pub use bananas_macros::{periodic, task};
pub use client::Client;
pub use context::Context;
pub use job::{Job, JobId, JobRecord, JobState, Priority, Route};
pub use submit::{JobHandle, Submit};
