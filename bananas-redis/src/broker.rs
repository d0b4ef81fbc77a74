//! `impl Broker for RedisBroker`: each method is one script call per route.

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use bananas_core::{
    broker::{
        Cancel, CancelOutcome, DeadLetter, FetchRequest, Inspect, Progress, QueueStats,
        ScheduleInfo, Schedules, TickMark, WorkerInfo, Workers,
    },
    job::{now_millis, Millis},
    priority, Ack, Broker, Error, Job, JobId, JobRecord, JobRef, Outcome, Result, Route,
};
use futures::future::{select_all, try_join_all};
use redis::{AsyncCommands as _, Cmd, Value};
use serde_json::value::RawValue;

use crate::{
    codec::{self, clean_text, SEP},
    conn::broker_err,
    keys::RouteKeys,
    value::{bytes, int, items, text},
    RedisBroker,
};

/// Jobs per enqueue script call; bigger batches are split and pipelined.
const ENQUEUE_CHUNK: usize = 5000;

/// Bytes of job data (ids and specs) per enqueue script call: a script
/// blocks Redis for its whole run, so a batch of large jobs is split even
/// when it has fewer than [`ENQUEUE_CHUNK`] jobs. A job larger than this
/// goes in a call of its own.
const ENQUEUE_CHUNK_BYTES: usize = 4 << 20;

/// Splits `items` into runs of at most [`ENQUEUE_CHUNK`] items and about
/// [`ENQUEUE_CHUNK_BYTES`] bytes (`size` of each), never empty.
fn enqueue_chunks<T>(items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start && (i - start == ENQUEUE_CHUNK || bytes + n > ENQUEUE_CHUNK_BYTES) {
            chunks.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// Groups items by route, keeping the order of first appearance. Routes
/// are borrowed and cloned once per group; an item on the same route as the
/// one before it (the usual case: one route) costs a string compare, not a
/// hash.
fn by_route<'r, T>(items: impl IntoIterator<Item = (&'r Route, T)>) -> Vec<(Route, Vec<T>)> {
    let mut index: HashMap<&'r Route, usize> = HashMap::new();
    let mut groups: Vec<(Route, Vec<T>)> = Vec::new();
    let mut last: Option<(&'r Route, usize)> = None;
    for (route, item) in items {
        let i = match last {
            Some((r, i)) if r == route => i,
            _ => match index.get(route) {
                Some(&i) => i,
                None => {
                    index.insert(route, groups.len());
                    groups.push((route.clone(), Vec::new()));
                    groups.len() - 1
                }
            },
        };
        groups[i].1.push(item);
        last = Some((route, i));
    }
    groups
}

/// The lease token every ack of `batch` carries, if they share one that is
/// not 0 (see [`Job::lease_token`]).
fn shared_token(batch: &[&Ack]) -> Option<u64> {
    let token = batch.first()?.job.lease_token;
    if token == 0 || batch.iter().any(|a| a.job.lease_token != token) {
        return None;
    }
    Some(token)
}

/// How many distinct recovery epochs one broker remembers. Epochs change
/// only when leases are recovered or a server restarts; past this many, new
/// epochs get no token and their acks are simply checked in full.
const EPOCHS_KEPT: usize = 4096;

/// One settled attempt, as `ack.lua` takes it.
struct Settle<'a> {
    kind: &'static str,
    id: &'a str,
    attempt: u32,
    started_at: Millis,
    a: std::borrow::Cow<'a, str>,
    b: std::borrow::Cow<'a, str>,
}

