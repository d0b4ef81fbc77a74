//! The id → route index: which route a job id was enqueued on, so that a
//! lookup by a bare id (`GET /jobs/{id}`, `bananas jobs show ID`,
//! `requeue_dead(id)`) asks one route instead of every route.
//!
//! Jobs on the default route get no entry: a lookup that finds none asks
//! the default route first, which is as cheap as asking the route an entry
//! names, so most applications, whose jobs run on the default route, pay
//! nothing for the index.
//!
//! The index is a hint. A job's keys live in its route's slot (`{P:R}`);
//! the index is global (`{P}`), so on a Redis Cluster it is in another slot
//! and no route script can write it. It is written beside the enqueue, in
//! the same request as the enqueue's script: one `HSET` per enqueue call
//! (and, once a minute per process, a `PEXPIREAT`). A lookup whose hint is missing or wrong asks
//! every route, as without the index, so correctness never depends on it.
//!
//! An entry is a field of a hash: [`id_field`] of the id (8 bytes; a
//! collision only makes a hint wrong) → the route's name. Memory stays
//! bounded without any cleanup on the drain path: entries go into time
//! buckets, hashes `{P}:ids:<day>` (`day` = days since the Unix epoch at
//! which the bucket starts), each expiring as a whole
//! `retain` after the bucket ends, where `retain` is the longer of the
//! result and failure TTLs plus a day for the time a job may wait in its
//! queue. So an entry stays findable at least `retain` after its job was
//! enqueued, and is gone at most `retain` + one bucket later. A bucket
//! spans one day, or more when `retain` is long, so that a lookup reads at
//! most about ten buckets, in one pipelined round trip. docs/REDIS.md gives
//! the cost per job.

use std::sync::Mutex;

use bananas_core::{
    job::{now_millis, Millis},
    JobId, Route,
};
use redis::{Cmd, RedisError};

use super::ms;
use crate::{RedisBroker, RedisConfig};

const DAY_MS: u64 = 86_400_000;

/// How long a job may wait before it runs (queued, scheduled) and still
/// be found through the index until its record expires.
const GRACE_MS: u64 = DAY_MS;

/// Slack for clocks that disagree between the process that wrote an entry
/// and the one that looks it up.
const SLACK_MS: u64 = 5 * 60_000;

/// How often a process sets the current bucket's expiry again (in case the
/// key was evicted or deleted and written again without one).
const TTL_EVERY_MS: u64 = 60_000;

/// An id's field in the index: the FNV-1a 64-bit hash of its UTF-8 bytes,
/// big-endian. Stable across versions and processes (every writer and
/// reader must agree); two ids with the same field make one's hint wrong,
/// which a lookup survives by asking every route.
pub(crate) fn id_field(id: &str) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.to_be_bytes()
}

/// The index's buckets, from the broker's TTLs.
#[derive(Debug)]
pub(crate) struct IdIndex {
    enabled: bool,
    /// How long an entry must stay findable after it was written.
    retain: u64,
    /// The time one bucket covers: a whole number of days.
    span: u64,
    /// The bucket whose expiry this process set last, and when.
    ttl_set: Mutex<Option<(u64, Millis)>>,
}

impl IdIndex {
    pub(crate) fn new(cfg: &RedisConfig) -> Self {
        let retain = ms(cfg.result_ttl.max(cfg.failure_ttl)).saturating_add(GRACE_MS);
        let days = retain.div_ceil(8 * DAY_MS).max(1);
        IdIndex {
            enabled: cfg.id_index,
            retain,
            span: DAY_MS.saturating_mul(days),
            ttl_set: Mutex::new(None),
        }
    }

    fn bucket(&self, now: Millis) -> u64 {
        now / self.span
    }

    /// The bucket's name: the day it starts.
    fn day(&self, bucket: u64) -> u64 {
        bucket.saturating_mul(self.span) / DAY_MS
    }

