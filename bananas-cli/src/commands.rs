//! What each command does: one function per command, each short, in the
//! order of `cli.rs`. Over 600 lines only because there are that many
//! commands; a split by command group would scatter the shared helpers
//! (`print`, `err`, `filter_of`) across files for no reader's gain.

use std::collections::BTreeMap;

use bananas::{
    broker::{AnyBroker, CancelOutcome, JobFilter, ListState, QueueStats, WorkerInfo},
    control::{self, Action, Selection},
    http::{self, rfc3339, ApiState, EnqueueRequest, JobView},
    job::{JobId, Route},
    Client,
};
use serde_json::{json, value::RawValue, Value};
use tokio_util::sync::CancellationToken;

use crate::{
    api,
    cli::{
        BulkArgs, Cli, Command, DeadCommand, EnqueueArgs, JobsCommand, ListArgs, QueuesCommand,
        ServeArgs,
    },
    connect,
    output::{self, fields, short, Table},
};

/// How many dead jobs `dead requeue --all` reads per round.
const REQUEUE_BATCH: usize = 1000;

/// Runs the command; the error is the one-line message to print.
pub(crate) async fn run(cli: Cli) -> Result<(), String> {
    let json = cli.json;
    if let Command::Schedules(args) = &cli.command {
        if let Some(base) = &args.api {
            return schedules_from_api(base, args.token.as_deref(), json).await;
        }
    }
    let client = connect::connect(&cli.url, cli.prefix.as_deref(), cli.connect_timeout).await?;
    match cli.command {
        Command::Stats => stats(&client, json).await,
        Command::Queues(QueuesCommand::Pause { route }) => {
            set_paused(&client, &route, true, json).await
        }
        Command::Queues(QueuesCommand::Resume { route }) => {
            set_paused(&client, &route, false, json).await
        }
        Command::Queues(QueuesCommand::History { route }) => history(&client, &route, json).await,
        Command::Jobs(JobsCommand::List(args)) => list_jobs(&client, args, json).await,
        Command::Jobs(JobsCommand::Show { id }) => show_job(&client, &id, json).await,
        Command::Jobs(JobsCommand::Cancel(args)) if args.ids.len() == 1 => {
            cancel_job(&client, &args.ids[0], json).await
        }
        Command::Jobs(JobsCommand::Cancel(args)) => bulk(&client, Action::Cancel, args, json).await,
        Command::Jobs(JobsCommand::RunNow(args)) => bulk(&client, Action::RunNow, args, json).await,
        Command::Jobs(JobsCommand::Retry(args)) => bulk(&client, Action::Retry, args, json).await,
        Command::Jobs(JobsCommand::Delete(args)) => bulk(&client, Action::Delete, args, json).await,
        Command::Dead(DeadCommand::List { limit }) => {
            dead_list(&client, limit as usize, json).await
        }
        Command::Dead(DeadCommand::Requeue { id, all }) => {
            dead_requeue(&client, id, all, json).await
        }
        Command::Dead(DeadCommand::Purge) => {
            let n = client
                .broker()
                .dead_letter()
                .map_err(err)?
                .purge_dead()
                .await
                .map_err(err)?;
            print(json, json!({ "purged": n }), || {
                format!("purged {n} dead jobs\n")
            })?;
            Ok(())
        }
        Command::Enqueue(args) => enqueue(&client, args, json).await,
        Command::Schedules(_) => schedules_from_broker(&client, json).await,
        Command::Serve(args) => serve(client, args).await,
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// `v` as a JSON text.
fn raw(v: &impl serde::Serialize) -> Result<Box<RawValue>, String> {
    serde_json::value::to_raw_value(v).map_err(err)
}

/// Prints `value` as pretty JSON with `--json`, else what `human` renders.
fn print(json: bool, value: Value, human: impl FnOnce() -> String) -> Result<(), String> {
    if json {
        output::stdout(&format!("{value:#}\n"))
    } else {
        output::stdout(&human())
    }
}

/// A queue latency for a table: `-` for none, else seconds.
fn latency(d: std::time::Duration) -> String {
    if d.is_zero() {
        "-".to_owned()
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// `queues history`.
async fn history(client: &Client, route: &str, json: bool) -> Result<(), String> {
    let route = Route::new(route).map_err(|e| format!("invalid route: {e}"))?;
    let minutes = client
        .broker()
        .history()
        .map_err(err)?
        .history(&route)
        .await
        .map_err(err)?;
    print(
        json,
        json!({ "route": route.as_str(), "minutes": minutes }),
        || {
            if minutes.is_empty() {
                return format!("nothing processed on `{route}` in the last day\n");
            }
            let mut t = Table::new(&["MINUTE", "PROCESSED", "FAILED"]);
            for m in &minutes {
                t.row(vec![
                    time(Some(m.minute)),
                    m.processed.to_string(),
                    m.failed.to_string(),
                ]);
            }
            t.render()
        },
    )
}

/// `queues pause` and `queues resume`.
async fn set_paused(client: &Client, route: &str, paused: bool, json: bool) -> Result<(), String> {
    let route = bananas::job::Route::new(route).map_err(|e| format!("invalid route: {e}"))?;
    let control = client.broker().pause().map_err(err)?;
    let changed = if paused {
        control.pause(&route).await
    } else {
        control.resume(&route).await
    }
    .map_err(err)?;
    let state = if paused { "paused" } else { "running" };
    print(
        json,
        json!({ "route": route.as_str(), "paused": paused, "changed": changed }),
        || {
            if changed {
                format!("route `{route}` {state}\n")
            } else {
                format!("route `{route}` was already {state}\n")
            }
        },
    )
}

fn time(ms: Option<u64>) -> String {
    ms.and_then(rfc3339).unwrap_or_else(|| "-".to_owned())
}

async fn stats(client: &Client, json: bool) -> Result<(), String> {
    let broker: &AnyBroker = client.broker();
    let mut queues: Vec<QueueStats> = broker.inspect().map_err(err)?.stats().await.map_err(err)?;
    queues.sort_by(|a, b| a.route.cmp(&b.route));
    let workers: Vec<WorkerInfo> = broker
        .workers()
        .map_err(err)?
        .workers()
        .await
        .map_err(err)?;
    let totals = http::totals(&queues);
    let now = bananas::job::now_millis();
    let views: Vec<http::QueueView> = queues
        .iter()
        .map(|q| http::QueueView::new(q.clone(), now))
        .collect();
    print(
        json,
        json!({ "queues": views, "totals": http::QueueView::new(totals.clone(), now), "workers": workers }),
        || {
            let mut t = Table::new(&[
                "ROUTE",
                "HIGH",
                "NORMAL",
                "LOW",
                "SCHEDULED",
                "ACTIVE",
                "DEAD",
                "LATENCY",
                "PAUSED",
            ]);
            for q in queues.iter().chain([&totals]) {
                let route = if q.route == "*" {
                    "TOTAL".to_owned()
                } else {
                    q.route.clone()
                };
                t.row(vec![
                    route,
                    q.high.to_string(),
                    q.normal.to_string(),
                    q.low.to_string(),
                    q.scheduled.to_string(),
                    q.active.to_string(),
                    q.dead.to_string(),
                    latency(q.latency(now)),
                    if q.paused { "paused" } else { "-" }.to_owned(),
                ]);
            }
            let mut out = t.render();
            out.push('\n');
            if workers.is_empty() {
                out.push_str("no live workers\n");
            } else {
                let mut w = Table::new(&[
                    "WORKER",
                    "HOST",
                    "PID",
                    "ROUTES",
                    "CONCURRENCY",
                    "IN FLIGHT",
                    "STARTED",
                    "SEEN",
                ]);
                for x in &workers {
                    w.row(vec![
                        x.id.clone(),
                        x.host.clone(),
                        x.pid.to_string(),
                        x.routes.join(","),
                        x.concurrency.to_string(),
                        x.in_flight.to_string(),
                        time(Some(x.started_at)),
                        time(Some(x.seen_at)),
                    ]);
                }
                out.push_str(&w.render());
            }
            out
        },
    )?;
    Ok(())
}

async fn show_job(client: &Client, id: &str, json: bool) -> Result<(), String> {
    let record = client
        .job(&JobId::from(id))
        .await
        .map_err(err)?
        .ok_or_else(|| format!("job `{id}` not found (it never existed, or its result expired)"))?;
    let view = JobView::from(record);
    let value = serde_json::to_value(&view).map_err(err)?;
    print(json, value, || {
        let ts = |t: &Option<http::Timestamp>| t.as_ref().map_or("-".to_owned(), |t| t.at.clone());
        fields(&[
            ("id", view.id.clone()),
            ("task", view.name.clone()),
            ("state", view.state.to_string()),
            ("route", view.route.clone()),
            ("priority", view.priority.to_string()),
            (
                "attempts",
                format!("{} (retries allowed: {})", view.attempts, view.max_retries),
            ),
            ("payload", view.payload.get().to_owned()),
            (
                "result",
                view.result
                    .as_ref()
                    .map_or("-".to_owned(), |r| r.get().to_owned()),
            ),
            (
                "error",
                view.error.clone().unwrap_or_else(|| "-".to_owned()),
            ),
            (
                "progress",
                view.progress
                    .as_ref()
                    .map_or("-".to_owned(), |p| p.get().to_owned()),
            ),
            (
                "tags",
                if view.tags.is_empty() {
                    "-".to_owned()
                } else {
                    view.tags.join(", ")
                },
            ),
            (
                "meta",
                if view.meta.is_empty() {
                    "-".to_owned()
                } else {
                    Value::Object(view.meta.clone()).to_string()
                },
            ),
            ("created", view.created_at.at.clone()),
            ("eta", ts(&view.eta)),
            ("started", ts(&view.started_at)),
            ("finished", ts(&view.finished_at)),
        ])
    })?;
    Ok(())
}

/// The filter of `jobs list` and the bulk commands.
fn filter_of(args: &ListArgs) -> Result<JobFilter, String> {
    let mut filter = JobFilter::state(args.state.parse::<ListState>().map_err(err)?);
    if let Some(r) = &args.route {
        filter.route = Some(Route::new(r.as_str()).map_err(|e| format!("invalid route: {e}"))?);
    }
    filter.task = args.task.clone();
    filter.text = args.text.clone();
    filter.tag = args.tag.clone();
    Ok(filter)
}

async fn list_jobs(client: &Client, args: ListArgs, json: bool) -> Result<(), String> {
    let filter = filter_of(&args)?;
    let page = client
        .broker()
        .browse()
        .map_err(err)?
        .list_jobs(&filter, args.cursor.as_deref(), args.limit)
        .await
        .map_err(err)?;
    let jobs: Vec<JobView> = page.jobs.into_iter().map(JobView::from).collect();
    let next = page.next;
    print(json, json!({ "jobs": jobs, "next": next }), || {
        let mut out = if jobs.is_empty() {
            format!("no {} jobs on this page\n", filter.state)
        } else {
            let mut t = Table::new(&[
                "ID", "TASK", "ROUTE", "PRIORITY", "ATTEMPTS", "WHEN", "ERROR",
            ]);
            for j in &jobs {
                let when = j
                    .finished_at
                    .as_ref()
                    .or(j.eta.as_ref())
                    .unwrap_or(&j.created_at);
                t.row(vec![
                    j.id.clone(),
                    j.name.clone(),
                    j.route.clone(),
                    j.priority.as_str().to_owned(),
                    j.attempts.to_string(),
                    when.at.clone(),
                    short(j.error.as_deref().unwrap_or("-"), 60),
                ]);
            }
            t.render()
        };
        if let Some(next) = &next {
            out.push_str(&format!("next page: --cursor {next}\n"));
        }
        out
    })
}

/// `jobs cancel|run-now|retry|delete` on ids or a filter.
async fn bulk(client: &Client, action: Action, args: BulkArgs, json: bool) -> Result<(), String> {
    let selection = match &args.state {
        Some(state) => Selection::Filter(filter_of(&ListArgs {
            state: state.clone(),
            route: args.route.clone(),
            task: args.task.clone(),
            text: args.text.clone(),
            tag: args.tag.clone(),
            limit: 1,
            cursor: None,
        })?),
        None => Selection::Ids(
            args.ids
                .iter()
                .map(|id| (JobId::from(id.as_str()), None))
                .collect(),
        ),
    };
    let max = (!args.all).then_some(args.max);
    let touched = control::apply(client.broker(), action, selection, max)
        .await
        .map_err(err)?;
    print(
        json,
        json!({ "action": action.as_str(), "touched": touched }),
        || format!("{action}: {touched} job(s) changed\n"),
    )
}

async fn dead_list(client: &Client, limit: usize, json: bool) -> Result<(), String> {
    let jobs: Vec<JobView> = client
        .broker()
        .dead_letter()
        .map_err(err)?
        .dead_jobs(limit)
        .await
        .map_err(err)?
        .into_iter()
        .map(JobView::from)
        .collect();
    let value = json!({ "jobs": jobs });
    print(json, value, || {
        if jobs.is_empty() {
            return "no dead jobs\n".to_owned();
        }
        let mut t = Table::new(&["ID", "TASK", "ROUTE", "ATTEMPTS", "DIED", "ERROR"]);
        for j in &jobs {
            t.row(vec![
                j.id.clone(),
                j.name.clone(),
                j.route.clone(),
                j.attempts.to_string(),
                j.finished_at
                    .as_ref()
                    .map_or("-".to_owned(), |t| t.at.clone()),
                short(j.error.as_deref().unwrap_or("-"), 60),
            ]);
        }
        t.render()
    })?;
    Ok(())
}

async fn cancel_job(client: &Client, id: &str, json: bool) -> Result<(), String> {
    match client.cancel(&JobId::from(id)).await.map_err(err)? {
        CancelOutcome::Cancelled => {
            print(json, json!({ "id": id, "cancelled": true }), || {
                format!("cancelled {id}\n")
            })?;
            Ok(())
        }
        CancelOutcome::Running => Err(format!(
            "job `{id}` is running (or prefetched by a worker): a leased job cannot be cancelled"
        )),
        CancelOutcome::Finished => Err(format!("job `{id}` already finished")),
        CancelOutcome::NotFound => Err(format!(
            "job `{id}` not found (it never existed, or its result expired)"
        )),
    }
}

async fn dead_requeue(
    client: &Client,
    id: Option<String>,
    all: bool,
    json: bool,
) -> Result<(), String> {
    let broker = client.broker();
    let mut requeued = Vec::new();
    if all {
        // Each round requeues what it read, so the dead letter shrinks; a job
        // that dies again meanwhile may be requeued again, which is bounded
        // by the number of rounds.
        for _ in 0..1000 {
            let dead = broker
                .dead_letter()
                .map_err(err)?
                .dead_jobs(REQUEUE_BATCH)
                .await
                .map_err(err)?;
            if dead.is_empty() {
                break;
            }
            let mut moved = 0;
            for r in dead {
                if broker
                    .dead_letter()
                    .map_err(err)?
                    .requeue_dead(&r.id)
                    .await
                    .map_err(err)?
                {
                    requeued.push(r.id.to_string());
                    moved += 1;
                }
            }
            if moved == 0 {
                break;
            }
        }
    } else if let Some(id) = id {
        if !broker
            .dead_letter()
            .map_err(err)?
            .requeue_dead(&JobId::from(id.as_str()))
            .await
            .map_err(err)?
        {
            return Err(format!("no dead job `{id}` (it is not in the dead letter)"));
        }
        requeued.push(id);
    }
    let n = requeued.len();
    print(json, json!({ "requeued": requeued }), || {
        match (all, requeued.first()) {
            (false, Some(id)) => format!("requeued {id}\n"),
            _ => format!("requeued {n} dead jobs\n"),
        }
    })?;
    Ok(())
}

async fn enqueue(client: &Client, args: EnqueueArgs, json: bool) -> Result<(), String> {
    // The payload goes on as written (no trip through a `Value`, which
    // would round big numbers to an f64).
    let payload = RawValue::from_string(args.payload)
        .map_err(|e| format!("--payload is not valid JSON: {e}"))?;
    let mut body: BTreeMap<&str, Box<RawValue>> = BTreeMap::new();
    body.insert("name", raw(&args.name)?);
    body.insert("payload", payload);
    if let Some(p) = args.priority {
        body.insert("priority", raw(&p)?);
    }
    if let Some(r) = args.route {
        body.insert("route", raw(&r)?);
    }
    if let Some(c) = args.countdown {
        body.insert("countdown", raw(&c)?);
    }
    if let Some(e) = args.eta {
        let v = e.parse::<u64>().map_or(Value::String(e), |ms| json!(ms));
        body.insert("eta", raw(&v)?);
    }
    if let Some(r) = args.retries {
        body.insert("retries", raw(&r)?);
    }
    if !args.tags.is_empty() {
        body.insert("tags", raw(&args.tags)?);
    }
    if let Some(m) = args.meta {
        body.insert(
            "meta",
            RawValue::from_string(m).map_err(|e| format!("--meta is not valid JSON: {e}"))?,
        );
    }
    let body = serde_json::to_vec(&body).map_err(err)?;
    let req = EnqueueRequest::from_slice(&body).map_err(|e| {
        // Name the flag rather than the JSON field.
        e.replacen("field `", "--", 1).replacen('`', "", 1)
    })?;
    let job = req.into_job(None).map_err(err)?;
    let id = job.id.to_string();
    let state = if job.eta.is_some_and(|t| t > bananas::job::now_millis()) {
        "scheduled"
    } else {
        "queued"
    };
    client.enqueue(vec![job]).await.map_err(err)?;
    print(json, json!({ "id": id, "state": state }), || {
        format!("{id}\n")
    })?;
    Ok(())
}

async fn schedules_from_api(base: &str, token: Option<&str>, json: bool) -> Result<(), String> {
    let value = api::get_json(base, "/schedules", token).await?;
    print_schedules(json, value)
}

/// The schedules that running schedulers announced in the broker.
async fn schedules_from_broker(client: &Client, json: bool) -> Result<(), String> {
    let states = bananas::scheduler::published_states(client.broker())
        .await
        .map_err(err)?;
    print_schedules(json, http::schedules_json(states))
}

fn print_schedules(json: bool, value: Value) -> Result<(), String> {
    let list = value["schedules"].as_array().cloned().unwrap_or_default();
    // Schedules whose state could not be read: the others are still shown,
    // and these are named on stderr (and in the JSON).
    for s in value["skipped"].as_array().into_iter().flatten() {
        output::stderr_line(&format!(
            "bananas: warning: schedule {:?} skipped: {}",
            s["id"].as_str().unwrap_or("?"),
            s["error"].as_str().unwrap_or("its state cannot be read")
        ));
    }
    print(json, value, || {
        if list.is_empty() {
            return "no schedules (none announced by a running scheduler)\n".to_owned();
        }
        let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        let mut t = Table::new(&[
            "SCHEDULE",
            "CRON",
            "TZ",
            "NEXT RUN",
            "LAST RUN",
            "LAST OUTCOME",
            "LAST ERROR",
        ]);
        for x in &list {
            t.row(vec![
                s(&x["id"]),
                s(&x["cron"]),
                s(&x["tz"]),
                s(&x["next_run"]["at"]),
                s(&x["last_run"]["at"]),
                s(&x["last_outcome"]),
                short(x["last_error"].as_str().unwrap_or("-"), 40),
            ]);
        }
        t.render()
    })
}

async fn serve(client: Client, args: ServeArgs) -> Result<(), String> {
    bananas::app::init_tracing();
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr().map_err(err)?;
    let mut state = ApiState::new(client)
        .token(args.token)
        .body_limit(args.body_limit)
        .allow_new_routes(args.allow_new_routes);
    match bananas::metrics::install() {
        Ok(h) => state = state.metrics(h),
        Err(e) => tracing::warn!(error = %e, "no Prometheus metrics"),
    }
    // Tools (and the tests) read the address from this line. A server goes
    // on serving if no one reads it (stdout closed).
    let _ = output::stdout(&format!("bananas: serving the HTTP API on http://{addr}\n"));
    let stop = CancellationToken::new();
    let signal = {
        let stop = stop.clone();
        async move {
            bananas::signal::shutdown_signal().await;
            stop.cancel();
        }
    };
    tokio::spawn(signal);
    http::serve_listener(state, listener, stop)
        .await
        .map_err(err)
}
