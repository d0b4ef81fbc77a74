//! Tasks: the definitions `#[bananas::task]` registers, and the typed
//! submission API it generates ([`Submit`] and [`JobHandle`]).

use std::{
    collections::HashMap, fmt, future::Future, marker::PhantomData, pin::Pin, time::Duration,
};

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::{
    app::{self, Client},
    context::Context,
    job::{now_millis, Job, JobId, JobRecord, JobState, Millis, Priority, Route},
    rules, Error, Result,
};

pub use crate::rules::Missed;

/// A boxed future returned by task handlers.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a handler returns: the JSON result (`None` when the task keeps no
/// result), or why the attempt failed.
pub type HandlerResult = std::result::Result<Option<Box<RawValue>>, TaskError>;

/// The type-erased entry point the macro generates for each task: decode
/// the arguments, run the body, encode the result.
pub type Handler = fn(Context, Box<RawValue>) -> BoxFuture<HandlerResult>;

/// Checks that a JSON object is valid arguments for a task, without running it.
pub type ArgsCheck = fn(&RawValue) -> std::result::Result<(), String>;

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// The arguments did not decode into the task's parameters. Retrying
    /// cannot help, so the job goes straight to the dead letter.
    BadArgs(String),
    /// The task body returned an error (or the result could not be encoded).
    Failed(String),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::BadArgs(e) => write!(f, "invalid arguments: {e}"),
            TaskError::Failed(e) => f.write_str(e),
        }
    }
}

/// Exponential backoff between retries: `base * 2^(attempt-1)`, capped at
/// `cap`, with full jitter in the upper half (see [`Backoff::delay`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry.
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
}

impl Backoff {
    /// 2 s, 4 s, 8 s … up to 10 minutes
    /// ([`rules::DEFAULT_BACKOFF_BASE_MS`], [`rules::DEFAULT_BACKOFF_CAP_MS`]).
    pub const DEFAULT: Backoff = Backoff {
        base: Duration::from_millis(rules::DEFAULT_BACKOFF_BASE_MS),
        cap: Duration::from_millis(rules::DEFAULT_BACKOFF_CAP_MS),
    };

    /// The delay before the retry that follows failed attempt `attempt`
    /// (1-based): `min(cap, base * 2^(attempt-1))`, jittered uniformly into
    /// `[d/2, d]` so retries of many jobs do not stampede.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let d = self
            .base
            .saturating_mul(1u32 << exp)
            .min(self.cap)
            .max(Duration::from_millis(1));
        let half = d / 2;
        let jitter = rand::random::<f64>();
        half + half.mul_f64(jitter)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

/// The schedule of a `#[bananas::periodic]` task.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleDef {
    /// The cron expression, normalized by the macro so that
    /// `cron::Schedule::from_str` parses it as is: a 5-field expression gets
    /// a leading `0` seconds field, Unix day-of-week numbers (0 or 7 = Sunday)
    /// are rewritten as `SUN`…`SAT`, and `@hourly`-style shorthands are kept.
    pub cron: &'static str,
    /// The IANA time zone the expression is read in.
    pub tz: &'static str,
    /// What to do about missed ticks.
    pub missed: Missed,
}

/// A task as registered by `#[bananas::task]` (through `inventory`).
/// Every field is known at compile time.
#[derive(Debug)]
pub struct TaskDef {
    /// The name on the wire.
    pub name: &'static str,
    /// The default route.
    pub route: &'static str,
    /// The default priority.
    pub priority: Priority,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Backoff between retries.
    pub backoff: Backoff,
    /// Per-attempt timeout.
    pub timeout: Option<Duration>,
    /// Whether the result is stored (`#[task(result = false)]` turns it off).
    pub store_result: bool,
    /// Parameter names, in order (excluding a `Context` parameter).
    pub params: &'static [&'static str],
    /// Runs one attempt.
    pub handler: Handler,
    /// Validates arguments without running the task.
    pub check_args: ArgsCheck,
    /// Where the task is defined: `module::fn (file:line)`.
    pub location: &'static str,
    /// The schedule, for `#[bananas::periodic]` tasks.
    pub schedule: Option<ScheduleDef>,
}

