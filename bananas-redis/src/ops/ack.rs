//! Ack: settling attempts (`ack.lua`): results stored, retries scheduled,
//! jobs dead-lettered, leases ended, waiters notified.

use std::{borrow::Cow, fmt::Write as _};

use bananas_core::{
    job::{now_millis, Millis},
    Ack, Error, Outcome, Result,
};
use futures::future::try_join_all;
use redis::{Cmd, Value};

use super::{by_route, ms};
use crate::{
    codec::clean_text,
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::{int, items, text},
    RedisBroker, RedisConfig,
};

pub(crate) const SCRIPT: Script = Script {
    name: "ack",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/ack.lua"),
};

/// How an attempt ended, as `ack.lua` takes it.
pub(super) enum Settlement<'a> {
    /// Succeeded and keeps no result: nothing about the job is left.
    Done,
    /// Succeeded; the result's JSON is kept.
    Result(&'a str),
    /// Failed; runs again at `at`.
    Retry { at: Millis, error: Cow<'a, str> },
    /// Failed for good.
    Dead { reason: Cow<'a, str> },
}

impl Settlement<'_> {
    /// The kind as `ack.lua` reads it.
    fn kind(&self) -> &'static str {
        match self {
            Settlement::Done => "done",
            Settlement::Result(_) => "result",
            Settlement::Retry { .. } => "retry",
            Settlement::Dead { .. } => "dead",
        }
    }

    /// Whether the job is finished afterwards (its waiters get a record).
    fn finishes(&self) -> bool {
        !matches!(self, Settlement::Retry { .. })
    }

    /// Whether a record is stored (`{P:R}:r:<id>`).
    fn stores_record(&self) -> bool {
        matches!(self, Settlement::Result(_) | Settlement::Dead { .. })
    }
}

/// One settled attempt.
pub(super) struct Settle<'a> {
    pub(super) id: &'a str,
    pub(super) attempt: u32,
    /// When the attempt started (the worker's clock).
    pub(super) started_at: Millis,
    pub(super) how: Settlement<'a>,
}

impl<'a> Settle<'a> {
    fn from_ack(ack: &'a Ack) -> Self {
        let how = match &ack.outcome {
            Outcome::Succeeded(Some(v)) => Settlement::Result(v.get()),
            Outcome::Succeeded(None) => Settlement::Done,
            Outcome::Retry { at, error } => Settlement::Retry {
                at: *at,
                error: clean_text(error),
            },
            Outcome::Dead { reason } => Settlement::Dead {
                reason: clean_text(reason),
            },
        };
        Settle {
            id: ack.job.id.as_str(),
            attempt: ack.job.attempt,
            started_at: ack.started_at,
            how,
        }
    }
}

/// One call of `ack.lua`: a batch of one route.
struct AckCall<'a> {
    keys: &'a RouteKeys,
    now: Millis,
    result_ttl: u64,
    failure_ttl: u64,
    batch: &'a [Settle<'a>],
    /// The recovery epoch every attempt of the batch was leased at.
    epoch: Option<&'a str>,
    /// Whether `epoch` may let `ack.lua` skip its lease check (not on a
    /// cluster: see [`RedisBroker::settle_acks`]).
    trust: bool,
    /// Whether the waiters' lists are declared (and every ack goes in full
    /// form); else successes without a result go compact (ids only).
    with_lists: bool,
    /// The per-job keys, in ARGV order: `{P:R}:r:<id>` of every ack that
    /// stores a record; with the lists, `{P:R}:r:<id>` and `{P:R}:w:<id>`
    /// of every ack that finishes its job.
    job_keys: Vec<String>,
    /// `{P:R}:hist:<hour>` of `now`.
    history: String,
    /// Whether succeeded jobs with a result go in `{P:R}:done`
    /// ([`RedisConfig::index_succeeded`]).
    index_done: bool,
}

/// What `ack.lua` answered.
enum AckReply {
    /// The batch was settled; `stale` acks were ignored.
    Settled { stale: i64 },
    /// A job the batch finishes has waiters, whose list the call did not
    /// declare: nothing was written; send the batch with the lists.
    NeedKeys,
}

impl<'a> AckCall<'a> {
    fn new(
        cfg: &RedisConfig,
        keys: &'a RouteKeys,
        batch: &'a [Settle<'a>],
        (epoch, trust): (Option<&'a str>, bool),
        with_lists: bool,
    ) -> Self {
        let now = now_millis();
        let mut call = AckCall {
            keys,
            now,
            history: keys.history(now / 3_600_000),
            index_done: cfg.index_succeeded,
            result_ttl: ms(cfg.result_ttl),
            failure_ttl: ms(cfg.failure_ttl),
            batch,
            epoch,
            trust,
            with_lists,
            job_keys: Vec::new(),
        };
        let job_keys = if with_lists {
            call.full()
                .filter(|s| s.how.finishes())
                .flat_map(|s| [keys.result(s.id), keys.notify(s.id)])
                .collect()
        } else {
            call.full()
                .filter(|s| s.how.stores_record())
                .map(|s| keys.result(s.id))
                .collect()
        };
        call.job_keys = job_keys;
        call
    }

