//! Schedule ticks: claiming one and enqueueing its job, once however many
//! schedulers race and whichever route each gives the task; reading the
//! last claimed tick.
//!
//! A tick is claimed in one hash for every route, `{P}:ticks`, so a task
//! that moves to another route (a rolling deploy in which old and new
//! schedulers race) keeps one mark. Its job goes on the route's keys, in
//! another Redis Cluster slot, so no one script can do both; a claim takes
//! three:
//!
//! 1. `claim_tick.lua` (slot `{P}`): refuses a tick that is taken, or more
//!    than [`TICK_TOLERANCE`] past Redis's `TIME`; otherwise records the
//!    claim as *pending* in `{P}:ticks:pending`, with what its job needs
//!    (id, route, spec). A pending claim holds back every later claim of
//!    the schedule.
//! 2. `enqueue_tick.lua` (slot `{P:R}`): enqueues the job unless the
//!    route's own mark `{P:R}:ticks` says this tick (or a later one) was
//!    enqueued there, and moves that mark. A repeat enqueues nothing, even
//!    after the job has finished and left no trace.
//! 3. `confirm_tick.lua` (slot `{P}`): drops the pending claim and moves
//!    `{P}:ticks` on.
//!
//! Whoever finds a pending claim (a scheduler asking for the same tick or a
//! later one) runs steps 2 and 3 for it before asking again, with the id,
//! route and spec the claim recorded. So:
//!
//! - a claimer that stops (or loses its connection) after step 1 loses no
//!   tick: the next claim of the schedule enqueues it, and since
//!   [`Schedules::last_tick`] answers the last *confirmed* tick, the
//!   schedulers ask for that very tick again on their next pass;
//! - a claimer that stops after step 2 leaves a claim that the next one
//!   confirms, and step 2 runs again without enqueueing anything;
//! - no tick runs twice: its job is enqueued only on the route its claim
//!   recorded (a claim is written once per tick, since later claims need a
//!   later tick, and none is written while one is pending), and there only
//!   once (the route's mark, which only moves forward and is never
//!   deleted). Step 3 runs only after step 2 answered, so a route's mark is
//!   never moved past a tick before that tick's step 2.
//!
//! Of the calls that run step 2 for the tick they asked for, exactly one
//! sees it enqueue, and answers [`TickClaim::Enqueued`].
//!
//! Marks kept per route by earlier versions (`{P:R}:ticks`, then the only
//! mark) still count: [`Schedules::last_tick`] reads the route's mark when
//! `{P}:ticks` has none, and step 2 refuses a tick such a mark has passed,
//! so neither an upgrade nor old and new schedulers racing on one route
//! re-runs or skips a tick.
//!
//! [`Schedules::last_tick`]: bananas_core::broker::Schedules::last_tick

use bananas_core::{
    broker::{TickClaim, TickMark, TICK_TOLERANCE},
    job::{now_millis, Millis},
    Error, Job, JobId, Result, Route,
};
use redis::{AsyncCommands as _, Cmd, Value};

use super::{enqueue::add_job_keys, ms};
use crate::{
    codec::{self, PendingTick},
    conn::broker_err,
    keys::{GlobalKeys, RouteKeys},
    script::{Call, Memory, Script},
    value::{int, items, text},
    RedisBroker,
};

pub(crate) const CLAIM: Script = Script {
    name: "claim_tick",
    memory: Memory::Adds,
    source: include_str!("../../lua/ops/claim_tick.lua"),
};

pub(crate) const ENQUEUE: Script = Script {
    name: "enqueue_tick",
    memory: Memory::Adds,
    source: include_str!("../../lua/ops/enqueue_tick.lua"),
};

pub(crate) const CONFIRM: Script = Script {
    name: "confirm_tick",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/confirm_tick.lua"),
};

/// How many pending claims of earlier ticks one claim finishes before it
/// gives up (each is another scheduler's claim that was not confirmed
/// yet; more than one in a row takes claimers that stop, or a race
/// this long).
const MAX_PENDING: usize = 8;

/// One call of `claim_tick.lua`.
struct Claim<'a> {
    keys: &'a GlobalKeys,
    schedule: &'a str,
    tick: Millis,
    /// The claim, encoded.
    claim: String,
}

/// What `claim_tick.lua` answered.
#[derive(Debug, PartialEq, Eq)]
enum ClaimReply {
    Claimed,
    Taken,
    Early {
        now: Millis,
    },
    /// A claim of an earlier tick, or of this one, may still wait for its
    /// job.
    Pending(PendingTick),
}

