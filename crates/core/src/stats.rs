//! Counters: a snapshot of a hub's ([`Stats`]), and each port's own
//! ([`PortStats`], kept in a [`PortCounters`] record).

use crate::sync::{AtomicU64, Ordering};

/// Counters of one hub, read at one instant under its lock.
///
/// Accounting identity: `posted == delivered + cancelled + depth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Items accepted into the queue.
    pub posted: u64,
    /// Items handed to the consumer by a drain.
    pub delivered: u64,
    /// Posts refused (full, closed, stale port); each item went back to its
    /// producer inside the [`PostError`](crate::PostError).
    pub refused: u64,
    /// Items removed unrun by close or unregister; each one's drop path ran.
    pub cancelled: u64,
    /// Blocking calls answered with a value or a handler error.
    pub replies: u64,
    /// The largest queue depth seen.
    pub peak_depth: usize,
    /// Wake-ups sent (one per burst, whatever the number of channels).
    pub wakeups: u64,
    /// Items queued now.
    pub depth: usize,
    /// The queue's current bound.
    pub capacity: usize,
    /// Keep-alive references held now.
    pub keep_alive: usize,
    /// Ports registered now.
    pub ports: usize,
}

/// Counters of one port (see [`Port::stats`](crate::Port::stats)), each
/// counted where its outcome happens. `ran` is counted by the consumer,
/// which alone knows it ([`Port::count_ran`](crate::Port::count_ran)).
///
/// Accounting identity, per port: `posted == delivered + cancelled +` the
/// port's items queued now. An item posted through the side ring counts
/// once the hub takes it from there (as for [`Stats`]); one whose port went
/// stale meanwhile counts for the hub only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Items accepted into the queue (posts and calls).
    pub posted: u64,
    /// Items handed to the consumer by a drain (and not purged from its
    /// batch afterwards, see `cancelled`).
    pub delivered: u64,
    /// Delivered items the consumer ran (counted by the consumer).
    pub ran: u64,
    /// Items discarded unrun: removed from the queue by unregister or
    /// close, or purged from the consumer's batch because their port went
    /// stale after the drain ([`Hub::purge_stale`](crate::Hub::purge_stale)).
    pub cancelled: u64,
    /// Posts and calls refused: full, closed, stale port, would deadlock,
    /// or refused by the caller's own checks
    /// ([`Port::count_refused`](crate::Port::count_refused)).
    pub refused: u64,
    /// Calls answered with a value.
    pub replies: u64,
    /// Calls answered with a handler error.
    pub errors: u64,
    /// Calls that timed out.
    pub timeouts: u64,
}

/// A port's counters, shared by the hub and every clone of the port, on
/// cache lines of their own, written where each outcome happens: under the
/// hub's lock (posted, cancelled, most refusals) or by the thread that sees
/// the outcome (calls, lock-free refusals, `ran`). `delivered` is derived
/// (see `Shared::port_stats`), so a drain writes nothing here. Fields may
/// be added (each a relaxed atomic, read by [`snapshot`]).
///
/// [`snapshot`]: PortCounters::snapshot
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct PortCounters {
    /// Written only under the hub's lock (`add_under_lock`).
    pub(crate) posted: AtomicU64,
    /// Written only by the consumer, on a line of its own: counting an
    /// item as ran neither locks a bus nor takes the line that producers
    /// write for every post (`posted`, under the lock) away from them.
    pub(crate) ran: ConsumerCounter,
    pub(crate) cancelled: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) replies: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
}

/// A counter that one thread at a time writes (the consumer's), alone on
/// its cache line.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct ConsumerCounter(AtomicU64);

impl ConsumerCounter {
    /// Adds `n`: a load and a store, which is exact because only the
    /// consumer writes (one thread at a time; handing the consumer to
    /// another thread orders the two), and readers see whole values.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let c = &self.0;
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl PortCounters {
    /// Adds `n` to `counter` (relaxed: counters order nothing).
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `n` to `counter`, which only the holder of the hub's lock
    /// writes (`posted`): a load and a store, no locked read-modify-write
    /// on the producer's path (readers still see a whole value).
    #[inline]
    pub(crate) fn add_under_lock(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// The counters, with `queued` of the port's items in the queue now
    /// (read under the hub's lock, which keeps posted and cancelled still).
    pub(crate) fn snapshot(&self, queued: u64) -> PortStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (posted, cancelled) = (get(&self.posted), get(&self.cancelled));
        PortStats {
            posted,
            delivered: posted.saturating_sub(cancelled + queued),
            ran: self.ran.get(),
            cancelled,
            refused: get(&self.refused),
            replies: get(&self.replies),
            errors: get(&self.errors),
            timeouts: get(&self.timeouts),
        }
    }
}