    fn is_compact(&self, s: &Settle<'_>) -> bool {
        !self.with_lists && matches!(s.how, Settlement::Done)
    }

    /// The acks sent compact, in batch order.
    fn compact(&self) -> impl Iterator<Item = &Settle<'a>> + Clone + '_ {
        self.batch.iter().filter(|s| self.is_compact(s))
    }

    /// The acks sent in full, in batch order.
    fn full(&self) -> impl Iterator<Item = &Settle<'a>> + '_ {
        self.batch.iter().filter(|s| !self.is_compact(s))
    }
}

impl Call for AckCall<'_> {
    const SCRIPT: &'static Script = &SCRIPT;
    type Reply = AckReply;

    fn keys(&self) -> Vec<&str> {
        let k = self.keys;
        let mut keys = Vec::with_capacity(12 + self.job_keys.len());
        keys.extend([
            k.jobs.as_str(),
            &k.meta,
            &k.sched,
            &k.lease,
            &k.dead,
            &k.wake,
            &k.waiters,
            &k.progress,
            &k.epoch,
            &k.revoked,
            &k.done,
            &self.history,
        ]);
        keys.extend(self.job_keys.iter().map(String::as_str));
        keys
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.now).arg(self.result_ttl).arg(self.failure_ttl);
        // Compact acks go first: their attempts ('' when all are 1) and
        // start times as two comma-separated arguments, then their ids.
        let compact = self.compact();
        let mut n = 0usize;
        let mut attempts = String::new();
        let mut started = String::with_capacity(self.batch.len() * 14);
        let all_first = compact.clone().all(|s| s.attempt == 1);
        for s in compact.clone() {
            if n > 0 {
                started.push(',');
                if !all_first {
                    attempts.push(',');
                }
            }
            n += 1;
            let _ = write!(started, "{}", s.started_at);
            if !all_first {
                let _ = write!(attempts, "{}", s.attempt);
            }
        }
        c.arg(n).arg(attempts).arg(started);
        c.arg(self.epoch.unwrap_or(""));
        let flags = match (self.with_lists, self.trust, self.index_done) {
            (true, true, true) => "lt",
            (true, false, true) => "l",
            (false, true, true) => "t",
            (false, false, true) => "",
            (true, true, false) => "ltn",
            (true, false, false) => "ln",
            (false, true, false) => "tn",
            (false, false, false) => "n",
        };
        c.arg(flags);
        for s in compact {
            c.arg(s.id);
        }
        for s in self.full() {
            c.arg(s.how.kind())
                .arg(s.id)
                .arg(s.attempt)
                .arg(s.started_at);
            match &s.how {
                Settlement::Done => c.arg("").arg(""),
                Settlement::Result(json) => c.arg(*json).arg(""),
                Settlement::Retry { at, error } => c.arg(*at).arg(error.as_ref()),
                Settlement::Dead { reason } => c.arg(reason.as_ref()).arg(""),
            };
        }
    }

    fn decode(&self, reply: Value) -> Result<AckReply> {
        let r = items(reply);
        match r.first().map(text).as_deref() {
            Some("settled") => Ok(AckReply::Settled {
                stale: r.get(2).map(int).transpose()?.unwrap_or(0),
            }),
            Some("need_keys") => Ok(AckReply::NeedKeys),
            other => Err(Error::Corrupt(format!(
                "redis: script `ack` answered {other:?}"
            ))),
        }
    }
}

