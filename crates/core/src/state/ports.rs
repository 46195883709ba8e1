//! The ports: registration, liveness, unregister, per-port counters, and
//! the items of stale ports left in a consumer's batch (invariants 1, 2, 5
//! and 6 of the parent module).

use std::collections::VecDeque;

use super::{CancelFn, Entry, PortBook, PortKey, Shared, PRUNE_FIRST};
use crate::error::{CancelReason, Discarded, PostErrorKind};
use crate::stats::{PortCounters, PortStats};
use crate::sync::{Arc, Ordering};

impl<T> Shared<T> {
    pub(crate) fn register(
        &self,
        name: String,
        on_cancel: Option<CancelFn>,
    ) -> Result<(PortKey, Arc<PortCounters>), PostErrorKind> {
        let mut st = self.lock();
        if st.closed {
            return Err(PostErrorKind::Closed);
        }
        let counters = Arc::new(PortCounters::default());
        // The table's limit (millions) is far beyond any real use.
        let key = self
            .ports
            .insert(counters.clone())
            .ok_or(PostErrorKind::Full)?;
        st.next_seq += 1;
        let book = PortBook {
            key,
            counters: counters.clone(),
            seq: st.next_seq,
            name,
            on_cancel,
            calls: Vec::new(),
            prune_at: PRUNE_FIRST,
            waits: None,
        };
        let i = key.index() as usize;
        if st.books.len() <= i {
            st.books.resize_with(i + 1, || None);
        }
        st.books[i] = Some(book);
        self.timing_registered(&mut st, key);
        Ok((key, counters))
    }

    /// Whether `key`'s port is registered; takes no lock. Close removes
    /// every port, under the lock, after it set `closed`.
    pub(crate) fn port_live(&self, key: PortKey) -> bool {
        self.ports.is_live(key)
    }

    pub(crate) fn port_name(&self, key: PortKey) -> Option<String> {
        let mut st = self.lock();
        if !self.port_live(key) {
            return None;
        }
        st.book(key).map(|b| b.name.clone())
    }

    /// The counters of `key`'s port, with the items waiting in the side
    /// ring taken into the queue first (so that they count as posted).
    /// `delivered` is not counted per item (that would cost the consumer a
    /// pass over every drained batch under the lock): under the lock every
    /// posted item of the port was delivered, cancelled or is still queued,
    /// so it is what the other two leave, found by one pass over the queue.
    pub(crate) fn port_stats(&self, key: PortKey, counters: &PortCounters) -> PortStats {
        let mut st = self.lock();
        let mut stale = Vec::new();
        self.fold_ring(&mut st, &mut stale);
        let queued = st.queue.iter().filter(|e| e.port == key).count() as u64;
        let stats = counters.snapshot(queued);
        drop(st);
        self.discard_all(stale, Discarded::Unregistered);
        stats
    }

    /// Unregisters `key`: its queued items are cancelled (FIFO of the rest
    /// kept) and its cancel notification fires with `Unregistered`.
    /// Returns false when the key was already stale.
    pub(crate) fn unregister(&self, key: PortKey) -> bool {
        let mut st = self.lock();
        if st.closed || !self.port_live(key) {
            return false;
        }
        let mut stale = Vec::new();
        self.fold_ring(&mut st, &mut stale);
        self.ports.remove(key);
        // A live port has its book (invariant 6).
        let (on_cancel, calls) = match st.book(key) {
            Some(book) => {
                book.name = String::new();
                book.waits = None;
                (book.on_cancel.take(), std::mem::take(&mut book.calls))
            }
            None => (None, Vec::new()),
        };
        Self::timing_changed(&mut st);
        let gone = remove_port_items(&mut st.queue, key);
        self.release(gone.len());
        st.counters.cancelled += gone.len() as u64;
        if let Some(c) = st.counters_of(key) {
            PortCounters::add(&c.cancelled, gone.len() as u64);
        }
        self.settle_signal(&mut st);
        self.stale_epoch.fetch_add(1, Ordering::Release);
        let room = st.blocked_producers > 0 && !gone.is_empty();
        drop(st);
        if room {
            self.room_cv.notify_all();
        }
        self.discard_all(stale, Discarded::Unregistered);
        self.discard_all(gone.into_iter().map(|e| e.item), Discarded::Unregistered);
        for call in calls {
            call.cancel();
        }
        if let Some(f) = on_cancel {
            f(CancelReason::Unregistered);
        }
        true
    }

    pub(crate) fn stale_epoch(&self) -> u64 {
        self.stale_epoch.load(Ordering::Acquire)
    }

    /// Removes the entries of stale ports from a consumer's batch (order of
    /// the rest kept) and discards them: `Unregistered`, or `Closed` once
    /// the hub closed.
    pub(crate) fn purge_stale(&self, batch: &mut VecDeque<Entry<T>>) {
        let st = self.lock();
        if !batch.iter().any(|e| !self.port_live(e.port)) {
            return;
        }
        let closed = st.closed;
        let mut gone = Vec::new();
        let mut kept = VecDeque::with_capacity(batch.len());
        for e in batch.drain(..) {
            if self.port_live(e.port) {
                kept.push_back(e);
            } else {
                // Per port, a purged item counts as cancelled, not delivered.
                if let Some(c) = st.counters_of(e.port) {
                    PortCounters::add(&c.cancelled, 1);
                }
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