impl Call for Claim<'_> {
    const SCRIPT: &'static Script = &CLAIM;
    type Reply = ClaimReply;

    fn keys(&self) -> Vec<&str> {
        vec![&self.keys.ticks, &self.keys.ticks_pending]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.schedule)
            .arg(self.tick)
            .arg(&self.claim)
            .arg(ms(TICK_TOLERANCE));
    }

    fn decode(&self, reply: Value) -> Result<ClaimReply> {
        let reply = items(reply);
        let corrupt = || {
            Error::Corrupt(format!(
                "redis: script `claim_tick` answered {reply:?} for schedule `{}`",
                self.schedule
            ))
        };
        match reply.first().map(text).as_deref() {
            Some("claimed") => Ok(ClaimReply::Claimed),
            Some("taken") => Ok(ClaimReply::Taken),
            Some("early") => {
                let now = reply.get(1).ok_or_else(corrupt)?;
                Ok(ClaimReply::Early {
                    now: int(now)?.max(0) as Millis,
                })
            }
            Some("pending") => {
                let raw = reply.get(1).map(text).unwrap_or_default();
                let pending = PendingTick::decode(&raw).ok_or_else(|| {
                    Error::Corrupt(format!(
                        "corrupt pending tick claim for schedule `{}`: {raw:?}",
                        self.schedule
                    ))
                })?;
                Ok(ClaimReply::Pending(pending))
            }
            _ => Err(corrupt()),
        }
    }
}

/// One call of `enqueue_tick.lua`.
struct EnqueueTick<'a> {
    keys: &'a RouteKeys,
    now: Millis,
    schedule: &'a str,
    tick: &'a PendingTick,
    result: String,
}

impl Call for EnqueueTick<'_> {
    const SCRIPT: &'static Script = &ENQUEUE;
    /// The schedule's mark on the route afterwards (`tick SEP job id`), and
    /// whether this call enqueued the job.
    type Reply = (String, bool);

    fn keys(&self) -> Vec<&str> {
        let mut keys = vec![self.keys.ticks.as_str()];
        keys.extend(add_job_keys(self.keys, &self.result));
        keys
    }

    fn args(&self, c: &mut Cmd) {
        let t = self.tick;
        c.arg(self.now)
            .arg(self.schedule)
            .arg(t.tick)
            .arg(&t.job_id)
            .arg(t.due)
            .arg(&t.spec);
    }

    fn decode(&self, reply: Value) -> Result<(String, bool)> {
        let reply = items(reply);
        match reply.first().map(text).as_deref() {
            Some("enqueued") => Ok((
                codec::encode_tick_mark(self.tick.tick, &self.tick.job_id),
                true,
            )),
            Some("before") => {
                let mark = reply.get(1).map(text).unwrap_or_default();
                if codec::decode_tick_mark(&mark).is_none() {
                    return Err(Error::Corrupt(format!(
                        "corrupt tick mark for schedule `{}` in {}: {mark:?}",
                        self.schedule,
                        self.keys.tag()
                    )));
                }
                Ok((mark, false))
            }
            _ => Err(Error::Corrupt(format!(
                "redis: script `enqueue_tick` answered {reply:?}"
            ))),
        }
    }
}

/// One call of `confirm_tick.lua`.
struct Confirm<'a> {
    keys: &'a GlobalKeys,
    schedule: &'a str,
    claimed: Millis,
    mark: &'a str,
}

impl Call for Confirm<'_> {
    const SCRIPT: &'static Script = &CONFIRM;
    type Reply = ();

    fn keys(&self) -> Vec<&str> {
        vec![&self.keys.ticks, &self.keys.ticks_pending]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.schedule).arg(self.claimed).arg(self.mark);
    }

    fn decode(&self, reply: Value) -> Result<()> {
        int(&reply).map(|_| ())
    }
}

