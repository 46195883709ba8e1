//! The consumer's side: one [`Hub`] per consumer thread (per Lua state).

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::error::{CancelReason, Discarded, PostErrorKind};
use crate::port::Port;
use crate::state::{Entry, Shared, DEFAULT_CAPACITY};
use crate::stats::Stats;
use crate::sync::far_future;
use crate::sync::Arc;
use crate::waits::{WaitCache, Waits};

/// The consumer's end of a FIFO that any number of threads post into.
///
/// A hub belongs to one consumer thread, the one that created it (rebind
/// with [`bind_consumer`](Hub::bind_consumer) when the consumer moves).
/// Libraries [`register`](Hub::register) a [`Port`] each; ports are the
/// thread-safe handles producers post and call through.
///
/// Dropping the hub [closes](Hub::close) it.
///
/// ```
/// use darksidesync_core::{Batch, Hub};
///
/// let hub: Hub<String> = Hub::new();
/// let port = hub.register("greeter", |_| {}).unwrap();
/// let producer = std::thread::spawn({
///     let port = port.clone();
///     move || port.post("hello".to_string()).unwrap()
/// });
/// producer.join().unwrap();
///
/// assert!(hub.wait(None));
/// let mut batch = Batch::new();
/// hub.drain(usize::MAX, &mut batch);
/// assert_eq!(batch.pop().as_deref(), Some("hello"));
/// ```
pub struct Hub<T> {
    pub(crate) shared: Arc<Shared<T>>,
}

/// A consumer-owned buffer that [`Hub::drain`] fills; reuse it across drains
/// so steady-state draining does not allocate.
///
/// Items still in a batch when it is dropped are dropped with it (their drop
/// path runs), so nothing is leaked.
pub struct Batch<T> {
    entries: VecDeque<Entry<T>>,
    /// The timing histograms, for items taken from this batch.
    waits: WaitCache,
    /// The hub's stale-port epoch when this batch was last checked
    /// ([`Hub::purge_stale`]).
    seen_epoch: u64,
}

impl<T> Batch<T> {
    /// An empty batch.
    pub fn new() -> Batch<T> {
        Batch {
            entries: VecDeque::new(),
            waits: WaitCache::default(),
            seen_epoch: 0,
        }
    }

    /// Takes the oldest item, to run it: while the hub's timing is on, its
    /// wait in the queue ends here ([`Hub::set_timing`]).
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let e = self.entries.pop_front()?;
        e.taken(&self.waits);
        Some(e.item)
    }

    /// The oldest item, left in place.
    #[inline]
    pub fn front(&self) -> Option<&T> {
        self.entries.front().map(|e| &e.item)
    }

    /// Items left in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no item is left.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch::new()
    }
}

impl<T> Iterator for Batch<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.pop()
    }
}

