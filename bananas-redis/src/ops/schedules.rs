//! [`Schedules`]: ticks (`ticks.rs`) and the schedulers' announcements,
//! one hash `{P}:schedules` read and written with plain commands.

use async_trait::async_trait;
use bananas_core::{
    broker::{ScheduleInfo, Schedules, TickClaim, TickMark},
    job::Millis,
    Job, Result, Route,
};

use crate::{conn::broker_err, RedisBroker};

#[async_trait]
impl Schedules for RedisBroker {
    async fn claim_tick(&self, schedule: &str, tick: Millis, job: Job) -> Result<TickClaim> {
        self.claim(schedule, tick, job).await
    }

    async fn last_tick(&self, schedule: &str, route: &Route) -> Result<Option<TickMark>> {
        self.tick_mark(schedule, route).await
    }

    async fn announce(&self, schedules: &[ScheduleInfo]) -> Result<()> {
        if schedules.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&self.inner.global.schedules);
        for s in schedules {
            cmd.arg(&s.id).arg(serde_json::to_string(s)?);
        }
        let mut conn = self.inner.conn.clone();
        let _: i64 = cmd.query_async(&mut conn).await.map_err(broker_err)?;
        Ok(())
    }

    async fn announcements(&self) -> Result<Vec<ScheduleInfo>> {
        let mut conn = self.inner.conn.clone();
        // Bytes, not strings: one announcement that is not UTF-8 must not
        // fail the whole list.
        let all: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(&self.inner.global.schedules)
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        Ok(all
            .into_iter()
            .filter_map(|(id, json)| match serde_json::from_slice(&json) {
                Ok(s) => Some(s),
                Err(e) => {
                    let id = String::from_utf8_lossy(&id);
                    tracing::warn!(schedule = ?id, error = %e, "unreadable schedule announcement skipped");
                    None
                }
            })
            .collect())
    }

    async fn forget(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.inner.conn.clone();
        let _: i64 = redis::cmd("HDEL")
            .arg(&self.inner.global.schedules)
            .arg(ids)
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        Ok(())
    }
}