impl RedisBroker {
    /// [`Schedules::claim_tick`](bananas_core::broker::Schedules::claim_tick):
    /// see the [module docs](self).
    pub(super) async fn claim(&self, schedule: &str, tick: Millis, job: Job) -> Result<TickClaim> {
        let mine = PendingTick {
            tick,
            job_id: job.id.as_str().to_owned(),
            route: job.route.as_str().to_owned(),
            due: job.eta.unwrap_or(0),
            spec: codec::encode_spec(&job)?,
        };
        let call = Claim {
            keys: &self.inner.global,
            schedule,
            tick,
            claim: mine.encode()?,
        };
        for _ in 0..MAX_PENDING {
            match self.call(&call).await? {
                ClaimReply::Claimed => return self.finish(schedule, &mine).await,
                ClaimReply::Taken => return Ok(TickClaim::Taken),
                ClaimReply::Early { now } => return Ok(TickClaim::Early { now }),
                ClaimReply::Pending(other) if other.tick == tick => {
                    // This tick, claimed by another call that may still
                    // be enqueueing it, or may have stopped: enqueueing it
                    // here too does no harm, and only one of us does.
                    return self.finish(schedule, &other).await;
                }
                ClaimReply::Pending(other) => {
                    if self.finish(schedule, &other).await? == TickClaim::Enqueued {
                        tracing::info!(
                            schedule,
                            tick = other.tick,
                            job_id = ?other.job_id,
                            "enqueued a tick another scheduler claimed but did not enqueue"
                        );
                    }
                }
            }
        }
        Err(Error::backend_msg(format!(
            "schedule `{schedule}`: tick {tick} still waits behind claims of earlier ticks after finishing {MAX_PENDING} of them"
        )))
    }

    /// Steps 2 and 3 of a claim (see the [module docs](self)): enqueues the
    /// claimed tick's job on the route the claim names, unless it was, and
    /// confirms the claim. `Enqueued` if this call enqueued it.
    async fn finish(&self, schedule: &str, claim: &PendingTick) -> Result<TickClaim> {
        let route = Route::new(claim.route.as_str()).map_err(|e| {
            Error::Corrupt(format!(
                "pending tick claim for schedule `{schedule}` names an invalid route: {e}"
            ))
        })?;
        let keys = self.route_keys(&route).await?;
        let call = EnqueueTick {
            keys: &keys,
            now: now_millis(),
            schedule,
            tick: claim,
            result: keys.result(&claim.job_id),
        };
        let index = self.index_write(&route, std::iter::once(claim.job_id.as_str()));
        let (reply, failed) = self
            .inner
            .scripts
            .call_beside(&self.inner.conn, &call, &index.cmds)
            .await;
        self.index_failed(&index, &route, &failed);
        let (mark, enqueued) = reply?;
        self.call(&Confirm {
            keys: &self.inner.global,
            schedule,
            claimed: claim.tick,
            mark: &mark,
        })
        .await?;
        Ok(if enqueued {
            TickClaim::Enqueued
        } else {
            TickClaim::Taken
        })
    }

    /// [`Schedules::last_tick`](bananas_core::broker::Schedules::last_tick):
    /// the schedule's mark in `{P}:ticks`, or when it has none (nothing
    /// claimed since an upgrade from per-route marks), its old mark on
    /// `route`.
    pub(super) async fn tick_mark(
        &self,
        schedule: &str,
        route: &Route,
    ) -> Result<Option<TickMark>> {
        let mut conn = self.inner.conn.clone();
        let global: Option<String> = conn
            .hget(&self.inner.global.ticks, schedule)
            .await
            .map_err(broker_err)?;
        let raw = match global {
            Some(raw) => raw,
            None => {
                let old: Option<String> = conn
                    .hget(&self.keys_of(route).ticks, schedule)
                    .await
                    .map_err(broker_err)?;
                let Some(raw) = old else { return Ok(None) };
                raw
            }
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_declare_the_global_keys_and_enqueues_the_routes() {
        let g = GlobalKeys::new("p");
        let claim = Claim {
            keys: &g,
            schedule: "s",
            tick: 1,
            claim: String::new(),
        };
        assert_eq!(claim.keys(), ["{p}:ticks", "{p}:ticks:pending"]);
        let r = RouteKeys::new("p", "gpu");
        let pending = PendingTick {
            tick: 1,
            job_id: "sched-s-1".into(),
            route: "gpu".into(),
            due: 0,
            spec: String::new(),
        };
        let enqueue = EnqueueTick {
            keys: &r,
            now: 1,
            schedule: "s",
            tick: &pending,
            result: r.result("sched-s-1"),
        };
        let keys = enqueue.keys();
        assert_eq!(keys[0], "{p:gpu}:ticks");
        assert!(keys.iter().all(|k| k.starts_with("{p:gpu}:")), "{keys:?}");
        assert_eq!(*keys.last().unwrap(), "{p:gpu}:r:sched-s-1");
    }
}
