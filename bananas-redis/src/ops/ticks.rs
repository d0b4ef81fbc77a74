//! Schedule ticks: claiming one and enqueueing its job, once however many
//! schedulers race and never before Redis's clock has reached it
//! (`claim_tick.lua`); reading the last claimed tick.

use bananas_core::{
    broker::{TickClaim, TickMark, TICK_TOLERANCE},
    job::{now_millis, Millis},
    Error, Job, JobId, Result, Route,
};
use redis::{AsyncCommands as _, Cmd, Value};

use super::{enqueue::add_job_keys, ms};
use crate::{
    codec,
    conn::broker_err,
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::{int, items, text},
    RedisBroker,
};

pub(crate) const CLAIM: Script = Script {
    name: "claim_tick",
    memory: Memory::Adds,
    source: include_str!("../../lua/ops/claim_tick.lua"),
};

/// One call of `claim_tick.lua`.
struct Claim<'a> {
    keys: &'a RouteKeys,
    now: Millis,
    schedule: &'a str,
    tick: Millis,
    job: &'a Job,
    spec: String,
    result: String,
}

impl Call for Claim<'_> {
    const SCRIPT: &'static Script = &CLAIM;
    type Reply = TickClaim;

    fn keys(&self) -> Vec<&str> {
        let mut keys = vec![self.keys.ticks.as_str()];
        keys.extend(add_job_keys(self.keys, &self.result));
        keys
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.now)
            .arg(ms(TICK_TOLERANCE))
            .arg(self.schedule)
            .arg(self.tick)
            .arg(self.job.id.as_str())
            .arg(self.job.eta.unwrap_or(0))
            .arg(&self.spec);
    }

    fn decode(&self, reply: Value) -> Result<TickClaim> {
        let reply = items(reply);
        match reply.first().map(text).as_deref() {
            Some("enqueued") => Ok(TickClaim::Enqueued),
            Some("taken") => Ok(TickClaim::Taken),
            Some("early") => match reply.get(1) {
                Some(now) => Ok(TickClaim::Early {
                    now: int(now)?.max(0) as Millis,
                }),
                None => Err(Error::Corrupt(
                    "redis: script `claim_tick` answered `early` without a time".to_owned(),
                )),
            },
            _ => Err(Error::Corrupt(format!(
                "redis: script `claim_tick` answered {reply:?}"
            ))),
        }
    }
}

impl RedisBroker {
    /// [`Schedules::claim_tick`](bananas_core::broker::Schedules::claim_tick),
    /// with the job's id index entry written beside it.
    pub(super) async fn claim(&self, schedule: &str, tick: Millis, job: Job) -> Result<TickClaim> {
        let keys = self.route_keys(&job.route).await?;
        let call = Claim {
            keys: &keys,
            now: now_millis(),
            schedule,
            tick,
            spec: codec::encode_spec(&job)?,
            result: keys.result(job.id.as_str()),
            job: &job,
        };
        let index = self.index_write(&job.route, std::iter::once(job.id.as_str()));
        let (claimed, failed) = self
            .inner
            .scripts
            .call_beside(&self.inner.conn, &call, &index.cmds)
            .await;
        self.index_failed(&index, &job.route, &failed);
        claimed
    }

    /// [`Schedules::last_tick`](bananas_core::broker::Schedules::last_tick).
    pub(super) async fn tick_mark(
        &self,
        schedule: &str,
        route: &Route,
    ) -> Result<Option<TickMark>> {
        let keys = self.keys_of(route);
        let mut conn = self.inner.conn.clone();
        let raw: Option<String> = conn.hget(&keys.ticks, schedule).await.map_err(broker_err)?;
        let Some(raw) = raw else { return Ok(None) };
        let (tick, id) = codec::decode_tick_mark(&raw).ok_or_else(|| {
            Error::Corrupt(format!(
                "corrupt tick mark for schedule `{schedule}`: {raw:?}"
            ))
        })?;
        Ok(Some(TickMark {
            tick,
            job_id: JobId::from(id),
        }))
    }
}
