//! Recover: jobs whose lease expired, or vanished, back to their queue
//! (`recover.lua`), counting the job as lost once more; the worker that fetches it next dead-letters
//! it if it was lost too often.

use bananas_core::{job::now_millis, Result, Route};
use redis::{Cmd, Value};

use crate::{
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::int,
    RedisBroker,
};

/// How long, at least, a revoked lease stays marked after the route's last
/// recovery (longer when dead jobs are kept longer): its old holder's ack
/// is refused for that long. A holder that acks later still, with the job
/// meanwhile run again from attempt 1, is told apart by its attempt only.
const REVOKED_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

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
    /// How long the marks of revoked leases are kept (ms).
    revoked_ttl: u64,
}

impl Call for Recover<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    /// How many jobs it took back (expired leases, and jobs nothing held).
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
            &k.epoch,
            &k.revoked,
            &k.sched,
        ]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.now).arg(self.limit).arg(self.revoked_ttl);
    }

    fn decode(&self, reply: Value) -> Result<usize> {
        Ok(int(&reply)?.max(0) as usize)
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
                let recovered = self
                    .call(&Recover {
                        keys: &keys,
                        now: now_millis(),
                        limit: batch,
                        revoked_ttl: super::ms(REVOKED_TTL.max(self.inner.cfg.failure_ttl)),
                    })
                    .await?;
                total += recovered;
                if recovered < batch {
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
