//! [`Progress`]: a running attempt's progress report (`progress.lua`).

use async_trait::async_trait;
use bananas_core::{broker::Progress, JobId, Result, Route};
use redis::{Cmd, Value};
use serde_json::value::RawValue;

use crate::{
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::int,
    RedisBroker,
};

/// Bounded by the running jobs and deleted with them: allowed at
/// `maxmemory`, like the transitions that drain.
pub(crate) const SCRIPT: Script = Script {
    name: "progress",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/progress.lua"),
};

/// One call of `progress.lua`.
struct Report<'a> {
    keys: &'a RouteKeys,
    id: &'a JobId,
    attempt: u32,
    progress: &'a RawValue,
}

impl Call for Report<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    /// Whether it was stored (the attempt holds the lease).
    type Reply = bool;

    fn keys(&self) -> Vec<&str> {
        vec![&self.keys.lease, &self.keys.meta, &self.keys.progress]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.id.as_str())
            .arg(self.attempt)
            .arg(self.progress.get());
    }

    fn decode(&self, reply: Value) -> Result<bool> {
        Ok(int(&reply)? == 1)
    }
}

#[async_trait]
impl Progress for RedisBroker {
    async fn set_progress(
        &self,
        route: &Route,
        id: &JobId,
        attempt: u32,
        progress: &RawValue,
    ) -> Result<bool> {
        let keys = self.route_keys(route).await?;
        self.call(&Report {
            keys: &keys,
            id,
            attempt,
            progress,
        })
        .await
    }
}
