//! The producers' side: a [`Port`] per registered library.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{CallError, Discarded, PostError, PostErrorKind};
use crate::reply::{self, Outcome, Reply};
use crate::state::{PortKey, Posted, Shared, WhenFull};
use crate::stats::{PortCounters, PortStats};
use crate::sync::{far_future, Arc, Ordering};
use crate::waits::Waits;

/// A library's handle on a hub: `Send + Sync + Clone`, cheap to clone, and
/// safe to keep after the hub is gone (every use then fails with `Closed`).
///
/// A port is identified by a slot and a generation, so a port that was
/// unregistered stays unregistered even when its slot is reused.
pub struct Port<T> {
    shared: Arc<Shared<T>>,
    key: PortKey,
    /// The port's counters (also reachable from the hub, under its lock).
    counters: Arc<PortCounters>,
}

impl<T> Clone for Port<T> {
    fn clone(&self) -> Self {
        Port {
            shared: self.shared.clone(),
            key: self.key,
            counters: self.counters.clone(),
        }
    }
}

impl<T> fmt::Debug for Port<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Port<T> {
    pub(crate) fn new(
        shared: Arc<Shared<T>>,
        key: PortKey,
        counters: Arc<PortCounters>,
    ) -> Port<T> {
        Port {
            shared,
            key,
            counters,
        }
    }

    /// This port's identity (slot and generation).
    pub fn key(&self) -> PortKey {
        self.key
    }

    /// The name given at registration, while the port is live.
    pub fn name(&self) -> Option<String> {
        self.shared.port_name(self.key)
    }

    /// True while the port is registered and its hub open. Takes no lock.
    pub fn is_live(&self) -> bool {
        !self.shared.is_closed() && self.shared.port_live(self.key)
    }

    /// How long this port's items waited in the queue (see
    /// [`Hub::set_timing`](crate::Hub::set_timing)); `None` while timing is
    /// off or once the port is stale.
    pub fn waits(&self) -> Option<Waits> {
        self.shared.port_waits(self.key)
    }

    /// [`Hub::waits`](crate::Hub::waits) of this port's hub: every port's
    /// items; `None` while timing is off or once the hub closed.
    pub fn hub_waits(&self) -> Option<Waits> {
        if self.shared.is_closed() {
            return None;
        }
        self.shared.waits()
    }

    /// True once the hub closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// True on the hub's consumer thread (the one a blocking call from
    /// would wait for itself): for a producer that must not wait for the
    /// consumer when it is the consumer.
    pub fn on_consumer_thread(&self) -> bool {
        self.shared.on_consumer_thread()
    }

    /// This port's counters (see [`PortStats`]); still readable once the
    /// port is stale. Takes the hub's lock and looks at each queued item.
    pub fn stats(&self) -> PortStats {
        self.shared.port_stats(self.key, &self.counters)
    }

    /// Counts `n` delivered items of this port as run: the consumer, which
    /// alone knows it, tells (see [`PortStats::ran`]). Only the consumer
    /// may call it (one thread at a time): the count is a plain load and
    /// store on a line of its own, which calls from two threads at once
    /// could lose, never corrupt.
    #[inline]
    pub fn count_ran(&self, n: u64) {
        self.counters.ran.add(n);
    }

    /// Counts a post or call that the caller refused itself, before it
    /// reached the port (an invalid argument, a state known closed), so
    /// that [`PortStats::refused`] counts every refusal.
    pub fn count_refused(&self) {
        PortCounters::add(&self.counters.refused, 1);
    }

    /// Queues `item`, waiting for room while the queue is full. Fails at once
    /// with `WouldDeadlock` instead of waiting on the consumer thread.
    pub fn post(&self, item: T) -> Result<Posted, PostError<T>> {
        self.shared
            .push(self.key, &self.counters, item, WhenFull::Block(None), None)
    }

    /// Queues `item`, or refuses at once with `Full` when there is no room.
    pub fn try_post(&self, item: T) -> Result<Posted, PostError<T>> {
        self.shared
            .push(self.key, &self.counters, item, WhenFull::Refuse, None)
    }

    /// [`try_post`](Port::try_post) for a caller that will wait for room
    /// itself when there is none: a `Full` answer hands the item back
    /// without counting a refusal (every other refusal is counted as
    /// usual). For a producer that may not wait where it is (a C post
    /// holding a borrowed handle) but posts again, waiting, from
    /// elsewhere.
    pub fn post_if_room(&self, item: T) -> Result<Posted, PostError<T>> {
        self.shared
            .push(self.key, &self.counters, item, WhenFull::HandBack, None)
    }

    /// Queues `item` without waiting for room, and without waiting for
    /// anything the code it interrupted may hold: safe to call from a
    /// signal handler that interrupted the consumer (or any producer)
    /// inside a hub call, where [`try_post`](Port::try_post) would wait
    /// for itself.
    ///
    /// Like every post it takes its room first, so the hub's capacity is
    /// exact: a full hub refuses it with `Full`. When the lock is free, no
    /// earlier no-wait post is pending and the queue's buffer has room,
    /// this is `try_post`. Otherwise the item goes to the hub's side ring,
    /// a fixed array of slots allocated with the hub: one atomic
    /// reservation, no lock, no allocation, a `write(2)` on the hub's
    /// descriptor and a `sendto(2)` to its UDP port; the next holder of
    /// the lock moves it into the queue. Order: it comes before every post
    /// whose call began after this one returned (FIFO as for any post).
    ///
    /// Only when all the ring's slots are pending: a call made while a hub
    /// call of its own thread is interrupted (a signal handler) refuses
    /// with `Full`; any other call waits for the lock (another thread
    /// holds it) and queues, growing the queue if need be. It refuses with
    /// `Closed` once the hub closed, `Unregistered` once the port is
    /// stale; an item whose port is unregistered while it waits in the
    /// ring is discarded as `Unregistered` when it is taken from there.
    ///
    /// Async-signal-safe when moving `T` allocates nothing, unless the
    /// ring is full and no hub call of the caller's thread is interrupted.
    pub fn post_nowait(&self, item: T) -> Result<Posted, PostError<T>> {
        self.shared.push_nowait(self.key, &self.counters, item)
    }

