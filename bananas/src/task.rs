//! Tasks: the definitions `#[bananas::task]` registers ([`TaskDef`]) and
//! the [`Registry`] of them. The typed submission API the macro generates
//! is in [`submit`](crate::submit).

use std::{collections::HashMap, fmt, future::Future, pin::Pin, time::Duration};

use serde_json::value::RawValue;

use crate::{context::Context, job::Priority, rules, Error, Result};

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
    /// The expression as the user wrote it in `#[periodic(cron = "…")]`:
    /// what announcements, `GET /schedules` and `bananas schedules` show.
    pub written: &'static str,
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
    /// How often a job may be taken back from a lost worker before it is
    /// dead-lettered (`None`: the worker's `max_lost`).
    pub max_lost: Option<u32>,
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
