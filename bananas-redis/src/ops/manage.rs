//! [`Manage`]: running a waiting job now and deleting a job
//! (`manage.lua`).

use async_trait::async_trait;
use bananas_core::{broker::Manage, Error, JobId, Result, Route};
use redis::{Cmd, Value};

use crate::{
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::text,
    RedisBroker,
};

pub(crate) const SCRIPT: Script = Script {
    name: "manage",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/manage.lua"),
};

/// One call of `manage.lua`.
struct ManageCall<'a> {
    keys: &'a RouteKeys,
    what: &'static str,
    id: &'a JobId,
    result: String,
    extra: String,
}

impl<'a> ManageCall<'a> {
    fn new(keys: &'a RouteKeys, what: &'static str, id: &'a JobId) -> Self {
        ManageCall {
            keys,
            what,
            id,
            result: keys.result(id.as_str()),
            extra: keys.extra(id.as_str()),
        }
    }
}

impl Call for ManageCall<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    /// Whether it changed the job; `None` when the route does not know it.
    type Reply = Option<bool>;

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
            &k.done,
            &k.wake,
            &self.result,
            &self.extra,
        ]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.what).arg(self.id.as_str());
    }

    fn decode(&self, reply: Value) -> Result<Option<bool>> {
        match text(&reply).as_str() {
            "done" => Ok(Some(true)),
            "no" => Ok(Some(false)),
            "unknown" => Ok(None),
            other => Err(Error::Corrupt(format!(
                "redis: script `manage` answered {other:?}"
            ))),
        }
    }
}

impl RedisBroker {
    /// `what` on the job `id`, on its route or, not found there, on the
    /// others that may hold it.
    async fn manage(&self, what: &'static str, id: &JobId, route: Option<&Route>) -> Result<bool> {
        let located = self.locate(id, route).await?;
        if let Some(done) = self
            .call(&ManageCall::new(&located.first.1, what, id))
            .await?
        {
            return Ok(done);
        }
        for (_, keys) in self.fallback(&located).await? {
            if let Some(done) = self.call(&ManageCall::new(&keys, what, id)).await? {
                return Ok(done);
            }
        }
        Ok(false)
    }
}

#[async_trait]
impl Manage for RedisBroker {
    async fn run_now(&self, id: &JobId, route: Option<&Route>) -> Result<bool> {
        self.manage("run_now", id, route).await
    }

    async fn delete(&self, id: &JobId, route: Option<&Route>) -> Result<bool> {
        self.manage("delete", id, route).await
    }
}
