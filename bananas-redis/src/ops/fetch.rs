//! Fetch: lease ready jobs (`fetch.lua`), dead-letter the ones that cannot
//! run (`bury.lua`, and `ack.lua` for specs that do not decode), and wait
//! for work without polling.

use std::time::{Duration, Instant};

use bananas_core::{
    broker::FetchRequest,
    job::{now_millis, Millis},
    priority, Error, Job, Result, Route,
};
use futures::future::select_all;
use redis::{Cmd, Value};

use super::{
    ack::{Settle, Settlement},
    ms,
};
use crate::{
    codec::{self, clean_text},
    conn::redis_source,
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::{bytes, int, items, text},
    RedisBroker,
};

pub(crate) const SCRIPT: Script = Script {
    name: "fetch",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/fetch.lua"),
};

pub(crate) const BURY: Script = Script {
    name: "bury",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/bury.lua"),
};

/// One call of `fetch.lua`.
struct Fetch<'a> {
    keys: &'a RouteKeys,
    now: Millis,
    /// The lease deadline.
    deadline: Millis,
    /// The priority plan, one character per slot.
    plan: String,
    /// The most scheduled jobs to promote first.
    promote_batch: usize,
    /// The most bytes of specs in one reply (at least one job).
    max_bytes: usize,
}

impl<'a> Fetch<'a> {
    /// The clock is read now, so the lease deadline is counted from the
    /// moment the command is built (and sent).
    fn new(
        broker: &RedisBroker,
        keys: &'a RouteKeys,
        cursor: usize,
        max: usize,
        lease: Duration,
    ) -> Self {
        let now = now_millis();
        Fetch {
            keys,
            now,
            deadline: now.saturating_add(ms(lease)),
            plan: priority::plan(cursor, max).map(codec::prio_char).collect(),
            promote_batch: broker.inner.cfg.promote_batch,
            max_bytes: broker.inner.cfg.fetch_max_bytes,
        }
    }
}

/// What `fetch.lua` answered.
enum FetchReply {
    /// Nothing was ready: the earliest scheduled eta, if any.
    Idle(Option<Millis>),
    /// Jobs were leased.
    Leased(Leased),
}

/// The jobs one fetch leased.
struct Leased {
    /// Their ids, as the reply holds them (taken without copying).
    ids: Vec<Value>,
    /// Their specs, likewise.
    specs: Vec<Value>,
    /// The attempt of each job past its first: (index into `ids`,
    /// attempt, times its worker was lost).
    retried: Vec<(usize, u32, u32)>,
    /// The route's recovery epoch when they were leased.
    epoch: String,
    /// Leased jobs that cannot run, with the reason: for [`Bury`].
    broken: Vec<(String, String)>,
}

impl FetchReply {
    fn decode(reply: Value) -> Result<Self> {
        let mut r = items(reply).into_iter();
        let status = r.next().map(|v| text(&v)).unwrap_or_default();
        match status.as_str() {
            "idle" => Ok(FetchReply::Idle(
                r.next()
                    .and_then(|v| text(&v).parse::<f64>().ok())
                    .map(|f| f as Millis),
            )),
            "leased" => {
                let ids = r.next().map(items).unwrap_or_default();
                let specs = r.next().map(items).unwrap_or_default();
                let retried = r
                    .next()
                    .map(items)
                    .unwrap_or_default()
                    .chunks_exact(3)
                    .filter_map(|p| {
                        let i = usize::try_from(int(&p[0]).ok()? - 1).ok()?;
                        let count = |v| int(v).ok().map(|n| n.clamp(0, u32::MAX as i64) as u32);
                        Some((i, count(&p[1])?, count(&p[2])?))
                    })
                    .collect();
                let epoch = r.next().map(|v| text(&v)).unwrap_or_default();
                let broken = r
                    .next()
                    .map(items)
                    .unwrap_or_default()
                    .chunks_exact(2)
                    .map(|p| (text(&p[0]), text(&p[1])))
                    .collect();
                Ok(FetchReply::Leased(Leased {
                    ids,
                    specs,
                    retried,
                    epoch,
                    broken,
                }))
            }
            other => Err(Error::Corrupt(format!(
                "redis: script `fetch` answered {other:?}"
            ))),
        }
    }
}

impl Call for Fetch<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    type Reply = FetchReply;

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
            &k.epoch,
            &k.paused,
        ]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.now)
            .arg(self.deadline)
            .arg(&self.plan)
            .arg(self.promote_batch)
            .arg(self.max_bytes);
    }

    fn decode(&self, reply: Value) -> Result<FetchReply> {
        FetchReply::decode(reply)
    }
}

/// One call of `bury.lua`: dead-letters leased jobs that cannot run.
struct Bury<'a> {
    keys: &'a RouteKeys,
    now: Millis,
    dead_ttl: u64,
    /// (id, reason) of each job.
    jobs: &'a [(String, String)],
    /// `{P:R}:r:<id>`, `{P:R}:w:<id>` of each job.
    results: Vec<String>,
}

