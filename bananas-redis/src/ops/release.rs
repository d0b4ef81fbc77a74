//! Release: leased jobs handed back unrun (`release.lua`): to the front of
//! their queue, the attempt not counted.

use bananas_core::{JobRef, Result};
use redis::{Cmd, Value};

use super::by_route;
use crate::{
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::int,
    RedisBroker,
};

pub(crate) const SCRIPT: Script = Script {
    name: "release",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/release.lua"),
};

/// One call of `release.lua`: jobs of one route.
struct Release<'a> {
    keys: &'a RouteKeys,
    jobs: &'a [&'a JobRef],
}

impl Call for Release<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    /// How many were released (stale ones are skipped).
    type Reply = usize;

    fn keys(&self) -> Vec<&str> {
        let k = self.keys;
        vec![
            &k.jobs,
            &k.meta,
            &k.q_high,
            &k.q_normal,
            &k.q_low,
            &k.lease,
            &k.wake,
            &k.progress,
        ]
    }

    fn args(&self, c: &mut Cmd) {
        for j in self.jobs {
            c.arg(j.id.as_str()).arg(j.attempt);
        }
    }

    fn decode(&self, reply: Value) -> Result<usize> {
        Ok(int(&reply)?.max(0) as usize)
    }
}

impl RedisBroker {
    /// [`Broker::release`](bananas_core::Broker::release): one call per
    /// route.
    pub(super) async fn release_jobs(&self, jobs: &[JobRef]) -> Result<()> {
        for (route, batch) in by_route(jobs.iter().map(|j| (&j.route, j))) {
            let keys = self.route_keys(&route).await?;
            self.call(&Release {
                keys: &keys,
                jobs: &batch,
            })
            .await?;
        }
        Ok(())
    }
}
