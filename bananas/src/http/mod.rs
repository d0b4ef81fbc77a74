//! The HTTP API (the `http` feature): submit jobs, read their state, manage
//! the dead letter, and check health and metrics over HTTP.
//!
//! An app serves it when `BANANAS_HTTP_ADDR` is set; `bananas serve` serves
//! it standalone, without task code. Every endpoint is described in
//! `docs/HTTP.md` and in the OpenAPI document served at `GET /openapi.json`.
//!
//! ```no_run
//! # async fn demo() -> bananas::Result<()> {
//! use bananas::http::{self, ApiState};
//! use tokio_util::sync::CancellationToken;
//!
//! let app = bananas::App::builder().build().await?;
//! let state = ApiState::new(app.client().clone())
//!     .registry(app.registry().clone()) // 422 for unknown tasks and bad arguments
//!     .scheduler(app.scheduler().clone())       // GET /schedules
//!     .token(std::env::var("BANANAS_API_TOKEN").ok());
//! http::serve(state, "127.0.0.1:8080".parse().unwrap(), CancellationToken::new()).await?;
//! # Ok(()) }
//! ```
//!
//! Errors are JSON, `{"error": "…"}`: 400 for an invalid request, 401 for a
//! missing or wrong token, 403 for a state-changing request from a browser
//! on another origin, 404 for an unknown job or path, 413 for a body over
//! the limit, 415 for a `POST` that is not `application/json`, 422 for a
//! task the app does not know, arguments that do not match it or a route
//! nobody knows (unless [`ApiState::allow_new_routes`]), and 503 when the
//! broker does not answer. User input never produces a 500.
//!
//! Cross-site requests cannot change anything, with or without a token:
//! see "Cross-site requests" in `docs/HTTP.md`. Serving on a non-loopback
//! address without a token logs a warning.

mod auth;
mod cross_site;
mod error;
mod extract;
mod jobs;
mod new_routes;
mod openapi;
mod routes;

use std::{collections::BTreeSet, fmt, net::SocketAddr, sync::Arc};

use axum::{extract::DefaultBodyLimit, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use jobs::{
    parse_countdown, parse_eta, rfc3339, EnqueueRequest, JobView, Timestamp, MAX_COUNTDOWN_SECS,
    MAX_RETRIES,
};
pub use openapi::OPENAPI_JSON;
pub use routes::{schedules_json, totals, QueueView, ScheduleView};

use crate::{client::Client, job::Route, scheduler::Scheduler, task::Registry, Error, Result};

/// The default limit of a request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Everything the API serves from: the client, and optionally the app's
/// tasks, its scheduler, a token and the metrics handle.
#[derive(Clone)]
pub struct ApiState {
    client: Client,
    registry: Option<Registry>,
    scheduler: Option<Scheduler>,
    token: Option<String>,
    body_limit: usize,
    metrics: Option<PrometheusHandle>,
    allow_new_routes: bool,
    /// The most jobs `POST /jobs/bulk` touches without `"all": true`.
    bulk_max: usize,
    /// Routes accepted besides `default` and the registry's.
    routes: Vec<Route>,
    /// `default`, `routes` and the registry's routes, gathered by
    /// [`router`].
    known: BTreeSet<Route>,
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState")
            .field("client", &self.client)
            .field("registry", &self.registry.as_ref().map(Registry::len))
            .field("scheduler", &self.scheduler.is_some())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("body_limit", &self.body_limit)
            .field("metrics", &self.metrics.is_some())
            .field("allow_new_routes", &self.allow_new_routes)
            .field("bulk_max", &self.bulk_max)
            .field("routes", &self.routes)
            .finish()
    }
}

impl ApiState {
    /// Serves from `client`'s broker. Without [`ApiState::registry`], any
    /// task name is accepted (what the standalone `bananas serve` does).
    /// Routes are checked either way (see [`ApiState::allow_new_routes`]).
    pub fn new(client: Client) -> Self {
        ApiState {
            client,
            registry: None,
            scheduler: None,
            token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            bulk_max: crate::control::DEFAULT_MAX,
            metrics: None,
            allow_new_routes: false,
            routes: Vec::new(),
            known: BTreeSet::new(),
        }
    }