inventory::collect!(TaskDef);

/// Every task linked into this binary, by name.
#[derive(Debug, Clone)]
pub struct Registry {
    tasks: HashMap<&'static str, &'static TaskDef>,
}

impl Registry {
    /// Collects every `#[bananas::task]` in the binary. Fails with an error
    /// naming both definitions when two tasks share a name.
    pub fn from_inventory() -> Result<Self> {
        Self::from_defs(inventory::iter::<TaskDef>)
    }

    /// Builds a registry from explicit definitions (used by tests).
    pub fn from_defs(defs: impl IntoIterator<Item = &'static TaskDef>) -> Result<Self> {
        let mut tasks: HashMap<&'static str, &'static TaskDef> = HashMap::new();
        for def in defs {
            if let Some(prev) = tasks.insert(def.name, def) {
                let (first, second) = if prev.location <= def.location {
                    (prev.location, def.location)
                } else {
                    (def.location, prev.location)
                };
                return Err(Error::DuplicateTask {
                    name: def.name.to_owned(),
                    first: first.to_owned(),
                    second: second.to_owned(),
                });
            }
        }
        Ok(Registry { tasks })
    }

    /// The task called `name`.
    pub fn get(&self, name: &str) -> Option<&'static TaskDef> {
        self.tasks.get(name).copied()
    }

    /// All tasks, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &'static TaskDef> + '_ {
        let mut v: Vec<_> = self.tasks.values().copied().collect();
        v.sort_by_key(|d| d.name);
        v.into_iter()
    }

    /// How many tasks are registered.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task is registered.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Checks `args` against the task `name`: the task must exist and the
    /// arguments must decode into its parameters.
    pub fn validate(&self, name: &str, args: &RawValue) -> Result<&'static TaskDef> {
        let def = self
            .get(name)
            .ok_or_else(|| Error::UnknownTask(name.to_owned()))?;
        (def.check_args)(args).map_err(|reason| Error::InvalidArgs {
            task: name.to_owned(),
            reason,
        })?;
        Ok(def)
    }
}

/// A job being prepared for submission, with per-call options.
///
/// Made by the `submit(args…)` function that `#[bananas::task]` generates;
/// `delay(args…)` is `submit(args…).send()`.
#[must_use = "a Submit does nothing until `.send().await`"]
pub struct Submit<T> {
    def: &'static TaskDef,
    args: Result<Box<RawValue>>,
    priority: Priority,
    route: Option<String>,
    retries: u32,
    eta: Option<Millis>,
    id: Option<JobId>,
    client: Option<Client>,
    _result: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Submit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submit")
            .field("task", &self.def.name)
            .field("priority", &self.priority)
            .field("route", &self.route)
            .field("retries", &self.retries)
            .field("eta", &self.eta)
            .finish()
    }
}

impl<T: DeserializeOwned> Submit<T> {
    /// A submission of `def` with encoded `args` and the task's defaults.
    pub fn new(def: &'static TaskDef, args: Result<Box<RawValue>>) -> Self {
        Submit {
            def,
            args,
            priority: def.priority,
            route: None,
            retries: def.retries,
            eta: None,
            id: None,
            client: None,
            _result: PhantomData,
        }
    }

    /// Run no earlier than `delay` from now.
    pub fn countdown(mut self, delay: Duration) -> Self {
        self.eta = Some(now_millis() + delay.as_millis() as u64);
        self
    }

    /// Run no earlier than `eta` (milliseconds since the Unix epoch).
    pub fn eta_millis(mut self, eta: Millis) -> Self {
        self.eta = Some(eta);
        self
    }

