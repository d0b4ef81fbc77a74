//! [`Cancel`]: taking a job that has not started out of its queue or
//! schedule (`cancel.lua`).

use async_trait::async_trait;
use bananas_core::{
    broker::{Cancel, CancelOutcome},
    job::{now_millis, Millis},
    Error, JobId, Result, Route,
};
use redis::{Cmd, Value};

use super::ms;
use crate::{
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::text,
    RedisBroker,
};

pub(crate) const SCRIPT: Script = Script {
    name: "cancel",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/cancel.lua"),
};

/// One call of `cancel.lua`.
struct CancelCall<'a> {
    keys: &'a RouteKeys,
    id: &'a JobId,
    now: Millis,
    dead_ttl: u64,
    result: String,
    notify: String,
}

impl Call for CancelCall<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    /// What happened; `None` when the route does not know the job.
    type Reply = Option<CancelOutcome>;

    fn keys(&self) -> Vec<&str> {
        let k = self.keys;
        vec![
            &k.jobs,
            &k.meta,
            &k.q_high,
            &k.q_normal,
            &k.q_low,
            &k.sched,
            &k.lease,
            &k.dead,
            &k.waiters,
            &self.result,
            &self.notify,
        ]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.id.as_str()).arg(self.now).arg(self.dead_ttl);
    }

    fn decode(&self, reply: Value) -> Result<Option<CancelOutcome>> {
        match text(&reply).as_str() {
            "cancelled" => Ok(Some(CancelOutcome::Cancelled)),
            "running" => Ok(Some(CancelOutcome::Running)),
            "finished" => Ok(Some(CancelOutcome::Finished)),
            "unknown" => Ok(None),
            other => Err(Error::Corrupt(format!(
                "redis: script `cancel` answered {other:?}"
            ))),
        }
    }
}

impl RedisBroker {
    async fn cancel_on(&self, id: &JobId, keys: &RouteKeys) -> Result<Option<CancelOutcome>> {
        self.call(&CancelCall {
            keys,
            id,
            now: now_millis(),
            dead_ttl: ms(self.inner.cfg.failure_ttl),
            result: keys.result(id.as_str()),
            notify: keys.notify(id.as_str()),
        })
        .await
    }
}

#[async_trait]
impl Cancel for RedisBroker {
    async fn cancel(&self, id: &JobId, route: Option<&Route>) -> Result<CancelOutcome> {
        let located = self.locate(id, route).await?;
        if let Some(outcome) = self.cancel_on(id, &located.first.1).await? {
            return Ok(outcome);
        }
        for (_, keys) in self.fallback(&located).await? {
            if let Some(outcome) = self.cancel_on(id, &keys).await? {
                return Ok(outcome);
            }
        }
        Ok(CancelOutcome::NotFound)
    }
}
