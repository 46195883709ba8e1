//! Where the time goes: how long items wait in the queue, from the post to
//! the moment the consumer takes them to run ([`Batch::pop`](crate::Batch::pop)).
//!
//! Timing is off by default and turned on per hub
//! ([`Hub::set_timing`](crate::Hub::set_timing)): a timed post reads the
//! monotonic clock once (producer side, stored in the queue entry) and the
//! consumer reads it again when it takes the item, then adds the wait to
//! the hub's [`WaitHistogram`] and to its port's. Off, a post and a take
//! each cost one well-predicted branch.
//!
//! # The histogram
//!
//! A fixed array of [`BUCKETS`] atomic counters on a log scale, allocated
//! once (when timing is turned on); recording is a few relaxed atomic
//! loads and stores by the one consumer, never allocates or locks, and
//! readers on any thread take a [snapshot](WaitHistogram::snapshot) while
//! the consumer records.
//!
//! Waits below 8 ns have a bucket each; above, every power of two is split
//! into 8 equal sub-buckets, up to 2^43 ns (about 2.4 hours; longer waits
//! share the last bucket). A quantile is reported as the upper bound of
//! its bucket, capped by the exact maximum: never below the true value and
//! at most 12.5 % above it (1/8 of a power of two). `max`, `count` and
//! `total` are exact.

use std::time::Duration;

// Plain std atomics: statistics, no ordering to model under loom.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Sub-buckets per power of two (a power of two itself).
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// The largest exponent with its own buckets: waits of 2^(MAX_EXP+1) ns or
/// more share the last bucket.
const MAX_EXP: u32 = 42;
/// Buckets of a [`WaitHistogram`]: 8 single-value ones, 8 per power of
/// two up to 2^MAX_EXP, and one for the rest.
pub(crate) const BUCKETS: usize = SUB * (MAX_EXP as usize - SUB_BITS as usize + 2) + 1;

/// The bucket of a wait of `ns` nanoseconds.
#[inline]
fn bucket(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    if ns >> (MAX_EXP + 1) != 0 {
        return BUCKETS - 1;
    }
    let exp = 63 - ns.leading_zeros();
    let sub = (ns >> (exp - SUB_BITS)) as usize & (SUB - 1);
    SUB * (exp - SUB_BITS + 1) as usize + sub
}

/// The largest wait, in nanoseconds, that falls in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    if i == BUCKETS - 1 {
        return u64::MAX;
    }
    let exp = (i / SUB) as u32 + SUB_BITS - 1;
    let sub = (i % SUB) as u64;
    ((SUB as u64 + sub + 1) << (exp - SUB_BITS)) - 1
}

/// Monotonic nanoseconds (`CLOCK_MONOTONIC`), never 0: the timestamp of a
/// timed post (0 in a queue entry means "not timed"). Async-signal-safe,
/// as `Port::post_nowait` must be.
#[inline]
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists
    // on every supported system (the call cannot fail with these).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
        .max(1)
}

/// Adds `n` to a counter that only one thread writes (see `record`).
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// An allocation-free histogram of waits, recorded by the consumer and read
/// from any thread (see the module docs for its buckets and error bound).
pub struct WaitHistogram {
    buckets: Box<[AtomicU64]>,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl std::fmt::Debug for WaitHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitHistogram")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl Default for WaitHistogram {
    fn default() -> Self {
        WaitHistogram::new()
    }
}

impl WaitHistogram {
    /// An empty histogram (its one allocation).
    pub fn new() -> WaitHistogram {
        WaitHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    /// Adds one wait of `ns` nanoseconds; never allocates.
    ///
    /// One writer at a time (the hub's consumer): each counter is a
    /// relaxed load and store, not a locked read-modify-write, which
    /// halves the cost of timing on the consumer. Records from two threads
    /// at once may lose a count (never tear a value); readers on any
    /// thread are always safe.
    #[inline]
    pub fn record(&self, ns: u64) {
        bump(&self.buckets[bucket(ns)], 1);
        bump(&self.total_ns, ns);
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.store(ns, Ordering::Relaxed);
        }
    }

    /// The waits recorded so far. Taken while the consumer may be recording,
    /// so `count` (the buckets' sum) and `total` may disagree by the waits
    /// recorded during the read; the quantiles are those of `count`.
    pub fn snapshot(&self) -> Waits {
        let mut counts = Counts::default();
        counts.add(self);
        counts.waits()
    }
}

/// Several histograms added together (the ports of one name).
pub(crate) struct Counts {
    buckets: [u64; BUCKETS],
    total_ns: u64,
    max_ns: u64,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            buckets: [0; BUCKETS],
            total_ns: 0,
            max_ns: 0,
        }
    }
}