impl Call for Bury<'_> {
    const SCRIPT: &'static Script = &BURY;
    /// How many were dead-lettered.
    type Reply = usize;

    fn keys(&self) -> Vec<&str> {
        let k = self.keys;
        let mut keys = vec![k.jobs.as_str(), &k.meta, &k.lease, &k.dead, &k.waiters];
        keys.extend(self.results.iter().map(String::as_str));
        keys
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.now).arg(self.dead_ttl);
        for (id, reason) in self.jobs {
            c.arg(id).arg(clean_text(reason).as_ref());
        }
    }

    fn decode(&self, reply: Value) -> Result<usize> {
        Ok(int(&reply)?.max(0) as usize)
    }
}

/// How an idle wait ended.
enum Woken {
    /// The fetch sent behind the wait leased these jobs.
    Jobs(Vec<Job>),
    /// A wake-up or the timeout: look again.
    Look,
    /// The fetch sent behind the wait found nothing ready and nothing
    /// due (the earliest scheduled eta, if any): wait again if the
    /// caller's block is not over, without fetching first.
    Idle(Option<Millis>),
    /// The wait failed; the fetch returns nothing this time.
    Failed,
}

/// What one route's fetch gave.
struct Fetched {
    jobs: Vec<Job>,
    /// The earliest scheduled eta, when nothing was ready.
    next_eta: Option<Millis>,
    /// Some popped jobs were dead-lettered: try again at once.
    again: bool,
}

