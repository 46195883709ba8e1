//! The state one hub shares with all its ports: the FIFO, the port table,
//! the wake-up flag and the counters, all under one lock.
//!
//! # Invariants (each kept under `Shared::state`)
//!
//! 1. **FIFO.** Items enter at the back of `queue` and leave from the front,
//!    in one order for all ports of the hub. Removal elsewhere (unregister,
//!    close) never reorders what stays.
//! 2. **Exactly once.** An item leaves `queue` exactly once: handed to the
//!    consumer by a drain (counted `delivered`), or removed unrun by close or
//!    unregister (counted `cancelled`; its discard path runs after the lock
//!    is released). A refused post hands the item back to its
//!    producer (counted `dropped`). So `posted == delivered + cancelled +
//!    queue.len()` at every unlock.
//! 3. **Bounded.** A post never makes `queue.len()` exceed `capacity`; only
//!    lowering the capacity can leave it above, and then posts wait or refuse.
//! 4. **One wake-up per burst.** `signalled` is true exactly when a wake-up
//!    was sent that the consumer has not consumed; the descriptor (when one
//!    exists) is readable exactly when `signalled`. A post sets it only on the
//!    false→true edge; a drain clears it when it leaves the queue empty. Both
//!    edges touch the descriptor under the lock, so a clear can never eat the
//!    wake-up of a post that raced it.
//! 5. **Closed is final.** Once `closed`, the queue is empty and stays empty,
//!    every port is stale, every waiter (consumer or producer) and every
//!    pending call has been notified, and the descriptors are released.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

use crate::error::{CancelReason, Discarded, PostError, PostErrorKind};
use crate::reply::PendingCall;
use crate::stats::Stats;
use crate::sync::{
    condvar_wait_timeout, lock, thread_token, Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar,
    Mutex, MutexGuard, Ordering,
};
use crate::waker::{FdSignal, UdpNotifier};

/// Queue capacity of a new hub, in items.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Tracked calls of a port before the first pruning of finished ones.
const PRUNE_FIRST: usize = 16;

pub(crate) type CancelFn = Box<dyn FnOnce(CancelReason) + Send + 'static>;

/// What a hub does with an accepted item it discards unrun (see
/// [`Hub::with_discard`](crate::Hub::with_discard)); without one the item
/// is dropped.
pub(crate) type DiscardFn<T> = Box<dyn Fn(T, Discarded) + Send + Sync + 'static>;

/// A port's identity: its slot in the table and the slot's generation when
/// the port was registered. A handle whose generation no longer matches is
/// stale; no raw pointer to the slot is ever handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortKey {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

pub(crate) struct Entry<T> {
    pub(crate) port: PortKey,
    pub(crate) item: T,
}

struct PortSlot {
    generation: u32,
    /// Registration order across the hub's life (slots are reused).
    seq: u64,
    live: bool,
    name: String,
    on_cancel: Option<CancelFn>,
    /// Blocking calls of this port that may still be pending, wherever
    /// their items are (queue, consumer's batch, a reply in Lua's hands):
    /// unregister and close cancel them. Finished ones are pruned when the
    /// list doubles.
    calls: Vec<Box<dyn PendingCall>>,
    prune_at: usize,
}

/// What the producer chose to do when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenFull {
    Refuse,
    Block(Option<Instant>),
}

/// The result of an accepted post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Posted {
    /// The item is queued.
    Queued,
    /// The item is queued, but the UDP wake-up datagram could not be sent
    /// (DarkSideSync's -99 warning).
    QueuedUdpFailed,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) posted: u64,
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
    pub(crate) cancelled: u64,
    pub(crate) peak_depth: usize,
    pub(crate) wakeups: u64,
}