impl<'a> Settle<'a> {
    fn from_ack(ack: &'a Ack) -> Self {
        let (kind, a, b) = match &ack.outcome {
            Outcome::Succeeded(Some(v)) => ("S", v.get().into(), "".into()),
            Outcome::Succeeded(None) => ("N", "".into(), "".into()),
            Outcome::Retry { at, error } => ("R", at.to_string().into(), clean_text(error)),
            Outcome::Dead { reason } => ("D", clean_text(reason), "".into()),
        };
        Settle {
            kind,
            id: ack.job.id.as_str(),
            attempt: ack.job.attempt,
            started_at: ack.started_at,
            a,
            b,
        }
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

/// What one route's fetch returned.
struct Fetched {
    jobs: Vec<Job>,
    /// The earliest scheduled eta, when nothing was ready.
    next_eta: Option<Millis>,
    /// Some popped jobs were dead-lettered: try again at once.
    again: bool,
}

impl RedisBroker {
    /// Every readable schedule announcement, abandoned ones included.
    async fn announced(&self) -> Result<Vec<ScheduleInfo>> {
        let mut conn = self.inner.conn.clone();
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&self.inner.global.schedules)
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        Ok(all
            .into_iter()
            .filter_map(|(id, json)| match serde_json::from_str(&json) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(schedule = %id, error = %e, "unreadable schedule announcement skipped");
                    None
                }
            })
            .collect())
    }

    /// The lease token for jobs fetched at `epoch`: its index in the
    /// epochs this broker has seen, + 1 (0 when the table is full).
    fn token_for_epoch(&self, epoch: &str) -> u64 {
        if epoch.is_empty() {
            return 0;
        }
        let mut seen = self.inner.epochs.lock().unwrap_or_else(|e| e.into_inner());
        // The current epoch is almost always the last one seen.
        if let Some(i) = seen.iter().rposition(|e| e == epoch) {
            return i as u64 + 1;
        }
        if seen.len() >= EPOCHS_KEPT {
            return 0;
        }
        seen.push(epoch.to_owned());
        seen.len() as u64
    }

    /// The epoch a lease token stands for.
    fn epoch_of_token(&self, token: u64) -> Option<String> {
        let seen = self.inner.epochs.lock().unwrap_or_else(|e| e.into_inner());
        let i = usize::try_from(token.checked_sub(1)?).ok()?;
        seen.get(i).cloned()
    }

    /// Settles `batch` on one route. `epoch` is the route's recovery epoch
    /// at which every attempt in the batch was leased, when they share one:
    /// if it is still the current epoch, `ack.lua` skips its lease check.
    async fn settle(
        &self,
        keys: &RouteKeys,
        batch: &[Settle<'_>],
        epoch: Option<String>,
    ) -> Result<()> {
        let cfg = &self.inner.cfg;
        let now = now_millis();
        let reply = self
            .inner
            .scripts
            .ack
            .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                c.arg(now).arg(ms(cfg.result_ttl)).arg(ms(cfg.failure_ttl));
                // Successes without a result go first, compact: their
                // attempts ('' when all are 1) and start times as two
                // comma-separated arguments, then their ids.
                let compact = batch.iter().filter(|s| s.kind == "N");
                let mut n = 0usize;
                let mut attempts = String::new();
                let mut started = String::with_capacity(batch.len() * 14);
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
                c.arg(epoch.as_deref().unwrap_or(""));
                for s in compact {
                    c.arg(s.id);
                }
                for s in batch.iter().filter(|s| s.kind != "N") {
                    c.arg(s.kind)
                        .arg(s.id)
                        .arg(s.attempt)
                        .arg(s.started_at)
                        .arg(s.a.as_ref())
                        .arg(s.b.as_ref());
                }
            })
            .await
            .map_err(broker_err)?;
        let reply = items(reply);
        let stale = reply.get(1).map(int).transpose()?.unwrap_or(0);
        if stale > 0 {
            tracing::debug!(
                route = keys.base(),
                stale,
                "ignored acks of attempts that no longer hold their lease"
            );
        }
        Ok(())
    }

    async fn fetch_route(
        &self,
        route: &Route,
        cursor: usize,
        max: usize,
        lease: Duration,
    ) -> Result<Fetched> {
        let keys = self.route_keys(route).await?;
        let args = self.fetch_args(cursor, max, lease);
        let reply = self
            .inner
            .scripts
            .fetch
            .run(&self.inner.conn, &keys.keys, args)
            .await
            .map_err(broker_err)?;
        self.fetched(route, &keys, reply).await
    }

    /// `fetch.lua`'s ARGV: the clock is read now, so the lease deadline is
    /// counted from the moment the command is sent.
    fn fetch_args(&self, cursor: usize, max: usize, lease: Duration) -> impl Fn(&mut Cmd) {
        let plan: String = priority::plan(cursor, max).map(codec::prio_char).collect();
        let now = now_millis();
        let deadline = now.saturating_add(ms(lease));
        let promote_batch = self.inner.cfg.promote_batch;
        let failure_ttl = ms(self.inner.cfg.failure_ttl);
        move |c: &mut Cmd| {
            c.arg(now)
                .arg(deadline)
                .arg(&plan)
                .arg(promote_batch)
                .arg(failure_ttl);
        }
    }

    /// Reads `fetch.lua`'s reply; corrupt jobs go to the dead letter.
    async fn fetched(&self, route: &Route, keys: &RouteKeys, reply: Value) -> Result<Fetched> {
        let mut reply = items(reply).into_iter();
        let flag = reply.next().map(|v| text(&v)).unwrap_or_default();
        let ids = reply.next().map(items).unwrap_or_default();
        let specs = reply.next().map(items).unwrap_or_default();
        let retried = reply.next().map(items).unwrap_or_default();
        // The route's recovery epoch when these jobs were leased, as the
        // lease token.
        let token = reply.next().map_or(0, |v| self.token_for_epoch(&text(&v)));
        let mut fetched = Fetched {
            jobs: Vec::with_capacity(ids.len()),
            next_eta: None,
            again: flag == "x",
        };
        if !fetched.again && !flag.is_empty() {
            fetched.next_eta = flag.parse::<f64>().ok().map(|f| f as Millis);
        }
        // Every job is on attempt 1 but those listed as (index, attempt).
        let mut attempts = vec![1u32; ids.len()];
        for pair in retried.chunks_exact(2) {
            let (Ok(i), Ok(a)) = (int(&pair[0]), int(&pair[1])) else {
                continue;
            };
            if let Some(slot) = usize::try_from(i - 1)
                .ok()
                .and_then(|i| attempts.get_mut(i))
            {
                *slot = a.clamp(0, u32::MAX as i64) as u32;
            }
        }
        let mut corrupt: Vec<(String, u32, String)> = Vec::new();
        for ((id, spec), attempt) in ids.into_iter().zip(specs).zip(attempts) {
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
                Ok(spec) => fetched
                    .jobs
                    .push(codec::job_from_spec(id, route, attempt, spec, token)),
                Err(reason) => {
                    tracing::warn!(job_id = %id, %route, attempt, %reason, "moving a corrupt job to the dead letter");
                    corrupt.push((id, attempt, reason));
                }
            }
        }
        if !corrupt.is_empty() {
            let batch: Vec<Settle<'_>> = corrupt
                .iter()
                .map(|(id, attempt, reason)| Settle {
                    kind: "D",
                    id,
                    attempt: *attempt,
                    started_at: now_millis(),
                    a: clean_text(reason),
                    b: "".into(),
                })
                .collect();
            self.settle(keys, &batch, None).await?;
            fetched.again = true;
        }
        Ok(fetched)
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
            let f = self
                .fetch_route(route, req.cursor + out.jobs.len(), want, req.lease)
                .await?;
            out.jobs.extend(f.jobs);
            out.again |= f.again;
            out.next_eta = match (out.next_eta, f.next_eta) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(out)
    }

    /// Waits up to `wait` for a wake-up token on one of the routes. With one
    /// route and the function library, the fetch is sent behind the
    /// blocking pop in the same write: Redis runs it the moment the token
    /// arrives, so an idle worker's pickup costs one round trip, not two.
    async fn wait_for_work(&self, req: &FetchRequest, wait: Duration) -> Result<Woken> {
        let fetch_script = &self.inner.scripts.fetch;
        let ([route], true) = (req.routes.as_slice(), fetch_script.runs_as_function()) else {
            return self.block_for_wake(&req.routes, wait).await;
        };
        let keys = self.route_keys(route).await?;
        // The lease deadline is counted from the moment the command is
        // sent, so it loses however long the pop blocked: keep that a small
        // part of the lease (the lease keeper extends every `lease / 3`).
        let wait = wait.min(req.lease / 4);
        let fetch = || {
            let args = self.fetch_args(req.cursor, req.max, req.lease);
            fetch_script.fcall_cmd(&keys.keys, args)
        };
        match self
            .inner
            .blocking
            .blpop_then(keys.wake(), wait, fetch)
            .await
        {
            // The fetch ran with the clock of the moment it was sent: a job
            // that fell due while the pop blocked is promoted by the next
            // fetch, which the caller makes at once.
            Ok(reply) => {
                let f = self.fetched(route, &keys, reply).await?;
                Ok(if !f.jobs.is_empty() {
                    Woken::Jobs(f.jobs)
                } else if f.again || f.next_eta.is_some_and(|eta| eta <= now_millis()) {
                    Woken::Look
                } else {
                    Woken::Idle(f.next_eta)
                })
            }
            // "Function not found" after a restart is expected: the caller
            // returns an empty batch, and the next plain fetch reloads the
            // library. Anything else may have cost a fetch's reply: those
            // jobs run again once their lease expires.
            Err(e) => {
                if e.to_string().contains("Function not found") {
                    tracing::debug!(error = %e, "idle wait on Redis failed");
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
            let names: Vec<&str> = keys.iter().map(|k| k.wake()).collect();
            pool.blpop(&names, wait).await
        } else {
            // Different routes live in different slots: block on each with
            // its own connection; the losers' connections are dropped.
            let futs = keys
                .iter()
                .map(|k| Box::pin(async move { pool.blpop(&[k.wake()], wait).await }));
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

    async fn route_calls<T, F, Fut>(
        &self,
        routes: &[(Route, Arc<RouteKeys>)],
        f: F,
    ) -> Result<Vec<T>>
    where
        F: Fn(Route, Arc<RouteKeys>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        try_join_all(routes.iter().map(|(r, k)| f(r.clone(), k.clone()))).await
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn enqueue(&self, jobs: Vec<Job>) -> Result<usize> {
        let now = now_millis();
        let mut encoded = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let due = job.eta.unwrap_or(0);
            encoded.push((&job.route, (job.id.as_str(), due, codec::encode_spec(job)?)));
        }
        let groups = by_route(encoded);
        let mut calls = Vec::new();
        for (route, batch) in &groups {
            let keys = self.route_keys(route).await?;
            for chunk in enqueue_chunks(batch, |(id, _, spec)| id.len() + spec.len()) {
                let keys = keys.clone();
                calls.push(async move {
                    let reply = self
                        .inner
                        .scripts
                        .enqueue
                        .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                            c.arg(now);
                            for (id, due, spec) in chunk {
                                c.arg(*id).arg(*due).arg(spec.as_str());
                            }
                        })
                        .await
                        .map_err(broker_err)?;
                    int(&reply)
                });
            }
        }
        let added: i64 = try_join_all(calls).await?.into_iter().sum();
        Ok(added.max(0) as usize)
    }

    async fn fetch(&self, req: &FetchRequest) -> Result<Vec<Job>> {
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

    async fn ack(&self, acks: &[Ack]) -> Result<()> {
        let groups = by_route(acks.iter().map(|a| (&a.job.route, a)));
        let mut calls = Vec::with_capacity(groups.len());
        for (route, batch) in groups {
            let keys = self.route_keys(&route).await?;
            calls.push(async move {
                let settles: Vec<Settle<'_>> = batch.iter().map(|a| Settle::from_ack(a)).collect();
                // The cluster client re-sends a request whose connection
                // dropped, even one Redis had already run: a repeat this
                // process cannot see, so on a cluster every ack is checked.
                let epoch = if self.inner.cluster {
                    None
                } else {
                    shared_token(&batch).and_then(|t| self.epoch_of_token(t))
                };
                self.settle(&keys, &settles, epoch).await
            });
        }
        try_join_all(calls).await?;
        Ok(())
    }

    async fn release(&self, jobs: &[JobRef]) -> Result<()> {
        let groups = by_route(jobs.iter().map(|j| (&j.route, j)));
        for (route, batch) in groups {
            let keys = self.route_keys(&route).await?;
            self.inner
                .scripts
                .release
                .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                    for j in &batch {
                        c.arg(j.id.as_str()).arg(j.attempt);
                    }
                })
                .await
                .map_err(broker_err)?;
        }
        Ok(())
    }

    async fn extend_leases(&self, jobs: &[(Route, JobId)], lease: Duration) -> Result<()> {
        let deadline = now_millis().saturating_add(ms(lease));
        let groups = by_route(jobs.iter().map(|(r, id)| (r, id)));
        let mut calls = Vec::with_capacity(groups.len());
        for (route, ids) in groups {
            let keys = self.route_keys(&route).await?;
            calls.push(async move {
                self.inner
                    .scripts
                    .extend
                    .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                        c.arg(deadline);
                        for id in &ids {
                            c.arg(id.as_str());
                        }
                    })
                    .await
                    .map_err(broker_err)
            });
        }
        try_join_all(calls).await?;
        Ok(())
    }

    async fn recover_expired(&self, routes: &[Route]) -> Result<usize> {
        let cfg = &self.inner.cfg;
        let mut total = 0;
        for route in routes {
            let keys = self.route_keys(route).await?;
            loop {
                let reply = self
                    .inner
                    .scripts
                    .recover
                    .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                        c.arg(now_millis())
                            .arg(cfg.recover_batch)
                            .arg(ms(cfg.failure_ttl));
                    })
                    .await
                    .map_err(broker_err)?;
                let n = int(&reply)?.max(0) as usize;
                total += n;
                if n < cfg.recover_batch {
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(recovered = total, "returned jobs with expired leases");
        }
        Ok(total)
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.inner.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(broker_err)?;
        Ok(())
    }
}