impl<T: Send + 'static> Hub<T> {
    /// A hub with the [default capacity](DEFAULT_CAPACITY), bound to the
    /// calling thread as its consumer.
    pub fn new() -> Hub<T> {
        Hub::with_capacity(DEFAULT_CAPACITY)
    }

    /// A hub bounded to `capacity` items (at least 1).
    pub fn with_capacity(capacity: usize) -> Hub<T> {
        Hub {
            shared: Arc::new(Shared::new(capacity, None)),
        }
    }

    /// A hub bounded to `capacity` items whose discarded items go to
    /// `discard` with the reason, instead of being dropped: items removed
    /// unrun by [`Port::unregister`], [`close`](Hub::close) or
    /// [`purge_stale`](Hub::purge_stale), and call items refused before
    /// they were queued. `discard` runs on the thread that discarded the
    /// item, never under a lock of the hub.
    pub fn with_discard(
        capacity: usize,
        discard: impl Fn(T, Discarded) + Send + Sync + 'static,
    ) -> Hub<T> {
        Hub {
            shared: Arc::new(Shared::new(capacity, Some(Box::new(discard)))),
        }
    }

    /// Discards the items of `batch` whose port was unregistered (or whose
    /// hub closed) since they were drained, keeping the order of the rest.
    /// Costs one atomic load when no port went stale since the last check;
    /// call it before taking items from a batch that may have waited.
    pub fn purge_stale(&self, batch: &mut Batch<T>) {
        let epoch = self.shared.stale_epoch();
        if epoch != batch.seen_epoch {
            batch.seen_epoch = epoch;
            self.shared.purge_stale(&mut batch.entries);
        }
    }

    /// Discards every item left in `batch` (`Closed` once the hub closed,
    /// else `Unregistered`): the consumer gives up items it will not run.
    pub fn discard_batch(&self, batch: &mut Batch<T>) {
        let why = if self.is_closed() {
            Discarded::Closed
        } else {
            Discarded::Unregistered
        };
        let items: Vec<T> = std::mem::take(&mut batch.entries)
            .into_iter()
            .map(|e| e.item)
            .collect();
        self.shared.discard_all(items, why);
    }

    /// Registers a library and returns its port. `on_cancel` runs once, on
    /// whichever thread closes the hub or unregisters the port, after the
    /// port's queued items were dropped.
    ///
    /// Fails with [`PostErrorKind::Closed`] once the hub is closed.
    pub fn register(
        &self,
        name: impl Into<String>,
        on_cancel: impl FnOnce(CancelReason) + Send + 'static,
    ) -> Result<Port<T>, PostErrorKind> {
        let (key, counters) = self
            .shared
            .register(name.into(), Some(Box::new(on_cancel)))?;
        Ok(Port::new(self.shared.clone(), key, counters))
    }

    /// Marks the calling thread as the consumer, for the would-deadlock check.
    pub fn bind_consumer(&self) {
        self.shared.bind_consumer();
    }

    /// Moves up to `max` queued items into `batch`, oldest first, under one
    /// lock acquisition. Returns how many were moved.
    pub fn drain(&self, max: usize, batch: &mut Batch<T>) -> usize {
        self.shared.drain(max, &mut batch.entries, &mut batch.waits)
    }

    /// Blocks until an item is queued (true) or the timeout passes, the hub
    /// closes or the last keep-alive reference is released (false).
    /// `None` waits without a time limit; `Some(Duration::ZERO)` only checks.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future));
        self.shared.wait(deadline)
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when nothing is queued and no library holds a keep-alive
    /// reference: nothing can arrive any more, a run loop may end.
    pub fn is_idle(&self) -> bool {
        self.shared.keep_alive_count() == 0 && self.is_empty()
    }

    /// The queue's bound.
    pub fn capacity(&self) -> usize {
        self.shared.stats().capacity
    }

    /// Sets the queue's bound. Returns false (and changes nothing) for 0.
    /// Lowering it below the current depth keeps the queued items; posts
    /// then wait or refuse until the depth falls below the new bound.
    pub fn set_capacity(&self, capacity: usize) -> bool {
        if capacity == 0 {
            return false;
        }
        self.shared.set_capacity(capacity);
        true
    }

    /// A descriptor that is readable while work is pending, created on first
    /// use (posts before then cost no descriptor write). The same descriptor
    /// every call, valid until the hub closes (close releases it, even while
    /// ports are still held); do not read or close it. An error once closed.
    pub fn fd(&self) -> io::Result<RawFd> {
        self.shared.fd()
    }

    /// Whether the descriptor is readable now; `None` before [`fd`](Hub::fd)
    /// created it.
    pub fn fd_readable(&self) -> Option<bool> {
        self.shared.fd_readable()
    }

    /// Sends a UDP datagram to `127.0.0.1:port` on every wake-up; `None` or
    /// `Some(0)` turns it off.
    pub fn set_udp_port(&self, port: Option<u16>) -> io::Result<()> {
        self.shared.set_udp_port(port)
    }

    /// The UDP wake-up port, if any.
    pub fn udp_port(&self) -> Option<u16> {
        self.shared.udp_port()
    }

    /// Posts accepted through the side ring so far: for tests that must
    /// observe that the ring was used, not assume it.
    #[doc(hidden)]
    pub fn side_ring_posts(&self) -> u64 {
        self.shared.ring_posts.load(crate::sync::Ordering::Relaxed)
    }

    /// Producers waiting for room now: for tests that must observe that
    /// a post blocked, not assume it after a sleep.
    #[doc(hidden)]
    pub fn blocked_producers(&self) -> usize {
        self.shared.lock().blocked_producers
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Turns timing of queue waits on or off; returns whether it was on.
    /// On, every post reads the monotonic clock and every item taken from
    /// a [`Batch`] ([`Batch::pop`]) adds its wait (post to take) to the
    /// hub's histogram and its port's ([`waits`](Hub::waits),
    /// [`Port::waits`]). Turning it on starts from empty histograms (items
    /// posted before are not timed); turning it off drops them. Costs a
    /// clock read per post and per take while on, a branch while off.
    pub fn set_timing(&self, on: bool) -> bool {
        self.shared.set_timing(on)
    }

    /// Whether timing is on.
    pub fn timing(&self) -> bool {
        self.shared.timing()
    }

    /// How long the items taken to run since timing was turned on waited
    /// in the queue; `None` while timing is off. Any thread.
    pub fn waits(&self) -> Option<Waits> {
        self.shared.waits()
    }

    /// [`waits`](Hub::waits) of the live ports registered under `name`,
    /// added together; `None` while timing is off or when no live port has
    /// that name.
    pub fn named_waits(&self, name: &str) -> Option<Waits> {
        self.shared.named_waits(name)
    }

    /// Closes the hub: drops every queued item (their drop paths run, which
    /// releases their blocked callers with [`CallError::Closed`](crate::CallError::Closed)),
    /// wakes every blocked producer with `Closed`, fires every port's cancel
    /// notification (last registered first) and refuses later posts.
    /// Returns false when it was already closed.
    pub fn close(&self) -> bool {
        self.shared.close()
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<T: Send + 'static> Default for Hub<T> {
    fn default() -> Self {
        Hub::new()
    }
}

impl<T> Drop for Hub<T> {
    fn drop(&mut self) {
        self.shared.close();
    }
}
