//! [`Inspect`]: a job by id (`job_info.lua`), waiting for its result
//! (`wait_check.lua`, then a blocking pop), queue depths (`stats.lua`).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bananas_core::{
    broker::{Inspect, QueueStats},
    Error, JobId, JobRecord, Result, Route,
};
use redis::{Cmd, Value};

use crate::{
    codec::{self, Live},
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::{bytes, int, items, text},
    RedisBroker,
};

pub(crate) const JOB_INFO: Script = Script {
    name: "job_info",
    memory: Memory::Reads,
    source: include_str!("../../lua/ops/job_info.lua"),
};

pub(crate) const WAIT_CHECK: Script = Script {
    name: "wait_check",
    memory: Memory::Adds,
    source: include_str!("../../lua/ops/wait_check.lua"),
};

pub(crate) const STATS: Script = Script {
    name: "stats",
    memory: Memory::Reads,
    source: include_str!("../../lua/ops/stats.lua"),
};

/// One call of `job_info.lua`: what a route holds about a job.
struct JobInfo<'a> {
    keys: &'a RouteKeys,
    route: &'a Route,
    id: &'a JobId,
    result: String,
    extra: String,
}

impl<'a> JobInfo<'a> {
    fn new(keys: &'a RouteKeys, route: &'a Route, id: &'a JobId) -> Self {
        JobInfo {
            keys,
            route,
            id,
            result: keys.result(id.as_str()),
            extra: keys.extra(id.as_str()),
        }
    }
}

impl Call for JobInfo<'_> {
    const SCRIPT: &'static Script = &JOB_INFO;
    /// The job's record, or `None` when the route does not know it.
    type Reply = Option<JobRecord>;

    fn keys(&self) -> Vec<&str> {
        let k = self.keys;
        vec![
            &k.jobs,
            &k.meta,
            &k.sched,
            &k.lease,
            &k.progress,
            &self.result,
            &self.extra,
        ]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.id.as_str());
    }

    fn decode(&self, reply: Value) -> Result<Option<JobRecord>> {
        let r = items(reply);
        let field = |i: usize| r.get(i).and_then(bytes).unwrap_or_default();
        let id = self.id.as_str();
        let (mut rec, extra_at) = match r.first().map(text).as_deref() {
            Some("unknown") => return Ok(None),
            Some("finished") => (codec::decode_record(id, self.route, &field(1)), 2),
            Some("live") => (
                codec::decode_live(
                    id,
                    self.route,
                    Live {
                        spec: &field(1),
                        meta: &field(2),
                        leased: r.get(3).map(int).transpose()? == Some(1),
                        eta: &field(4),
                        progress: &field(5),
                    },
                ),
                6,
            ),
            other => {
                return Err(Error::Corrupt(format!(
                    "redis: script `job_info` answered {other:?}"
                )))
            }
        };
        // Tags and metadata come last in either reply ('' without).
        rec.extra = serde_json::from_slice(&field(extra_at)).ok().map(Box::new);
        Ok(Some(rec))
    }
}

/// One call of `wait_check.lua`.
struct WaitCheck<'a> {
    keys: &'a RouteKeys,
    route: &'a Route,
    id: &'a JobId,
    result: String,
    notify: String,
}

/// What `wait_check.lua` answered.
enum Checked {
    /// The job is finished: its record.
    Finished(Box<JobRecord>),
    /// A waiter is registered: block on the job's notification list.
    Waiting,
    /// The route does not know the job.
    Unknown,
}

impl Call for WaitCheck<'_> {
    const SCRIPT: &'static Script = &WAIT_CHECK;
    type Reply = Checked;

    fn keys(&self) -> Vec<&str> {
        vec![
            &self.keys.jobs,
            &self.keys.waiters,
            &self.result,
            &self.notify,
        ]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.id.as_str());
    }

    fn decode(&self, reply: Value) -> Result<Checked> {
        let r = items(reply);
        match r.first().map(text).as_deref() {
            Some("finished") => {
                let rec = r.get(1).and_then(bytes).unwrap_or_default();
                Ok(Checked::Finished(Box::new(codec::decode_record(
                    self.id.as_str(),
                    self.route,
                    &rec,
                ))))
            }
            Some("waiting") => Ok(Checked::Waiting),
            Some("unknown") => Ok(Checked::Unknown),
            other => Err(Error::Corrupt(format!(
                "redis: script `wait_check` answered {other:?}"
            ))),
        }
    }
}

