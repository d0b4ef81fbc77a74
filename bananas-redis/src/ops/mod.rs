//! The broker's operations, one module per operation: each declares its
//! script (`lua/ops/<name>.lua`), a [`Call`] type with that script's named
//! keys and arguments, and decodes the script's reply into a type of its
//! own, once. Every script runs through [`RedisBroker::call`].
//!
//! | module | what |
//! |---|---|
//! | `enqueue` | new jobs into their queue or schedule ([`Broker::enqueue`]) |
//! | `fetch` | leasing ready jobs, waiting for work without polling |
//! | `ack` | settling attempts: results, retries, the dead letter |
//! | `release` | leased jobs handed back unrun |
//! | `leases` | extending leases; lease tokens |
//! | `recover` | expired leases back to their queue, or dead |
//! | `promote` | due scheduled jobs to their queue (a tool's call) |
//! | `inspect` | a job by id, waiting for it, queue depths ([`Inspect`](bananas_core::broker::Inspect)) |
//! | `dead` | listing, requeueing, purging dead jobs |
//! | `history` | per-minute processed and failed counts ([`History`](bananas_core::broker::History)) |
//! | `browse` | listing and searching jobs by state, page by page ([`Browse`](bananas_core::broker::Browse)) |
//! | `cancel`, `manage`, `pause`, `progress`, `workers` | the capabilities of those names |
//! | `ticks`, `schedules` | schedule ticks and announcements |
//! | `index`, `lookup` | finding a job's route from its id |

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use bananas_core::{broker::FetchRequest, Ack, Broker, Job, JobRef, Result, Route};
use futures::future::try_join_all;

use crate::{
    conn::broker_err,
    keys::RouteKeys,
    script::{Call, Script},
    RedisBroker,
};

mod ack;
mod browse;
mod cancel;
mod dead;
mod enqueue;
mod fetch;
mod history;
mod index;
mod inspect;
mod leases;
mod lookup;
mod manage;
mod pause;
mod progress;
mod promote;
mod recover;
mod release;
mod schedules;
mod ticks;
mod workers;

pub(crate) use index::IdIndex;
pub(crate) use leases::LeaseTokens;

/// Every script, by the name its module gives it (the order does not
/// matter).
pub(crate) const SCRIPTS: &[&Script] = &[
    &ack::SCRIPT,
    &browse::SEEK,
    &cancel::SCRIPT,
    &dead::PURGE,
    &dead::REQUEUE,
    &enqueue::SCRIPT,
    &fetch::BURY,
    &fetch::SCRIPT,
    &inspect::JOB_INFO,
    &inspect::STATS,
    &inspect::WAIT_CHECK,
    &leases::EXTEND,
    &manage::SCRIPT,
    &pause::SCRIPT,
    &progress::SCRIPT,
    &promote::SCRIPT,
    &recover::SCRIPT,
    &release::SCRIPT,
    &ticks::CLAIM,
    &workers::DEREGISTER,
    &ticks::CONFIRM,
    &ticks::ENQUEUE,
    &workers::HEARTBEAT,
];

/// A duration in whole milliseconds, as scripts take it.
pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// Groups items by route, keeping the order of first appearance. Routes
/// are borrowed and cloned once per group; an item on the same route as the
/// one before it (the usual case: one route) costs a string compare, not a
/// hash.
fn by_route<'r, T>(items: impl IntoIterator<Item = (&'r Route, T)>) -> Vec<(Route, Vec<T>)> {
    let mut index: HashMap<&'r Route, usize> = HashMap::new();
    let mut groups: Vec<(Route, Vec<T>)> = Vec::new();
    let mut last: Option<(&'r Route, usize)> = None;
    for (route, item) in items {
        let i = match last {
            Some((r, i)) if r == route => i,
            _ => match index.get(route) {
                Some(&i) => i,
                None => {
                    index.insert(route, groups.len());
                    groups.push((route.clone(), Vec::new()));
                    groups.len() - 1
                }
            },
        };
        groups[i].1.push(item);
        last = Some((route, i));
    }
    groups
}

impl RedisBroker {
    /// Runs one script call and decodes its reply: the one path every
    /// script takes (function library, EVALSHA fallback, reload of a lost
    /// library, errors with their `redis::RedisError` source).
    pub(crate) async fn call<C: Call>(&self, call: &C) -> Result<C::Reply> {
        self.inner.scripts.call(&self.inner.conn, call).await
    }

    /// Runs `f` on every route at once; the results in route order.
    async fn route_calls<T, F, Fut>(
        &self,
        routes: &[(Route, Arc<RouteKeys>)],
        f: F,
    ) -> Result<Vec<T>>
    where
        F: Fn(Route, Arc<RouteKeys>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        try_join_all(routes.iter().map(|(r, k)| f(r.clone(), k.clone()))).await
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn enqueue(&self, jobs: Vec<Job>) -> Result<usize> {
        self.enqueue_jobs(jobs).await
    }

    async fn fetch(&self, req: &FetchRequest) -> Result<Vec<Job>> {
        self.fetch_jobs(req).await
    }

    async fn ack(&self, acks: &[Ack]) -> Result<()> {
        self.settle_acks(acks).await
    }

    async fn release(&self, jobs: &[JobRef]) -> Result<()> {
        self.release_jobs(jobs).await
    }

    async fn extend_leases(&self, jobs: &[JobRef], lease: Duration) -> Result<()> {
        self.extend(jobs, lease).await
    }

    async fn recover_expired(&self, routes: &[Route]) -> Result<usize> {
        self.recover(routes).await
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.inner.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::Scripts;

    #[test]
    fn every_script_expands_into_one_library() {
        // Panics on an unknown include or a name used twice.
        let _ = Scripts::new(SCRIPTS);
    }

    #[test]
    fn every_script_names_its_keys_and_argv_in_a_header() {
        for s in SCRIPTS {
            let head: String = s
                .source
                .lines()
                .take_while(|l| l.starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                head.starts_with(&format!("-- {}.lua:", s.name)),
                "{}: the header opens with the script's name",
                s.name
            );
            assert!(head.contains("KEYS[1]"), "{}: KEYS in the header", s.name);
            assert!(head.contains("ARGV"), "{}: ARGV in the header", s.name);
            assert!(
                !s.source.contains("KEYS[1] .."),
                "{}: no key is built inside a script",
                s.name
            );
        }
    }

    #[test]
    fn groups_keep_the_order_of_first_appearance() {
        let (a, b) = (Route::new("a").unwrap(), Route::new("b").unwrap());
        let groups = by_route([(&a, 1), (&b, 2), (&a, 3), (&a, 4), (&b, 5)]);
        assert_eq!(groups, vec![(a, vec![1, 3, 4]), (b, vec![2, 5])]);
    }
}