#[async_trait]
impl Inspect for RedisBroker {
    async fn job(&self, id: &JobId, route: Option<&Route>) -> Result<Option<JobRecord>> {
        let routes = self.lookup_routes(route).await?;
        let found = self
            .route_calls(&routes, |route, keys| async move {
                let reply = self
                    .inner
                    .scripts
                    .job_info
                    .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                        c.arg(id.as_str());
                    })
                    .await
                    .map_err(broker_err)?;
                let r = items(reply);
                Ok(match r.first().map(text).as_deref() {
                    Some("f") => Some(codec::decode_record(
                        id.as_str(),
                        &route,
                        &bytes(&r[1]).unwrap_or_default(),
                    )),
                    Some("l") if r.len() >= 6 => Some(codec::decode_live(
                        id.as_str(),
                        &route,
                        &text(&r[1]),
                        &bytes(&r[2]).unwrap_or_default(),
                        &bytes(&r[3]).unwrap_or_default(),
                        &bytes(&r[4]).unwrap_or_default(),
                        &bytes(&r[5]).unwrap_or_default(),
                    )),
                    _ => None,
                })
            })
            .await?;
        Ok(found.into_iter().flatten().next())
    }

    async fn wait(
        &self,
        id: &JobId,
        route: Option<&Route>,
        timeout: Duration,
    ) -> Result<Option<JobRecord>> {
        let routes = self.lookup_routes(route).await?;
        let checks = self
            .route_calls(&routes, |route, keys| async move {
                let reply = self
                    .inner
                    .scripts
                    .wait_check
                    .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                        c.arg(id.as_str());
                    })
                    .await
                    .map_err(broker_err)?;
                Ok((route, keys, items(reply)))
            })
            .await?;
        let mut waiting = None;
        for (route, keys, r) in checks {
            match r.first().map(text).as_deref() {
                Some("f") if r.len() >= 2 => {
                    let rec = bytes(&r[1]).unwrap_or_default();
                    return Ok(Some(codec::decode_record(id.as_str(), &route, &rec)));
                }
                Some("w") if waiting.is_none() => waiting = Some((route, keys)),
                _ => {}
            }
        }
        let Some((route, keys)) = waiting else {
            return Ok(None);
        };
        let notify = keys.notify(id.as_str());
        match self.inner.blocking.blpop(&[&notify], timeout).await? {
            Some(rec) => Ok(Some(codec::decode_record(id.as_str(), &route, &rec))),
            None => Ok(None),
        }
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        let routes = self.known_routes().await?;
        self.route_calls(&routes, |route, keys| async move {
            let reply = self
                .inner
                .scripts
                .stats
                .run(&self.inner.conn, &keys.keys, |_: &mut Cmd| {})
                .await
                .map_err(broker_err)?;
            let r = items(reply);
            let n = |i: usize| -> Result<u64> {
                Ok(r.get(i).map(int).transpose()?.unwrap_or(0).max(0) as u64)
            };
            Ok(QueueStats {
                route: route.as_str().to_owned(),
                high: n(0)?,
                normal: n(1)?,
                low: n(2)?,
                scheduled: n(3)?,
                active: n(4)?,
                dead: n(5)?,
            })
        })
        .await
    }
}