/// One call of `stats.lua`.
struct Stats<'a> {
    keys: &'a RouteKeys,
    route: &'a Route,
}

impl Call for Stats<'_> {
    const SCRIPT: &'static Script = &STATS;
    type Reply = QueueStats;

    fn keys(&self) -> Vec<&str> {
        let k = self.keys;
        vec![
            &k.q_high,
            &k.q_normal,
            &k.q_low,
            &k.sched,
            &k.lease,
            &k.dead,
            &k.paused,
            &k.jobs,
        ]
    }

    fn args(&self, _: &mut Cmd) {}

    fn decode(&self, reply: Value) -> Result<QueueStats> {
        let r = items(reply);
        let n = |i: usize| -> Result<u64> {
            Ok(r.get(i).map(int).transpose()?.unwrap_or(0).max(0) as u64)
        };
        Ok(QueueStats {
            route: self.route.as_str().to_owned(),
            high: n(0)?,
            normal: n(1)?,
            low: n(2)?,
            scheduled: n(3)?,
            active: n(4)?,
            dead: n(5)?,
            paused: n(6)? == 1,
            oldest_due: r.get(7).and_then(|v| text(v).parse().ok()),
        })
    }
}

impl RedisBroker {
    async fn job_on(
        &self,
        id: &JobId,
        route: &Route,
        keys: &RouteKeys,
    ) -> Result<Option<JobRecord>> {
        // One script: the record and its tags and metadata.
        self.call(&JobInfo::new(keys, route, id)).await
    }

    async fn wait_check(&self, id: &JobId, route: &Route, keys: &RouteKeys) -> Result<Checked> {
        self.call(&WaitCheck {
            keys,
            route,
            id,
            result: keys.result(id.as_str()),
            notify: keys.notify(id.as_str()),
        })
        .await
    }
}

#[async_trait]
impl Inspect for RedisBroker {
    async fn job(&self, id: &JobId, route: Option<&Route>) -> Result<Option<JobRecord>> {
        let located = self.locate(id, route).await?;
        let (route, keys) = &located.first;
        if let Some(rec) = self.job_on(id, route, keys).await? {
            return Ok(Some(rec));
        }
        let rest = self.fallback(&located).await?;
        let found = self
            .route_calls(&rest, |route, keys| async move {
                self.job_on(id, &route, &keys).await
            })
            .await?;
        Ok(found.into_iter().flatten().next())
    }

    async fn wait(
        &self,
        id: &JobId,
        route: Option<&Route>,
        timeout: Duration,
    ) -> Result<Option<JobRecord>> {
        let located = self.locate(id, route).await?;
        let mut waiting: Option<(Route, Arc<RouteKeys>)> = None;
        let (route, keys) = &located.first;
        match self.wait_check(id, route, keys).await? {
            Checked::Finished(rec) => return Ok(Some(*rec)),
            Checked::Waiting => waiting = Some((route.clone(), keys.clone())),
            Checked::Unknown => {}
        }
        if waiting.is_none() {
            let rest = self.fallback(&located).await?;
            let checks = self
                .route_calls(&rest, |route, keys| async move {
                    let checked = self.wait_check(id, &route, &keys).await?;
                    Ok((route, keys, checked))
                })
                .await?;
            for (route, keys, checked) in checks {
                match checked {
                    Checked::Finished(rec) => return Ok(Some(*rec)),
                    Checked::Waiting if waiting.is_none() => waiting = Some((route, keys)),
                    _ => {}
                }
            }
        }
        let Some((route, keys)) = waiting else {
            return Ok(None);
        };
        let notify = keys.notify(id.as_str());
        match self.inner.blocking.blpop(&[&notify], timeout).await? {
            Some(rec) => Ok(Some(codec::decode_record(id.as_str(), &route, &rec))),
            None => Ok(None),
        }
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        let routes = self.known_routes().await?;
        self.route_calls(&routes, |route, keys| async move {
            self.call(&Stats {
                keys: &keys,
                route: &route,
            })
            .await
        })
        .await
    }

    async fn routes(&self) -> Result<Vec<Route>> {
        Ok(self
            .known_routes()
            .await?
            .into_iter()
            .map(|(route, _)| route)
            .collect())
    }
}
