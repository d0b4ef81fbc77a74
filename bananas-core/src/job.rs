//! The job envelope, its states, and the records brokers keep about it.

use std::{
    borrow::Borrow,
    fmt,
    str::FromStr,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{error::Error, rules};

pub use crate::rules::Priority;

/// Milliseconds since the Unix epoch: the timestamp unit of every envelope.
pub type Millis = u64;

/// The current wall-clock time in [`Millis`].
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A job's unique id. Generated ids are UUIDv7 (time-ordered); the scheduler
/// derives ids from the schedule and tick so a tick cannot be enqueued twice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// A fresh, unique, time-ordered id: a UUIDv7 from the wall clock in
    /// milliseconds and 74 random bits from a per-thread generator seeded
    /// once from the OS (no system call per id), written straight into its
    /// string without an intermediate allocation.
    pub fn new() -> Self {
        let mut random = [0u8; 10];
        fast_random(&mut random);
        let uuid = uuid::Builder::from_unix_timestamp_millis(now_millis(), &random).into_uuid();
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        JobId(uuid.hyphenated().encode_lower(&mut buf).to_owned())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Fills `out` from a per-thread xorshift128+ generator seeded from the OS
/// once per thread. Not for secrets: ids only need to be unique.
fn fast_random(out: &mut [u8]) {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<(u64, u64)> = Cell::new(seed());
    }
    fn seed() -> (u64, u64) {
        // `now_v7` draws its random bits from the OS: 62 of each id's low
        // half are random.
        let a = uuid::Uuid::now_v7().as_u64_pair().1;
        let b = uuid::Uuid::now_v7().as_u64_pair().1;
        (a | 1, b.rotate_left(17) | 2)
    }
    STATE.with(|st| {
        let (mut s0, mut s1) = st.get();
        for chunk in out.chunks_mut(8) {
            let mut x = s0;
            let y = s1;
            s0 = y;
            x ^= x << 23;
            s1 = x ^ y ^ (x >> 17) ^ (y >> 26);
            let v = s1.wrapping_add(y).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        st.set((s0, s1));
    });
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<String> for JobId {
    fn from(s: String) -> Self {
        JobId(s)
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        JobId(s.to_owned())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for JobId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for Priority {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Priority::from_name(s).map_err(|e| Error::Invalid(e.to_string()))
    }
}

/// A routing key: the name of a queue that a pool of workers listens on.
/// Valid names match `[A-Za-z0-9_-]{1,64}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Route(String);

impl Route {
    /// The route every task uses unless told otherwise.
    pub const DEFAULT: &'static str = rules::DEFAULT_ROUTE;

    /// Validates and wraps a route name.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        rules::check_route(&name).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Route(name))
    }

    /// Whether `name` is a valid route name (see [`rules::is_valid_route`]).
    pub fn is_valid(name: &str) -> bool {
        rules::is_valid_route(name)
    }

    /// The route name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Route {
    fn default() -> Self {
        Route(Self::DEFAULT.to_owned())
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Route {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Route::new(s)
    }
}

impl<'de> Deserialize<'de> for Route {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Route::new(s).map_err(serde::de::Error::custom)
    }
}

/// Where a job is in its life. See `docs/ARCHITECTURE.md` for every transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting in its route's queue.
    Queued,
    /// Waiting for its eta (a delayed job, or a retry waiting out its backoff).
    Scheduled,
    /// Leased by a worker and running.
    Active,
    /// Finished successfully.
    Succeeded,
    /// Failed, and waiting for its next attempt (it is also scheduled).
    Retrying,
    /// Failed for good and kept in the dead letter.
    Dead,
}

impl JobState {
    /// Whether the job will not change state again (except by a requeue).
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Dead)
    }

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Scheduled => "scheduled",
            JobState::Active => "active",
            JobState::Succeeded => "succeeded",
            JobState::Retrying => "retrying",
            JobState::Dead => "dead",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The job envelope: what a broker stores and a worker runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    /// Unique id.
    pub id: JobId,
    /// The task name on the wire.
    pub task: String,
    /// The arguments, a JSON object keyed by parameter name.
    pub args: Box<RawValue>,
    /// Its priority.
    pub priority: Priority,
    /// Its routing key.
    pub route: Route,
    /// Attempts started so far. Brokers count an attempt when a worker
    /// fetches the job, so a running job has `attempt >= 1`.
    #[serde(default)]
    pub attempt: u32,
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// How many of its attempts ended with their worker lost (the lease
    /// expired and the job was taken back). They are counted in
    /// [`attempt`](Self::attempt) but do not spend
    /// [`max_retries`](Self::max_retries): see
    /// [`rules::lost_too_often`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost: u32,
    /// When it was submitted.
    pub created_at: Millis,
    /// When it may run; `None` means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<Millis>,
    /// An opaque value from the broker that leased this attempt, handed
    /// back to it with the attempt's [`Ack`] (see [`JobRef::lease_token`]).
    /// 0 when there is none; never serialized.
    #[serde(skip)]
    pub lease_token: u64,
    /// Tags and metadata: what operators search and read, never what the
    /// task runs on (a task sees only its arguments). `None` for most jobs,
    /// so they cost nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Box<Extra>>,
}

