//! The state one hub shares with all its ports: the FIFO, the ports'
//! bookkeeping, the wake-up flag and the counters, all under one lock, and
//! the port table (a [`Slots`] whose lock-free liveness checks need no hub
//! lock), and what each concept does with it:
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the shared record, its lock, counters, capacity, discard path |
//! | `ports.rs` | the ports: register, liveness, unregister, per-port counters, stale items in a consumer's batch |
//! | `queue.rs` | the FIFO: push (with the full-queue choice) and drain |
//! | `signal.rs` | wake-ups: waiting, keep-alive, the descriptor and UDP notifier |
//! | `close.rs` | closing |
//! | `ring.rs` | the side ring for posts that must not wait for the lock |
//! | `timing.rs` | timing on and off, the histograms' records, their readers (the histogram is `crate::waits`) |
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
//!    producer (counted `refused`). So `posted == delivered + cancelled +
//!    queue.len()` at every unlock, for the hub and, counting the port's
//!    items only, for each port: its [`PortCounters`] count posted and
//!    cancelled at the same places, and its `delivered` is derived from
//!    this identity (`ports.rs`). An item in the side ring is not yet
//!    posted: the lock holder that folds it into the queue counts it
//!    (`ring.rs` keeps exactly-once for the ring itself), and `stats`
//!    folds the ring before it reads, so its snapshot keeps the identity.
//! 3. **Bounded.** `Shared::occupied` counts the items in `queue` plus the
//!    side ring's reserved slots; every post, whatever its path, takes one
//!    unit of it with a compare-and-swap that fails at `capacity`, before
//!    the item goes anywhere, and every removal gives its units back. So
//!    `queue.len() + ring.pending() <= occupied <= capacity` at every
//!    instant; only lowering the capacity can leave it above, and then
//!    posts wait or refuse.
//! 4. **One wake-up per burst.** `signalled` is true exactly when a wake-up
//!    was sent that the consumer has not consumed; the descriptor (when one
//!    exists) is readable when `signalled`. A post sets it only on the
//!    false→true edge; a drain clears it when it leaves the queue empty.
//!    The edge is decided under the lock, but the post writes the
//!    descriptor after releasing it (holding its own reference to it), so
//!    the consumer that write wakes does not find the lock still taken: a
//!    clear can only come after a drain took the post's item, so it never
//!    eats a wake-up that is still needed; a write landing after such a
//!    clear is stale, and the post then sets `fd_late`, which makes the
//!    next drain that finds the queue empty clear the descriptor again
//!    (one spurious wake-up at most).
//!    Posts through the side ring (`push_nowait` finding the lock taken)
//!    write the descriptor and send the datagram without the lock (through
//!    the `fd_write` and `udp_*` mirrors) and set `ring_woke`; a drain
//!    that empties the queue clears the descriptor, then sets it again if
//!    the ring holds a reservation, so a ring post's wake-up is never eaten.
//!    A fold that moves ring entries into the queue takes the wake-up edge
//!    like a post. Making a descriptor or a UDP port while items are
//!    queued (or in the ring) wakes it at once: the order of `fd()`,
//!    `set_udp_port()` and posts never loses a wake-up.
//! 5. **Closed is final.** Once `closed`, the queue is empty and stays empty,
//!    every port is stale (removed from the port table), every waiter
//!    (consumer or producer) and every pending call has been notified, and
//!    the descriptors are released.
//! 6. **One identity.** A port is live exactly while its key is live in
//!    `Shared::ports`; keys are issued and removed only under the lock, so
//!    a check under the lock stays true until the lock is released. The
//!    bookkeeping of slot `i` is `State::books[i]`, whose `key` says which
//!    port it belongs to (kept after unregister until the slot is reused,
//!    so items of a port that just went stale still count on its counters).

use std::collections::VecDeque;
use std::time::Instant;

use crate::error::{CancelReason, Discarded};
use crate::reply::PendingCall;
use crate::slots::{SlotKey, Slots};
use crate::stats::{PortCounters, Stats};
use crate::sync::{
    condvar_wait_timeout, lock, thread_token, try_lock, Arc, AtomicBool, AtomicI32, AtomicU32,
    AtomicU64, AtomicUsize, Condvar, InCore, Mutex, MutexGuard, Ordering,
};
use crate::waits::WaitHistogram;
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

