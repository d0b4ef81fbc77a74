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
//! - [`task`](mod@task): what `#[bananas::task]` registers and generates;
//! - [`broker`]: the broker contract and the in-memory broker;
//! - [`worker`]: fetching, running, retrying and acknowledging jobs;
//! - [`scheduler`]: periodic tasks;
//! - [`app`]: configuration and start-up.

pub mod app;
pub mod broker;
pub mod context;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "http")]
pub mod metrics;
pub mod scheduler;
pub mod task;
pub mod worker;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use bananas_core::{job, priority, rules};
pub use error::{Error, Result};

pub use app::{App, AppBuilder, Client};
pub use bananas_macros::{periodic, task};
pub use context::Context;
pub use job::{Job, JobId, JobRecord, JobState, Priority, Route};
pub use task::{JobHandle, Submit};
