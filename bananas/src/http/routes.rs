//! The endpoints: one table ([`endpoints`]) that builds the router and that
//! the OpenAPI test checks the document against, and their handlers.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::{header, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{delete, get, post, MethodRouter},
    Json,
};
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    error::ApiError,
    extract::{query_limit, query_params, IdPath, JsonBody, RoutePath},
    jobs::{EnqueueRequest, JobView, Timestamp},
    openapi::OPENAPI_JSON,
    ApiState,
};
use crate::{
    broker::{CancelOutcome, JobFilter, ListState, QueueStats, WorkerInfo, MAX_PAGE},
    control::{Action, Selection},
    job::{JobId, Route},
    scheduler::{ScheduleState, ScheduleStates},
};

type Shared = Arc<ApiState>;

/// How long `/health` waits for the broker.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `/metrics` waits for the queue depths before rendering anyway.
const METRICS_STATS_TIMEOUT: Duration = Duration::from_secs(2);
/// `GET /dead` answers at most this many jobs unless `limit` says otherwise.
const DEAD_DEFAULT_LIMIT: usize = 100;
/// The largest `limit` of `GET /dead`.
const DEAD_MAX_LIMIT: usize = 10_000;

/// One endpoint: its method, its path (in axum's and OpenAPI's `{param}`
/// syntax) and its handler.
pub(crate) struct Endpoint {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) handler: MethodRouter<Shared>,
}

/// Every endpoint of the API.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    fn e(method: &'static str, path: &'static str, handler: MethodRouter<Shared>) -> Endpoint {
        Endpoint {
            method,
            path,
            handler,
        }
    }
    vec![
        e("POST", "/jobs", post(enqueue)),
        e("GET", "/jobs", get(list_jobs)),
        e("POST", "/jobs/bulk", post(bulk)),
        e("GET", "/jobs/{id}", get(job)),
        e("DELETE", "/jobs/{id}", delete(cancel)),
        e("GET", "/queues", get(queues)),
        e("POST", "/queues/{route}/pause", post(pause)),
        e("POST", "/queues/{route}/resume", post(resume)),
        e("GET", "/queues/{route}/history", get(history)),
        e("GET", "/workers", get(workers)),
        e("GET", "/dead", get(dead_list)),
        e("DELETE", "/dead", delete(dead_purge)),
        e("POST", "/dead/{id}/requeue", post(dead_requeue)),
        e("GET", "/schedules", get(schedules)),
        e("GET", "/health", get(health)),
        e("GET", "/metrics", get(metrics)),
        e("GET", "/openapi.json", get(openapi)),
    ]
}

async fn enqueue(
    State(state): State<Shared>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let req = EnqueueRequest::from_slice(&body).map_err(ApiError::bad_request)?;
    let job = req.into_job(state.registry.as_ref())?;
    super::new_routes::check_route(&state, &job.route).await?;
    let id = job.id.clone();
    let delayed = job.eta.is_some_and(|eta| eta > crate::job::now_millis());
    // `?`: the name is the client's, and Debug escapes line breaks and
    // control characters, so it cannot forge a log line.
    tracing::info!(job_id = ?id.as_str(), task = ?job.task, route = ?job.route.as_str(), "job submitted over HTTP");
    state.client.enqueue(vec![job]).await?;
    let body = json!({
        "id": id.as_str(),
        "state": if delayed { "scheduled" } else { "queued" },
    });
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/jobs/{id}"))],
        Json(body),
    )
        .into_response())
}

/// `GET /jobs` answers at most this many jobs unless `limit` says otherwise.
const LIST_DEFAULT_LIMIT: usize = 50;

/// A page of jobs in one state.
#[derive(Debug, Serialize)]
struct JobsPage {
    jobs: Vec<JobView>,
    /// The `cursor` of the next page; `null` at the end.
    next: Option<String>,
}

