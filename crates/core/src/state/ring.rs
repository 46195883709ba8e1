//! The side ring: where a post that must not wait for the hub's lock goes
//! when the lock is taken (a signal handler that interrupted the lock's
//! holder on its own thread would otherwise wait for itself).
//!
//! A fixed array of [`RING_SLOTS`] slots, allocated with the hub. A producer
//! reserves the slot at `tail` with one compare-and-swap (refused when the
//! ring is full), writes its entry into it and marks it full; nothing is
//! locked or allocated. Only holders of the hub's lock take entries out
//! (`fold`), from `head`, in reservation order, stopping at the first slot
//! whose producer has not finished writing.
//!
//! # Exactly once
//!
//! A slot index is reserved by exactly one producer (the CAS on `tail`),
//! taken by exactly one fold (under the lock, `head` advances past it), and
//! reused only after `head` moved past it (a producer reserves `t` only
//! when `t - head < RING_SLOTS`, and the fold clears the slot's flag before
//! it publishes the new `head`).

use std::mem::MaybeUninit;

use super::Entry;
use crate::sync::{AtomicBool, AtomicUsize, Ordering, UnsafeCell};

/// Slots of a hub's side ring (2 under loom, to reach "full" and reuse in
/// small models).
#[cfg(not(loom))]
pub(crate) const RING_SLOTS: usize = 64;
#[cfg(loom)]
pub(crate) const RING_SLOTS: usize = 2;

struct Slot<T> {
    full: AtomicBool,
    entry: UnsafeCell<MaybeUninit<Entry<T>>>,
}

pub(crate) struct Ring<T> {
    slots: Box<[Slot<T>]>,
    /// Next index to take; written only under the hub's lock.
    head: Line<AtomicUsize>,
    /// Next index to reserve. On a line apart from `head`: producers write
    /// one, the consumer's folds the other.
    tail: Line<AtomicUsize>,
}

/// A value alone on its cache line.
#[repr(align(64))]
struct Line<V>(V);

impl<V> std::ops::Deref for Line<V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.0
    }
}

/// Publishes a fold's new `head` when the fold ends, even by unwinding
/// out of its `take` (the slots before `at` were emptied and their flags
/// cleared; without the store they would look forever unwritten).
struct Publish<'a> {
    head: &'a AtomicUsize,
    start: usize,
    at: usize,
}

impl Drop for Publish<'_> {
    fn drop(&mut self) {
        if self.at != self.start {
            self.head.store(self.at, Ordering::Release);
        }
    }
}

// SAFETY: an entry is written by the one producer that reserved its slot
// and read by the one fold that takes it, ordered by the slot's `full`
// flag (release/acquire); entries move between threads, so `T: Send`.
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T> Ring<T> {
    pub(crate) fn new() -> Ring<T> {
        Ring {
            slots: (0..RING_SLOTS)
                .map(|_| Slot {
                    full: AtomicBool::new(false),
                    entry: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect(),
            head: Line(AtomicUsize::new(0)),
            tail: Line(AtomicUsize::new(0)),
        }
    }

    /// Puts `entry` in a free slot, or hands it back when the ring is full.
    /// Lock-free and allocation-free: safe in a signal handler.
    pub(crate) fn push(&self, entry: Entry<T>) -> Result<(), Entry<T>> {
        let mut t = self.tail.load(Ordering::SeqCst);
        loop {
            let h = self.head.load(Ordering::Acquire);
            if t.wrapping_sub(h) >= RING_SLOTS {
                return Err(entry);
            }
            match self.tail.compare_exchange(
                t,
                t.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => t = now,
            }
        }
        let slot = &self.slots[t % RING_SLOTS];
        // SAFETY: index `t` is reserved by this producer alone, and its slot
        // was emptied by the fold that advanced `head` past `t - RING_SLOTS`
        // (its `full` was cleared before that `head` was published, which
        // the acquire load above saw).
        slot.entry.with_mut(|e| unsafe { (*e).write(entry) });
        slot.full.store(true, Ordering::Release);
        Ok(())
    }

    /// True when some slot is reserved (written or not) and not yet taken.
    pub(crate) fn is_pending(&self) -> bool {
        self.tail.load(Ordering::SeqCst) != self.head.load(Ordering::Acquire)
    }

    /// Reserved slots not yet taken (an upper bound of what `fold` finds).
    pub(crate) fn pending(&self) -> usize {
        self.tail
            .load(Ordering::SeqCst)
            .wrapping_sub(self.head.load(Ordering::Acquire))
    }

    /// Takes the finished entries from `head` on, in reservation order,
    /// stopping at the first slot still being written. Call only under the
    /// hub's lock (one taker at a time).
    pub(crate) fn fold(&self, take: impl FnMut(Entry<T>)) -> usize {
        self.fold_while(|_| true, take)
    }

    /// [`fold`](Ring::fold), stopping also at the first entry `accept`
    /// rejects (left in place for a later fold).
    pub(crate) fn fold_while(
        &self,
        accept: impl Fn(&Entry<T>) -> bool,
        mut take: impl FnMut(Entry<T>),
    ) -> usize {
        let start = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::SeqCst);
        // `head` is published once for the whole fold, not per entry
        // (which made the line producers read bounce per item).
        let mut done = Publish {
            head: &self.head,
            start,
            at: start,
        };
        while done.at != tail {
            let slot = &self.slots[done.at % RING_SLOTS];
            if !slot.full.load(Ordering::Acquire) {
                break;
            }
            // SAFETY: `full` (acquire) says the producer finished writing;
            // the lock makes this the only taker of index `at`, and the
            // entry is moved out below only once.
            if !slot
                .entry
                .with(|e| accept(unsafe { (*e).assume_init_ref() }))
            {
                break;
            }
            // SAFETY: as above.
            let entry = slot.entry.with(|e| unsafe { (*e).assume_init_read() });
            slot.full.store(false, Ordering::Relaxed);
            done.at = done.at.wrapping_add(1);
            take(entry);
        }
        done.at.wrapping_sub(start)
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Entries left by posts that raced the hub's close: drop them (their
        // drop paths run) rather than leak them.
        self.fold(drop);
    }
}
