//! Enqueue: new jobs into their route's queue or schedule (`enqueue.lua`),
//! and into the id index in the same request.

use bananas_core::{
    job::{now_millis, Extra, Millis},
    Job, Result,
};
use futures::future::try_join_all;
use redis::{Cmd, Value};

use super::{by_route, ms};
use crate::{
    codec,
    conn::broker_err,
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::int,
    RedisBroker,
};

pub(crate) const SCRIPT: Script = Script {
    name: "enqueue",
    memory: Memory::Adds,
    source: include_str!("../../lua/ops/enqueue.lua"),
};

/// Jobs per enqueue script call; bigger batches are split and pipelined.
const ENQUEUE_CHUNK: usize = 5000;

/// Bytes of job data (ids and specs) per enqueue script call: a script
/// blocks Redis for its whole run, so a batch of large jobs is split even
/// when it has fewer than [`ENQUEUE_CHUNK`] jobs. A job larger than this
/// goes in a call of its own.
const ENQUEUE_CHUNK_BYTES: usize = 4 << 20;

/// Splits `items` into runs of at most [`ENQUEUE_CHUNK`] items and about
/// [`ENQUEUE_CHUNK_BYTES`] bytes (`size` of each), never empty.
fn enqueue_chunks<T>(items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start && (i - start == ENQUEUE_CHUNK || bytes + n > ENQUEUE_CHUNK_BYTES) {
            chunks.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

/// A job as `enqueue.lua` takes it.
pub(super) struct NewJob<'a> {
    pub(super) id: &'a str,
    /// When it may run (0: now).
    pub(super) due: Millis,
    pub(super) spec: String,
}

/// One call of `enqueue.lua`: jobs of one route.
struct Enqueue<'a> {
    keys: &'a RouteKeys,
    now: Millis,
    jobs: &'a [NewJob<'a>],
    /// `{P:R}:r:<id>` of each job: a kept result makes its id taken.
    results: Vec<String>,
}

impl<'a> Enqueue<'a> {
    fn new(keys: &'a RouteKeys, now: Millis, jobs: &'a [NewJob<'a>]) -> Self {
        Enqueue {
            keys,
            now,
            jobs,
            results: jobs.iter().map(|j| keys.result(j.id)).collect(),
        }
    }
}

impl Call for Enqueue<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    /// How many jobs were new.
    type Reply = usize;

    fn keys(&self) -> Vec<&str> {
        let k = self.keys;
        let mut keys = Vec::with_capacity(6 + self.results.len());
        keys.extend([
            k.jobs.as_str(),
            &k.q_high,
            &k.q_normal,
            &k.q_low,
            &k.sched,
            &k.wake,
        ]);
        keys.extend(self.results.iter().map(String::as_str));
        keys
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.now);
        for j in self.jobs {
            c.arg(j.id).arg(j.due).arg(j.spec.as_str());
        }
    }

    fn decode(&self, reply: Value) -> Result<usize> {
        Ok(int(&reply)?.max(0) as usize)
    }
}

impl RedisBroker {
    /// [`Broker::enqueue`](bananas_core::Broker::enqueue): one script call
    /// per route and chunk, run concurrently, each with its id index write
    /// beside it.
    pub(super) async fn enqueue_jobs(&self, jobs: Vec<Job>) -> Result<usize> {
        let now = now_millis();
        let mut encoded = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let new = NewJob {
                id: job.id.as_str(),
                due: job.eta.unwrap_or(0),
                spec: codec::encode_spec(job)?,
            };
            encoded.push((&job.route, new));
        }
        self.write_extras(&jobs, now).await?;
        let groups = by_route(encoded);
        let mut calls = Vec::new();
        for (route, batch) in &groups {
            let keys = self.route_keys(route).await?;
            for chunk in enqueue_chunks(batch, |j| j.id.len() + j.spec.len()) {
                let keys = keys.clone();
                calls.push(async move {
                    let call = Enqueue::new(&keys, now, chunk);
                    let index = self.index_write(route, chunk.iter().map(|j| j.id));
                    let (added, failed) = self
                        .inner
                        .scripts
                        .call_beside(&self.inner.conn, &call, &index.cmds)
                        .await;
                    self.index_failed(&index, route, &failed);
                    added
                });
            }
        }
        Ok(try_join_all(calls).await?.into_iter().sum())
    }
}