/// Reads a listing's filter, cursor and page size from a query string.
pub(crate) fn list_query(
    query: Option<&str>,
) -> Result<(JobFilter, Option<String>, usize), ApiError> {
    let mut p = query_params(
        query,
        &["state", "route", "task", "text", "tag", "cursor", "limit"],
    )?;
    let state = p
        .remove("state")
        .ok_or_else(|| {
            ApiError::bad_request(
                "query parameter `state` is required: one of queued, scheduled, retrying, active, \
                 succeeded, dead, cancelled",
            )
        })?
        .parse::<ListState>()?;
    let mut filter = JobFilter::state(state);
    if let Some(r) = p.remove("route") {
        filter.route = Some(
            Route::new(r.as_str())
                .map_err(|e| ApiError::bad_request(format!("query parameter `route`: {e}")))?,
        );
    }
    filter.task = p.remove("task").filter(|t| !t.is_empty());
    filter.text = p.remove("text").filter(|t| !t.is_empty());
    filter.tag = p.remove("tag").filter(|t| !t.is_empty());
    let limit = match p.remove("limit") {
        None => LIST_DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter `limit`=`{}`: expected an integer from 1 to {MAX_PAGE}",
                    v.escape_debug()
                ))
            })?,
    };
    Ok((filter, p.remove("cursor"), limit))
}

/// Jobs in one state, newest first, a page at a time.
async fn list_jobs(State(state): State<Shared>, uri: Uri) -> Result<Json<JobsPage>, ApiError> {
    let (filter, cursor, limit) = list_query(uri.query())?;
    let page = state
        .client
        .broker()
        .browse()?
        .list_jobs(&filter, cursor.as_deref(), limit)
        .await?;
    Ok(Json(JobsPage {
        jobs: page.jobs.into_iter().map(JobView::from).collect(),
        next: page.next,
    }))
}

/// The body of `POST /jobs/bulk`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkRequest {
    action: String,
    #[serde(default)]
    ids: Option<Vec<String>>,
    #[serde(default)]
    filter: Option<FilterRequest>,
    #[serde(default)]
    all: bool,
}

/// A filter in a request body: `GET /jobs`'s query parameters.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterRequest {
    state: String,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tag: Option<String>,
}

/// Run now, retry, cancel or delete jobs by id or by filter.
async fn bulk(
    State(state): State<Shared>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let req: BulkRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    let action: Action = req.action.parse()?;
    let selection = match (req.ids, req.filter) {
        (Some(ids), None) => Selection::Ids(
            ids.into_iter()
                .map(|id| (JobId::from(id.as_str()), None))
                .collect(),
        ),
        (None, Some(f)) => {
            let mut filter = JobFilter::state(f.state.parse::<ListState>()?);
            if let Some(r) = f.route {
                filter.route = Some(
                    Route::new(r.as_str())
                        .map_err(|e| ApiError::bad_request(format!("`filter.route`: {e}")))?,
                );
            }
            filter.task = f.task.filter(|t| !t.is_empty());
            filter.text = f.text.filter(|t| !t.is_empty());
            filter.tag = f.tag.filter(|t| !t.is_empty());
            Selection::Filter(filter)
        }
        _ => {
            return Err(ApiError::bad_request(
                "give either `ids` (a list of job ids) or `filter` (`state`, and optionally \
                 `route`, `task`, `text`)",
            ))
        }
    };
    let max = (!req.all).then_some(state.bulk_max);
    let touched = crate::control::apply(state.client.broker(), action, selection, max).await?;
    tracing::info!(action = action.as_str(), touched, "bulk action over HTTP");
    Ok(Json(
        json!({ "action": action.as_str(), "touched": touched }),
    ))
}

async fn job(State(state): State<Shared>, IdPath(id): IdPath) -> Result<Json<JobView>, ApiError> {
    match state.client.job(&JobId::from(id.as_str())).await? {
        Some(r) => Ok(Json(r.into())),
        None => Err(ApiError::not_found(format!(
            "job `{id}` not found (it never existed, or its result expired)"
        ))),
    }
}

