//! The typed submission API `#[bananas::task]` generates: [`Submit`], a
//! job being prepared, and [`JobHandle`], a submitted one.

use std::{fmt, marker::PhantomData, time::Duration};

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::{
    client::{self, Client},
    job::{now_millis, Extra, Job, JobId, JobRecord, JobState, Millis, Priority, Route},
    task::TaskDef,
    Error, Result,
};

/// A job being prepared for submission, with per-call options.
///
/// Made by the `submit(args…)` function that `#[bananas::task]` generates;
/// `delay(args…)` is `submit(args…).send()`.
#[must_use = "a Submit does nothing until `.send().await`"]
pub struct Submit<T> {
    def: &'static TaskDef,
    args: Result<Box<RawValue>>,
    priority: Priority,
    route: Option<String>,
    retries: u32,
    eta: Option<Millis>,
    id: Option<JobId>,
    client: Option<Client>,
    /// Tags and metadata; a metadata value that failed to serialize.
    extra: Result<Option<Box<Extra>>>,
    _result: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Submit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submit")
            .field("task", &self.def.name)
            .field("priority", &self.priority)
            .field("route", &self.route)
            .field("retries", &self.retries)
            .field("eta", &self.eta)
            .finish()
    }
}

impl<T: DeserializeOwned> Submit<T> {
    /// A submission of `def` with encoded `args` and the task's defaults.
    pub fn new(def: &'static TaskDef, args: Result<Box<RawValue>>) -> Self {
        Submit {
            def,
            args,
            priority: def.priority,
            route: None,
            retries: def.retries,
            eta: None,
            id: None,
            client: None,
            extra: Ok(None),
            _result: PhantomData,
        }
    }

    /// Adds a tag, like `tenant:42`: stored with the job, shown with it
    /// and searchable (`GET /jobs?tag=…`). At most 32 tags of 1 to 128
    /// bytes without control characters; others fail at `send`. Tags are
    /// for operators: the task does not see them.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        if let Ok(extra) = &mut self.extra {
            extra.get_or_insert_with(Box::default).tags.push(tag.into());
        }
        self
    }

    /// Adds a metadata entry: any serializable value, stored and shown with
    /// the job (at most 16 KB of it as JSON). A value that fails to
    /// serialize fails at `send`.
    pub fn meta(mut self, key: impl Into<String>, value: impl serde::Serialize) -> Self {
        if let Ok(extra) = &mut self.extra {
            match serde_json::to_value(value) {
                Ok(v) => {
                    extra
                        .get_or_insert_with(Box::default)
                        .meta
                        .insert(key.into(), v);
                }
                Err(e) => self.extra = Err(e.into()),
            }
        }
        self
    }

    /// Run no earlier than `delay` from now.
    pub fn countdown(mut self, delay: Duration) -> Self {
        self.eta = Some(now_millis() + delay.as_millis() as u64);
        self
    }

    /// Run no earlier than `eta` (milliseconds since the Unix epoch).
    pub fn eta_millis(mut self, eta: Millis) -> Self {
        self.eta = Some(eta);
        self
    }

    /// Run no earlier than `eta`.
    pub fn eta(self, eta: std::time::SystemTime) -> Self {
        let ms = eta
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.eta_millis(ms)
    }

    /// Override the task's priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Override the task's route. An invalid name fails at `send`.
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Override the task's retry count.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Use this job id instead of a fresh one.
    ///
    /// Enqueueing is idempotent by id: while a job with this id is on record
    /// (queued, running, or finished and still kept: a result for
    /// `result_ttl`, a dead job for `failure_ttl`), `send` returns `Ok` with
    /// a handle to that job and runs nothing, and the handle's `wait` gives
    /// the earlier job's result; a `result = false` task keeps no record
    /// once a job succeeds, so its id is free again at once.
    pub fn id(mut self, id: impl Into<JobId>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Submit through `client` instead of the installed app.
    pub fn on(mut self, client: &Client) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// Builds the job envelope without submitting it.
    pub fn into_job(self) -> Result<(Job, Option<Client>)> {
        let route = match self.route {
            Some(r) => Route::new(r)?,
            None => Route::new(self.def.route)?,
        };
        let mut job = Job::new(self.def.name, self.args?);
        if let Some(id) = self.id {
            job.id = id;
        }
        job.priority = self.priority;
        job.route = route;
        job.max_retries = self.retries;
        job.eta = self.eta;
        if let Some(extra) = self.extra? {
            extra.check()?;
            job.extra = Some(extra);
        }
        Ok((job, self.client))
    }

    /// Submits the job and returns a handle to its result.
    pub async fn send(self) -> Result<JobHandle<T>> {
        let (job, client) = self.into_job()?;
        let client = match client {
            Some(c) => c,
            None => client::installed_client()?,
        };
        let (id, route) = (job.id.clone(), job.route.clone());
        client.enqueue(vec![job]).await?;
        Ok(JobHandle::new(id, route, client))
    }
}

/// A submitted job. [`JobHandle::wait`] returns its typed result.
pub struct JobHandle<T> {
    id: JobId,
    route: Route,
    client: Client,
    _result: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.id)
            .field("route", &self.route)
            .finish()
    }
}

impl<T> Clone for JobHandle<T> {
    fn clone(&self) -> Self {
        JobHandle {
            id: self.id.clone(),
            route: self.route.clone(),
            client: self.client.clone(),
            _result: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> JobHandle<T> {
    /// A handle to job `id`, submitted on `route` through `client`.
    pub fn new(id: JobId, route: Route, client: Client) -> Self {
        JobHandle {
            id,
            route,
            client,
            _result: PhantomData,
        }
    }

    /// The job id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The job's route.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The job's current record: state, attempts, result or error. Looked
    /// up on the job's own route.
    pub async fn status(&self) -> Result<Option<JobRecord>> {
        let inspect = self.client.broker().inspect()?;
        Ok(inspect.job(&self.id, Some(&self.route)).await?)
    }

    /// Cancels the job if it has not started: a queued, delayed or
    /// retrying job will not run, and [`JobHandle::wait`] then fails with
    /// [`Error::JobFailed`]`("cancelled")`. A running attempt is not
    /// interrupted ([`CancelOutcome::Running`]).
    ///
    /// [`CancelOutcome::Running`]: crate::broker::CancelOutcome::Running
    pub async fn cancel(&self) -> Result<crate::broker::CancelOutcome> {
        let cancel = self.client.broker().cancel()?;
        Ok(cancel.cancel(&self.id, Some(&self.route)).await?)
    }

    /// Waits up to `timeout` for the job to finish and returns its result.
    ///
    /// Fails with [`Error::JobFailed`] when the job ended in the dead letter,
    /// and [`Error::Timeout`] when it did not finish in time.
    pub async fn wait(&self, timeout: Duration) -> Result<T> {
        let record = self
            .client
            .broker()
            .inspect()?
            .wait(&self.id, Some(&self.route), timeout)
            .await?
            .ok_or(Error::Timeout(timeout))?;
        match record.state {
            JobState::Succeeded => {
                let raw = record
                    .result
                    .as_deref()
                    .map(RawValue::get)
                    .unwrap_or("null");
                Ok(serde_json::from_str(raw)?)
            }
            _ => Err(Error::JobFailed(
                record.error.unwrap_or_else(|| "unknown error".to_owned()),
            )),
        }
    }
}
