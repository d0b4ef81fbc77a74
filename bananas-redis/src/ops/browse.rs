//! [`Browse`]: listing jobs page by page with plain reads (no script: a
//! page need not be one snapshot). Each state is read off an index the
//! broker keeps anyway: the queues (`q:h`, `q:n`, `q:l`), the schedule
//! (`sched`, scheduled and retrying), the lease set (`lease`), the dead
//! letter (`dead`, dead and cancelled), and `done` for succeeded jobs
//! (written by `ack.lua` for the jobs whose result is kept, trimmed with
//! the results). Then the jobs on the page are read with one `HMGET` per
//! field (live jobs) or one `MGET` (finished ones) per route.

use std::sync::Arc;

use async_trait::async_trait;
use bananas_core::{
    broker::{check_limit, Browse, Cursor, JobFilter, JobPage, ListState, SCAN_BUDGET},
    job::Millis,
    JobRecord, Result, Route,
};
use futures::future::try_join_all;

use crate::{
    codec::{self, Live},
    conn::broker_err,
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::{items, text},
    RedisBroker,
};
use redis::{Cmd, Value};

pub(crate) const SEEK: Script = Script {
    name: "seek",
    memory: Memory::Reads,
    source: include_str!("../../lua/ops/seek.lua"),
};

/// One call of `seek.lua`.
struct Seek<'a> {
    key: &'a str,
    after: Option<&'a (Millis, String)>,
    n: usize,
}

impl Call for Seek<'_> {
    const SCRIPT: &'static Script = &SEEK;
    type Reply = Vec<(Millis, String)>;

    fn keys(&self) -> Vec<&str> {
        vec![self.key]
    }

    fn args(&self, c: &mut Cmd) {
        match self.after {
            Some((t, id)) => c.arg(*t).arg(id.as_str()),
            None => c.arg("").arg(""),
        };
        c.arg(self.n);
    }

    fn decode(&self, reply: Value) -> Result<Vec<(Millis, String)>> {
        Ok(items(reply)
            .chunks_exact(2)
            .map(|p| {
                (
                    text(&p[1]).parse::<f64>().unwrap_or(0.0) as Millis,
                    text(&p[0]),
                )
            })
            .collect())
    }
}

/// One `HMGET` reply.
type Fields = Vec<Option<Vec<u8>>>;

/// One index entry: (time, id), on a route.
type Entry = (Millis, String, usize);

impl RedisBroker {
    /// The routes a listing covers: the filter's, or every known one.
    async fn browse_routes(&self, filter: &JobFilter) -> Result<Vec<(Route, Arc<RouteKeys>)>> {
        Ok(match &filter.route {
            Some(r) => vec![(r.clone(), self.keys_of(r))],
            None => self.known_routes().await?,
        })
    }

    /// Up to `n` entries of a time-ordered index of one route, newest
    /// first, strictly after `after` (in the order time, then id, both
    /// descending, which is `ZRANGE … REV`'s): `seek.lua`, which finds
    /// the place in O(log² N) however many entries share a time.
    async fn index_after(
        &self,
        key: String,
        after: Option<&(Millis, String)>,
        n: usize,
    ) -> Result<Vec<(Millis, String)>> {
        self.call(&Seek {
            key: &key,
            after,
            n,
        })
        .await
    }