#[async_trait]
impl DeadLetter for RedisBroker {
    async fn dead_jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let routes = self.known_routes().await?;
        let lists = self
            .route_calls(&routes, |route, keys| async move {
                let reply = self
                    .inner
                    .scripts
                    .dead_list
                    .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                        c.arg(limit);
                    })
                    .await
                    .map_err(broker_err)?;
                let r = items(reply);
                let mut out = Vec::with_capacity(r.len() / 2);
                for pair in r.chunks_exact(2) {
                    let died: f64 = text(&pair[0]).parse().unwrap_or(0.0);
                    let raw = bytes(&pair[1]).unwrap_or_default();
                    let sep = raw
                        .iter()
                        .position(|&b| b == SEP as u8)
                        .unwrap_or(raw.len());
                    let id = String::from_utf8_lossy(&raw[..sep]).into_owned();
                    let rec = raw.get(sep + 1..).unwrap_or_default();
                    out.push((died, codec::decode_record(&id, &route, rec)));
                }
                Ok(out)
            })
            .await?;
        let mut all: Vec<(f64, JobRecord)> = lists.into_iter().flatten().collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        all.truncate(limit);
        Ok(all.into_iter().map(|(_, r)| r).collect())
    }

    async fn requeue_dead(&self, id: &JobId) -> Result<bool> {
        for (_, keys) in self.known_routes().await? {
            let reply = self
                .inner
                .scripts
                .requeue_dead
                .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                    c.arg(id.as_str());
                })
                .await
                .map_err(broker_err)?;
            if int(&reply)? == 1 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn purge_dead(&self) -> Result<usize> {
        const BATCH: usize = 1000;
        let mut deleted = 0;
        for (_, keys) in self.known_routes().await? {
            loop {
                let reply = self
                    .inner
                    .scripts
                    .purge_dead
                    .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                        c.arg(BATCH);
                    })
                    .await
                    .map_err(broker_err)?;
                let r = items(reply);
                let removed = r.first().map(int).transpose()?.unwrap_or(0);
                deleted += r.get(1).map(int).transpose()?.unwrap_or(0).max(0) as usize;
                if removed < BATCH as i64 {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

#[async_trait]
impl Cancel for RedisBroker {
    async fn cancel(&self, id: &JobId, route: Option<&Route>) -> Result<CancelOutcome> {
        let now = now_millis();
        let ttl = ms(self.inner.cfg.failure_ttl);
        for (_, keys) in self.lookup_routes(route).await? {
            let reply = self
                .inner
                .scripts
                .cancel
                .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                    c.arg(id.as_str()).arg(now).arg(ttl);
                })
                .await
                .map_err(broker_err)?;
            match text(&reply).as_str() {
                "c" => return Ok(CancelOutcome::Cancelled),
                "r" => return Ok(CancelOutcome::Running),
                "f" => return Ok(CancelOutcome::Finished),
                _ => {}
            }
        }
        Ok(CancelOutcome::NotFound)
    }
}

