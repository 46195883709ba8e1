//! The FIFO: producers push (waiting, timing out or refusing when full),
//! the consumer drains (invariants 1-4 of the parent module).
//!
//! `push_nowait` never waits for the lock: when the lock is taken it puts
//! the entry in the side ring (`ring.rs`). Lock holders that push, drain,
//! unregister or close first fold the ring's entries into the queue, so an
//! entry posted through the ring comes before every post and drain that
//! began after its `push_nowait` returned (FIFO as for locked posts).

use std::collections::VecDeque;
use std::time::Instant;

use super::{Entry, PortKey, Posted, Shared, State, WhenFull, PRUNE_FIRST};
use crate::error::{Discarded, PostError, PostErrorKind};
use crate::reply::PendingCall;
use crate::stats::PortCounters;
use crate::sync::{condvar_wait_timeout, fence, try_lock, yield_now, MutexGuard, Ordering};
use crate::waits::{self, WaitCache};
use crate::waker;

/// Rounds of "try the lock, else the ring" before a no-wait post gives up
/// on both: off the consumer thread it then waits for the lock, on it it
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

    /// Queues `item` without ever waiting: for the lock (a signal handler
    /// may have interrupted its holder on this very thread) nor for room.
    /// With the lock free, room in the queue's buffer and the ring empty
    /// (or emptied here of its finished entries) it is
    /// [`push`](Self::push) with `Refuse`; otherwise the item goes to
    /// the side ring (refused with `Closed` once the hub closed). Neither
    /// path allocates. Only when the ring stays full, it queues directly
    /// (growing the queue) once it gets the lock: waiting for it off the
    /// consumer thread, refusing with `Full` on it when it is taken.
    pub(crate) fn push_nowait(
        &self,
        port: PortKey,
        counters: &PortCounters,
        mut item: T,
    ) -> Result<Posted, PostError<T>> {
        let posted_at = self.stamp();
        for _ in 0..NOWAIT_TRIES {
            if let Some(mut st) = try_lock(&self.state) {
                // Queue directly only when that cannot allocate (the queue's
                // buffer has room) and keeps FIFO (nothing pending in the
                // ring). Earlier no-wait posts are taken from the ring
                // first when the buffer has room for all of them, up to a
                // slot still being written (it may belong to a post this
                // call interrupted, in a signal handler) or an item to
                // discard (its discard path runs only outside a no-wait
                // post); otherwise a producer that found the lock taken
                // once would keep using the ring until the consumer folds.
                let mut pending = self.ring.pending();
                if pending > 0 && !st.closed && st.queue.len() + pending < st.queue.capacity() {
                    self.fold_finished(&mut st, None);
                    pending = self.ring.pending();
                }
                let direct = pending == 0 && st.queue.len() < st.queue.capacity();
                if direct || st.closed || !self.port_live(port) {
                    // Queued, or refused as `Closed`/`Unregistered`.
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
                if st.queue.len() + pending >= st.capacity {
                    // Full, counting the ring (the lock tells the depth).
                    refused_under_lock(&mut st, counters);
                    return Err(PostError {
                        kind: PostErrorKind::Full,
                        item,
                    });
                }
                drop(st);
            }
            match self.push_ring(port, counters, item, posted_at) {
                Err(PostError {
                    kind: PostErrorKind::Full,
                    item: back,
                }) => item = back,
                done => return done,
            }
            yield_now();
        }
        // The ring stayed full: queue directly, even if the queue must
        // grow (allocate), rather than refuse below the hub's capacity.
        let mut st = match try_lock(&self.state) {
            Some(st) => st,
            // The lock's holder may be the code this call interrupted (a
            // signal handler on the consumer thread): waiting would never
            // end.
            None if self.on_consumer_thread() => {
                self.refused_without_lock(counters);
                return Err(PostError {
                    kind: PostErrorKind::Full,
                    item,
                });
            }
            // Another thread holds it and will release it (a signal handler
            // must not interrupt other threads inside a hub call while the
            // ring is full). No waiting for ring slots still being written
            // below: one may belong to a post this call interrupted.
            None => self.lock(),
        };
        let mut stale = Vec::new();
        self.fold_finished(&mut st, Some(&mut stale));
        let result = self.push_locked(
            st,
            port,
            counters,
            item,
            posted_at,
            WhenFull::Refuse,
            None,
            false,
        );
        self.discard_all(stale, Discarded::Unregistered);
        result
    }

    fn push_ring(
        &self,
        port: PortKey,
        counters: &PortCounters,
        item: T,
        posted_at: u64,
    ) -> Result<Posted, PostError<T>> {
        // Close waits until no ring post is in flight before it folds the
        // ring and releases the descriptor (Dekker with `closed`).
        self.ring_posters.fetch_add(1, Ordering::SeqCst);
        // The fences make the Dekker pairing explicit (loom models SeqCst
        // accesses alone as acquire/release).
        fence(Ordering::SeqCst);
        let result = if self.closed.load(Ordering::SeqCst) {
            self.refused_without_lock(counters);
            Err(PostError {
                kind: PostErrorKind::Closed,
                item,
            })
        } else {
            match self.ring.push(Entry {
                port,
                posted_at,
                item,
            }) {
                // Counted by the caller, which may retry.
                Err(e) => Err(PostError {
                    kind: PostErrorKind::Full,
                    item: e.item,
                }),
                Ok(()) => {
                    self.ring_used.store(true, Ordering::Relaxed);
                    // One descriptor write until the consumer settles it.
                    if !self.ring_woke.swap(true, Ordering::SeqCst) {
                        let fd = self.fd_write.load(Ordering::Acquire);
                        if fd >= 0 {
                            waker::set_raw(fd);
                        }
                    }
                    if self.consumer_sleeping.load(Ordering::SeqCst) {
                        self.consumer_cv.notify_one();
                    }
                    Ok(Posted::Queued)
                }
            }
        };
        self.ring_posters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Waits until no ring post is in flight (close, after `closed` is set:
    /// later ring posts refuse).
    pub(crate) fn wait_ring_posters(&self) {
        fence(Ordering::SeqCst);
        while self.ring_posters.load(Ordering::SeqCst) != 0 {
            yield_now();
        }
    }

    /// Moves the ring's entries into the queue, after what is queued, in
    /// reservation order, waiting for reservations still being written.
    /// Entries of ports gone stale go to `stale` (counted cancelled). Only
    /// under the lock, never from `push_nowait` (a post interrupted by the
    /// caller's signal handler would never finish its slot).
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
    /// entries) nor runs an item's discard path.
    fn fold_finished(&self, st: &mut State<T>, mut stale: Option<&mut Vec<T>>) -> usize {
        if !self.ring.is_pending() {
            return 0;
        }
        let keep_stale = stale.is_some();
        let n = self.ring.fold_while(
            |e| keep_stale || self.port_live(e.port),
            |e| {
                st.counters.posted += 1;
                match stale.as_deref_mut() {
                    Some(stale) if !self.port_live(e.port) => {
                        st.counters.cancelled += 1;
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
        let depth = st.queue.len();
        st.counters.peak_depth = st.counters.peak_depth.max(depth);
        n
    }

    #[allow(clippy::too_many_arguments)]
    fn push_locked(
        &self,
        mut st: MutexGuard<'_, State<T>>,
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
        let refuse = |mut st: MutexGuard<'_, State<T>>, stale: Vec<T>, kind, item| {
            refused_under_lock(&mut st, counters);
            drop(st);
            self.discard_all(stale, Discarded::Unregistered);
            Err(PostError { kind, item })
        };
        loop {
            // Ring items were posted before this one and take room in the
            // queue (invariants 1 and 3): fold them before the capacity
            // check, again after every wait.
            if fold {
                self.fold_ring(&mut st, &mut stale);
            }
            if st.closed {
                return refuse(st, stale, PostErrorKind::Closed, item);
            }
            if !self.port_live(port) {
                return refuse(st, stale, PostErrorKind::Unregistered, item);
            }
            if st.queue.len() < st.capacity {
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
            st.blocked_producers += 1;
            st = match deadline {
                None => self.room_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        st.blocked_producers -= 1;
                        return refuse(st, stale, PostErrorKind::Full, item);
                    }
                    condvar_wait_timeout(&self.room_cv, st, deadline - now)
                }
            };
            st.blocked_producers -= 1;
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
    use crate::{Batch, Hub};

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
