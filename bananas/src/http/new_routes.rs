//! Whether `POST /jobs` may use a route: a route nobody serves or declares
//! would park its job forever, and every new name grows the broker's route
//! registry for good, so by default only known routes are accepted.

use std::collections::BTreeSet;

use super::{error::ApiError, ApiState};
use crate::job::Route;

/// The routes a server knows without asking the broker: `default`, the
/// routes its tasks declare (periodic ones included) and the routes its own
/// worker serves.
pub(super) fn static_routes(state: &ApiState) -> BTreeSet<Route> {
    let mut routes: BTreeSet<Route> = state.routes.iter().cloned().collect();
    routes.insert(Route::default());
    if let Some(registry) = &state.registry {
        routes.extend(registry.iter().filter_map(|def| Route::new(def.route).ok()));
    }
    routes
}

/// Accepts `route` if new routes are allowed, if it is known without asking
/// the broker, if a live worker serves it, or if the broker has seen it
/// already; otherwise 422, naming the route and how to allow it. A broker
/// without the `Workers` or `Inspect` capability is not asked.
pub(super) async fn check_route(state: &ApiState, route: &Route) -> Result<(), ApiError> {
    if state.allow_new_routes || state.known.contains(route) {
        return Ok(());
    }
    let broker = state.client.broker();
    if let Ok(workers) = broker.workers() {
        let workers = workers.workers().await?;
        if workers
            .iter()
            .any(|w| w.routes.iter().any(|r| r == route.as_str()))
        {
            return Ok(());
        }
    }
    if let Ok(inspect) = broker.inspect() {
        if inspect.routes().await?.contains(route) {
            return Ok(());
        }
    }
    Err(ApiError::unprocessable(format!(
        "unknown route `{route}`: no task declares it, no live worker serves it and the broker \
         has never seen it, so the job would wait until a worker serves it. Start a worker for \
         it (WORKER_ROUTING_KEYS), or allow new routes (BANANAS_HTTP_ALLOW_NEW_ROUTES=1, \
         `bananas serve --allow-new-routes`)"
    )))
}