    /// When the bucket's key expires: `retain` after the bucket ends.
    fn expires_at(&self, bucket: u64) -> Millis {
        bucket
            .saturating_add(1)
            .saturating_mul(self.span)
            .saturating_add(self.retain)
    }

    /// The buckets that may hold an entry a lookup at `now` needs, newest
    /// first.
    fn buckets(&self, now: Millis) -> impl Iterator<Item = u64> {
        let newest = self.bucket(now.saturating_add(SLACK_MS));
        let oldest = self.bucket(now.saturating_sub(self.retain.saturating_add(SLACK_MS)));
        (oldest..=newest).rev()
    }

    /// The buckets whose expiry a write into `bucket` at `now` sets: the
    /// first write of this process into a bucket also sets the previous
    /// one's (in case it was written again without an expiry at its very
    /// end), then once every [`TTL_EVERY_MS`].
    fn ttl_due(&self, bucket: u64, now: Millis) -> &'static [u64] {
        let mut set = self.ttl_set.lock().unwrap_or_else(|e| e.into_inner());
        match *set {
            Some((b, at)) if b == bucket && now < at.saturating_add(TTL_EVERY_MS) => &[],
            Some((b, _)) if b == bucket => {
                *set = Some((bucket, now));
                &[0]
            }
            _ => {
                *set = Some((bucket, now));
                &[0, 1]
            }
        }
    }

    /// Forgets that the expiry of `bucket` was set (the write failed).
    fn ttl_failed(&self, bucket: u64) {
        let mut set = self.ttl_set.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*set, Some((b, _)) if b == bucket) {
            *set = None;
        }
    }
}

/// The commands that record some ids' route, to send beside the script
/// that enqueues them ([`Scripts::call_beside`](crate::script::Scripts::call_beside)).
pub(super) struct IndexWrite {
    /// `HSET` of the current bucket, and its expiry when due.
    pub(super) cmds: Vec<Cmd>,
    bucket: u64,
}