async fn cancel(State(state): State<Shared>, IdPath(id): IdPath) -> Result<Json<Value>, ApiError> {
    match state.client.cancel(&JobId::from(id.as_str())).await? {
        CancelOutcome::Cancelled => {
            tracing::info!(job_id = ?id, "job cancelled over HTTP");
            Ok(Json(json!({ "id": id, "cancelled": true })))
        }
        CancelOutcome::Running => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "job `{id}` is running (or prefetched by a worker): a leased job cannot be cancelled"
            ),
        )),
        CancelOutcome::Finished => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job `{id}` already finished"),
        )),
        CancelOutcome::NotFound => Err(ApiError::not_found(format!(
            "job `{id}` not found (it never existed, or its result expired)"
        ))),
    }
}

/// The answer of `GET /queues`.
#[derive(Debug, Serialize)]
struct QueuesView {
    queues: Vec<QueueView>,
    totals: QueueView,
}

/// A route's stats as the API and the CLI show them: with its latency
/// worked out.
#[derive(Debug, Serialize)]
pub struct QueueView {
    #[serde(flatten)]
    stats: QueueStats,
    /// How long the oldest queued job has waited (ms).
    latency_ms: u64,
}

impl QueueView {
    /// `stats` seen at `now` (ms since the epoch).
    pub fn new(stats: QueueStats, now: crate::job::Millis) -> Self {
        let latency_ms = stats.latency(now).as_millis() as u64;
        QueueView { stats, latency_ms }
    }
}