    /// Run no earlier than `eta`.
    pub fn eta(self, eta: std::time::SystemTime) -> Self {
        let ms = eta
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.eta_millis(ms)
    }

    /// Override the task's priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Override the task's route. An invalid name fails at `send`.
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Override the task's retry count.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Use this job id instead of a fresh one (enqueueing is idempotent by id).
    pub fn id(mut self, id: impl Into<JobId>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Submit through `client` instead of the installed app.
    pub fn on(mut self, client: &Client) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// Builds the job envelope without submitting it.
    pub fn into_job(self) -> Result<(Job, Option<Client>)> {
        let route = match self.route {
            Some(r) => Route::new(r)?,
            None => Route::new(self.def.route)?,
        };
        let mut job = Job::new(self.def.name, self.args?);
        if let Some(id) = self.id {
            job.id = id;
        }
        job.priority = self.priority;
        job.route = route;
        job.max_retries = self.retries;
        job.eta = self.eta;
        Ok((job, self.client))
    }

    /// Submits the job and returns a handle to its result.
    pub async fn send(self) -> Result<JobHandle<T>> {
        let (job, client) = self.into_job()?;
        let client = match client {
            Some(c) => c,
            None => app::installed_client()?,
        };
        let (id, route) = (job.id.clone(), job.route.clone());
        client.enqueue(vec![job]).await?;
        Ok(JobHandle::new(id, route, client))
    }
}

/// A submitted job. [`JobHandle::wait`] returns its typed result.
pub struct JobHandle<T> {
    id: JobId,
    route: Route,
    client: Client,
    _result: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.id)
            .field("route", &self.route)
            .finish()
    }
}

impl<T> Clone for JobHandle<T> {
    fn clone(&self) -> Self {
        JobHandle {
            id: self.id.clone(),
            route: self.route.clone(),
            client: self.client.clone(),
            _result: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> JobHandle<T> {
    /// A handle to job `id`, submitted on `route` through `client`.
    pub fn new(id: JobId, route: Route, client: Client) -> Self {
        JobHandle {
            id,
            route,
            client,
            _result: PhantomData,
        }
    }

    /// The job id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The job's route.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The job's current record: state, attempts, result or error. Looked
    /// up on the job's own route.
    pub async fn status(&self) -> Result<Option<JobRecord>> {
        let inspect = self.client.broker().inspect()?;
        Ok(inspect.job(&self.id, Some(&self.route)).await?)
    }

    /// Cancels the job if it has not started: a queued, delayed or
    /// retrying job will not run, and [`JobHandle::wait`] then fails with
    /// [`Error::JobFailed`]`("cancelled")`. A running attempt is not
    /// interrupted ([`CancelOutcome::Running`]).
    ///
    /// [`CancelOutcome::Running`]: crate::broker::CancelOutcome::Running
    pub async fn cancel(&self) -> Result<crate::broker::CancelOutcome> {
        let cancel = self.client.broker().cancel()?;
        Ok(cancel.cancel(&self.id, Some(&self.route)).await?)
    }

    /// Waits up to `timeout` for the job to finish and returns its result.
    ///
    /// Fails with [`Error::JobFailed`] when the job ended in the dead letter,
    /// and [`Error::Timeout`] when it did not finish in time.
    pub async fn wait(&self, timeout: Duration) -> Result<T> {
        let record = self
            .client
            .broker()
            .inspect()?
            .wait(&self.id, Some(&self.route), timeout)
            .await?
            .ok_or(Error::Timeout(timeout))?;
        match record.state {
            JobState::Succeeded => {
                let raw = record
                    .result
                    .as_deref()
                    .map(RawValue::get)
                    .unwrap_or("null");
                Ok(serde_json::from_str(raw)?)
            }
            _ => Err(Error::JobFailed(
                record.error.unwrap_or_else(|| "unknown error".to_owned()),
            )),
        }
    }
}
