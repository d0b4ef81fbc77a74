//! Finding a job from its id: on the route the caller names (a
//! `JobHandle` knows it), else on the route the id index names
//! (`index.rs`) or, without an entry, on the default route (whose jobs get
//! none), else, when that route does not know the job, on every known
//! route, as without the index.

use std::sync::Arc;

use bananas_core::{JobId, Result, Route};

use crate::{keys::RouteKeys, RedisBroker};

/// Where to look for a job first.
pub(super) struct Located {
    /// The caller's route, or the index's, or the default route.
    pub(super) first: (Route, Arc<RouteKeys>),
    /// Whether the caller named the route: then no other is asked.
    given: bool,
}

impl RedisBroker {
    /// The route to ask first for the job `id`: `route` when the caller
    /// knows it, else the one the id index names (one round trip), else
    /// the default route.
    pub(super) async fn locate(&self, id: &JobId, route: Option<&Route>) -> Result<Located> {
        if let Some(r) = route {
            return Ok(Located {
                first: (r.clone(), self.route_keys(r).await?),
                given: true,
            });
        }
        let first = self.indexed_route(id).await.unwrap_or_default();
        let keys = self.keys_of(&first);
        Ok(Located {
            first: (first, keys),
            given: false,
        })
    }

    /// The routes to ask when the first did not know the job: none when
    /// the caller named the route, else every known route but that one.
    pub(super) async fn fallback(&self, located: &Located) -> Result<Vec<(Route, Arc<RouteKeys>)>> {
        if located.given {
            return Ok(Vec::new());
        }
        let mut all = self.known_routes().await?;
        all.retain(|(r, _)| *r != located.first.0);
        Ok(all)
    }
}
