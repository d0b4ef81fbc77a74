//! The broker contract: a small trait for the worker's hot path, and one
//! trait per optional capability.
//!
//! A broker owns every job's state and makes each transition atomic.
//! [`Broker`] is what a worker cannot do without: enqueue, fetch, ack,
//! release, extend leases, recover. Everything else is a capability of its
//! own, which a broker implements or not:
//!
//! | trait | what |
//! |---|---|
//! | [`Inspect`] | a job by id, waiting for a result, queue depths |
//! | [`DeadLetter`] | list, requeue and purge dead jobs |
//! | [`Cancel`] | take a job out before it runs |
//! | [`Progress`] | store what a running attempt reports |
//! | [`Workers`] | heartbeats and the list of live workers |
//! | [`Schedules`] | claim schedule ticks, announce schedules |
//! | [`Pause`] | pause and resume a route |
//! | [`Browse`] | list and search jobs by state, page by page |
//! | [`Manage`] | run a waiting job now, delete a job |
//! | [`History`] | processed and failed counts per minute per route |
//!
//! Code that knows its broker's type calls these traits directly, so a call
//! to a capability the broker lacks does not compile. The runtime holds a
//! broker of any type as an [`AnyBroker`], which records at construction
//! which capabilities it has; asking it for a missing one gives
//! [`Error::Unsupported`](crate::Error::Unsupported) naming it (HTTP 501).
//!
//! The contract is built for batching: [`Broker::enqueue`] takes many jobs,
//! [`Broker::fetch`] returns up to `max` jobs and [`Broker::ack`] settles many
//! attempts, so a networked broker can do each in one round trip.
//!
//! Delivery is at least once. A fetched job is *leased* until
//! `now + lease`; the worker extends the leases of its in-flight jobs with
//! [`Broker::extend_leases`], and [`Broker::recover_expired`] puts jobs whose
//! lease ran out back in their queue (or in the dead letter once their
//! retries are used up).

use std::time::Duration;

use async_trait::async_trait;

use crate::{
    error::Result,
    job::{Ack, Job, JobRef, Route},
};

mod any;
mod browse;
mod cancel;
mod dead;
mod history;
mod inspect;
mod manage;
mod pause;
mod progress;
mod schedules;
mod workers;

pub use any::AnyBroker;
pub use browse::{
    check_limit, Browse, Cursor, JobFilter, JobPage, ListState, CANCELLED, MAX_PAGE, SCAN_BUDGET,
};
pub use cancel::{Cancel, CancelOutcome};
pub use dead::DeadLetter;
pub use history::{History, MinuteCounts, HISTORY_MINUTES};
pub use inspect::{Inspect, QueueStats};
pub use manage::Manage;
pub use pause::Pause;
pub use progress::Progress;
pub use schedules::{
    live_schedules, publish_schedules, ScheduleInfo, Schedules, TickClaim, TickMark, TICK_TOLERANCE,
};
pub use workers::{WorkerInfo, Workers};

/// What a worker asks for when it fetches.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// The routes to take jobs from, in the worker's order of preference.
    pub routes: Vec<Route>,
    /// At most this many jobs.
    pub max: usize,
    /// The lease each fetched job gets.
    pub lease: Duration,
    /// The worker's position in the priority cycle ([`crate::priority`]).
    pub cursor: usize,
    /// When nothing is ready, wait up to this long for a job before
    /// returning an empty batch. The wait must not poll.
    pub block: Duration,
}

/// The worker's hot path: the contract every broker implements.
///
/// Every method is atomic with respect to every other caller, in this
/// process or another: no two workers hold the same job while its lease is
/// alive, and no job is lost between states.
#[async_trait]
pub trait Broker: Send + Sync + std::fmt::Debug + 'static {
    /// Enqueues jobs. A job whose `eta` is in the future is scheduled;
    /// the others are queued on their route at their priority. A job whose id
    /// the broker already holds is skipped, so enqueueing is idempotent.
    /// Returns how many jobs were new.
    async fn enqueue(&self, jobs: Vec<Job>) -> Result<usize>;

    /// Leases up to `req.max` ready jobs from `req.routes`, first promoting
    /// scheduled jobs whose eta has passed. Each fetched job's `attempt` is
    /// one more than before. When none is ready it waits up to `req.block`
    /// for one, without polling, and may then return an empty batch.
    async fn fetch(&self, req: &FetchRequest) -> Result<Vec<Job>>;

    /// Settles attempts: stores results (with the broker's TTL), schedules
    /// retries, or moves jobs to the dead letter. The attempts' leases end.
    /// A success without a value (a task with `result = false`) leaves
    /// nothing behind: afterwards [`Inspect::job`] returns `None` for it.
    /// An ack whose lease is gone (the job was recovered and handed to
    /// another worker) is ignored. The batch is borrowed so that a caller
    /// can retry it after an error without copying it. Acknowledging the
    /// same attempt twice is harmless (the second is stale) provided the
    /// repeat carries [`JobRef::lease_token`] 0: a broker may trust an ack
    /// that still carries its token without looking at its lease, so a
    /// caller that repeats an ack it is not sure landed zeroes the tokens
    /// first (the worker does).
    async fn ack(&self, acks: &[Ack]) -> Result<()>;

    /// Hands back leased attempts that never ran or were cancelled
    /// (graceful shutdown). They go back to the front of their queue and
    /// the attempt is not counted. An attempt whose lease is gone is ignored.
    async fn release(&self, jobs: &[JobRef]) -> Result<()>;

    /// Extends the leases of in-flight attempts to `now + lease`. An
    /// attempt whose lease is gone (recovered, even if the job holds a
    /// lease again now) is ignored: it does not extend its successor's.
    async fn extend_leases(&self, jobs: &[JobRef], lease: Duration) -> Result<()>;

    /// Returns jobs whose lease expired to their queue, or to the dead letter
    /// when their retries are used up. Safe to call from many workers at once.
    /// Returns how many jobs were recovered.
    async fn recover_expired(&self, routes: &[Route]) -> Result<usize>;

    /// Checks that the broker answers.
    async fn ping(&self) -> Result<()>;
}
