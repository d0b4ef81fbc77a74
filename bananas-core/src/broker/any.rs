//! [`AnyBroker`]: a broker of any type, with the capabilities it has.

use std::{fmt, ops::Deref, sync::Arc};

use super::{
    Broker, Browse, Cancel, DeadLetter, History, Inspect, Manage, Pause, Progress, Schedules,
    Workers,
};
use crate::error::{Capability, Error, Result};

/// A broker of any type, as the runtime holds it: the hot path
/// ([`Broker`], reached through `Deref`) and each optional capability it
/// was built with.
///
/// Build it with [`AnyBroker::full`] for a broker that has every
/// capability (both brokers of this project do), or with
/// [`AnyBroker::new`] and a `with_*` call per capability. Asking for a
/// capability the broker was not built with gives
/// [`Error::Unsupported`] naming it; the HTTP API answers that with 501.
///
/// ```
/// # use std::sync::Arc;
/// # use bananas_core::broker::AnyBroker;
/// # fn demo<B: bananas_core::Broker + bananas_core::broker::Inspect>(b: Arc<B>) {
/// let any = AnyBroker::new(b.clone()).with_inspect(b);
/// assert!(any.inspect().is_ok());
/// assert!(any.dead_letter().is_err());
/// # }
/// ```
#[derive(Clone)]
pub struct AnyBroker {
    core: Arc<dyn Broker>,
    inspect: Option<Arc<dyn Inspect>>,
    dead_letter: Option<Arc<dyn DeadLetter>>,
    cancel: Option<Arc<dyn Cancel>>,
    progress: Option<Arc<dyn Progress>>,
    workers: Option<Arc<dyn Workers>>,
    schedules: Option<Arc<dyn Schedules>>,
    pause: Option<Arc<dyn Pause>>,
    browse: Option<Arc<dyn Browse>>,
    manage: Option<Arc<dyn Manage>>,
    history: Option<Arc<dyn History>>,
}

impl AnyBroker {
    /// A broker with only the worker's hot path.
    pub fn new<B: Broker>(broker: Arc<B>) -> Self {
        AnyBroker {
            core: broker,
            inspect: None,
            dead_letter: None,
            cancel: None,
            progress: None,
            workers: None,
            schedules: None,
            pause: None,
            browse: None,
            manage: None,
            history: None,
        }
    }

    /// A broker with every capability.
    pub fn full<B>(broker: Arc<B>) -> Self
    where
        B: Broker
            + Inspect
            + DeadLetter
            + Cancel
            + Progress
            + Workers
            + Schedules
            + Pause
            + Browse
            + Manage
            + History,
    {
        Self::new(broker.clone())
            .with_inspect(broker.clone())
            .with_dead_letter(broker.clone())
            .with_cancel(broker.clone())
            .with_progress(broker.clone())
            .with_workers(broker.clone())
            .with_schedules(broker.clone())
            .with_pause(broker.clone())
            .with_browse(broker.clone())
            .with_manage(broker.clone())
            .with_history(broker)
    }

    /// Adds [`Inspect`].
    pub fn with_inspect<B: Inspect>(mut self, b: Arc<B>) -> Self {
        self.inspect = Some(b);
        self
    }

    /// Adds [`DeadLetter`].
    pub fn with_dead_letter<B: DeadLetter>(mut self, b: Arc<B>) -> Self {
        self.dead_letter = Some(b);
        self
    }

    /// Adds [`Cancel`].
    pub fn with_cancel<B: Cancel>(mut self, b: Arc<B>) -> Self {
        self.cancel = Some(b);
        self
    }

    /// Adds [`Progress`].
    pub fn with_progress<B: Progress>(mut self, b: Arc<B>) -> Self {
        self.progress = Some(b);
        self
    }

    /// Adds [`Workers`].
    pub fn with_workers<B: Workers>(mut self, b: Arc<B>) -> Self {
        self.workers = Some(b);
        self
    }

    /// Adds [`Schedules`].
    pub fn with_schedules<B: Schedules>(mut self, b: Arc<B>) -> Self {
        self.schedules = Some(b);
        self
    }

    /// Adds [`Pause`].
    pub fn with_pause<B: Pause>(mut self, b: Arc<B>) -> Self {
        self.pause = Some(b);
        self
    }

    /// Adds [`Browse`].
    pub fn with_browse<B: Browse>(mut self, b: Arc<B>) -> Self {
        self.browse = Some(b);
        self
    }