#[async_trait]
impl Progress for RedisBroker {
    async fn set_progress(
        &self,
        route: &Route,
        id: &JobId,
        attempt: u32,
        progress: &RawValue,
    ) -> Result<bool> {
        let keys = self.route_keys(route).await?;
        let reply = self
            .inner
            .scripts
            .progress
            .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                c.arg(id.as_str()).arg(attempt).arg(progress.get());
            })
            .await
            .map_err(broker_err)?;
        Ok(int(&reply)? == 1)
    }
}

#[async_trait]
impl Workers for RedisBroker {
    async fn heartbeat(&self, info: &WorkerInfo, ttl: Duration) -> Result<()> {
        let json = serde_json::to_string(info)?;
        let g = &self.inner.global;
        let keys = [g.workers.clone(), g.worker(&info.id), g.routes.clone()];
        self.inner
            .scripts
            .heartbeat
            .run(&self.inner.conn, &keys, |c: &mut Cmd| {
                c.arg(&info.id)
                    .arg(&json)
                    .arg(ms(ttl).max(1))
                    .arg(now_millis());
                for r in &info.routes {
                    c.arg(r.as_str());
                }
            })
            .await
            .map_err(broker_err)?;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let g = &self.inner.global;
        let keys = [g.workers.as_str(), g.base.as_str()];
        let reply = self
            .inner
            .scripts
            .workers
            .run(&self.inner.conn, &keys, |c: &mut Cmd| {
                c.arg(now_millis());
            })
            .await
            .map_err(broker_err)?;
        Ok(items(reply)
            .iter()
            .filter_map(|v| serde_json::from_slice(&bytes(v)?).ok())
            .collect())
    }
}