/// Adds up every route's depths (the total's `route` is `*`).
pub fn totals(queues: &[QueueStats]) -> QueueStats {
    queues.iter().fold(
        QueueStats {
            route: "*".to_owned(),
            ..QueueStats::default()
        },
        |mut t, q| {
            t.high += q.high;
            t.normal += q.normal;
            t.low += q.low;
            t.scheduled += q.scheduled;
            t.active += q.active;
            t.dead += q.dead;
            t.oldest_due = match (t.oldest_due, q.oldest_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            t
        },
    )
}

async fn queues(State(state): State<Shared>) -> Result<Json<QueuesView>, ApiError> {
    let mut queues = state.client.broker().inspect()?.stats().await?;
    queues.sort_by(|a, b| a.route.cmp(&b.route));
    crate::metrics::record_queue_stats(&queues);
    let totals = totals(&queues);
    let now = crate::job::now_millis();
    Ok(Json(QueuesView {
        queues: queues.into_iter().map(|q| QueueView::new(q, now)).collect(),
        totals: QueueView::new(totals, now),
    }))
}

async fn workers(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    let workers: Vec<WorkerInfo> = state.client.broker().workers()?.workers().await?;
    Ok(Json(json!({ "workers": workers })))
}

async fn dead_list(State(state): State<Shared>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let limit = query_limit(uri.query(), DEAD_DEFAULT_LIMIT, DEAD_MAX_LIMIT)?;
    let jobs: Vec<JobView> = state
        .client
        .broker()
        .dead_letter()?
        .dead_jobs(limit)
        .await?
        .into_iter()
        .map(JobView::from)
        .collect();
    Ok(Json(json!({ "jobs": jobs })))
}

async fn dead_requeue(
    State(state): State<Shared>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    if state
        .client
        .broker()
        .dead_letter()?
        .requeue_dead(&JobId::from(id.as_str()))
        .await?
    {
        tracing::info!(job_id = ?id, "dead job requeued over HTTP");
        Ok(Json(json!({ "id": id, "requeued": true })))
    } else {
        Err(ApiError::not_found(format!(
            "no dead job `{id}` (it is not in the dead letter)"
        )))
    }
}

/// Pauses a route (`paused` says whether it was running until now). The
/// route must be one the server knows, as for `POST /jobs`.
async fn pause(
    State(state): State<Shared>,
    RoutePath(route): RoutePath,
) -> Result<Json<Value>, ApiError> {
    super::new_routes::check_route(&state, &route).await?;
    let changed = state.client.broker().pause()?.pause(&route).await?;
    tracing::info!(route = ?route.as_str(), changed, "route paused over HTTP");
    Ok(Json(
        json!({ "route": route.as_str(), "paused": true, "changed": changed }),
    ))
}

/// Resumes a paused route.
async fn resume(
    State(state): State<Shared>,
    RoutePath(route): RoutePath,
) -> Result<Json<Value>, ApiError> {
    let changed = state.client.broker().pause()?.resume(&route).await?;
    tracing::info!(route = ?route.as_str(), changed, "route resumed over HTTP");
    Ok(Json(
        json!({ "route": route.as_str(), "paused": false, "changed": changed }),
    ))
}

/// A route's processed and failed counts per minute, for the last day.
async fn history(
    State(state): State<Shared>,
    RoutePath(route): RoutePath,
) -> Result<Json<Value>, ApiError> {
    let minutes = state.client.broker().history()?.history(&route).await?;
    Ok(Json(json!({ "route": route.as_str(), "minutes": minutes })))
}

async fn dead_purge(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    let n = state.client.broker().dead_letter()?.purge_dead().await?;
    tracing::info!(purged = n, "dead letter purged over HTTP");
    Ok(Json(json!({ "purged": n })))
}

/// One schedule as `GET /schedules` (and `bananas schedules --json`) shows it.
#[derive(Debug, Serialize)]
pub struct ScheduleView {
    id: String,
    cron: String,
    tz: String,
    next_run: Option<Timestamp>,
    last_run: Option<Timestamp>,
    last_job_id: Option<String>,
    last_outcome: Option<crate::job::JobState>,
    last_error: Option<String>,
}

impl From<ScheduleState> for ScheduleView {
    fn from(s: ScheduleState) -> Self {
        let ts = |t: chrono::DateTime<chrono::Utc>| {
            u64::try_from(t.timestamp_millis())
                .ok()
                .map(Timestamp::from_millis)
        };
        ScheduleView {
            id: s.id,
            cron: s.cron,
            tz: s.tz,
            next_run: s.next_run.and_then(ts),
            last_run: s.last_run.and_then(ts),
            last_job_id: s.last_job_id.map(|id| id.to_string()),
            last_outcome: s.last_outcome,
            last_error: s.last_error,
        }
    }
}

/// The answer of `GET /schedules` (and `bananas schedules --json`):
/// `{"schedules": [...]}`, plus `"skipped": [{"id", "error"}]` when some
/// schedule's state could not be read.
pub fn schedules_json(states: ScheduleStates) -> Value {
    let schedules: Vec<ScheduleView> = states.states.into_iter().map(Into::into).collect();
    let mut v = json!({ "schedules": schedules });
    if !states.skipped.is_empty() {
        v["skipped"] = json!(states.skipped);
    }
    v
}

async fn schedules(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    let states = match &state.scheduler {
        Some(s) => s.states().await?,
        None => crate::scheduler::published_states(state.client.broker()).await?,
    };
    Ok(Json(schedules_json(states)))
}

async fn health(State(state): State<Shared>) -> Response {
    match tokio::time::timeout(HEALTH_TIMEOUT, state.client.broker().ping()).await {
        Ok(Ok(())) => Json(json!({ "status": "ok" })).into_response(),
        Ok(Err(e)) => unavailable(e.to_string()),
        Err(_) => unavailable(format!(
            "the broker did not answer within {HEALTH_TIMEOUT:?}"
        )),
    }
}

fn unavailable(error: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "unavailable", "error": error })),
    )
        .into_response()
}

async fn metrics(State(state): State<Shared>) -> Result<Response, ApiError> {
    let handle = state.metrics_handle()?;
    let broker = state.client.broker().clone();
    match tokio::time::timeout(
        METRICS_STATS_TIMEOUT,
        crate::metrics::refresh_queue_depth(&broker),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = ?e.to_string(), "cannot read queue depths for /metrics")
        }
        Err(_) => tracing::warn!("reading queue depths for /metrics timed out"),
    }
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&handle),
    )
        .into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// Answers requests to a path the API does not have.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no such endpoint `{}`: see GET /openapi.json",
        uri.path()
    ))
}

/// Answers requests with a method the path does not take.
pub(crate) async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "`{method} {}` is not allowed: see GET /openapi.json",
            uri.path()
        ),
    )
}