impl RedisBroker {
    /// The commands recording that `ids` were enqueued on `route` (none
    /// when the index is off, or for the default route).
    pub(super) fn index_write<'a>(
        &self,
        route: &Route,
        ids: impl Iterator<Item = &'a str>,
    ) -> IndexWrite {
        let index = &self.inner.index;
        let now = now_millis();
        let bucket = index.bucket(now);
        if !index.enabled || route.as_str() == Route::DEFAULT {
            return IndexWrite {
                cmds: Vec::new(),
                bucket,
            };
        }
        let mut hset = redis::cmd("HSET");
        hset.arg(self.inner.global.id_index(index.day(bucket)));
        for id in ids {
            hset.arg(&id_field(id)[..]).arg(route.as_str());
        }
        let mut cmds = vec![hset];
        for back in index.ttl_due(bucket, now) {
            let b = bucket.saturating_sub(*back);
            let mut expire = redis::cmd("PEXPIREAT");
            expire
                .arg(self.inner.global.id_index(index.day(b)))
                .arg(index.expires_at(b));
            cmds.push(expire);
        }
        IndexWrite { cmds, bucket }
    }

    /// Logs the failures of an [`IndexWrite`]: lookups by id of those jobs
    /// will ask every route.
    pub(super) fn index_failed(&self, write: &IndexWrite, route: &Route, errors: &[RedisError]) {
        if let Some(e) = errors.first() {
            self.inner.index.ttl_failed(write.bucket);
            tracing::debug!(%route, error = %e, "could not write the id index; lookups by id of these jobs will ask every route");
        }
    }

    /// Records that `ids` are on `route`, on its own. Never fails: a write
    /// that fails is logged.
    pub(super) async fn index_ids<'a>(&self, route: &Route, ids: impl Iterator<Item = &'a str>) {
        let write = self.index_write(route, ids);
        if write.cmds.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for c in &write.cmds {
            pipe.add_command(c.clone()).ignore();
        }
        let mut conn = self.inner.conn.clone();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            self.index_failed(&write, route, &[e]);
        }
    }

    /// The route the index names for `id`, if any. A failed read is a miss.
    pub(super) async fn indexed_route(&self, id: &JobId) -> Option<Route> {
        let index = &self.inner.index;
        if !index.enabled {
            return None;
        }
        let mut pipe = redis::pipe();
        let field = id_field(id.as_str());
        for b in index.buckets(now_millis()) {
            pipe.cmd("HGET")
                .arg(self.inner.global.id_index(index.day(b)))
                .arg(&field[..]);
        }
        let mut conn = self.inner.conn.clone();
        match pipe.query_async::<Vec<Option<String>>>(&mut conn).await {
            Ok(found) => found.into_iter().flatten().find_map(|r| Route::new(r).ok()),
            Err(e) => {
                tracing::debug!(job_id = %id, error = %e, "could not read the id index");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn index(result_ttl: Duration, failure_ttl: Duration) -> IdIndex {
        IdIndex::new(
            &RedisConfig::new("redis://x")
                .result_ttl(result_ttl)
                .failure_ttl(failure_ttl),
        )
    }

    #[test]
    fn id_fields_are_fnv1a_64() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(id_field(""), 0xcbf2_9ce4_8422_2325u64.to_be_bytes());
        assert_eq!(id_field("a"), 0xaf63_dc4c_8601_ec8cu64.to_be_bytes());
        assert_eq!(id_field("foobar"), 0x8594_4171_f739_67e8u64.to_be_bytes());
    }

    #[test]
    fn every_entry_is_read_for_as_long_as_its_bucket_lives() {
        let day = Duration::from_secs(86_400);
        for (ok, dead) in [
            (day, 7 * day),
            (Duration::from_secs(60), day),
            (day, 365 * day),
        ] {
            let ix = index(ok, dead);
            assert_eq!(ix.span % DAY_MS, 0);
            let t0 = 20_000 * DAY_MS + 12_345;
            let b = ix.bucket(t0);
            // Findable from the moment it is written until `retain` later,
            // and the bucket's key lives that long.
            for now in [t0, t0 + 1, t0 + ix.span, t0 + ix.retain - 1] {
                assert!(
                    ix.buckets(now).any(|x| x == b),
                    "{ok:?}/{dead:?} at +{}",
                    now - t0
                );
            }
            assert!(ix.expires_at(b) >= t0 + ix.retain);
            assert!(ix.expires_at(b) <= t0 + ix.retain + ix.span);
            // A lookup reads about ten buckets at most.
            assert!(ix.buckets(t0).count() <= 11, "{}", ix.buckets(t0).count());
        }
    }

    #[test]
    fn the_default_bucket_is_a_day_named_by_its_first_day() {
        let ix = index(Duration::from_secs(86_400), Duration::from_secs(7 * 86_400));
        assert_eq!(ix.span, DAY_MS);
        assert_eq!(ix.retain, 8 * DAY_MS);
        let now = 20_000 * DAY_MS + 5;
        assert_eq!(ix.day(ix.bucket(now)), 20_000);
        let long = index(
            Duration::from_secs(86_400),
            Duration::from_secs(100 * 86_400),
        );
        assert_eq!(long.span, 13 * DAY_MS);
        assert_eq!(long.day(long.bucket(now)) % 13, 0);
    }

    #[test]
    fn expiries_are_set_on_a_new_bucket_then_once_a_minute() {
        let ix = index(Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(ix.ttl_due(5, 1000), &[0, 1]);
        assert_eq!(ix.ttl_due(5, 2000), &[] as &[u64]);
        assert_eq!(ix.ttl_due(5, 1000 + TTL_EVERY_MS), &[0]);
        assert_eq!(ix.ttl_due(6, 1000 + TTL_EVERY_MS), &[0, 1]);
        ix.ttl_failed(6);
        assert_eq!(ix.ttl_due(6, 1001 + TTL_EVERY_MS), &[0, 1]);
    }
}