/// A job's tags and metadata ([`Job::extra`]), set with
/// `submit(…).tag("tenant:42").meta("k", v)` or `"tags"`/`"meta"` in
/// `POST /jobs`, stored with the job, shown with it and searchable
/// ([`JobFilter::tag`](crate::broker::JobFilter::tag)).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    /// Tags, like `tenant:42`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Metadata: any JSON values by key.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl Extra {
    /// The most tags on a job.
    pub const MAX_TAGS: usize = 32;
    /// The longest tag, in bytes.
    pub const MAX_TAG_LEN: usize = 128;
    /// The most bytes of metadata (as JSON).
    pub const MAX_META_BYTES: usize = 16 * 1024;

    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.meta.is_empty()
    }

    /// Checks the limits: at most [`Extra::MAX_TAGS`] tags of 1 to
    /// [`Extra::MAX_TAG_LEN`] bytes without control characters, and at
    /// most [`Extra::MAX_META_BYTES`] of metadata.
    pub fn check(&self) -> Result<(), Error> {
        if self.tags.len() > Self::MAX_TAGS {
            return Err(Error::Invalid(format!(
                "{} tags: at most {} are allowed",
                self.tags.len(),
                Self::MAX_TAGS
            )));
        }
        for t in &self.tags {
            if t.is_empty() || t.len() > Self::MAX_TAG_LEN || t.chars().any(char::is_control) {
                return Err(Error::Invalid(format!(
                    "invalid tag {:?}: expected 1 to {} bytes without control characters",
                    t,
                    Self::MAX_TAG_LEN
                )));
            }
        }
        let bytes = serde_json::to_string(&self.meta).map_or(0, |s| s.len());
        if bytes > Self::MAX_META_BYTES {
            return Err(Error::Invalid(format!(
                "metadata of {bytes} bytes: at most {} are allowed",
                Self::MAX_META_BYTES
            )));
        }
        Ok(())
    }
}

impl Job {
    /// A new job for `task` with default options.
    pub fn new(task: impl Into<String>, args: Box<RawValue>) -> Self {
        Job {
            id: JobId::new(),
            task: task.into(),
            args,
            priority: Priority::Normal,
            route: Route::default(),
            attempt: 0,
            max_retries: rules::DEFAULT_RETRIES,
            lost: 0,
            created_at: now_millis(),
            eta: None,
            lease_token: 0,
            extra: None,
        }
    }

    /// Whether the job must wait for its eta at `now`.
    pub fn is_delayed(&self, now: Millis) -> bool {
        self.eta.is_some_and(|eta| eta > now)
    }

    /// Whether another attempt is allowed after the current one fails
    /// (see [`rules::can_retry`]; attempts whose worker was lost do not
    /// count).
    pub fn can_retry(&self) -> bool {
        rules::can_retry(self.attempt.saturating_sub(self.lost), self.max_retries)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How a finished attempt ended, as handed back to the broker.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The task succeeded. The value is `None` when the task keeps no result.
    Succeeded(Option<Box<RawValue>>),
    /// The attempt failed and the job runs again at `at`.
    Retry {
        /// When to run it again.
        at: Millis,
        /// The attempt's error.
        error: String,
    },
    /// The job failed for good and goes to the dead letter.
    Dead {
        /// Why: the last error, or why it could not be processed at all.
        reason: String,
    },
}

/// A leased attempt of a job, without its arguments: what acknowledging or
/// handing back an attempt needs. Cheap to keep for every job in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRef {
    /// The job id.
    pub id: JobId,
    /// Its routing key.
    pub route: Route,
    /// The task name on the wire.
    pub task: String,
    /// The attempt this lease is for (as fetched).
    pub attempt: u32,
    /// Its priority.
    pub priority: Priority,
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// Attempts that ended with their worker lost ([`Job::lost`]).
    pub lost: u32,
    /// What the broker put in [`Job::lease_token`] when it leased this
    /// attempt, or 0. A broker may use it to settle the attempt more
    /// cheaply (the Redis broker skips its lease check when nothing was
    /// recovered since the fetch), so a caller that sends the same
    /// acknowledgement again, not knowing whether the first one landed,
    /// sets it to 0 first: an ack with token 0 is always checked against
    /// the broker's leases.
    pub lease_token: u64,
}

impl JobRef {
    /// Whether another attempt is allowed after the current one fails
    /// (see [`Job::can_retry`]).
    pub fn can_retry(&self) -> bool {
        rules::can_retry(self.attempt.saturating_sub(self.lost), self.max_retries)
    }
}

