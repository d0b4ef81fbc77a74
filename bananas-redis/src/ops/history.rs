//! [`History`]: the per-minute counts `ack.lua` keeps in one hash per route
//! and hour (`{P:R}:hist:<hour>`), read back with one `HGETALL` per hour.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bananas_core::{
    broker::{History, MinuteCounts, HISTORY_MINUTES},
    job::now_millis,
    Result, Route,
};

use crate::{conn::broker_err, RedisBroker};

const HOUR: u64 = 3_600_000;
const MINUTE: u64 = 60_000;

#[async_trait]
impl History for RedisBroker {
    async fn history(&self, route: &Route) -> Result<Vec<MinuteCounts>> {
        let keys = self.keys_of(route);
        let now = now_millis();
        let from = (now / MINUTE).saturating_sub(HISTORY_MINUTES - 1) * MINUTE;
        let hours: Vec<u64> = (from / HOUR..=now / HOUR).collect();
        let mut pipe = redis::pipe();
        for h in &hours {
            pipe.cmd("HGETALL").arg(keys.history(*h));
        }
        let mut conn = self.inner.conn.clone();
        let replies: Vec<HashMap<String, u64>> =
            pipe.query_async(&mut conn).await.map_err(broker_err)?;
        let mut minutes: BTreeMap<u64, MinuteCounts> = BTreeMap::new();
        for (h, fields) in hours.iter().zip(replies) {
            for (field, n) in fields {
                // `<minute of the hour>p` or `…f`; anything else is skipped.
                let (m, kind) = field.split_at(field.len().saturating_sub(1));
                let Some(m) = m.parse::<u64>().ok().filter(|m| *m < 60) else {
                    continue;
                };
                let minute = h * HOUR + m * MINUTE;
                if minute < from {
                    continue;
                }
                let e = minutes.entry(minute).or_insert_with(|| MinuteCounts {
                    minute,
                    ..MinuteCounts::default()
                });
                match kind {
                    "p" => e.processed = n,
                    "f" => e.failed = n,
                    _ => {}
                }
            }
        }
        Ok(minutes.into_values().filter(|m| m.processed > 0).collect())
    }
}