impl Counts {
    pub(crate) fn add(&mut self, h: &WaitHistogram) {
        for (sum, b) in self.buckets.iter_mut().zip(h.buckets.iter()) {
            *sum += b.load(Ordering::Relaxed);
        }
        self.total_ns = self
            .total_ns
            .saturating_add(h.total_ns.load(Ordering::Relaxed));
        self.max_ns = self.max_ns.max(h.max_ns.load(Ordering::Relaxed));
    }

    /// The quantile `q` (0 < q <= 1) of `count` waits: the upper bound of
    /// the bucket holding the wait of rank `ceil(q * count)`, capped by the
    /// maximum.
    fn quantile(&self, count: u64, q: f64) -> u64 {
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_bound(i).min(self.max_ns);
            }
        }
        self.max_ns
    }

    pub(crate) fn waits(&self) -> Waits {
        let count: u64 = self.buckets.iter().sum();
        if count == 0 {
            return Waits::default();
        }
        Waits {
            count,
            p50: Duration::from_nanos(self.quantile(count, 0.50)),
            p99: Duration::from_nanos(self.quantile(count, 0.99)),
            max: Duration::from_nanos(self.max_ns),
            total: Duration::from_nanos(self.total_ns),
        }
    }
}

/// How long items waited in the queue, from post to the moment the
/// consumer took them to run: a snapshot of a [`WaitHistogram`].
///
/// `p50` and `p99` are never below the true quantile and at most 12.5 %
/// above it; `max`, `count` and `total` are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Waits {
    /// Items taken to run since timing was turned on (posted while it was on).
    pub count: u64,
    /// The median wait.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The longest wait.
    pub max: Duration,
    /// All waits added up (`total / count` is the mean).
    pub total: Duration,
}

/// The consumer's view of the histograms, kept in its [`Batch`](crate::Batch)
/// so that taking an item finds them without the hub's lock: the hub's,
/// and each port's by slot. Refreshed under the lock by a drain whenever
/// the hub's timing version changed (timing turned on or off, a port
/// registered or unregistered while on).
#[derive(Default)]
pub(crate) struct WaitCache {
    pub(crate) version: u64,
    pub(crate) hub: Option<Arc<WaitHistogram>>,
    /// By port slot: the port whose histogram it is, and the histogram.
    pub(crate) ports: Vec<Option<(crate::PortKey, Arc<WaitHistogram>)>>,
}

impl WaitCache {
    /// Records the wait of an item of `port` posted at `posted_at`
    /// ([`now_ns`]); out of line, as timing is the rare case.
    #[cold]
    #[inline(never)]
    pub(crate) fn record(&self, port: crate::PortKey, posted_at: u64) {
        let Some(hub) = &self.hub else { return };
        let ns = now_ns().saturating_sub(posted_at);
        hub.record(ns);
        if let Some(Some((key, h))) = self.ports.get(port.index() as usize) {
            if *key == port {
                h.record(ns);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounds_hold_within_an_eighth() {
        // Every wait falls in the first bucket whose bound holds it, and
        // the bound overstates it by at most 1/8.
        let edges = (0..62).flat_map(|e| [(1u64 << e) - 1, 1u64 << e, (1u64 << e) + 1]);
        for ns in (0..20_000u64).chain(edges) {
            let i = bucket(ns);
            assert!(upper_bound(i) >= ns, "{ns} above its bucket's bound");
            if i > 0 {
                assert!(upper_bound(i - 1) < ns, "{ns} fits an earlier bucket");
            }
            if i < BUCKETS - 1 {
                assert!(
                    upper_bound(i) - ns <= ns / 8,
                    "{ns}: bound {}",
                    upper_bound(i)
                );
            }
        }
        assert_eq!(bucket((1 << 43) - 1), BUCKETS - 2);
        assert_eq!(bucket(1 << 43), BUCKETS - 1);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_bucket_bounds_capped_by_the_exact_max() {
        let h = WaitHistogram::new();
        assert_eq!(h.snapshot(), Waits::default());
        for _ in 0..98 {
            h.record(1_000);
        }
        h.record(50_000);
        h.record(1_000_000);
        let w = h.snapshot();
        assert_eq!(w.count, 100);
        let p50 = w.p50.as_nanos() as u64;
        assert!((1_000..=1_125).contains(&p50), "p50 {p50}");
        // Rank 99 is the 50-microsecond wait.
        let p99 = w.p99.as_nanos() as u64;
        assert!((50_000..=56_250).contains(&p99), "p99 {p99}");
        assert_eq!(w.max, Duration::from_nanos(1_000_000));
        assert_eq!(w.total, Duration::from_nanos(98_000 + 50_000 + 1_000_000));
        // One sample: every quantile is that sample (the cap).
        let h = WaitHistogram::new();
        h.record(123_456);
        let w = h.snapshot();
        assert_eq!(
            (w.p50, w.p99, w.max),
            (w.max, w.max, Duration::from_nanos(123_456))
        );
    }
}
