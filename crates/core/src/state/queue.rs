//! The FIFO: producers push (waiting, timing out or refusing when full),
//! the consumer drains (invariants 1-4 of the parent module).
//!
//! `push_nowait` never waits for room, and never waits for the lock or a
//! ring slot that the code it interrupted may hold: when the lock is taken
//! (or the queue's buffer would have to grow) it puts the entry in the
//! side ring (`ring.rs`). Lock holders that push, drain, unregister, close
//! or read the stats first fold the ring's entries into the queue, so an
//! entry posted through the ring comes before every post and drain that
//! began after its `push_nowait` returned (FIFO as for locked posts). A
//! no-wait post queues directly only when the ring holds nothing after it
//! folded what it could: never past an earlier entry still in the ring.
//!
//! Every post takes its unit of room (`Shared::reserve`, invariant 3)
//! before its item goes to the queue or the ring, so the bound is exact on
//! every path.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Entry, Locked, PortKey, Posted, Shared, State, WhenFull, PRUNE_FIRST};
use crate::error::{Discarded, PostError, PostErrorKind};
use crate::reply::PendingCall;
use crate::stats::PortCounters;
use crate::sync::{fence, yield_now, InCore, Ordering};
use crate::waits::{self, WaitCache};
use crate::waker;

/// Rounds of "try the lock, else the ring" before a no-wait post that
/// finds the ring full stops trying: one that may wait (no hub call of its
/// own thread is interrupted) then takes the lock; one that may not
/// refuses with `Full`.
#[cfg(not(loom))]
const NOWAIT_TRIES: usize = 64;
#[cfg(loom)]
const NOWAIT_TRIES: usize = 2;

/// Counts a refused post on the hub and on its port, under the lock.
fn refused_under_lock<T>(st: &mut State<T>, counters: &PortCounters) {
    st.counters.refused += 1;
    PortCounters::add(&counters.refused, 1);
}

/// What a ring post did.
enum RingPost<T> {
    Done(Result<Posted, PostError<T>>),
    /// The ring's slots are all pending: the item is back, nothing counted.
    RingFull(T),
}

impl<T> Shared<T> {
    /// Counts a refused post on the hub and on its port, without the lock
    /// (a no-wait post).
    fn refused_without_lock(&self, counters: &PortCounters) {
        self.ring_refused.fetch_add(1, Ordering::Relaxed);
        PortCounters::add(&counters.refused, 1);
    }

    /// Queues `item` for `port`, whose counters are `counters`; `call` is
    /// the pending call it answers, tracked so unregister and close can
    /// cancel it.
    pub(crate) fn push(
        &self,
        port: PortKey,
        counters: &PortCounters,
        item: T,
        when_full: WhenFull,
        call: Option<Box<dyn PendingCall>>,
    ) -> Result<Posted, PostError<T>> {
        let posted_at = self.stamp();
        let st = self.lock();
        self.push_locked(st, port, counters, item, posted_at, when_full, call, true)
    }