impl RedisBroker {
    /// Stores the tags and metadata of the jobs that have some, before the
    /// jobs themselves, so a job is never seen without them. Each lives as
    /// long as its job may wait (its delay) plus the longer of the result
    /// and failure TTLs plus a day: the jobs that stay queued longer than
    /// that are shown without them. `NX`: a repeated enqueue of the same
    /// id keeps the first job's.
    async fn write_extras(&self, jobs: &[Job], now: Millis) -> Result<()> {
        let mut pipe = redis::pipe();
        let cfg = &self.inner.cfg;
        let keep = ms(cfg.result_ttl.max(cfg.failure_ttl)) + 24 * 3_600_000;
        let mut any = false;
        for job in jobs {
            let Some(extra) = job.extra.as_deref().filter(|x| !x.is_empty()) else {
                continue;
            };
            extra.check()?;
            let keys = self.route_keys(&job.route).await?;
            let ttl = job.eta.unwrap_or(now).saturating_sub(now) + keep;
            pipe.cmd("SET")
                .arg(keys.extra(job.id.as_str()))
                .arg(serde_json::to_string(extra)?)
                .arg("PX")
                .arg(ttl)
                .arg("NX")
                .ignore();
            any = true;
        }
        if any {
            let mut conn = self.inner.conn.clone();
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(broker_err)?;
        }
        Ok(())
    }

    /// The tags and metadata of jobs of one route, in the order of `ids`.
    pub(super) async fn read_extras(
        &self,
        keys: &RouteKeys,
        ids: &[&str],
    ) -> Result<Vec<Option<Box<Extra>>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.inner.conn.clone();
        let raw: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(ids.iter().map(|id| keys.extra(id)).collect::<Vec<_>>())
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        Ok(raw
            .into_iter()
            .map(|r| {
                r.and_then(|b| serde_json::from_slice(&b).ok())
                    .map(Box::new)
            })
            .collect())
    }
}

/// The keys `include/add_jobs.lua` needs to add one job whose result key
/// is `result`, in the order the scripts that include it declare them
/// (`enqueue_tick.lua` after its own key).
pub(super) fn add_job_keys<'k>(keys: &'k RouteKeys, result: &'k str) -> [&'k str; 7] {
    [
        &keys.jobs,
        &keys.q_high,
        &keys.q_normal,
        &keys.q_low,
        &keys.sched,
        &keys.wake,
        result,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(chunks: &[&[usize]]) -> Vec<usize> {
        chunks.iter().map(|c| c.len()).collect()
    }

    #[test]
    fn enqueue_chunks_bound_jobs_and_bytes() {
        let none: [usize; 0] = [];
        assert!(enqueue_chunks(&none, |n| *n).is_empty());

        let small = vec![10usize; ENQUEUE_CHUNK * 2 + 1];
        let chunks = enqueue_chunks(&small, |n| *n);
        assert_eq!(lens(&chunks), [ENQUEUE_CHUNK, ENQUEUE_CHUNK, 1]);

        // 100 KB jobs: about 40 per 4 MiB call, every job in exactly one call.
        let big = vec![100_000usize; 100];
        let chunks = enqueue_chunks(&big, |n| *n);
        assert!(chunks
            .iter()
            .all(|c| c.iter().sum::<usize>() <= ENQUEUE_CHUNK_BYTES));
        assert_eq!(lens(&chunks), [41, 41, 18]);

        // A job over the limit still goes, alone.
        let huge = [1usize, ENQUEUE_CHUNK_BYTES + 1, 1];
        assert_eq!(lens(&enqueue_chunks(&huge, |n| *n)), [1, 1, 1]);
    }

    #[test]
    fn an_enqueue_declares_each_jobs_result_key() {
        let keys = RouteKeys::new("p", "r");
        let jobs = [
            NewJob {
                id: "a",
                due: 0,
                spec: "s".into(),
            },
            NewJob {
                id: "b",
                due: 5,
                spec: "t".into(),
            },
        ];
        let call = Enqueue::new(&keys, 1, &jobs);
        assert_eq!(
            call.keys(),
            [
                "{p:r}:jobs",
                "{p:r}:q:h",
                "{p:r}:q:n",
                "{p:r}:q:l",
                "{p:r}:sched",
                "{p:r}:wake",
                "{p:r}:r:a",
                "{p:r}:r:b"
            ]
        );
    }
}