    /// Adds [`Manage`].
    pub fn with_manage<B: Manage>(mut self, b: Arc<B>) -> Self {
        self.manage = Some(b);
        self
    }

    /// Adds [`History`].
    pub fn with_history<B: History>(mut self, b: Arc<B>) -> Self {
        self.history = Some(b);
        self
    }

    /// The hot path, as a shared trait object.
    pub fn core(&self) -> &Arc<dyn Broker> {
        &self.core
    }

    /// Whether the broker has `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::Inspect => self.inspect.is_some(),
            Capability::DeadLetter => self.dead_letter.is_some(),
            Capability::Cancel => self.cancel.is_some(),
            Capability::Progress => self.progress.is_some(),
            Capability::Workers => self.workers.is_some(),
            Capability::Schedules => self.schedules.is_some(),
            Capability::Pause => self.pause.is_some(),
            Capability::Browse => self.browse.is_some(),
            Capability::Manage => self.manage.is_some(),
            Capability::History => self.history.is_some(),
        }
    }

    /// [`Inspect`], or [`Error::Unsupported`].
    pub fn inspect(&self) -> Result<&dyn Inspect> {
        cap(&self.inspect, Capability::Inspect)
    }

    /// [`DeadLetter`], or [`Error::Unsupported`].
    pub fn dead_letter(&self) -> Result<&dyn DeadLetter> {
        cap(&self.dead_letter, Capability::DeadLetter)
    }

    /// [`Cancel`], or [`Error::Unsupported`].
    pub fn cancel(&self) -> Result<&dyn Cancel> {
        cap(&self.cancel, Capability::Cancel)
    }

    /// [`Progress`], or [`Error::Unsupported`].
    pub fn progress(&self) -> Result<&dyn Progress> {
        cap(&self.progress, Capability::Progress)
    }

    /// [`Workers`], or [`Error::Unsupported`].
    pub fn workers(&self) -> Result<&dyn Workers> {
        cap(&self.workers, Capability::Workers)
    }

    /// [`Schedules`], or [`Error::Unsupported`].
    pub fn schedules(&self) -> Result<&dyn Schedules> {
        cap(&self.schedules, Capability::Schedules)
    }

    /// [`Pause`], or [`Error::Unsupported`].
    pub fn pause(&self) -> Result<&dyn Pause> {
        cap(&self.pause, Capability::Pause)
    }

    /// [`Browse`], or [`Error::Unsupported`].
    pub fn browse(&self) -> Result<&dyn Browse> {
        cap(&self.browse, Capability::Browse)
    }

    /// [`Manage`], or [`Error::Unsupported`].
    pub fn manage(&self) -> Result<&dyn Manage> {
        cap(&self.manage, Capability::Manage)
    }

    /// [`History`], or [`Error::Unsupported`].
    pub fn history(&self) -> Result<&dyn History> {
        cap(&self.history, Capability::History)
    }
}

/// A broker with every capability converts as [`AnyBroker::full`], so
/// `App::builder().broker(Arc::new(my_broker))` works as before.
impl<B> From<Arc<B>> for AnyBroker
where
    B: Broker
        + Inspect
        + DeadLetter
        + Cancel
        + Progress
        + Workers
        + Schedules
        + Pause
        + Browse
        + Manage
        + History,
{
    fn from(broker: Arc<B>) -> Self {
        AnyBroker::full(broker)
    }
}

fn cap<T: ?Sized>(c: &Option<Arc<T>>, which: Capability) -> Result<&T> {
    c.as_deref().ok_or(Error::Unsupported(which))
}

impl Deref for AnyBroker {
    type Target = dyn Broker;

    fn deref(&self) -> &dyn Broker {
        &*self.core
    }
}

impl fmt::Debug for AnyBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let caps: Vec<String> = [
            Capability::Inspect,
            Capability::DeadLetter,
            Capability::Cancel,
            Capability::Progress,
            Capability::Workers,
            Capability::Schedules,
            Capability::Pause,
            Capability::Browse,
            Capability::Manage,
            Capability::History,
        ]
        .into_iter()
        .filter(|c| self.has(*c))
        .map(|c| format!("{c:?}"))
        .collect();
        f.debug_struct("AnyBroker")
            .field("broker", &self.core)
            .field("capabilities", &caps)
            .finish()
    }
}
