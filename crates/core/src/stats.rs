//! A snapshot of a hub's counters.

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
    pub dropped: u64,
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