impl RedisBroker {
    /// [`Broker::fetch`](bananas_core::Broker::fetch).
    pub(super) async fn fetch_jobs(&self, req: &FetchRequest) -> Result<Vec<Job>> {
        if req.max == 0 || req.routes.is_empty() {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        let deadline = start
            .checked_add(req.block)
            .unwrap_or(start + Duration::from_secs(365 * 86400));
        let mut f = self.fetch_now(req).await?;
        loop {
            if !f.jobs.is_empty() {
                return Ok(f.jobs);
            }
            if f.again {
                f = self.fetch_now(req).await?;
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(f.jobs);
            }
            let mut wait = deadline - now;
            if let Some(eta) = f.next_eta {
                let until = eta.saturating_sub(now_millis()).max(1);
                wait = wait.min(Duration::from_millis(until));
            }
            f = match self.wait_for_work(req, wait).await? {
                Woken::Jobs(jobs) => return Ok(jobs),
                Woken::Idle(next_eta) => Fetched {
                    jobs: Vec::new(),
                    next_eta,
                    again: false,
                },
                Woken::Look => self.fetch_now(req).await?,
                Woken::Failed => return Ok(Vec::new()),
            };
        }
    }

    /// One pass over the routes, without blocking.
    async fn fetch_now(&self, req: &FetchRequest) -> Result<Fetched> {
        let mut out = Fetched {
            jobs: Vec::new(),
            next_eta: None,
            again: false,
        };
        for route in &req.routes {
            let want = req.max - out.jobs.len();
            if want == 0 {
                break;
            }
            let keys = self.route_keys(route).await?;
            let call = Fetch::new(self, &keys, req.cursor + out.jobs.len(), want, req.lease);
            let reply = self.call(&call).await?;
            let f = self.fetched(route, &keys, reply).await?;
            out.jobs.extend(f.jobs);
            out.again |= f.again;
            out.next_eta = match (out.next_eta, f.next_eta) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(out)
    }

    /// Reads a fetch's jobs; those that cannot run go to the dead letter.
    async fn fetched(&self, route: &Route, keys: &RouteKeys, reply: FetchReply) -> Result<Fetched> {
        let leased = match reply {
            FetchReply::Idle(next_eta) => {
                return Ok(Fetched {
                    jobs: Vec::new(),
                    next_eta,
                    again: false,
                })
            }
            FetchReply::Leased(leased) => leased,
        };
        // The route's recovery epoch when these jobs were leased, as the
        // lease token.
        let token = self.inner.tokens.token_for(&leased.epoch);
        let mut fetched = Fetched {
            jobs: Vec::with_capacity(leased.ids.len()),
            next_eta: None,
            again: !leased.broken.is_empty(),
        };
        // Every job is on attempt 1, never lost, but those in `retried`.
        let mut attempts = vec![(1u32, 0u32); leased.ids.len()];
        for (i, a, lost) in leased.retried {
            if let Some(slot) = attempts.get_mut(i) {
                *slot = (a, lost);
            }
        }
        let mut corrupt: Vec<(String, u32, String)> = Vec::new();
        for ((id, spec), (attempt, lost)) in leased.ids.into_iter().zip(leased.specs).zip(attempts)
        {
            // Take the reply's buffers instead of copying them.
            let id = match id {
                Value::BulkString(b) => String::from_utf8(b)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                other => text(&other),
            };
            let spec = match spec {
                Value::BulkString(b) => b,
                other => bytes(&other).unwrap_or_default().into_owned(),
            };
            match codec::decode_spec_owned(spec) {
                Ok(spec) => fetched.jobs.push(codec::job_from_spec(
                    id,
                    route,
                    (attempt, lost),
                    spec,
                    token,
                )),
                Err(reason) => {
                    tracing::warn!(job_id = ?id, %route, attempt, reason = ?reason, "moving a corrupt job to the dead letter");
                    corrupt.push((id, attempt, reason));
                }
            }
        }
        if !leased.broken.is_empty() {
            for (id, reason) in &leased.broken {
                tracing::warn!(job_id = ?id, %route, reason = ?reason, "moving a job that cannot run to the dead letter");
            }
            let call = Bury {
                keys,
                now: now_millis(),
                dead_ttl: ms(self.inner.cfg.failure_ttl),
                results: leased
                    .broken
                    .iter()
                    .flat_map(|(id, _)| [keys.result(id), keys.notify(id)])
                    .collect(),
                jobs: &leased.broken,
            };
            self.call(&call).await?;
        }
        if !corrupt.is_empty() {
            let batch: Vec<Settle<'_>> = corrupt
                .iter()
                .map(|(id, attempt, reason)| Settle {
                    id,
                    attempt: *attempt,
                    started_at: now_millis(),
                    how: Settlement::Dead {
                        reason: clean_text(reason),
                    },
                })
                .collect();
            // Leased just now, at the fetch's epoch: checked in full.
            let epoch = Some(leased.epoch.clone()).filter(|e| !e.is_empty());
            self.settle(keys, &batch, epoch, false).await?;
            fetched.again = true;
        }
        Ok(fetched)
    }

    /// Waits up to `wait` for a wake-up token on one of the routes. With one
    /// route and the function library, the fetch is sent behind the
    /// blocking pop in the same write: Redis runs it the moment the token
    /// arrives, so an idle worker's pickup costs one round trip, not two.
    async fn wait_for_work(&self, req: &FetchRequest, wait: Duration) -> Result<Woken> {
        let scripts = &self.inner.scripts;
        let ([route], true) = (req.routes.as_slice(), scripts.run_as_functions()) else {
            return self.block_for_wake(&req.routes, wait).await;
        };
        let keys = self.route_keys(route).await?;
        // The lease deadline is counted from the moment the command is
        // sent, so it loses however long the pop blocked: keep that a small
        // part of the lease asked for (the worker's claim, which its lease
        // keeper extends every third of).
        let wait = wait.min(req.lease / 4);
        let fetch = || {
            let call = Fetch::new(self, &keys, req.cursor, req.max, req.lease);
            scripts.fcall_cmd(&call)
        };
        match self
            .inner
            .blocking
            .blpop_then(&keys.wake, wait, fetch)
            .await
        {
            // The fetch ran with the clock of the moment it was sent: a job
            // that fell due while the pop blocked is promoted by the next
            // fetch, which the caller makes at once.
            Ok(reply) => {
                let f = self
                    .fetched(route, &keys, FetchReply::decode(reply)?)
                    .await?;
                Ok(if !f.jobs.is_empty() {
                    Woken::Jobs(f.jobs)
                } else if f.again || f.next_eta.is_some_and(|eta| eta <= now_millis()) {
                    Woken::Look
                } else {
                    Woken::Idle(f.next_eta)
                })
            }
            // A lost function library (after a restart) is expected: it is
            // loaded again here and the caller returns an empty batch.
            // Anything else may have cost a fetch's reply: those jobs run
            // again once their lease expires.
            Err(e) => {
                let lost = match redis_source(&e) {
                    Some(re) => {
                        scripts
                            .reload_if_lost(&self.inner.conn, Some(&keys.jobs), re)
                            .await
                    }
                    None => false,
                };
                if lost {
                    tracing::debug!(error = %e, "idle wait on Redis failed: the server had lost the function library");
                } else {
                    tracing::warn!(error = %e, "idle wait on Redis failed");
                }
                Ok(Woken::Failed)
            }
        }
    }

    /// Blocks until a wake-up token arrives on one of the routes or `wait`
    /// passes. `Failed` if blocking failed (the caller returns an empty
    /// batch and the worker simply fetches again).
    async fn block_for_wake(&self, routes: &[Route], wait: Duration) -> Result<Woken> {
        let mut keys = Vec::with_capacity(routes.len());
        for r in routes {
            keys.push(self.route_keys(r).await?);
        }
        let pool = &self.inner.blocking;
        let res = if !self.inner.cluster || keys.len() == 1 {
            let names: Vec<&str> = keys.iter().map(|k| k.wake.as_str()).collect();
            pool.blpop(&names, wait).await
        } else {
            // Different routes live in different slots: block on each with
            // its own connection; the losers' connections are dropped.
            let futs = keys
                .iter()
                .map(|k| Box::pin(async move { pool.blpop(&[&k.wake], wait).await }));
            select_all(futs).await.0
        };
        match res {
            Ok(_) => Ok(Woken::Look),
            Err(e) => {
                tracing::debug!(error = %e, "idle wait on Redis failed");
                Ok(Woken::Failed)
            }
        }
    }
}