    /// The records of `entries` of one route, in their order (`None` for a
    /// job that moved on meanwhile).
    async fn records(
        &self,
        state: ListState,
        route: &Route,
        keys: &RouteKeys,
        ids: &[&str],
        times: &[Millis],
    ) -> Result<Vec<Option<JobRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.inner.conn.clone();
        if matches!(
            state,
            ListState::Succeeded | ListState::Dead | ListState::Cancelled
        ) {
            let recs: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(ids.iter().map(|id| keys.result(id)).collect::<Vec<_>>())
                .query_async(&mut conn)
                .await
                .map_err(broker_err)?;
            return Ok(ids
                .iter()
                .zip(recs)
                .map(|(id, rec)| Some(codec::decode_record(id, route, &rec?)))
                .collect());
        }
        let leased = state == ListState::Active;
        let (specs, metas, progress): (Fields, Fields, Fields) = redis::pipe()
            .cmd("HMGET")
            .arg(&keys.jobs)
            .arg(ids)
            .cmd("HMGET")
            .arg(&keys.meta)
            .arg(ids)
            .cmd("HMGET")
            .arg(if leased { &keys.progress } else { &keys.meta })
            .arg(ids)
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        let scheduled = matches!(state, ListState::Scheduled | ListState::Retrying);
        Ok(ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let spec = specs.get(i).cloned().flatten()?;
                let eta = if scheduled {
                    times[i].to_string()
                } else {
                    String::new()
                };
                let empty = Vec::new();
                let meta = metas.get(i).cloned().flatten().unwrap_or_default();
                let progress = if leased {
                    progress.get(i).cloned().flatten().unwrap_or_default()
                } else {
                    empty
                };
                Some(codec::decode_live(
                    id,
                    route,
                    Live {
                        spec: &spec,
                        meta: &meta,
                        leased,
                        eta: eta.as_bytes(),
                        progress: &progress,
                    },
                ))
            })
            .collect())
    }

    /// `recs` of `ids` with their tags and metadata.
    async fn with_extras(
        &self,
        keys: &RouteKeys,
        ids: &[&str],
        mut recs: Vec<Option<JobRecord>>,
    ) -> Result<Vec<Option<JobRecord>>> {
        let extras = self.read_extras(keys, ids).await?;
        for (rec, extra) in recs.iter_mut().zip(extras) {
            if let Some(rec) = rec {
                rec.extra = extra;
            }
        }
        Ok(recs)
    }

    /// A page of a time-ordered state over every route, merged newest
    /// first.
    async fn by_time(
        &self,
        filter: &JobFilter,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<JobPage> {
        let mut after = match cursor {
            None => None,
            Some(Cursor::At(t, id)) => Some((t, id)),
            Some(other) => return Err(other.wrong_kind(filter.state)),
        };
        let routes = self.browse_routes(filter).await?;
        let index = |k: &RouteKeys| -> String {
            match filter.state {
                ListState::Scheduled | ListState::Retrying => k.sched.clone(),
                ListState::Active => k.lease.clone(),
                ListState::Dead | ListState::Cancelled => k.dead.clone(),
                _ => k.done.clone(),
            }
        };
        let mut page = Building::default();
        let mut scanned = 0;
        loop {
            // The next `limit` entries over all routes: each route's next
            // `limit`, merged.
            let mut entries: Vec<Entry> = Vec::new();
            let mut more = false;
            // Every route's index at once: one round trip's wait, not one
            // per route.
            let reads = routes
                .iter()
                .map(|(_, keys)| self.index_after(index(keys), after.as_ref(), limit));
            for (i, got) in try_join_all(reads).await?.into_iter().enumerate() {
                more |= got.len() == limit;
                entries.extend(got.into_iter().map(|(t, id)| (t, id, i)));
            }
            entries.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
            more |= entries.len() > limit;
            entries.truncate(limit);
            let Some(last) = entries.last().map(|e| (e.0, e.1.clone())) else {
                return Ok(finish(page, None));
            };
            for (i, (route, keys)) in routes.iter().enumerate() {
                let mine: Vec<&Entry> = entries.iter().filter(|e| e.2 == i).collect();
                let ids: Vec<&str> = mine.iter().map(|e| e.1.as_str()).collect();
                let times: Vec<Millis> = mine.iter().map(|e| e.0).collect();
                let recs = self
                    .records(filter.state, route, keys, &ids, &times)
                    .await?;
                let recs = self.with_extras(keys, &ids, recs).await?;
                for (e, rec) in mine.into_iter().zip(recs) {
                    if let Some(rec) = rec.filter(|r| filter.matches(r)) {
                        page.jobs.push((e.0, e.1.clone(), rec));
                    }
                }
            }
            page.jobs.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
            scanned += entries.len();
            if page.jobs.len() >= limit {
                page.jobs.truncate(limit);
                let end = page.jobs.last().map(|j| (j.0, j.1.clone()));
                return Ok(finish(page, end));
            }
            if !more {
                return Ok(finish(page, None));
            }
            if scanned >= SCAN_BUDGET {
                return Ok(finish(page, Some(last)));
            }
            after = Some(last);
        }
    }

    /// A page of queued jobs: route by route (by name), each route's
    /// queues high to low, each newest first.
    async fn queued(
        &self,
        filter: &JobFilter,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<JobPage> {
        let routes = self.browse_routes(filter).await?;
        let (from, mut q, mut skip) = match cursor {
            None => (None, 0u8, 0u64),
            Some(Cursor::Queue(route, q, skip)) => (Some(route), q, skip),
            Some(other) => return Err(other.wrong_kind(filter.state)),
        };
        let start = match &from {
            Some(r) => {
                let i = routes.partition_point(|(x, _)| x < r);
                // A route gone since goes on with the next one by name.
                if routes.get(i).map(|(x, _)| x) != Some(r) {
                    (q, skip) = (0, 0);
                }
                i
            }
            None => 0,
        };
        let mut conn = self.inner.conn.clone();
        let mut page = Vec::new();
        let mut scanned = 0;
        for (route, keys) in &routes[start..] {
            while q < 3 {
                let key = [&keys.q_high, &keys.q_normal, &keys.q_low][q as usize];
                loop {
                    let want = limit - page.len();
                    // The `want` newest after the `skip` newest, from the tail.
                    let mut ids: Vec<String> = redis::cmd("LRANGE")
                        .arg(key)
                        .arg(-((skip + want as u64) as i64))
                        .arg(-(skip as i64) - 1)
                        .query_async(&mut conn)
                        .await
                        .map_err(broker_err)?;
                    ids.reverse();
                    let got = ids.len();
                    skip += got as u64;
                    scanned += got;
                    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                    let recs = self
                        .records(ListState::Queued, route, keys, &refs, &vec![0; got])
                        .await?;
                    let recs = self.with_extras(keys, &refs, recs).await?;
                    page.extend(recs.into_iter().flatten().filter(|r| filter.matches(r)));
                    if page.len() >= limit || scanned >= SCAN_BUDGET {
                        page.truncate(limit);
                        // (The next page may be empty: it says so.)
                        let next = Cursor::Queue(route.clone(), q, skip).encode();
                        return Ok(JobPage {
                            jobs: page,
                            next: Some(next),
                        });
                    }
                    if got < want {
                        break;
                    }
                }
                q += 1;
                skip = 0;
            }
            q = 0;
        }
        Ok(JobPage {
            jobs: page,
            next: None,
        })
    }
}

/// A page under construction: entries with their sort keys.
#[derive(Default)]
struct Building {
    jobs: Vec<(Millis, String, JobRecord)>,
}

fn finish(b: Building, next: Option<(Millis, String)>) -> JobPage {
    JobPage {
        jobs: b.jobs.into_iter().map(|(_, _, r)| r).collect(),
        next: next.map(|(t, id)| Cursor::At(t, id).encode()),
    }
}

#[async_trait]
impl Browse for RedisBroker {
    async fn list_jobs(
        &self,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<JobPage> {
        let limit = check_limit(limit)?;
        let cursor = cursor.map(Cursor::decode).transpose()?;
        match filter.state {
            ListState::Queued => self.queued(filter, cursor, limit).await,
            _ => self.by_time(filter, cursor, limit).await,
        }
    }
}