    /// Queues `item` without waiting for room, refusing with `Full` when
    /// the hub is full. With the lock free, room in the queue's buffer and
    /// the ring empty (or emptied here of its finished entries) it queues
    /// directly; otherwise the item goes to the side ring. Neither path
    /// allocates or waits.
    ///
    /// Only while all the ring's slots are pending:
    /// * a call made while a hub call of this thread is interrupted (a
    ///   signal handler, [`InCore`]) refuses with `Full`: what it would
    ///   wait for is the code it interrupted;
    /// * any other call takes the lock (waiting for another thread to
    ///   release it), folds the whole ring (waiting for slots other
    ///   threads are writing) and queues, growing the queue if need be.
    pub(crate) fn push_nowait(
        &self,
        port: PortKey,
        counters: &PortCounters,
        mut item: T,
    ) -> Result<Posted, PostError<T>> {
        let posted_at = self.stamp();
        let interrupted = InCore::here();
        let tries = if interrupted { 1 } else { NOWAIT_TRIES };
        for round in 0..tries {
            if let Some(mut st) = self.try_lock() {
                // Refused as `Closed`/`Unregistered` under the lock, or
                // queued directly when that neither allocates nor passes
                // an entry still in the ring. Earlier no-wait posts are
                // taken from the ring first when the buffer has room for
                // all of them, up to a slot still being written (it may
                // belong to a post this call interrupted) or an item to
                // discard (its discard path runs only outside a no-wait
                // post).
                let direct = st.closed || !self.port_live(port) || {
                    let pending = self.ring.pending();
                    if pending > 0 && st.queue.len() + pending < st.queue.capacity() {
                        self.fold_finished(&mut st, None);
                    }
                    !self.ring.is_pending() && st.queue.len() < st.queue.capacity()
                };
                if direct {
                    return self.push_locked(
                        st,
                        port,
                        counters,
                        item,
                        posted_at,
                        WhenFull::Refuse,
                        None,
                        false,
                    );
                }
                drop(st);
            }
            match self.push_ring(port, counters, item, posted_at) {
                RingPost::Done(result) => return result,
                RingPost::RingFull(back) => item = back,
            }
            if round + 1 < tries {
                yield_now();
            }
        }
        if interrupted {
            self.refused_without_lock(counters);
            return Err(PostError {
                kind: PostErrorKind::Full,
                item,
            });
        }
        // The ring stayed full and no hub call of this thread is
        // interrupted: the lock's holder and the ring's writers are other
        // threads, which finish. Fold everything (waiting for slots being
        // written, so FIFO holds) and queue, even if the queue must grow.
        let st = self.lock();
        self.push_locked(
            st,
            port,
            counters,
            item,
            posted_at,
            WhenFull::Refuse,
            None,
            true,
        )
    }

    /// Waits until a post would find room (taking none), until `deadline`
    /// (false then). Refuses as a blocking post does: `Closed`,
    /// `Unregistered`, or `WouldDeadlock` on the consumer thread.
    pub(crate) fn wait_room(
        &self,
        port: PortKey,
        deadline: Option<Instant>,
    ) -> Result<bool, PostErrorKind> {
        let mut st = self.lock();
        loop {
            if st.closed {
                return Err(PostErrorKind::Closed);
            }
            if !self.port_live(port) {
                return Err(PostErrorKind::Unregistered);
            }
            if self.has_room() {
                return Ok(true);
            }
            if self.on_consumer_thread() {
                return Err(PostErrorKind::WouldDeadlock);
            }
            st = match self.wait_for_room(st, deadline) {
                Ok(st) => st,
                Err(_) => return Ok(false),
            };
        }
    }

