//! Promotion: a route's due scheduled jobs to their queues
//! (`promote.lua`), for tools; fetching does it anyway.

use bananas_core::{
    job::{now_millis, Millis},
    Result, Route,
};
use redis::{Cmd, Value};

use crate::{
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::int,
    RedisBroker,
};

pub(crate) const SCRIPT: Script = Script {
    name: "promote",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/promote.lua"),
};

/// One call of `promote.lua`.
struct Promote<'a> {
    keys: &'a RouteKeys,
    now: Millis,
    limit: usize,
}

impl Call for Promote<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    /// How many jobs moved.
    type Reply = usize;

    fn keys(&self) -> Vec<&str> {
        let k = self.keys;
        vec![&k.jobs, &k.q_high, &k.q_normal, &k.q_low, &k.sched, &k.wake]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.now).arg(self.limit);
    }

    fn decode(&self, reply: Value) -> Result<usize> {
        Ok(int(&reply)?.max(0) as usize)
    }
}

impl RedisBroker {
    /// Moves `route`'s scheduled jobs whose eta has passed to their queues
    /// now. Fetching does this anyway; this is for tools. Returns how many
    /// jobs moved.
    pub async fn promote_due(&self, route: &Route) -> Result<usize> {
        let keys = self.route_keys(route).await?;
        let limit = self.inner.cfg.promote_batch;
        let mut total = 0;
        loop {
            let n = self
                .call(&Promote {
                    keys: &keys,
                    now: now_millis(),
                    limit,
                })
                .await?;
            total += n;
            if n < limit {
                return Ok(total);
            }
        }
    }
}