    /// Validates submitted jobs against these tasks: an unknown name or
    /// arguments that do not match get 422, and omitted options take the
    /// task's defaults.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Answers `GET /schedules` from this scheduler. Without one, the list
    /// comes from what running schedulers announced in the broker
    /// ([`crate::scheduler::published_states`]).
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// Requires `Authorization: Bearer <token>` on every endpoint except
    /// `/health`. `None` (or an empty token) turns auth off.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// Whether `POST /jobs` may submit to a route nobody knows (default
    /// no). Otherwise a job's route must be `default`, declared by one of
    /// the [registry](ApiState::registry)'s tasks, one of
    /// [`ApiState::known_routes`], served by a live worker, or already seen
    /// by the broker; any other route gets 422 naming it. A job on a route
    /// nobody serves waits forever, and each new route stays in the
    /// broker's route registry for good.
    pub fn allow_new_routes(mut self, allow: bool) -> Self {
        self.allow_new_routes = allow;
        self
    }

    /// The most jobs one `POST /jobs/bulk` may select without
    /// `"all": true` (default [`crate::control::DEFAULT_MAX`]); a larger
    /// selection is refused with 400 before anything is done.
    pub fn bulk_max(mut self, max: usize) -> Self {
        self.bulk_max = max;
        self
    }

    /// Accepts these routes as known (an app passes the routes its own
    /// worker serves, which it may not have announced yet).
    pub fn known_routes(mut self, routes: impl IntoIterator<Item = Route>) -> Self {
        self.routes.extend(routes);
        self
    }

    /// The largest request body, in bytes (default [`DEFAULT_BODY_LIMIT`]).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Renders `GET /metrics` from this handle. Without one the API calls
    /// [`crate::metrics::install`] on the first scrape.
    pub fn metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    fn metrics_handle(&self) -> std::result::Result<PrometheusHandle, ApiError> {
        match &self.metrics {
            Some(h) => Ok(h.clone()),
            None => crate::metrics::install().map_err(|e| {
                ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }),
        }
    }
}

/// The `(method, path)` of every endpoint, as the router serves them.
pub fn endpoints() -> Vec<(&'static str, &'static str)> {
    routes::endpoints()
        .into_iter()
        .map(|e| (e.method, e.path))
        .collect()
}

/// The API's router.
pub fn router(mut state: ApiState) -> Router {
    let body_limit = state.body_limit;
    state.known = new_routes::static_routes(&state);
    let state = Arc::new(state);
    let mut router: Router<Arc<ApiState>> = Router::new();
    for e in routes::endpoints() {
        router = router.route(e.path, e.handler);
    }
    router
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        // Runs after the token check: a caller without the token learns
        // nothing from a 403 or 415.
        .layer(axum::middleware::from_fn(cross_site::refuse_cross_site))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

/// Serves the API on `addr` until `stop` is cancelled; in-flight requests
/// finish first.
pub async fn serve(state: ApiState, addr: SocketAddr, stop: CancellationToken) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen {
            what: "the HTTP API",
            addr,
            source,
        })?;
    serve_listener(state, listener, stop).await
}

/// Serves the API on an already bound listener until `stop` is cancelled.
pub async fn serve_listener(
    state: ApiState,
    listener: TcpListener,
    stop: CancellationToken,
) -> Result<()> {
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        what: "the HTTP API",
        addr: ([0, 0, 0, 0], 0).into(),
        source,
    })?;
    if state.token.is_none() && !addr.ip().to_canonical().is_loopback() {
        tracing::warn!(
            %addr,
            "THE HTTP API HAS NO TOKEN and listens on a non-loopback address: anyone who can \
             reach {addr} can submit, cancel, requeue and purge jobs. Set BANANAS_API_TOKEN \
             (`bananas serve --token`), or bind 127.0.0.1"
        );
    }
    tracing::info!(%addr, auth = state.token.is_some(), "serving the HTTP API");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .map_err(|source| Error::Serve {
            what: "the HTTP API",
            addr,
            source,
        })
}
