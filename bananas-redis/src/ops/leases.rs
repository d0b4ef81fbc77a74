//! Leases: extending them (`extend.lua`), and the lease tokens that let an
//! ack skip its lease check (see `include/epoch.lua` and docs/REDIS.md).

use std::{collections::VecDeque, sync::Mutex, time::Duration};

use bananas_core::{
    job::{now_millis, JobRef, Millis},
    Result, Route,
};
use futures::future::try_join_all;
use redis::{Cmd, Value};

use super::{by_route, ms};
use crate::{
    keys::RouteKeys,
    script::{Call, Memory, Script},
    value::int,
    RedisBroker,
};

pub(crate) const EXTEND: Script = Script {
    name: "extend",
    memory: Memory::Drains,
    source: include_str!("../../lua/ops/extend.lua"),
};

/// One call of `extend.lua`: leases of one route, taken at one epoch.
struct Extend<'a> {
    keys: &'a RouteKeys,
    deadline: Millis,
    /// The recovery epoch they were leased at ('' unknown).
    epoch: String,
    jobs: &'a [&'a JobRef],
}

impl Call for Extend<'_> {
    const SCRIPT: &'static Script = &EXTEND;
    /// How many leases were extended.
    type Reply = usize;

    fn keys(&self) -> Vec<&str> {
        vec![&self.keys.lease, &self.keys.meta, &self.keys.revoked]
    }

    fn args(&self, c: &mut Cmd) {
        c.arg(self.deadline).arg(&self.epoch);
        for job in self.jobs {
            c.arg(job.id.as_str()).arg(job.attempt);
        }
    }

    fn decode(&self, reply: Value) -> Result<usize> {
        Ok(int(&reply)?.max(0) as usize)
    }
}

impl RedisBroker {
    /// [`Broker::extend_leases`](bananas_core::Broker::extend_leases): one
    /// call per route, run concurrently.
    pub(super) async fn extend(&self, jobs: &[JobRef], lease: Duration) -> Result<()> {
        let deadline = now_millis().saturating_add(ms(lease));
        // By route, then by lease token (one epoch per call; almost always
        // one token per route).
        let mut groups: Vec<((Route, u64), Vec<&JobRef>)> = Vec::new();
        for (route, jobs) in by_route(jobs.iter().map(|j| (&j.route, j))) {
            for job in jobs {
                match groups
                    .iter_mut()
                    .find(|((r, t), _)| *t == job.lease_token && *r == route)
                {
                    Some((_, group)) => group.push(job),
                    None => groups.push(((route.clone(), job.lease_token), vec![job])),
                }
            }
        }
        let mut calls = Vec::with_capacity(groups.len());
        for ((route, token), jobs) in groups {
            let keys = self.route_keys(&route).await?;
            let epoch = self.inner.tokens.epoch_of(token).unwrap_or_default();
            calls.push(async move {
                self.call(&Extend {
                    keys: &keys,
                    deadline,
                    epoch,
                    jobs: &jobs,
                })
                .await
            });
        }
        try_join_all(calls).await?;
        Ok(())
    }
}

/// How many distinct recovery epochs one broker remembers. Epochs change
/// only when leases are recovered or a server restarts; past this many, new
/// epochs get no token and their acks are simply checked in full.
const EPOCHS_KEPT: usize = 4096;

/// The recovery epochs fetches returned, the last [`EPOCHS_KEPT`] of them;
/// a fetched job's lease token numbers its epoch (see
/// [`bananas_core::Job::lease_token`]). Tokens are never reused: the
/// oldest epoch is forgotten when a new one comes, so a token of a
/// forgotten epoch stands for nothing and its ack is checked in full (and
/// refused if recovery has marked its lease), while new fetches always get
/// a token.
#[derive(Debug, Default)]
pub(crate) struct LeaseTokens {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    epochs: VecDeque<String>,
    /// How many epochs were forgotten: the token of `epochs[i]` is
    /// `forgotten + i + 1`.
    forgotten: u64,
}

impl LeaseTokens {
    /// The lease token for jobs fetched at `epoch` (0 for no epoch).
    pub(super) fn token_for(&self, epoch: &str) -> u64 {
        if epoch.is_empty() {
            return 0;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // The current epoch is almost always the last one seen.
        if let Some(i) = seen.epochs.iter().rposition(|e| e == epoch) {
            return seen.forgotten + i as u64 + 1;
        }
        seen.epochs.push_back(epoch.to_owned());
        if seen.epochs.len() > EPOCHS_KEPT {
            seen.epochs.pop_front();
            seen.forgotten += 1;
        }
        seen.forgotten + seen.epochs.len() as u64
    }

    /// The epoch a lease token stands for, if it is still remembered.
    pub(super) fn epoch_of(&self, token: u64) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let i = token.checked_sub(seen.forgotten + 1)?;
        seen.epochs.get(usize::try_from(i).ok()?).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_stand_for_epochs() {
        let t = LeaseTokens::default();
        assert_eq!(t.token_for(""), 0);
        let a = t.token_for("a");
        assert_eq!(t.token_for("a"), a);
        let b = t.token_for("b");
        assert_ne!(a, b);
        assert_eq!(t.epoch_of(a).as_deref(), Some("a"));
        assert_eq!(t.epoch_of(b).as_deref(), Some("b"));
        assert_eq!(t.epoch_of(0), None);
        assert_eq!(t.epoch_of(99), None);
    }

    /// A long-lived process that has seen more epochs than it keeps still
    /// gets a token for a new one (without, every ack of a job recovered
    /// once would be refused, and the job run again, over and over), and
    /// the forgotten ones stand for nothing.
    #[test]
    fn new_epochs_get_tokens_when_old_ones_are_forgotten() {
        let t = LeaseTokens::default();
        let first = t.token_for("e0");
        for i in 1..=EPOCHS_KEPT {
            t.token_for(&format!("e{i}"));
        }
        let newest = t.token_for("newest");
        assert_ne!(newest, 0);
        assert_eq!(t.epoch_of(newest).as_deref(), Some("newest"));
        assert_eq!(t.epoch_of(first), None, "e0 is forgotten");
        assert_eq!(t.token_for("newest"), newest);
    }
}
