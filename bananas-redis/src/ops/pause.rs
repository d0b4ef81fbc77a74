//! [`Pause`]: pausing and resuming a route (`pause.lua`); `fetch.lua` leases
//! nothing from a paused route.

use async_trait::async_trait;
use bananas_core::{broker::Pause, job::now_millis, Result, Route};
use redis::{Cmd, Value};

use crate::{
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::int,
    RedisBroker,
};

pub(crate) const SCRIPT: Script = Script {
    name: "pause",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/pause.lua"),
};

/// One call of `pause.lua`.
struct SetPaused<'a> {
    keys: &'a RouteKeys,
    paused: bool,
}

impl Call for SetPaused<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    /// Whether the state changed.
    type Reply = bool;

    fn keys(&self) -> Vec<&str> {
        vec![&self.keys.paused, &self.keys.wake]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(if self.paused { "pause" } else { "resume" })
            .arg(now_millis());
    }

    fn decode(&self, reply: Value) -> Result<bool> {
        Ok(int(&reply)? == 1)
    }
}

#[async_trait]
impl Pause for RedisBroker {
    async fn pause(&self, route: &Route) -> Result<bool> {
        let keys = self.route_keys(route).await?;
        self.call(&SetPaused {
            keys: &keys,
            paused: true,
        })
        .await
    }

    async fn resume(&self, route: &Route) -> Result<bool> {
        let keys = self.route_keys(route).await?;
        self.call(&SetPaused {
            keys: &keys,
            paused: false,
        })
        .await
    }
}