/// A port's identity: its key in the hub's port table (slot and
/// generation). A key whose generation no longer matches is stale; no raw
/// pointer to the slot is ever handed out.
pub type PortKey = SlotKey;

pub(crate) struct Entry<T> {
    pub(crate) port: PortKey,
    /// When it was posted (`waits::now_ns`), or 0 when timing was off.
    pub(crate) posted_at: u64,
    pub(crate) item: T,
}

/// What the hub keeps under its lock for the port in one slot of the port
/// table (invariant 6).
struct PortBook {
    /// The port this belongs to (live or the last one of the slot).
    key: PortKey,
    counters: Arc<PortCounters>,
    /// Registration order across the hub's life (slots are reused).
    seq: u64,
    name: String,
    on_cancel: Option<CancelFn>,
    /// Blocking calls of this port that may still be pending, wherever
    /// their items are (queue, consumer's batch, a reply in Lua's hands):
    /// unregister and close cancel them. Finished ones are pruned when the
    /// list doubles.
    calls: Vec<Box<dyn PendingCall>>,
    prune_at: usize,
    /// The port's waits while timing is on (`waits.rs`).
    waits: Option<std::sync::Arc<WaitHistogram>>,
}

/// What the producer chose to do when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenFull {
    Refuse,
    /// Hand the item back with `Full`, not counted as refused: the caller
    /// will post it again, waiting ([`Port::post_if_room`](crate::Port::post_if_room)).
    HandBack,
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
    pub(crate) refused: u64,
    pub(crate) cancelled: u64,
    pub(crate) peak_depth: usize,
    pub(crate) wakeups: u64,
}

pub(crate) struct State<T> {
    pub(crate) queue: VecDeque<Entry<T>>,
    pub(crate) capacity: usize,
    pub(crate) closed: bool,
    /// Indexed by slot of `Shared::ports` (invariant 6).
    books: Vec<Option<PortBook>>,
    next_seq: u64,
    /// Invariant 4.
    signalled: bool,
    /// The consumer sleeps in `wait`; a post on the wake-up edge notifies it.
    consumer_waiting: bool,
    /// Set when the consumer should return from `wait` without work
    /// (the last keep-alive went away); consumed by `wait`.
    nudged: bool,
    /// Producers sleeping in a full queue.
    pub(crate) blocked_producers: usize,
    /// Shared with a post writing it after the lock (invariant 4).
    fd: Option<Arc<FdSignal>>,
    udp: Option<Arc<UdpNotifier>>,
    pub(crate) counters: Counters,
    /// The hub's waits while timing is on (`waits.rs`).
    waits: Option<std::sync::Arc<WaitHistogram>>,
    /// Bumped when the histograms a consumer's `WaitCache` must see
    /// change: timing turned on or off, a port registered or unregistered
    /// while it is on.
    waits_version: u64,
}