pub(crate) struct State<T> {
    pub(crate) queue: VecDeque<Entry<T>>,
    pub(crate) capacity: usize,
    pub(crate) closed: bool,
    ports: Vec<PortSlot>,
    free_ports: Vec<u32>,
    next_seq: u64,
    /// Invariant 4.
    signalled: bool,
    /// The consumer sleeps in `wait`; a post on the wake-up edge notifies it.
    consumer_waiting: bool,
    /// Set when the consumer should return from `wait` without work
    /// (the last keep-alive went away); consumed by `wait`.
    nudged: bool,
    /// Producers sleeping in a full queue.
    blocked_producers: usize,
    fd: Option<FdSignal>,
    udp: Option<Arc<UdpNotifier>>,
    pub(crate) counters: Counters,
}

pub(crate) struct Shared<T> {
    pub(crate) state: Mutex<State<T>>,
    /// The consumer waits here for work.
    consumer_cv: Condvar,
    /// Producers wait here for room.
    room_cv: Condvar,
    /// Thread token of the consumer thread (see `sync::thread_token`).
    consumer: AtomicU64,
    /// Mirrors `State::closed` for lock-free reads by waiters.
    closed: AtomicBool,
    keep_alive: AtomicUsize,
    pub(crate) replies: AtomicU64,
    /// Bumped (release) by every unregister and by close, after the ports
    /// went stale: a consumer compares it with the value its batch saw to
    /// find items of stale ports without taking the lock (`purge_stale`).
    stale_epoch: AtomicU64,
    discard: Option<DiscardFn<T>>,
}

impl<T> State<T> {
    fn port_live(&self, key: PortKey) -> bool {
        self.ports
            .get(key.index as usize)
            .is_some_and(|s| s.live && s.generation == key.generation)
    }

    /// Keeps invariant 4 after items left the queue.
    fn settle_signal(&mut self) {
        if self.queue.is_empty() && self.signalled {
            self.signalled = false;
            if let Some(fd) = &self.fd {
                fd.clear();
            }
        }
    }
}

