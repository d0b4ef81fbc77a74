//! The memory broker's [`Browse`]: pages read off the same structures the
//! broker runs on (the queues, and the sets ordered by time).

use std::collections::BTreeSet;

use async_trait::async_trait;
use bananas_core::Result;

use crate::{
    broker::{check_limit, Browse, Cursor, JobFilter, JobPage, ListState, SCAN_BUDGET},
    job::{now_millis, JobId, JobRecord, Millis, Route},
};

use super::{state::State, MemoryBroker};

#[async_trait]
impl Browse for MemoryBroker {
    async fn list_jobs(
        &self,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<JobPage> {
        let limit = check_limit(limit)?;
        let cursor = cursor.map(Cursor::decode).transpose()?;
        let mut st = self.state.lock();
        st.expire(now_millis());
        match filter.state {
            ListState::Queued => queued(&st, filter, cursor, limit),
            state => {
                let index = match state {
                    ListState::Scheduled | ListState::Retrying => &st.scheduled,
                    ListState::Active => &st.leases,
                    ListState::Dead | ListState::Cancelled => &st.dead,
                    // Finished records, by when they expire: with one TTL
                    // for every result, the order they finished in.
                    _ => &st.expiries,
                };
                by_time(&st, index, filter, cursor, limit)
            }
        }
    }
}

/// A page of a set ordered by time, newest first, after the cursor.
fn by_time(
    st: &State,
    index: &BTreeSet<(Millis, JobId)>,
    filter: &JobFilter,
    cursor: Option<Cursor>,
    limit: usize,
) -> Result<JobPage> {
    let after = match cursor {
        None => None,
        Some(Cursor::At(t, id)) => Some((t, JobId::from(id.as_str()))),
        Some(other) => return Err(other.wrong_kind(filter.state)),
    };
    let mut entries: Box<dyn Iterator<Item = &(Millis, JobId)>> = match &after {
        Some(a) => Box::new(index.range(..a.clone()).rev()),
        None => Box::new(index.iter().rev()),
    };
    let mut page = JobPage::default();
    let mut scanned = 0;
    let mut last = None;
    for entry in entries.by_ref() {
        scanned += 1;
        last = Some(entry);
        if let Some(rec) = record(st, &entry.1).filter(|r| filter.matches(r)) {
            page.jobs.push(rec);
        }
        if page.jobs.len() == limit || scanned == SCAN_BUDGET {
            break;
        }
    }
    if let Some((t, id)) = last {
        if entries.next().is_some() {
            page.next = Some(Cursor::At(*t, id.to_string()).encode());
        }
    }
    Ok(page)
}

/// A page of queued jobs: route by route, high to low, newest first.
fn queued(st: &State, filter: &JobFilter, cursor: Option<Cursor>, limit: usize) -> Result<JobPage> {
    let mut routes: Vec<&Route> = match &filter.route {
        Some(r) => st.queues.keys().filter(|k| *k == r).collect(),
        None => st.queues.keys().collect(),
    };
    routes.sort();
    let (from_route, mut q, mut skip) = match cursor {
        None => (None, 0u8, 0u64),
        Some(Cursor::Queue(route, q, skip)) => (Some(route), q, skip),
        Some(other) => return Err(other.wrong_kind(filter.state)),
    };
    let start = match &from_route {
        // A route gone since goes on with the next one by name.
        Some(r) => {
            let i = routes.partition_point(|x| *x < r);
            if routes.get(i) != Some(&r) {
                (q, skip) = (0, 0);
            }
            i
        }
        None => 0,
    };
    let mut page = JobPage::default();
    let mut scanned = 0;
    for route in &routes[start..] {
        let queues = &st.queues[*route];
        while q < 3 {
            let queue = &queues[q as usize];
            for id in queue.iter().rev().skip(skip as usize) {
                scanned += 1;
                skip += 1;
                if let Some(rec) = record(st, id).filter(|r| filter.matches(r)) {
                    page.jobs.push(rec);
                }
                if page.jobs.len() == limit || scanned == SCAN_BUDGET {
                    // (The next page may be empty: it says so.)
                    page.next = Some(Cursor::Queue((*route).clone(), q, skip).encode());
                    return Ok(page);
                }
            }
            q += 1;
            skip = 0;
        }
        q = 0;
    }
    Ok(page)
}

fn record(st: &State, id: &JobId) -> Option<JobRecord> {
    st.jobs.get(id).map(|e| e.record.clone())
}