pub(crate) struct Shared<T> {
    pub(crate) state: Mutex<State<T>>,
    /// The port table: liveness and identity (invariant 6).
    ports: Slots<PortCounters>,
    /// The consumer waits here for work.
    consumer_cv: Condvar,
    /// Producers wait here for room.
    room_cv: Condvar,
    /// Thread token of the consumer thread (see `sync::thread_token`).
    consumer: AtomicU64,
    /// Mirrors `State::closed` for lock-free reads by waiters.
    closed: AtomicBool,
    /// Posts take a timestamp (`waits.rs`); mirrors `State::waits.is_some()`.
    timing: AtomicBool,
    keep_alive: AtomicUsize,
    pub(crate) replies: AtomicU64,
    /// Bumped (release) by every unregister and by close, after the ports
    /// went stale: a consumer compares it with the value its batch saw to
    /// find items of stale ports without taking the lock (`purge_stale`).
    stale_epoch: AtomicU64,
    discard: Option<DiscardFn<T>>,
    /// Posts that found the lock taken (see `ring.rs`).
    pub(crate) ring: ring::Ring<T>,
    /// Producers inside the ring path; close waits for them to leave.
    ring_posters: AtomicUsize,
    /// Set by a ring post before it writes the descriptor.
    ring_woke: AtomicBool,
    /// Some post went through the ring: `wait` then wakes up now and then
    /// (a ring post cannot notify the condvar without a lost-wake-up race).
    ring_used: AtomicBool,
    /// Mirrors `State::consumer_waiting` for ring posts.
    pub(crate) consumer_sleeping: AtomicBool,
    /// Refusals on the ring path (counted in `refused` by `stats`).
    ring_refused: AtomicU64,
    /// Posts accepted through the ring (`Hub::side_ring_posts`).
    pub(crate) ring_posts: AtomicU64,
    /// The descriptor a ring post writes to (-1: none), mirroring `fd`.
    fd_write: AtomicI32,
    /// Set by a post after it wrote the descriptor without the lock
    /// (invariant 4).
    fd_late: AtomicBool,
    /// The socket a ring post sends its datagram from (-1: none) and the
    /// loopback port it sends to, mirroring `udp`.
    udp_fd: AtomicI32,
    udp_to: AtomicU32,
    /// Items queued plus ring slots reserved (invariant 3).
    occupied: AtomicUsize,
    /// Mirrors `State::capacity` for ring posts.
    capacity_now: AtomicUsize,
}

/// The hub's lock, held: the state under it, and the mark that this
/// thread is inside a hub call ([`InCore`]) for as long as it is held.
/// Every lock of `Shared::state` is taken through [`Shared::lock`] or
/// [`Shared::try_lock`], so a no-wait post from a signal handler always
/// knows whether the code it interrupted may hold it.
pub(crate) struct Locked<'a, T> {
    // Dropped first: the lock is released before the mark.
    guard: MutexGuard<'a, State<T>>,
    _core: InCore,
}

impl<T> std::ops::Deref for Locked<'_, T> {
    type Target = State<T>;
    fn deref(&self) -> &State<T> {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.guard
    }
}

impl<'a, T> Locked<'a, T> {
    /// Waits on `cv`, releasing the lock meanwhile (see `Condvar::wait`).
    pub(crate) fn wait(self, cv: &Condvar) -> Locked<'a, T> {
        let Locked { guard, _core } = self;
        let guard = cv.wait(guard).unwrap_or_else(|p| p.into_inner());
        Locked { guard, _core }
    }

    /// [`wait`](Self::wait), at most `dur`.
    pub(crate) fn wait_timeout(self, cv: &Condvar, dur: std::time::Duration) -> Locked<'a, T> {
        let Locked { guard, _core } = self;
        let guard = condvar_wait_timeout(cv, guard, dur);
        Locked { guard, _core }
    }
}

impl<T> State<T> {
    /// The bookkeeping of `key`'s port, live or stale (until its slot is
    /// reused).
    fn book(&mut self, key: PortKey) -> Option<&mut PortBook> {
        self.books
            .get_mut(key.index() as usize)?
            .as_mut()
            .filter(|b| b.key == key)
    }

    /// The counters of `key`'s port, while it can be found (see `book`).
    pub(crate) fn counters_of(&self, key: PortKey) -> Option<&PortCounters> {
        self.books
            .get(key.index() as usize)?
            .as_ref()
            .filter(|b| b.key == key)
            .map(|b| &*b.counters)
    }
}