impl<T> Shared<T> {
    pub(crate) fn new(capacity: usize, discard: Option<DiscardFn<T>>) -> Shared<T> {
        Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity: capacity.max(1),
                closed: false,
                ports: Vec::new(),
                free_ports: Vec::new(),
                next_seq: 0,
                signalled: false,
                consumer_waiting: false,
                nudged: false,
                blocked_producers: 0,
                fd: None,
                udp: None,
                counters: Counters::default(),
            }),
            consumer_cv: Condvar::new(),
            room_cv: Condvar::new(),
            consumer: AtomicU64::new(thread_token()),
            closed: AtomicBool::new(false),
            keep_alive: AtomicUsize::new(0),
            replies: AtomicU64::new(0),
            stale_epoch: AtomicU64::new(0),
            discard,
        }
    }

    /// Hands items discarded unrun to the hub's discard path (or drops
    /// them). Never called under the lock.
    pub(crate) fn discard_all(&self, items: impl IntoIterator<Item = T>, why: Discarded) {
        for item in items {
            self.discard_one(item, why);
        }
    }

    pub(crate) fn discard_one(&self, item: T, why: Discarded) {
        match &self.discard {
            Some(f) => f(item, why),
            None => drop(item),
        }
    }

    pub(crate) fn stale_epoch(&self) -> u64 {
        self.stale_epoch.load(Ordering::Acquire)
    }

    /// Removes the entries of stale ports from a consumer's batch (order of
    /// the rest kept) and discards them: `Unregistered`, or `Closed` once
    /// the hub closed.
    pub(crate) fn purge_stale(&self, batch: &mut VecDeque<Entry<T>>) {
        let st = self.lock();
        if !batch.iter().any(|e| !st.port_live(e.port)) {
            return;
        }
        let closed = st.closed;
        let mut gone = Vec::new();
        let mut kept = VecDeque::with_capacity(batch.len());
        for e in batch.drain(..) {
            if st.port_live(e.port) {
                kept.push_back(e);
            } else {
                gone.push(e.item);
            }
        }
        drop(st);
        *batch = kept;
        let why = if closed {
            Discarded::Closed
        } else {
            Discarded::Unregistered
        };
        self.discard_all(gone, why);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn bind_consumer(&self) {
        self.consumer.store(thread_token(), Ordering::Relaxed);
    }

    pub(crate) fn on_consumer_thread(&self) -> bool {
        self.consumer.load(Ordering::Relaxed) == thread_token()
    }

    // ----- ports -------------------------------------------------------

    pub(crate) fn register(
        &self,
        name: String,
        on_cancel: Option<CancelFn>,
    ) -> Result<PortKey, PostErrorKind> {
        let mut st = self.lock();
        if st.closed {
            return Err(PostErrorKind::Closed);
        }
        let index = match st.free_ports.pop() {
            Some(i) => i,
            None => {
                st.ports.push(PortSlot {
                    generation: 0,
                    seq: 0,
                    live: false,
                    name: String::new(),
                    on_cancel: None,
                    calls: Vec::new(),
                    prune_at: PRUNE_FIRST,
                });
                (st.ports.len() - 1) as u32
            }
        };
        st.next_seq += 1;
        let seq = st.next_seq;
        let slot = &mut st.ports[index as usize];
        slot.seq = seq;
        slot.live = true;
        slot.name = name;
        slot.on_cancel = on_cancel;
        Ok(PortKey {
            index,
            generation: slot.generation,
        })
    }

    pub(crate) fn port_live(&self, key: PortKey) -> bool {
        let st = self.lock();
        !st.closed && st.port_live(key)
    }

    pub(crate) fn port_name(&self, key: PortKey) -> Option<String> {
        let st = self.lock();
        if st.closed || !st.port_live(key) {
            return None;
        }
        Some(st.ports[key.index as usize].name.clone())
    }

    /// Unregisters `key`: its queued items are cancelled (FIFO of the rest
    /// kept) and its cancel notification fires with `Unregistered`.
    /// Returns false when the key was already stale.
    pub(crate) fn unregister(&self, key: PortKey) -> bool {
        let mut st = self.lock();
        if st.closed || !st.port_live(key) {
            return false;
        }
        let slot = &mut st.ports[key.index as usize];
        slot.live = false;
        slot.generation = slot.generation.wrapping_add(1);
        slot.name.clear();
        let on_cancel = slot.on_cancel.take();
        let calls = std::mem::take(&mut slot.calls);
        slot.prune_at = PRUNE_FIRST;
        st.free_ports.push(key.index);
        let gone = remove_port_items(&mut st.queue, key);
        st.counters.cancelled += gone.len() as u64;
        st.settle_signal();
        self.stale_epoch.fetch_add(1, Ordering::Release);
        let room = st.blocked_producers > 0 && !gone.is_empty();
        drop(st);
        if room {
            self.room_cv.notify_all();
        }
        self.discard_all(gone.into_iter().map(|e| e.item), Discarded::Unregistered);
        for call in calls {
            call.cancel();
        }
        if let Some(f) = on_cancel {
            f(CancelReason::Unregistered);
        }
        true
    }

    // ----- producing ---------------------------------------------------

    /// Queues `item` for `port`; `call` is the pending call it answers,
    /// tracked so unregister and close can cancel it.
    pub(crate) fn push(
        &self,
        port: PortKey,
        item: T,
        when_full: WhenFull,
        call: Option<Box<dyn PendingCall>>,
    ) -> Result<Posted, PostError<T>> {
        let mut st = self.lock();
        let refuse = |mut st: MutexGuard<'_, State<T>>, kind, item| {
            st.counters.dropped += 1;
            Err(PostError { kind, item })
        };
        loop {
            if st.closed {
                return refuse(st, PostErrorKind::Closed, item);
            }
            if !st.port_live(port) {
                return refuse(st, PostErrorKind::Unregistered, item);
            }
            if st.queue.len() < st.capacity {
                break;
            }
            let deadline = match when_full {
                WhenFull::Refuse => return refuse(st, PostErrorKind::Full, item),
                WhenFull::Block(_) if self.on_consumer_thread() => {
                    return refuse(st, PostErrorKind::WouldDeadlock, item)
                }
                WhenFull::Block(deadline) => deadline,
            };
            st.blocked_producers += 1;
            st = match deadline {
                None => self.room_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        st.blocked_producers -= 1;
                        return refuse(st, PostErrorKind::Full, item);
                    }
                    condvar_wait_timeout(&self.room_cv, st, deadline - now)
                }
            };
            st.blocked_producers -= 1;
        }
        st.queue.push_back(Entry { port, item });
        if let Some(call) = call {
            let slot = &mut st.ports[port.index as usize];
            if slot.calls.len() >= slot.prune_at {
                slot.calls.retain(|c| !c.is_finished());
                slot.prune_at = (slot.calls.len() * 2).max(PRUNE_FIRST);
            }
            slot.calls.push(call);
        }
        let depth = st.queue.len();
        let c = &mut st.counters;
        c.posted += 1;
        c.peak_depth = c.peak_depth.max(depth);
        if st.signalled {
            return Ok(Posted::Queued);
        }
        // The wake-up edge (invariant 4).
        st.signalled = true;
        st.counters.wakeups += 1;
        if let Some(fd) = &st.fd {
            fd.set();
        }
        let notify = st.consumer_waiting;
        let udp = st.udp.clone();
        drop(st);
        if notify {
            self.consumer_cv.notify_one();
        }
        match udp {
            Some(udp) if !udp.send() => Ok(Posted::QueuedUdpFailed),
            _ => Ok(Posted::Queued),
        }
    }

    // ----- keep-alive --------------------------------------------------

    pub(crate) fn acquire_keep_alive(&self) {
        self.keep_alive.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn release_keep_alive(&self) {
        if self.keep_alive.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut st = self.lock();
            st.nudged = true;
            let notify = st.consumer_waiting;
            drop(st);
            if notify {
                self.consumer_cv.notify_one();
            }
        }
    }

    pub(crate) fn keep_alive_count(&self) -> usize {
        self.keep_alive.load(Ordering::Acquire)
    }

    // ----- consuming ---------------------------------------------------

    /// Moves up to `max` items into `out` (FIFO). One lock acquisition; when
    /// `out` is empty and everything fits, the two buffers are swapped, so
    /// the cost under the lock does not grow with the batch.
    pub(crate) fn drain(&self, max: usize, out: &mut VecDeque<Entry<T>>) -> usize {
        let mut st = self.lock();
        let n = st.queue.len().min(max);
        if n == 0 {
            return 0;
        }
        if out.is_empty() && n == st.queue.len() {
            std::mem::swap(&mut st.queue, out);
        } else {
            out.extend(st.queue.drain(..n));
        }
        st.counters.delivered += n as u64;
        st.settle_signal();
        let room = st.blocked_producers > 0;
        drop(st);
        if room {
            self.room_cv.notify_all();
        }
        n
    }

    /// Waits until work is queued (true), or the deadline passes, the hub
    /// closes or the last keep-alive goes away (false).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut st = self.lock();
        loop {
            if !st.queue.is_empty() {
                return true;
            }
            if st.closed {
                return false;
            }
            if st.nudged {
                st.nudged = false;
                return false;
            }
            st.consumer_waiting = true;
            st = match deadline {
                None => self.consumer_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        st.consumer_waiting = false;
                        return false;
                    }
                    condvar_wait_timeout(&self.consumer_cv, st, deadline - now)
                }
            };
            st.consumer_waiting = false;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn set_capacity(&self, capacity: usize) {
        let mut st = self.lock();
        let grew = capacity > st.capacity;
        st.capacity = capacity;
        let room = grew && st.blocked_producers > 0;
        drop(st);
        if room {
            self.room_cv.notify_all();
        }
    }

    pub(crate) fn fd(&self) -> io::Result<std::os::fd::RawFd> {
        let mut st = self.lock();
        if st.closed {
            return Err(io::Error::other("the hub is closed"));
        }
        if let Some(fd) = &st.fd {
            return Ok(fd.raw());
        }
        let fd = FdSignal::new()?;
        if st.signalled {
            fd.set();
        }
        let raw = fd.raw();
        st.fd = Some(fd);
        Ok(raw)
    }

    pub(crate) fn fd_readable(&self) -> Option<bool> {
        self.lock().fd.as_ref().map(FdSignal::is_readable)
    }

    pub(crate) fn set_udp_port(&self, port: Option<u16>) -> io::Result<()> {
        let notifier = match port {
            Some(p) if p != 0 => Some(Arc::new(UdpNotifier::new(p)?)),
            _ => None,
        };
        let mut st = self.lock();
        if !st.closed {
            st.udp = notifier;
        }
        Ok(())
    }

    pub(crate) fn udp_port(&self) -> Option<u16> {
        self.lock().udp.as_ref().map(|u| u.port())
    }

    pub(crate) fn stats(&self) -> Stats {
        let st = self.lock();
        let c = &st.counters;
        Stats {
            posted: c.posted,
            delivered: c.delivered,
            dropped: c.dropped,
            cancelled: c.cancelled,
            replies: self.replies.load(Ordering::Relaxed),
            peak_depth: c.peak_depth,
            wakeups: c.wakeups,
            depth: st.queue.len(),
            capacity: st.capacity,
            keep_alive: self.keep_alive_count(),
            ports: st.ports.iter().filter(|p| p.live).count(),
        }
    }

    // ----- closing -----------------------------------------------------

    /// Closes the hub (idempotent). Queued items are dropped after the lock
    /// is released, then each port's cancel notification fires, last
    /// registered first.
    pub(crate) fn close(&self) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        st.closed = true;
        self.closed.store(true, Ordering::Release);
        let items = std::mem::take(&mut st.queue);
        st.counters.cancelled += items.len() as u64;
        st.settle_signal();
        // Ports and C handles may keep the shared record for long after
        // (a utility that never unregisters): keep only what their stale
        // checks read, not the descriptors.
        let wakers = (st.fd.take(), st.udp.take());
        let mut cancels: Vec<(u64, CancelFn)> = Vec::new();
        let mut calls = Vec::new();
        for slot in st.ports.iter_mut().filter(|s| s.live) {
            slot.live = false;
            slot.generation = slot.generation.wrapping_add(1);
            calls.append(&mut slot.calls);
            if let Some(f) = slot.on_cancel.take() {
                cancels.push((slot.seq, f));
            }
        }
        self.stale_epoch.fetch_add(1, Ordering::Release);
        // Last registered first, as DarkSideSync cancelled its utilities.
        cancels.sort_by_key(|c| std::cmp::Reverse(c.0));
        drop(st);
        self.room_cv.notify_all();
        self.consumer_cv.notify_all();
        drop(wakers);
        self.discard_all(items.into_iter().map(|e| e.item), Discarded::Closed);
        for call in calls {
            call.cancel();
        }
        for (_, f) in cancels {
            f(CancelReason::HubClosed);
        }
        true
    }
}

/// Removes `port`'s entries from `queue`, keeping everyone else's order.
fn remove_port_items<T>(queue: &mut VecDeque<Entry<T>>, port: PortKey) -> Vec<Entry<T>> {
    let mut gone = Vec::new();
    let mut kept = VecDeque::with_capacity(queue.len());
    for e in queue.drain(..) {
        if e.port == port {
            gone.push(e);
        } else {
            kept.push_back(e);
        }
    }
    *queue = kept;
    gone
}