    /// One wait for room, counted as a blocked producer (so that whatever
    /// frees room wakes it), until `deadline`: `Err` with the lock back
    /// when the deadline had already passed.
    fn wait_for_room<'a>(
        &self,
        mut st: Locked<'a, T>,
        deadline: Option<Instant>,
    ) -> Result<Locked<'a, T>, Locked<'a, T>> {
        st.blocked_producers += 1;
        let mut st = match deadline {
            None => st.wait(&self.room_cv),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    st.blocked_producers -= 1;
                    return Err(st);
                }
                st.wait_timeout(&self.room_cv, deadline - now)
            }
        };
        st.blocked_producers -= 1;
        Ok(st)
    }

    fn push_ring(
        &self,
        port: PortKey,
        counters: &PortCounters,
        item: T,
        posted_at: u64,
    ) -> RingPost<T> {
        // A slot this thread reserves and has not finished writing is
        // what a signal handler interrupting it must not wait for.
        let _core = InCore::enter();
        // Close waits until no ring post is in flight before it folds the
        // ring and releases the descriptor (Dekker with `closed`).
        self.ring_posters.fetch_add(1, Ordering::SeqCst);
        // The fences make the Dekker pairing explicit (loom models SeqCst
        // accesses alone as acquire/release).
        fence(Ordering::SeqCst);
        let refused = if self.closed.load(Ordering::SeqCst) {
            Some(PostErrorKind::Closed)
        } else if !self.port_live(port) {
            Some(PostErrorKind::Unregistered)
        } else if !self.reserve() {
            Some(PostErrorKind::Full)
        } else {
            None
        };
        let result = if let Some(kind) = refused {
            self.refused_without_lock(counters);
            RingPost::Done(Err(PostError { kind, item }))
        } else {
            match self.ring.push(Entry {
                port,
                posted_at,
                item,
            }) {
                Err(e) => {
                    self.release(1);
                    RingPost::RingFull(e.item)
                }
                Ok(()) => {
                    self.ring_posts.fetch_add(1, Ordering::Relaxed);
                    self.ring_used.store(true, Ordering::Relaxed);
                    // One wake-up until the consumer settles it.
                    let mut posted = Posted::Queued;
                    // Pairs with the fence in `fd()`/`set_udp_port()`: this
                    // post sees their descriptor, or they see its slot.
                    fence(Ordering::SeqCst);
                    if !self.ring_woke.swap(true, Ordering::SeqCst) {
                        let fd = self.fd_write.load(Ordering::SeqCst);
                        if fd >= 0 {
                            waker::set_raw(fd);
                        }
                        let udp = self.udp_fd.load(Ordering::SeqCst);
                        if udp >= 0
                            && !waker::send_raw(udp, self.udp_to.load(Ordering::Relaxed) as u16)
                        {
                            posted = Posted::QueuedUdpFailed;
                        }
                    }
                    if self.consumer_sleeping.load(Ordering::SeqCst) {
                        self.consumer_cv.notify_one();
                    }
                    RingPost::Done(Ok(posted))
                }
            }
        };
        self.ring_posters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Waits until no ring post is in flight (close, after `closed` is set:
    /// later ring posts refuse; a UDP port change, after the mirror moved).
    pub(crate) fn wait_ring_posters(&self) {
        fence(Ordering::SeqCst);
        while self.ring_posters.load(Ordering::SeqCst) != 0 {
            yield_now();
        }
    }

    /// Moves the ring's entries into the queue, after what is queued, in
    /// reservation order, waiting for reservations still being written.
    /// Entries of ports gone stale go to `stale` (counted cancelled). Only
    /// under the lock, and never by a call that may have interrupted a
    /// ring post of its own thread (it would never finish its slot).
    pub(crate) fn fold_ring(&self, st: &mut State<T>, stale: &mut Vec<T>) {
        while self.ring.is_pending() {
            if self.fold_finished(st, Some(stale)) == 0 {
                yield_now();
            }
        }
    }

    /// [`fold_ring`](Self::fold_ring) without waiting: stops at the first
    /// slot still being written. Without `stale` it also stops at the first
    /// entry of a port gone stale, leaving it to a later fold: then it
    /// neither allocates (when the queue's buffer has room for the ring's
    /// entries) nor runs an item's discard path. Entries moved into the
    /// queue take the wake-up edge as a post does (invariant 4); their
    /// datagram was sent by the ring post.
    pub(crate) fn fold_finished(&self, st: &mut State<T>, mut stale: Option<&mut Vec<T>>) -> usize {
        if !self.ring.is_pending() {
            return 0;
        }
        let keep_stale = stale.is_some();
        let mut gone = 0;
        let n = self.ring.fold_while(
            |e| keep_stale || self.port_live(e.port),
            |e| {
                st.counters.posted += 1;
                match stale.as_deref_mut() {
                    Some(stale) if !self.port_live(e.port) => {
                        st.counters.cancelled += 1;
                        gone += 1;
                        stale.push(e.item);
                    }
                    // Live: without `stale`, `accept` checked it, and a
                    // port goes stale only under the lock we hold.
                    _ => {
                        if let Some(c) = st.counters_of(e.port) {
                            PortCounters::add_under_lock(&c.posted, 1);
                        }
                        st.queue.push_back(e);
                    }
                }
            },
        );
        self.release(gone);
        if gone > 0 && st.blocked_producers > 0 {
            // Room given back: a producer waiting for it may post now
            // (every other release that can free room wakes them too).
            self.room_cv.notify_all();
        }
        let depth = st.queue.len();
        st.counters.peak_depth = st.counters.peak_depth.max(depth);
        if n > gone && !st.signalled {
            st.signalled = true;
            st.counters.wakeups += 1;
            if let Some(fd) = &st.fd {
                fd.set();
            }
        }
        n
    }

    #[allow(clippy::too_many_arguments)]
    fn push_locked(
        &self,
        mut st: Locked<'_, T>,
        port: PortKey,
        counters: &PortCounters,
        item: T,
        mut posted_at: u64,
        when_full: WhenFull,
        call: Option<Box<dyn PendingCall>>,
        fold: bool,
    ) -> Result<Posted, PostError<T>> {
        // Items of ports unregistered while they sat in the ring, discarded
        // once the lock is released.
        let mut stale = Vec::new();
        let refuse = |mut st: Locked<'_, T>, stale: Vec<T>, kind, item| {
            refused_under_lock(&mut st, counters);
            drop(st);
            self.discard_all(stale, Discarded::Unregistered);
            Err(PostError { kind, item })
        };
        loop {
            // Ring items were posted before this one (invariant 1): fold
            // them first, again after every wait.
            if fold {
                self.fold_ring(&mut st, &mut stale);
            }
            if st.closed {
                return refuse(st, stale, PostErrorKind::Closed, item);
            }
            if !self.port_live(port) {
                return refuse(st, stale, PostErrorKind::Unregistered, item);
            }
            if self.reserve() {
                break;
            }
            let deadline = match when_full {
                WhenFull::Refuse => return refuse(st, stale, PostErrorKind::Full, item),
                WhenFull::HandBack => {
                    drop(st);
                    self.discard_all(stale, Discarded::Unregistered);
                    return Err(PostError {
                        kind: PostErrorKind::Full,
                        item,
                    });
                }
                WhenFull::Block(_) if self.on_consumer_thread() => {
                    return refuse(st, stale, PostErrorKind::WouldDeadlock, item)
                }
                WhenFull::Block(deadline) => deadline,
            };
            st = match self.wait_for_room(st, deadline) {
                Ok(st) => st,
                Err(st) => return refuse(st, stale, PostErrorKind::Full, item),
            };
            // The wait for room is not a wait in the queue.
            if posted_at != 0 {
                posted_at = waits::now_ns();
            }
        }
        st.queue.push_back(Entry {
            port,
            posted_at,
            item,
        });
        if let Some(call) = call {
            if let Some(book) = st.book(port) {
                if book.calls.len() >= book.prune_at {
                    book.calls.retain(|c| !c.is_finished());
                    book.prune_at = (book.calls.len() * 2).max(PRUNE_FIRST);
                }
                book.calls.push(call);
            }
        }
        PortCounters::add_under_lock(&counters.posted, 1);
        let depth = st.queue.len();
        let c = &mut st.counters;
        c.posted += 1;
        c.peak_depth = c.peak_depth.max(depth);
        if st.signalled {
            drop(st);
            self.discard_all(stale, Discarded::Unregistered);
            return Ok(Posted::Queued);
        }
        // The wake-up edge (invariant 4): the descriptor is written once
        // the lock is released.
        st.signalled = true;
        st.counters.wakeups += 1;
        let fd = st.fd.clone();
        let notify = st.consumer_waiting;
        let udp = st.udp.clone();
        drop(st);
        if let Some(fd) = fd {
            self.set_fd_unlocked(&fd);
        }
        self.discard_all(stale, Discarded::Unregistered);
        if notify {
            self.consumer_cv.notify_one();
        }
        match udp {
            Some(udp) if !udp.send() => Ok(Posted::QueuedUdpFailed),
            _ => Ok(Posted::Queued),
        }
    }

    /// Moves up to `max` items into `out` (FIFO). One lock acquisition; when
    /// `out` is empty and everything fits, the two buffers are swapped, so
    /// the cost under the lock does not grow with the batch.
    /// `cache` is brought up to date with the timing histograms.
    pub(crate) fn drain(
        &self,
        max: usize,
        out: &mut VecDeque<Entry<T>>,
        cache: &mut WaitCache,
    ) -> usize {
        let mut st = self.lock();
        Self::refresh_cache(&st, cache);
        let mut stale = Vec::new();
        self.fold_ring(&mut st, &mut stale);
        let n = st.queue.len().min(max);
        if n == 0 {
            self.settle_signal(&mut st);
            drop(st);
            self.discard_all(stale, Discarded::Unregistered);
            return 0;
        }
        if out.is_empty() && n == st.queue.len() {
            std::mem::swap(&mut st.queue, out);
        } else {
            out.extend(st.queue.drain(..n));
        }
        st.counters.delivered += n as u64;
        self.release(n);
        self.settle_signal(&mut st);
        let room = st.blocked_producers > 0;
        drop(st);
        self.discard_all(stale, Discarded::Unregistered);
        if room {
            self.room_cv.notify_all();
        }
        n
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::ring::RING_SLOTS;
    use crate::{Batch, Hub, PostErrorKind};

    /// Waits (at most 10 s, then fails) until `ready` holds.
    fn observe(what: &str, ready: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !ready() {
            assert!(Instant::now() < end, "never observed: {what}");
            std::thread::yield_now();
        }
    }

    /// Ring posts take their room like any post: with the lock held, a
    /// hub of capacity 3 accepts 3 no-wait posts into the ring and
    /// refuses the rest (it accepted all 5 before).
    #[test]
    fn ring_posts_keep_the_capacity_bound() {
        let hub: Hub<u32> = Hub::with_capacity(3);
        let port = hub.register("p", |_| {}).unwrap();
        let held = hub.shared.lock();
        let kinds: Vec<_> = std::thread::scope(|s| {
            s.spawn(|| {
                (0..5)
                    .map(|i| port.post_nowait(i).map_err(|e| e.kind))
                    .collect()
            })
            .join()
            .unwrap()
        });
        drop(held);
        assert!(kinds[..3].iter().all(|k| k.is_ok()), "{kinds:?}");
        assert!(
            kinds[3..].iter().all(|k| *k == Err(PostErrorKind::Full)),
            "{kinds:?}"
        );
        let s = hub.stats();
        assert_eq!((s.posted, s.refused, s.depth, s.peak_depth), (3, 2, 3, 3));
    }

    /// Room given back by a fold that drops a stale port's ring entries
    /// wakes a producer blocked on the full hub. The interleaving: `b`
    /// waits on a full hub; room is freed, but a ring post of `a` takes it
    /// before `b` wakes (simulated: the queued item is removed without a
    /// word), then `a` goes stale with its entry still in the ring (its
    /// post checked `a` live before the unregister). `stats()` folds the
    /// ring and drops that entry: its room must wake `b`, which slept
    /// until its timeout before.
    #[test]
    fn room_freed_by_dropping_stale_ring_entries_wakes_a_blocked_producer() {
        let hub: Hub<u32> = Hub::with_capacity(1);
        let a = hub.register("a", |_| {}).unwrap();
        let b = hub.register("b", |_| {}).unwrap();
        let c = hub.register("c", |_| {}).unwrap();
        c.post(0).unwrap();
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                let start = Instant::now();
                let posted = b.post_timeout(3, Duration::from_secs(30)).is_ok();
                (posted, start.elapsed())
            });
            observe("b's post blocked on the full hub", || {
                hub.blocked_producers() == 1
            });
            {
                let mut st = hub.shared.lock();
                assert_eq!(st.queue.len(), 1);
                st.queue.pop_front();
                hub.shared.release(1);
                std::thread::scope(|s| {
                    s.spawn(|| a.post_nowait(1).unwrap()).join().unwrap();
                });
                assert_eq!(hub.shared.ring.pending(), 1, "a's post went to the ring");
                hub.shared.ports.remove(a.key());
            }
            // Folds the ring, dropping a's entry: one unit of room.
            let _ = hub.stats();
            let (posted, waited) = t.join().unwrap();
            assert!(posted, "b's post went in");
            assert!(
                waited < Duration::from_secs(20),
                "b was woken by the fold, not by its 30 s timeout ({waited:?})"
            );
        });
        assert_eq!(hub.stats().depth, 1);
    }

    /// A no-wait post made while this thread holds the hub's lock (what
    /// a signal handler that interrupted a hub call sees) never waits: a
    /// full ring refuses it at once; FIFO of what was accepted holds.
    #[test]
    fn an_interrupted_nowait_post_refuses_when_the_ring_is_full() {
        let hub: Hub<usize> = Hub::with_capacity(1000);
        let port = hub.register("p", |_| {}).unwrap();
        let held = hub.shared.lock();
        for i in 0..RING_SLOTS {
            port.post_nowait(i).unwrap();
        }
        let e = port.post_nowait(RING_SLOTS).unwrap_err();
        assert_eq!(e.kind, PostErrorKind::Full);
        drop(held);
        let mut batch = Batch::new();
        assert_eq!(hub.drain(usize::MAX, &mut batch), RING_SLOTS);
        let got: Vec<usize> = std::iter::from_fn(|| batch.pop()).collect();
        assert_eq!(got, (0..RING_SLOTS).collect::<Vec<_>>());
    }

    /// Off an interrupted call, a no-wait post that finds the ring full
    /// waits for the lock's holder (another thread), then queues after
    /// everything in the ring: FIFO holds and nothing is refused.
    #[test]
    fn a_nowait_post_that_finds_the_ring_full_waits_for_the_lock_in_order() {
        let hub: Hub<usize> = Hub::with_capacity(1000);
        let port = hub.register("p", |_| {}).unwrap();
        let total = RING_SLOTS + 10;
        let held = hub.shared.lock();
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                for i in 0..total {
                    port.post_nowait(i).unwrap();
                }
            });
            observe("the ring is full", || {
                hub.shared.ring.pending() == RING_SLOTS
            });
            drop(held);
            t.join().unwrap();
        });
        let mut batch = Batch::new();
        assert_eq!(hub.drain(usize::MAX, &mut batch), total);
        let got: Vec<usize> = std::iter::from_fn(|| batch.pop()).collect();
        assert_eq!(got, (0..total).collect::<Vec<_>>());
        assert_eq!(hub.stats().refused, 0);
    }

    /// A post writes the descriptor after releasing the lock; a write that
    /// lands after the drain that took its item cleared the descriptor
    /// leaves it readable over an empty queue: the next drain clears it
    /// (else a loop polling `fd()` would spin).
    #[test]
    fn a_late_descriptor_write_is_cleared_by_the_next_drain() {
        let hub: Hub<u32> = Hub::with_capacity(64);
        let port = hub.register("p", |_| {}).unwrap();
        let mut batch = Batch::new();
        hub.fd().unwrap();
        port.post(1).unwrap();
        assert_eq!(hub.fd_readable(), Some(true), "the post's edge wrote it");
        assert_eq!(hub.drain(usize::MAX, &mut batch), 1);
        assert_eq!(
            hub.fd_readable(),
            Some(false),
            "the drain emptied the queue"
        );
        // The write of a post whose item that drain already took, late.
        let fd = hub.shared.lock().fd.clone().unwrap();
        hub.shared.set_fd_unlocked(&fd);
        assert_eq!(hub.fd_readable(), Some(true));
        assert_eq!(hub.drain(usize::MAX, &mut batch), 0);
        assert_eq!(
            hub.fd_readable(),
            Some(false),
            "the stale write was cleared"
        );
        // And the next post's edge still wakes.
        port.post(2).unwrap();
        assert_eq!(hub.fd_readable(), Some(true));
    }

    /// A no-wait post that finds the lock free takes what earlier no-wait
    /// posts left in the side ring into the queue before its own item,
    /// instead of adding to the ring until the consumer folds it.
    #[test]
    fn a_nowait_post_with_the_lock_free_folds_the_ring_first() {
        let hub: Hub<u32> = Hub::with_capacity(64);
        let port = hub.register("p", |_| {}).unwrap();
        let mut batch = Batch::new();
        // Give the queue a buffer that outlives a drain.
        port.post(1).unwrap();
        port.post(2).unwrap();
        assert_eq!(hub.drain(1, &mut batch), 1);
        let held = hub.shared.lock();
        std::thread::scope(|s| {
            s.spawn(|| port.post_nowait(10).unwrap());
        });
        assert_eq!(hub.shared.ring.pending(), 1, "the lock was taken: ring");
        drop(held);
        port.post_nowait(11).unwrap();
        assert_eq!(hub.shared.ring.pending(), 0, "folded by the post");
        hub.drain(usize::MAX, &mut batch);
        let got: Vec<u32> = std::iter::from_fn(|| batch.pop()).collect();
        assert_eq!(got, vec![1, 2, 10, 11]);
        let s = port.stats();
        assert_eq!((s.posted, s.delivered, s.refused), (4, 4, 0));
    }
}
