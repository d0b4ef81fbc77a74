//! [`DeadLetter`]: listing dead jobs (plain reads: the index, then the
//! records), requeueing one (`requeue_dead.lua`) and purging them
//! (`purge_dead.lua`). The ids come from `{P:R}:dead` before a script
//! runs, so each script can declare the records it touches.

use async_trait::async_trait;
use bananas_core::{
    broker::DeadLetter, Error, JobId, JobRecord, JobState, Priority, Result, Route,
};
use redis::{Cmd, Value};

use crate::{
    codec,
    conn::broker_err,
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::{int, text},
    RedisBroker,
};

pub(crate) const REQUEUE: Script = Script {
    name: "requeue_dead",
    memory: Memory::Adds,
    source: include_str!("../../lua/ops/requeue_dead.lua"),
};

pub(crate) const PURGE: Script = Script {
    name: "purge_dead",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/purge_dead.lua"),
};

/// Dead jobs deleted per `purge_dead.lua` call.
const PURGE_BATCH: usize = 1000;

/// How often a requeue reads a record again that changed under it.
const REQUEUE_TRIES: usize = 5;

/// One call of `requeue_dead.lua`.
struct RequeueCall<'a> {
    keys: &'a RouteKeys,
    id: &'a JobId,
    /// The record as read (empty if there was none).
    record: &'a [u8],
    /// The spec to requeue, and its priority (`None`: the record holds
    /// none).
    spec: Option<(String, Priority)>,
    result: String,
}

/// What `requeue_dead.lua` did.
#[derive(Debug, PartialEq, Eq)]
enum Requeue {
    /// Back in its queue.
    Done,
    /// No dead job by that id on the route (or nothing to requeue).
    NotDead,
    /// The record is not the one read: read it again.
    Changed,
}

impl Call for RequeueCall<'_> {
    const SCRIPT: &'static Script = &REQUEUE;
    type Reply = Requeue;

    fn keys(&self) -> Vec<&str> {
        let k = self.keys;
        let priority = self.spec.as_ref().map_or(Priority::Normal, |(_, p)| *p);
        vec![
            &k.dead,
            &k.jobs,
            &k.meta,
            k.queue(priority),
            &k.wake,
            &self.result,
        ]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.id.as_str())
            .arg(self.record)
            .arg(self.spec.as_ref().map_or("", |(s, _)| s.as_str()));
    }

    fn decode(&self, reply: Value) -> Result<Requeue> {
        match text(&reply).as_str() {
            "requeued" => Ok(Requeue::Done),
            "not_dead" => Ok(Requeue::NotDead),
            "changed" => Ok(Requeue::Changed),
            other => Err(Error::Corrupt(format!(
                "redis: script `requeue_dead` answered {other:?}"
            ))),
        }
    }
}

/// One call of `purge_dead.lua`.
struct Purge<'a> {
    keys: &'a RouteKeys,
    ids: &'a [String],
    results: Vec<String>,
}

impl Call for Purge<'_> {
    const SCRIPT: &'static Script = &PURGE;
    /// How many records were deleted.
    type Reply = usize;

    fn keys(&self) -> Vec<&str> {
        let mut keys = vec![self.keys.dead.as_str()];
        keys.extend(self.results.iter().map(String::as_str));
        keys
    }

    fn args(&self, c: &mut Cmd) {
        for id in self.ids {
            c.arg(id);
        }
    }

    fn decode(&self, reply: Value) -> Result<usize> {
        Ok(int(&reply)?.max(0) as usize)
    }
}

impl RedisBroker {
    /// Up to `limit` of the route's dead jobs, newest first, with the time
    /// each died. Two reads: the index, then the records (an entry whose
    /// record expired meanwhile is skipped).
    async fn dead_on(
        &self,
        route: &Route,
        keys: &RouteKeys,
        limit: usize,
    ) -> Result<Vec<(f64, JobRecord)>> {
        let mut conn = self.inner.conn.clone();
        let entries: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
            .arg(&keys.dead)
            .arg(0)
            .arg(limit.saturating_sub(1))
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(
                entries
                    .iter()
                    .map(|(id, _)| keys.result(id))
                    .collect::<Vec<_>>(),
            )
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        Ok(entries
            .into_iter()
            .zip(records)
            .filter_map(|((id, died), rec)| Some((died, codec::decode_record(&id, route, &rec?))))
            // An entry whose record expired is left until `trim_dead` runs;
            // meanwhile the id may have run again and succeeded.
            .filter(|(_, rec)| rec.state == JobState::Dead)
            .collect())
    }

    /// Requeues the dead job `id` if `keys`' route holds one.
    async fn requeue_on(&self, id: &JobId, keys: &RouteKeys) -> Result<bool> {
        let mut conn = self.inner.conn.clone();
        for _ in 0..REQUEUE_TRIES {
            let (died, record): (Option<f64>, Option<Vec<u8>>) = redis::pipe()
                .cmd("ZSCORE")
                .arg(&keys.dead)
                .arg(id.as_str())
                .cmd("GET")
                .arg(keys.result(id.as_str()))
                .query_async(&mut conn)
                .await
                .map_err(broker_err)?;
            if died.is_none() {
                return Ok(false);
            }
            let record = record.unwrap_or_default();
            let call = RequeueCall {
                keys,
                id,
                spec: codec::requeue_spec(&record),
                record: &record,
                result: keys.result(id.as_str()),
            };
            match self.call(&call).await? {
                Requeue::Done => return Ok(true),
                Requeue::NotDead => return Ok(false),
                Requeue::Changed => continue,
            }
        }
        Err(Error::backend_msg(format!(
            "redis: the dead record of job `{id}` kept changing while it was being requeued"
        )))
    }
}

#[async_trait]
impl DeadLetter for RedisBroker {
    async fn dead_jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let routes = self.known_routes().await?;
        let lists = self
            .route_calls(&routes, |route, keys| async move {
                self.dead_on(&route, &keys, limit).await
            })
            .await?;
        let mut all: Vec<(f64, JobRecord)> = lists.into_iter().flatten().collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        all.truncate(limit);
        Ok(all.into_iter().map(|(_, r)| r).collect())
    }

    async fn requeue_dead(&self, id: &JobId) -> Result<bool> {
        let located = self.locate(id, None).await?;
        let mut found = None;
        let (route, keys) = &located.first;
        if self.requeue_on(id, keys).await? {
            found = Some(route.clone());
        }
        if found.is_none() {
            for (route, keys) in self.fallback(&located).await? {
                if self.requeue_on(id, &keys).await? {
                    found = Some(route);
                    break;
                }
            }
        }
        let Some(route) = found else { return Ok(false) };
        // The job is live again, maybe longer than its index entry lasts.
        self.index_ids(&route, std::iter::once(id.as_str())).await;
        Ok(true)
    }

    async fn purge_dead(&self) -> Result<usize> {
        let mut deleted = 0;
        for (_, keys) in self.known_routes().await? {
            let mut conn = self.inner.conn.clone();
            loop {
                let ids: Vec<String> = redis::cmd("ZRANGE")
                    .arg(&keys.dead)
                    .arg(0)
                    .arg(PURGE_BATCH - 1)
                    .query_async(&mut conn)
                    .await
                    .map_err(broker_err)?;
                if ids.is_empty() {
                    break;
                }
                deleted += self
                    .call(&Purge {
                        keys: &keys,
                        results: ids.iter().map(|id| keys.result(id)).collect(),
                        ids: &ids,
                    })
                    .await?;
                if ids.len() < PURGE_BATCH {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}