impl<T> Shared<T> {
    /// Keeps invariant 4 after items left the queue.
    fn settle_signal(&self, st: &mut State<T>) {
        if !st.queue.is_empty() {
            return;
        }
        let ring_woke =
            self.ring_woke.load(Ordering::Relaxed) && self.ring_woke.swap(false, Ordering::SeqCst);
        let late =
            self.fd_late.load(Ordering::Relaxed) && self.fd_late.swap(false, Ordering::SeqCst);
        if !st.signalled && !ring_woke && !late {
            return;
        }
        st.signalled = false;
        if let Some(fd) = &st.fd {
            fd.clear();
        }
        // A ring post that reserved before this check may have written the
        // descriptor before the clear above: keep the wake-up.
        if self.ring.is_pending() {
            st.signalled = true;
            if let Some(fd) = &st.fd {
                fd.set();
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
                books: Vec::new(),
                next_seq: 0,
                signalled: false,
                consumer_waiting: false,
                nudged: false,
                blocked_producers: 0,
                fd: None,
                udp: None,
                counters: Counters::default(),
                waits: None,
                waits_version: 0,
            }),
            ports: Slots::new(),
            consumer_cv: Condvar::new(),
            room_cv: Condvar::new(),
            consumer: AtomicU64::new(thread_token()),
            closed: AtomicBool::new(false),
            timing: AtomicBool::new(false),
            keep_alive: AtomicUsize::new(0),
            replies: AtomicU64::new(0),
            stale_epoch: AtomicU64::new(0),
            discard,
            ring: ring::Ring::new(),
            ring_posters: AtomicUsize::new(0),
            ring_woke: AtomicBool::new(false),
            ring_used: AtomicBool::new(false),
            consumer_sleeping: AtomicBool::new(false),
            ring_refused: AtomicU64::new(0),
            ring_posts: AtomicU64::new(0),
            fd_write: AtomicI32::new(-1),
            fd_late: AtomicBool::new(false),
            udp_fd: AtomicI32::new(-1),
            udp_to: AtomicU32::new(0),
            occupied: AtomicUsize::new(0),
            capacity_now: AtomicUsize::new(capacity.max(1)),
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

    pub(crate) fn lock(&self) -> Locked<'_, T> {
        let core = InCore::enter();
        Locked {
            guard: lock(&self.state),
            _core: core,
        }
    }

    /// The lock if nobody holds it (never waits).
    pub(crate) fn try_lock(&self) -> Option<Locked<'_, T>> {
        let core = InCore::enter();
        Some(Locked {
            guard: try_lock(&self.state)?,
            _core: core,
        })
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

    /// Queued items, plus those in the side ring.
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len() + self.ring.pending()
    }

    /// Takes one unit of room for a post (invariant 3): false when the
    /// hub is full. Lock-free, so ring posts and locked posts share it.
    pub(crate) fn reserve(&self) -> bool {
        let cap = self.capacity_now.load(Ordering::Relaxed);
        let mut n = self.occupied.load(Ordering::Relaxed);
        loop {
            if n >= cap {
                return false;
            }
            match self
                .occupied
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
    }

    /// True when a post would find room now (it may be gone by the time
    /// one is made). Lock-free.
    pub(crate) fn has_room(&self) -> bool {
        self.occupied.load(Ordering::Acquire) < self.capacity_now.load(Ordering::Relaxed)
    }

    /// Gives back the room of `n` items that left the queue or the ring.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.occupied.fetch_sub(n, Ordering::AcqRel);
        }
    }

    pub(crate) fn set_capacity(&self, capacity: usize) {
        let mut st = self.lock();
        let grew = capacity > st.capacity;
        st.capacity = capacity;
        self.capacity_now.store(capacity, Ordering::Relaxed);
        let room = grew && st.blocked_producers > 0;
        drop(st);
        if room {
            self.room_cv.notify_all();
        }
    }

    /// A snapshot that keeps invariant 2: the ring is folded first, so
    /// everything accepted so far is counted posted and queued (`depth`).
    pub(crate) fn stats(&self) -> Stats {
        let mut st = self.lock();
        let mut stale = Vec::new();
        self.fold_ring(&mut st, &mut stale);
        let stats = self.stats_locked(&st);
        drop(st);
        self.discard_all(stale, Discarded::Unregistered);
        stats
    }

    fn stats_locked(&self, st: &State<T>) -> Stats {
        let c = &st.counters;
        Stats {
            posted: c.posted,
            delivered: c.delivered,
            refused: c.refused + self.ring_refused.load(Ordering::Relaxed),
            cancelled: c.cancelled,
            replies: self.replies.load(Ordering::Relaxed),
            peak_depth: c.peak_depth,
            wakeups: c.wakeups,
            // Ring entries reserved after the fold above are neither
            // posted nor in the depth yet.
            depth: st.queue.len(),
            capacity: st.capacity,
            keep_alive: self.keep_alive_count(),
            ports: self.ports.len(),
        }
    }
}

mod close;
mod ports;
mod queue;
mod ring;
mod signal;
mod timing;