    /// Queues `item`, waiting at most `timeout` for room (`Full` after that).
    pub fn post_timeout(&self, item: T, timeout: Duration) -> Result<Posted, PostError<T>> {
        self.shared.push(
            self.key,
            &self.counters,
            item,
            WhenFull::Block(Some(deadline(timeout))),
            None,
        )
    }

    /// True when a post would find room in the queue now (another
    /// producer may take it first). Takes no lock.
    pub fn has_room(&self) -> bool {
        self.shared.has_room()
    }

    /// Waits until a post would find room in the queue, at most `timeout`
    /// (`None`: no limit), taking none: `Ok(false)` on timeout. For a
    /// producer that must post with [`post_if_room`](Port::post_if_room)
    /// itself (to record the post elsewhere as it happens) but wait as
    /// [`post`](Port::post) does. Fails as `post` would: `Closed`,
    /// `Unregistered`, `WouldDeadlock` on the consumer thread.
    pub fn wait_room(&self, timeout: Option<Duration>) -> Result<bool, PostErrorKind> {
        self.shared.wait_room(self.key, timeout.map(deadline))
    }

    /// Queues the item built by `make` around a [`Reply`] and blocks until
    /// the consumer answers it, waiting for room when the queue is full.
    /// `timeout` bounds the whole call (room and answer).
    ///
    /// Issued from the consumer thread it fails at once with
    /// [`CallError::WouldDeadlock`] and `make` is not called.
    pub fn call<R: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<R>) -> T,
        timeout: Option<Duration>,
    ) -> Result<R, CallError> {
        let deadline = timeout.map(deadline);
        self.call_inner(make, WhenFull::Block(deadline), deadline)
    }

    /// Like [`call`](Port::call), but fails at once with
    /// [`CallError::Full`] instead of waiting for room.
    pub fn try_call<R: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<R>) -> T,
        timeout: Option<Duration>,
    ) -> Result<R, CallError> {
        self.call_inner(make, WhenFull::Refuse, timeout.map(deadline))
    }

    fn call_inner<R: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<R>) -> T,
        when_full: WhenFull,
        deadline: Option<Instant>,
    ) -> Result<R, CallError> {
        // A closed hub is the more useful answer, even on the consumer thread.
        if self.shared.is_closed() {
            self.count_refused();
            return Err(CallError::Closed);
        }
        if self.shared.on_consumer_thread() {
            self.count_refused();
            return Err(CallError::WouldDeadlock);
        }
        let (reply, waiter) = reply::pair();
        let pending = waiter.pending();
        if let Err(e) = self.shared.push(
            self.key,
            &self.counters,
            make(reply),
            when_full,
            Some(pending),
        ) {
            self.shared.discard_one(e.item, Discarded::Refused(e.kind));
            return Err(e.kind.into());
        }
        match waiter.wait(deadline) {
            Outcome::Replied(r) => {
                self.shared.replies.fetch_add(1, Ordering::Relaxed);
                let c = &self.counters;
                PortCounters::add(if r.is_ok() { &c.replies } else { &c.errors }, 1);
                r.map_err(CallError::Handler)
            }
            Outcome::Ended if self.shared.is_closed() => Err(CallError::Closed),
            Outcome::Ended => Err(CallError::Cancelled),
            Outcome::TimedOut => {
                PortCounters::add(&self.counters.timeouts, 1);
                Err(CallError::TimedOut)
            }
        }
    }

    /// Takes a keep-alive reference: while any is held, the hub is not idle
    /// and a run loop keeps waiting for this library's deliveries.
    pub fn keep_alive(&self) -> Result<KeepAlive<T>, PostErrorKind> {
        if !self.is_live() {
            return Err(if self.is_closed() {
                PostErrorKind::Closed
            } else {
                PostErrorKind::Unregistered
            });
        }
        self.shared.acquire_keep_alive();
        Ok(KeepAlive {
            shared: self.shared.clone(),
        })
    }

    /// Unregisters the port: its queued items are dropped (their callers see
    /// `Cancelled`) and its cancel notification fires. Every clone becomes
    /// stale. Returns false when it already was.
    pub fn unregister(&self) -> bool {
        self.shared.unregister(self.key)
    }
}

/// A keep-alive reference (see [`Port::keep_alive`]); released on drop.
/// Releasing the last one wakes a consumer blocked in [`Hub::wait`](crate::Hub::wait).
pub struct KeepAlive<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Drop for KeepAlive<T> {
    fn drop(&mut self) {
        self.shared.release_keep_alive();
    }
}

impl<T> fmt::Debug for KeepAlive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeepAlive")
    }
}

fn deadline(timeout: Duration) -> Instant {
    Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(far_future)
}