#[async_trait]
impl Schedules for RedisBroker {
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
        self.announced().await
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

    async fn claim_tick(&self, schedule: &str, tick: Millis, job: Job) -> Result<bool> {
        let keys = self.route_keys(&job.route).await?;
        let spec = codec::encode_spec(&job)?;
        let reply = self
            .inner
            .scripts
            .claim_tick
            .run(&self.inner.conn, &keys.keys, |c: &mut Cmd| {
                c.arg(now_millis())
                    .arg(schedule)
                    .arg(tick)
                    .arg(job.id.as_str())
                    .arg(job.eta.unwrap_or(0))
                    .arg(&spec);
            })
            .await
            .map_err(broker_err)?;
        Ok(int(&reply)? == 1)
    }

    async fn last_tick(&self, schedule: &str, route: &Route) -> Result<Option<TickMark>> {
        let keys = RouteKeys::new(&self.inner.cfg.prefix, route.as_str());
        let mut conn = self.inner.conn.clone();
        let raw: Option<String> = conn
            .hget(&keys.keys[11], schedule)
            .await
            .map_err(broker_err)?;
        let Some(raw) = raw else { return Ok(None) };
        let (tick, id) = raw.split_once(SEP).ok_or_else(|| {
            Error::Corrupt(format!(
                "corrupt tick mark for schedule `{schedule}`: {raw:?}"
            ))
        })?;
        let tick = tick.parse().map_err(|_| {
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

    fn lens(chunks: &[&[usize]]) -> Vec<usize> {
        chunks.iter().map(|c| c.len()).collect()
    }

    #[test]
    fn enqueue_chunks_bound_jobs_and_bytes() {
        let none: [usize; 0] = [];
        assert!(enqueue_chunks(&none, |n| *n).is_empty());

        let small = vec![10usize; ENQUEUE_CHUNK * 2 + 1];
        let chunks = enqueue_chunks(&small, |n| *n);
        assert_eq!(lens(&chunks), [ENQUEUE_CHUNK, ENQUEUE_CHUNK, 1]);

        // 100 KB jobs: about 40 per 4 MiB call, every job in exactly one call.
        let big = vec![100_000usize; 100];
        let chunks = enqueue_chunks(&big, |n| *n);
        assert!(chunks
            .iter()
            .all(|c| c.iter().sum::<usize>() <= ENQUEUE_CHUNK_BYTES));
        assert_eq!(lens(&chunks), [41, 41, 18]);

        // A job over the limit still goes, alone.
        let huge = [1usize, ENQUEUE_CHUNK_BYTES + 1, 1];
        assert_eq!(lens(&enqueue_chunks(&huge, |n| *n)), [1, 1, 1]);
    }
}