impl From<&Job> for JobRef {
    fn from(job: &Job) -> Self {
        JobRef {
            id: job.id.clone(),
            route: job.route.clone(),
            task: job.task.clone(),
            attempt: job.attempt,
            priority: job.priority,
            max_retries: job.max_retries,
            lost: job.lost,
            lease_token: job.lease_token,
        }
    }
}

impl Job {
    /// Splits the envelope into its reference and its arguments, without
    /// copying either.
    pub fn into_parts(self) -> (JobRef, Box<RawValue>) {
        (
            JobRef {
                id: self.id,
                route: self.route,
                task: self.task,
                attempt: self.attempt,
                priority: self.priority,
                max_retries: self.max_retries,
                lost: self.lost,
                lease_token: self.lease_token,
            },
            self.args,
        )
    }
}

/// One settled attempt: which job and attempt, and how it ended. Brokers
/// take these in batches so acknowledging costs one round trip per batch.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The attempt as it was fetched.
    pub job: JobRef,
    /// How the attempt ended.
    pub outcome: Outcome,
    /// When the attempt started.
    pub started_at: Millis,
    /// When it ended.
    pub finished_at: Millis,
}

/// What a broker knows about a job: its state, and its result once it has one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job id.
    pub id: JobId,
    /// The task name.
    pub task: String,
    /// Current state.
    pub state: JobState,
    /// The routing key.
    pub route: Route,
    /// The priority.
    pub priority: Priority,
    /// Attempts started so far.
    pub attempts: u32,
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// The arguments it was submitted with.
    pub args: Box<RawValue>,
    /// The task's result, once it succeeded (and if it keeps results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<RawValue>>,
    /// The last error, if an attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the running attempt last reported with
    /// `Context::progress`; gone once the attempt is settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Box<RawValue>>,
    /// When it was submitted.
    pub created_at: Millis,
    /// When it was (or is) due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<Millis>,
    /// When the last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    /// When it reached its current final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Millis>,
    /// Its tags and metadata, if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Box<Extra>>,
}

impl JobRecord {
    /// A record for `job` in `state`, with no result yet.
    pub fn new(job: &Job, state: JobState) -> Self {
        JobRecord {
            id: job.id.clone(),
            task: job.task.clone(),
            state,
            route: job.route.clone(),
            priority: job.priority,
            attempts: job.attempt,
            max_retries: job.max_retries,
            args: job.args.clone(),
            result: None,
            error: None,
            progress: None,
            created_at: job.created_at,
            eta: job.eta,
            started_at: None,
            finished_at: None,
            extra: job.extra.clone(),
        }
    }

    /// The envelope to run this job again from scratch (used by requeue).
    pub fn to_job(&self) -> Job {
        Job {
            id: self.id.clone(),
            task: self.task.clone(),
            args: self.args.clone(),
            priority: self.priority,
            route: self.route.clone(),
            attempt: 0,
            max_retries: self.max_retries,
            lost: 0,
            created_at: self.created_at,
            eta: None,
            lease_token: 0,
            extra: self.extra.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_validation_names_the_problem() {
        assert!(Route::new("gpu-1_a").is_ok());
        let err = Route::new("bad route").unwrap_err().to_string();
        assert!(err.contains("bad route") && err.contains("A-Z"), "{err}");
        assert!(Route::new("").is_err());
        assert!(Route::new("x".repeat(65)).is_err());
        assert!(Route::new("x".repeat(64)).is_ok());
    }

    #[test]
    fn priority_parses_and_rejects() {
        assert_eq!("high".parse::<Priority>().unwrap(), Priority::High);
        let err = "urgent".parse::<Priority>().unwrap_err().to_string();
        assert!(err.contains("urgent") && err.contains("`low`"), "{err}");
    }

    #[test]
    fn generated_ids_are_uuid_v7_unique_and_ordered() {
        let a = JobId::new();
        let b = JobId::new();
        assert_ne!(a, b);
        let u = uuid::Uuid::parse_str(a.as_str()).unwrap();
        assert_eq!(u.get_version_num(), 7);
        assert_eq!(a.as_str().len(), 36);
        let ids: std::collections::HashSet<JobId> = (0..10_000).map(|_| JobId::new()).collect();
        assert_eq!(ids.len(), 10_000);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(JobId::new() > a, "ids from a later millisecond sort after");
    }

    #[test]
    fn envelope_round_trips() {
        let args = RawValue::from_string(r#"{"a":1}"#.into()).unwrap();
        let job = Job::new("add", args);
        let s = serde_json::to_string(&job).unwrap();
        let back: Job = serde_json::from_str(&s).unwrap();
        assert_eq!(back.id, job.id);
        assert_eq!(back.args.get(), r#"{"a":1}"#);
        assert_eq!(back.route.as_str(), "default");
    }
}
