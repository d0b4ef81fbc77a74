//! The scheduler's clock, injectable so tests need not wait for the wall clock.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Where the scheduler reads the time and how it waits.
#[async_trait]
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Completes once [`Clock::now`] has reached `t` (or later).
    async fn sleep_until(&self, t: DateTime<Utc>);
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, t: DateTime<Utc>) {
        let wait = (t - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
}

/// A clock that moves only when told to: for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: Notify,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(now),
            moved: Notify::new(),
        }
    }

    /// Sets the time and wakes sleepers whose time has come.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock() = t;
        self.moved.notify_waiters();
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: chrono::Duration) {
        let t = *self.now.lock() + d;
        self.set(t);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }

    async fn sleep_until(&self, t: DateTime<Utc>) {
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if self.now() >= t {
                return;
            }
            moved.await;
        }
    }
}
