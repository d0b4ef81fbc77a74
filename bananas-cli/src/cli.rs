//! The command line, as clap reads it.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand};

/// Inspect and operate Bananas queues, jobs, dead letter and schedules.
#[derive(Debug, Parser)]
#[command(name = "bananas", version, about)]
pub(crate) struct Cli {
    /// The broker: `redis://host:port/db`, `rediss://…`, `redis+cluster://h1:p1,h2:p2`.
    #[arg(
        long,
        global = true,
        env = "BANANAS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub(crate) url: String,

    /// The Redis key prefix of the deployment (default `bananas`).
    #[arg(long, global = true, env = "BANANAS_PREFIX")]
    pub(crate) prefix: Option<String>,

    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Seconds to wait for the broker to connect and answer before giving
    /// up (then the server is asked once more, briefly, to say why).
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value = "2",
        value_parser = crate::connect::parse_timeout
    )]
    pub(crate) connect_timeout: Duration,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Queue depths per route and priority, and the live workers.
    Stats,
    /// Pause and resume routes.
    #[command(subcommand)]
    Queues(QueuesCommand),
    /// Jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// The dead letter.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Submit a job by task name (no task code needed, so no validation of
    /// the payload against the task).
    Enqueue(EnqueueArgs),
    /// Next run, last run and last outcome of each schedule.
    Schedules(SchedulesArgs),
    /// Serve the HTTP API against the broker, without task code.
    Serve(ServeArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum QueuesCommand {
    /// Pause a route: it keeps accepting jobs, and no worker takes one
    /// until it is resumed (running jobs finish). Survives worker restarts.
    Pause {
        /// The route.
        route: String,
    },
    /// Resume a paused route.
    Resume {
        /// The route.
        route: String,
    },
    /// Attempts processed and failed per minute on a route, for the last
    /// day (minutes with none are left out).
    History {
        /// The route.
        route: String,
    },
}

/// Which jobs `jobs list` shows.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// queued, scheduled, retrying, active, succeeded, dead or cancelled.
    #[arg(long)]
    pub(crate) state: String,
    /// Only this route.
    #[arg(long)]
    pub(crate) route: Option<String>,
    /// Only this task.
    #[arg(long)]
    pub(crate) task: Option<String>,
    /// Only jobs whose arguments or last error contain this text.
    #[arg(long)]
    pub(crate) text: Option<String>,
    /// Only jobs with this tag.
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
    /// Where to go on from: the `next` a previous page printed.
    #[arg(long)]
    pub(crate) cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// Jobs in one state, newest first, a page at a time (queued jobs route
    /// by route, high priority first).
    List(ListArgs),
    /// A job's state, attempts, result or error, and timestamps.
    Show {
        /// The job id.
        id: String,
    },
    /// Cancels a job that has not started (queued, delayed or waiting for a
    /// retry): it goes to the dead letter with the error `cancelled`. A
    /// running job is not interrupted. One id gives that job's outcome;
    /// several ids, or a filter, act in bulk (as `retry`).
    Cancel(BulkArgs),
    /// Run scheduled or retrying jobs now: by id, or every one a filter
    /// selects.
    RunNow(BulkArgs),
    /// Move dead (or cancelled) jobs back to their queue, attempts reset:
    /// by id, or every one a filter selects.
    Retry(BulkArgs),
    /// Delete jobs no worker holds (queued, scheduled, retrying, succeeded,
    /// dead or cancelled), with everything about them: by id, or every one
    /// a filter selects.
    Delete(BulkArgs),
}

/// The jobs a bulk command acts on: ids, or a filter (`--state` and
/// optionally `--route`, `--task`, `--text`).
#[derive(Debug, Args)]
pub(crate) struct BulkArgs {
    /// Job ids.
    #[arg(conflicts_with = "state")]
    pub(crate) ids: Vec<String>,
    /// Every job in this state (with the filters below).
    #[arg(long, required_unless_present = "ids")]
    pub(crate) state: Option<String>,
    /// Only this route.
    #[arg(long, requires = "state")]
    pub(crate) route: Option<String>,
    /// Only this task.
    #[arg(long, requires = "state")]
    pub(crate) task: Option<String>,
    /// Only jobs whose arguments or last error contain this text.
    #[arg(long, requires = "state")]
    pub(crate) text: Option<String>,
    /// Only jobs with this tag.
    #[arg(long, requires = "state")]
    pub(crate) tag: Option<String>,
    /// Act on every selected job, however many (otherwise more than
    /// `--max` is refused, with nothing done).
    #[arg(long)]
    pub(crate) all: bool,
    /// The most jobs to act on without `--all`.
    #[arg(long, default_value_t = bananas::control::DEFAULT_MAX)]
    pub(crate) max: usize,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadCommand {
    /// Dead jobs, newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        limit: u64,
    },
    /// Move a dead job (or all of them) back to its queue, attempts reset.
    Requeue {
        /// The job id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Requeue every dead job.
        #[arg(long)]
        all: bool,
    },
    /// Delete every dead job.
    Purge,
}

#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// The task name.
    pub(crate) name: String,
    /// The arguments: a JSON object keyed by parameter name.
    #[arg(long, default_value = "{}")]
    pub(crate) payload: String,
    /// `high`, `normal` or `low` (default `normal`).
    #[arg(long)]
    pub(crate) priority: Option<String>,
    /// The route (default `default`).
    #[arg(long)]
    pub(crate) route: Option<String>,
    /// Run no earlier than this many seconds from now.
    #[arg(long, conflicts_with = "eta", allow_negative_numbers = true)]
    pub(crate) countdown: Option<f64>,
    /// Run no earlier than this time (RFC 3339, or ms since the epoch).
    #[arg(long)]
    pub(crate) eta: Option<String>,
    /// Retries after the first attempt (default 3).
    #[arg(long)]
    pub(crate) retries: Option<u32>,
    /// A tag, like `tenant:42` (repeat for several).
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Metadata as a JSON object, like `{"source":"cli"}`.
    #[arg(long)]
    pub(crate) meta: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SchedulesArgs {
    /// The HTTP API of a running app (`BANANAS_HTTP_ADDR`), which knows its
    /// schedules: `http://host:port`.
    #[arg(long, env = "BANANAS_API_URL")]
    pub(crate) api: Option<String>,
    /// The app's API token.
    #[arg(long, env = "BANANAS_API_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where to listen. Port 0 picks a free one; the address is printed.
    #[arg(long, env = "BANANAS_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) addr: SocketAddr,
    /// Require `Authorization: Bearer <token>` (all but /health).
    #[arg(long, env = "BANANAS_API_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// The largest request body, in bytes.
    #[arg(long, env = "BANANAS_HTTP_BODY_LIMIT", default_value_t = bananas::http::DEFAULT_BODY_LIMIT)]
    pub(crate) body_limit: usize,
    /// Accept jobs on routes no live worker serves and the broker never
    /// saw (otherwise 422 naming the route).
    #[arg(long, env = "BANANAS_HTTP_ALLOW_NEW_ROUTES")]
    pub(crate) allow_new_routes: bool,
}
