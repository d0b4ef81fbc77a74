//! [`Workers`]: heartbeats (`heartbeat.lua`), the list of live workers
//! (plain reads: the registry, then the workers' records), and removing a
//! stopped worker (`deregister.lua`).

use std::time::Duration;

use async_trait::async_trait;
use bananas_core::{
    broker::{WorkerInfo, Workers},
    job::{now_millis, Millis},
    Result,
};
use redis::{Cmd, Value};

use super::ms;
use crate::{
    conn::broker_err,
    keys::GlobalKeys,
    script::{Call, Memory, Script},
    RedisBroker,
};

pub(crate) const HEARTBEAT: Script = Script {
    name: "heartbeat",
    memory: Memory::Adds,
    source: include_str!("../../lua/ops/heartbeat.lua"),
};

pub(crate) const DEREGISTER: Script = Script {
    name: "deregister",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/deregister.lua"),
};

/// One call of `heartbeat.lua`.
struct Heartbeat<'a> {
    global: &'a GlobalKeys,
    info: &'a WorkerInfo,
    /// The info as JSON.
    json: String,
    ttl: u64,
    now: Millis,
    /// `{P}:worker:<id>`.
    record: String,
}

impl Call for Heartbeat<'_> {
    const SCRIPT: &'static Script = &HEARTBEAT;
    type Reply = ();

    fn keys(&self) -> Vec<&str> {
        vec![&self.global.workers, &self.record, &self.global.routes]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(&self.info.id)
            .arg(&self.json)
            .arg(self.ttl)
            .arg(self.now);
        for r in &self.info.routes {
            c.arg(r.as_str());
        }
    }

    fn decode(&self, _: Value) -> Result<()> {
        Ok(())
    }
}

/// One call of `deregister.lua`.
struct Deregister<'a> {
    global: &'a GlobalKeys,
    id: &'a str,
    /// `{P}:worker:<id>`.
    record: String,
}

impl Call for Deregister<'_> {
    const SCRIPT: &'static Script = &DEREGISTER;
    type Reply = ();

    fn keys(&self) -> Vec<&str> {
        vec![&self.global.workers, &self.record]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.id);
    }

    fn decode(&self, _: Value) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl Workers for RedisBroker {
    async fn heartbeat(&self, info: &WorkerInfo, ttl: Duration) -> Result<()> {
        let global = &self.inner.global;
        self.call(&Heartbeat {
            global,
            info,
            json: serde_json::to_string(info)?,
            ttl: ms(ttl).max(1),
            now: now_millis(),
            record: global.worker(&info.id),
        })
        .await
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let global = &self.inner.global;
        let mut conn = self.inner.conn.clone();
        let (ids,): (Vec<String>,) = redis::pipe()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&global.workers)
            .arg("-inf")
            .arg(format!("({}", now_millis()))
            .ignore()
            .cmd("ZRANGE")
            .arg(&global.workers)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(ids.iter().map(|id| global.worker(id)).collect::<Vec<_>>())
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        Ok(records
            .into_iter()
            .flatten()
            .filter_map(|json| serde_json::from_slice(&json).ok())
            .collect())
    }

    async fn deregister(&self, id: &str) -> Result<()> {
        let global = &self.inner.global;
        self.call(&Deregister {
            global,
            id,
            record: global.worker(id),
        })
        .await
    }
}
