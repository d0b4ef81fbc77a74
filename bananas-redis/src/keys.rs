//! The key layout. `docs/REDIS.md` describes every key.
//!
//! Every key of a route shares the hash tag `{<prefix>:<route>}`, so each
//! route script touches one Redis Cluster slot; that includes the per-job
//! keys ([`RouteKeys::result`], [`RouteKeys::notify`]), which a script gets
//! in its KEYS like the others. Global keys share the hash tag `{<prefix>}`.

use bananas_core::Priority;

/// The keys of one route, by name.
#[derive(Debug)]
pub(crate) struct RouteKeys {
    /// `{P:R}`: the hash tag every key of the route starts with.
    tag: String,
    /// Hash: id → spec of every live job.
    pub(crate) jobs: String,
    /// Hash: id → attempts, start, last error (where not derivable).
    pub(crate) meta: String,
    /// List: ids queued at high priority.
    pub(crate) q_high: String,
    /// List: ids queued at normal priority.
    pub(crate) q_normal: String,
    /// List: ids queued at low priority.
    pub(crate) q_low: String,
    /// Zset: id → eta (delayed jobs and retries).
    pub(crate) sched: String,
    /// Zset: id → lease deadline (active jobs).
    pub(crate) lease: String,
    /// Zset: id → time it died (the dead-letter index).
    pub(crate) dead: String,
    /// List: wake-up tokens for idle fetchers.
    pub(crate) wake: String,
    /// Hash: id → number of waiters blocked on it.
    pub(crate) waiters: String,
    /// Hash: schedule → the last tick whose job was enqueued on this route
    /// (`enqueue_tick.lua`; the schedule's only mark in versions before
    /// `{P}:ticks`).
    pub(crate) ticks: String,
    /// Hash: id → the running attempt's progress report.
    pub(crate) progress: String,
    /// String: the route's recovery epoch.
    pub(crate) epoch: String,
    /// Hash: id → the epoch at which recovery last took the job's lease
    /// from its holder (so that holder's late acks are refused).
    pub(crate) revoked: String,
    /// Zset: id → when it succeeded, for the succeeded jobs whose result
    /// is kept (trimmed to the result TTL).
    pub(crate) done: String,
    /// String: when the route was paused (ms); absent while it runs.
    pub(crate) paused: String,
}

impl RouteKeys {
    pub(crate) fn new(prefix: &str, route: &str) -> Self {
        let tag = format!("{{{prefix}:{route}}}");
        let k = |suffix: &str| format!("{tag}:{suffix}");
        RouteKeys {
            jobs: k("jobs"),
            meta: k("meta"),
            q_high: k("q:h"),
            q_normal: k("q:n"),
            q_low: k("q:l"),
            sched: k("sched"),
            lease: k("lease"),
            dead: k("dead"),
            wake: k("wake"),
            waiters: k("waiters"),
            ticks: k("ticks"),
            progress: k("progress"),
            epoch: k("epoch"),
            revoked: k("revoked"),
            paused: k("paused"),
            done: k("done"),
            tag,
        }
    }

    /// `{P:R}`, for messages.
    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }

    /// The queue of priority `p`.
    pub(crate) fn queue(&self, p: Priority) -> &str {
        match p {
            Priority::High => &self.q_high,
            Priority::Normal => &self.q_normal,
            Priority::Low => &self.q_low,
        }
    }

    /// String `{P:R}:r:<id>`: a finished job's record.
    pub(crate) fn result(&self, id: &str) -> String {
        format!("{}:r:{id}", self.tag)
    }

    /// Hash `{P:R}:hist:<hour>` (hours since the epoch): `<minute>p` and
    /// `<minute>f` → attempts processed and failed in that minute of the
    /// hour; expires a day and an hour after its last new minute.
    pub(crate) fn history(&self, hour: u64) -> String {
        format!("{}:hist:{hour}", self.tag)
    }

    /// String `{P:R}:x:<id>`: a job's tags and metadata (JSON), only for
    /// jobs that have some.
    pub(crate) fn extra(&self, id: &str) -> String {
        format!("{}:x:{id}", self.tag)
    }

    /// List `{P:R}:w:<id>`: the final record, pushed once per waiter.
    pub(crate) fn notify(&self, id: &str) -> String {
        format!("{}:w:{id}", self.tag)
    }
}

/// The global keys (hash tag `{P}`).
#[derive(Debug)]
pub(crate) struct GlobalKeys {
    /// `{P}`.
    tag: String,
    /// `{P}:routes`: set of every route seen.
    pub(crate) routes: String,
    /// `{P}:workers`: zset of live workers by expiry.
    pub(crate) workers: String,
    /// `{P}:schedules`: hash of schedule id → announced schedule (JSON).
    pub(crate) schedules: String,
    /// `{P}:ticks`: hash of schedule id → the last tick claimed and
    /// enqueued, whatever its route.
    pub(crate) ticks: String,
    /// `{P}:ticks:pending`: hash of schedule id → a claimed tick whose job
    /// may not be enqueued yet.
    pub(crate) ticks_pending: String,
}

impl GlobalKeys {
    pub(crate) fn new(prefix: &str) -> Self {
        let tag = format!("{{{prefix}}}");
        GlobalKeys {
            routes: format!("{tag}:routes"),
            workers: format!("{tag}:workers"),
            schedules: format!("{tag}:schedules"),
            ticks: format!("{tag}:ticks"),
            ticks_pending: format!("{tag}:ticks:pending"),
            tag,
        }
    }

    /// `{P}:worker:<id>`: a worker's info, expiring with its heartbeat.
    pub(crate) fn worker(&self, id: &str) -> String {
        format!("{}:worker:{id}", self.tag)
    }

    /// `{P}:ids:<bucket>`: the id → route index of one time bucket (see
    /// `ops/index.rs`).
    pub(crate) fn id_index(&self, bucket: u64) -> String {
        format!("{}:ids:{bucket}", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_share_one_hash_tag() {
        let k = RouteKeys::new("bananas", "gpu");
        assert_eq!(k.tag(), "{bananas:gpu}");
        assert_eq!(k.jobs, "{bananas:gpu}:jobs");
        assert_eq!(k.queue(Priority::High), "{bananas:gpu}:q:h");
        assert_eq!(k.queue(Priority::Low), "{bananas:gpu}:q:l");
        assert_eq!(k.wake, "{bananas:gpu}:wake");
        assert_eq!(k.ticks, "{bananas:gpu}:ticks");
        assert_eq!(k.result("a"), "{bananas:gpu}:r:a");
        assert_eq!(k.notify("a"), "{bananas:gpu}:w:a");
        for key in [
            &k.jobs,
            &k.meta,
            &k.q_high,
            &k.q_normal,
            &k.q_low,
            &k.sched,
            &k.lease,
            &k.dead,
            &k.wake,
            &k.waiters,
            &k.ticks,
            &k.progress,
            &k.epoch,
            &k.revoked,
        ] {
            assert!(key.starts_with("{bananas:gpu}:"), "{key}");
        }
        let g = GlobalKeys::new("bananas");
        assert_eq!(g.worker("w1"), "{bananas}:worker:w1");
        assert_eq!(g.id_index(20000), "{bananas}:ids:20000");
        assert_eq!(g.routes, "{bananas}:routes");
        assert_eq!(g.ticks, "{bananas}:ticks");
        assert_eq!(g.ticks_pending, "{bananas}:ticks:pending");
    }
}
