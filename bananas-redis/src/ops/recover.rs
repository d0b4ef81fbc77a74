//! Recover: expired leases back to their queue, or to the dead letter once
//! their retries are used up (`recover.lua`, in two steps: see its header).

use bananas_core::{job::now_millis, Error, Result, Route};
use redis::{Cmd, Value};

use super::ms;
use crate::{
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::{int, items, text},
    RedisBroker,
};

pub(crate) const SCRIPT: Script = Script {
    name: "recover",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/recover.lua"),
};

/// One call of `recover.lua`.
struct Recover<'a> {
    keys: &'a RouteKeys,
    now: u64,
    /// The most expired leases to look at.
    limit: usize,
    dead_ttl: u64,
    /// The second step: the jobs out of retries to dead-letter (empty in
    /// the first step).
    dying: &'a [String],
    /// `{P:R}:r:<id>`, `{P:R}:w:<id>` of each of `dying`.
    dying_keys: Vec<String>,
}

impl<'a> Recover<'a> {
    fn new(broker: &RedisBroker, keys: &'a RouteKeys, dying: &'a [String]) -> Self {
        Recover {
            keys,
            now: now_millis(),
            limit: broker.inner.cfg.recover_batch,
            dead_ttl: ms(broker.inner.cfg.failure_ttl),
            dying,
            dying_keys: dying
                .iter()
                .flat_map(|id| [keys.result(id), keys.notify(id)])
                .collect(),
        }
    }
}

/// What `recover.lua` answered.
struct Recovered {
    /// Jobs requeued (first step), or dead-lettered (second step).
    recovered: usize,
    /// First step: jobs out of retries, left leased for the second step.
    dying: Vec<String>,
}

impl Call for Recover<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    type Reply = Recovered;

    fn keys(&self) -> Vec<&str> {
        let k = self.keys;
        let mut keys = Vec::with_capacity(11 + self.dying_keys.len());
        keys.extend([
            k.jobs.as_str(),
            &k.meta,
            &k.q_high,
            &k.q_normal,
            &k.q_low,
            &k.lease,
            &k.dead,
            &k.wake,
            &k.waiters,
            &k.progress,
            &k.epoch,
        ]);
        keys.extend(self.dying_keys.iter().map(String::as_str));
        keys
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.now).arg(self.limit).arg(self.dead_ttl);
        for id in self.dying {
            c.arg(id);
        }
    }

    fn decode(&self, reply: Value) -> Result<Recovered> {
        let mut r = items(reply).into_iter();
        let recovered = r
            .next()
            .ok_or_else(|| Error::Corrupt("redis: script `recover` answered nothing".into()))?;
        Ok(Recovered {
            recovered: int(&recovered)?.max(0) as usize,
            dying: r
                .next()
                .map(items)
                .unwrap_or_default()
                .iter()
                .map(text)
                .collect(),
        })
    }
}

impl RedisBroker {
    /// [`Broker::recover_expired`](bananas_core::Broker::recover_expired).
    pub(super) async fn recover(&self, routes: &[Route]) -> Result<usize> {
        let batch = self.inner.cfg.recover_batch;
        let mut total = 0;
        for route in routes {
            let keys = self.route_keys(route).await?;
            loop {
                let scan = self.call(&Recover::new(self, &keys, &[])).await?;
                let mut buried = 0;
                if !scan.dying.is_empty() {
                    buried = self
                        .call(&Recover::new(self, &keys, &scan.dying))
                        .await?
                        .recovered;
                }
                total += scan.recovered + buried;
                let seen = scan.recovered + scan.dying.len();
                if seen < batch || scan.recovered + buried == 0 {
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(recovered = total, "returned jobs with expired leases");
        }
        Ok(total)
    }
}