/// `batch` split by lease token (see [`bananas_core::Job::lease_token`]),
/// so each part names the one epoch its attempts were leased at. Almost
/// always one part: tokens change only when leases are recovered.
fn by_token<'a>(batch: Vec<&'a Ack>) -> Vec<(u64, Vec<&'a Ack>)> {
    let first = batch.first().map_or(0, |a| a.job.lease_token);
    if batch.iter().all(|a| a.job.lease_token == first) {
        return vec![(first, batch)];
    }
    let mut parts: Vec<(u64, Vec<&'a Ack>)> = Vec::new();
    for ack in batch {
        let token = ack.job.lease_token;
        match parts.iter_mut().find(|(t, _)| *t == token) {
            Some((_, part)) => part.push(ack),
            None => parts.push((token, vec![ack])),
        }
    }
    parts
}

impl RedisBroker {
    /// [`Broker::ack`](bananas_core::Broker::ack): one script call per
    /// route, run concurrently.
    pub(super) async fn settle_acks(&self, acks: &[Ack]) -> Result<()> {
        let groups = by_route(acks.iter().map(|a| (&a.job.route, a)));
        let mut calls = Vec::with_capacity(groups.len());
        for (route, batch) in groups {
            let keys = self.route_keys(&route).await?;
            calls.push(async move {
                for (token, part) in by_token(batch) {
                    let settles: Vec<Settle<'_>> =
                        part.iter().map(|a| Settle::from_ack(a)).collect();
                    let epoch = self.inner.tokens.epoch_of(token);
                    // The cluster client re-sends a request whose connection
                    // dropped, even one Redis had already run: a repeat this
                    // process cannot see, so on a cluster every ack is
                    // checked (the epoch still tells a revoked lease).
                    let trust = !self.inner.cluster;
                    self.settle(&keys, &settles, epoch, trust).await?;
                }
                Ok::<_, Error>(())
            });
        }
        try_join_all(calls).await?;
        Ok(())
    }

    /// Settles `batch` on one route. `epoch` is the route's recovery epoch
    /// at which every attempt in the batch was leased: with `trust`, if it
    /// is still the current epoch, `ack.lua` skips its lease check; either
    /// way it refuses the acks of leases recovered since.
    pub(super) async fn settle(
        &self,
        keys: &RouteKeys,
        batch: &[Settle<'_>],
        epoch: Option<String>,
        trust: bool,
    ) -> Result<()> {
        let epoch = (epoch.as_deref(), trust);
        let mut reply = self
            .call(&AckCall::new(&self.inner.cfg, keys, batch, epoch, false))
            .await?;
        if let AckReply::NeedKeys = reply {
            // Someone waits for a job of the batch.
            reply = self
                .call(&AckCall::new(&self.inner.cfg, keys, batch, epoch, true))
                .await?;
        }
        match reply {
            AckReply::Settled { stale } if stale > 0 => {
                tracing::debug!(
                    route = keys.tag(),
                    stale,
                    "ignored acks of attempts that no longer hold their lease"
                );
                Ok(())
            }
            AckReply::Settled { .. } => Ok(()),
            AckReply::NeedKeys => Err(Error::Corrupt(
                "redis: script `ack` asked for keys it was given".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(call: &AckCall<'_>) -> Vec<String> {
        let mut c = redis::cmd("X");
        call.args(&mut c);
        c.args_iter()
            .skip(1)
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            })
            .collect()
    }

    fn call<'a>(keys: &'a RouteKeys, batch: &'a [Settle<'a>], with_lists: bool) -> AckCall<'a> {
        let cfg = RedisConfig::new("redis://x")
            .result_ttl(std::time::Duration::from_millis(1))
            .failure_ttl(std::time::Duration::from_millis(2));
        let mut c = AckCall::new(&cfg, keys, batch, (None, false), with_lists);
        c.now = 100;
        c
    }

    fn batch() -> Vec<Settle<'static>> {
        let s = |id, attempt, how| Settle {
            id,
            attempt,
            started_at: 7,
            how,
        };
        vec![
            s("a", 1, Settlement::Done),
            s("b", 2, Settlement::Result("[1]")),
            s("c", 1, Settlement::Done),
            s(
                "d",
                1,
                Settlement::Retry {
                    at: 9,
                    error: "e".into(),
                },
            ),
            s("f", 3, Settlement::Dead { reason: "r".into() }),
        ]
    }

    #[test]
    fn compact_acks_go_first_and_records_declare_their_keys() {
        let keys = RouteKeys::new("p", "r");
        let batch = batch();
        let c = call(&keys, &batch, false);
        assert_eq!(
            args(&c),
            [
                "100", "1", "2", "2", "", "7,7", "", "", "a", "c", // compact
                "result", "b", "2", "7", "[1]", "", //
                "retry", "d", "1", "7", "9", "e", //
                "dead", "f", "3", "7", "r", ""
            ]
        );
        assert_eq!(
            &c.keys()[12..],
            ["{p:r}:r:b", "{p:r}:r:f"],
            "the records of the result and the dead job; no waiters' lists"
        );
    }

    #[test]
    fn with_the_lists_every_ack_that_finishes_declares_both() {
        let keys = RouteKeys::new("p", "r");
        let batch = batch();
        let c = call(&keys, &batch, true);
        let a = args(&c);
        assert_eq!(&a[..9], ["100", "1", "2", "0", "", "", "", "l", "done"]);
        assert_eq!(
            &c.keys()[12..],
            [
                "{p:r}:r:a",
                "{p:r}:w:a",
                "{p:r}:r:b",
                "{p:r}:w:b",
                "{p:r}:r:c",
                "{p:r}:w:c",
                "{p:r}:r:f",
                "{p:r}:w:f"
            ],
            "a retry finishes nothing: no keys"
        );
    }
}
