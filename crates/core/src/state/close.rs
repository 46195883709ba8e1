//! Closing (invariant 5 of the parent module).

use super::{CancelFn, Shared};
use crate::error::{CancelReason, Discarded};
use crate::stats::PortCounters;
use crate::sync::Ordering;

impl<T> Shared<T> {
    /// Closes the hub (idempotent). Queued items are dropped after the lock
    /// is released, then each port's cancel notification fires, last
    /// registered first.
    pub(crate) fn close(&self) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        st.closed = true;
        self.closed.store(true, Ordering::SeqCst);
        // Ring posts refuse from now on; the ones in flight finish first,
        // so their entries are cancelled here and their descriptor writes
        // happen before the descriptor is released.
        self.wait_ring_posters();
        self.fd_write.store(-1, Ordering::SeqCst);
        self.udp_fd.store(-1, Ordering::SeqCst);
        let mut stale = Vec::new();
        self.fold_ring(&mut st, &mut stale);
        let items = std::mem::take(&mut st.queue);
        self.release(items.len());
        st.counters.cancelled += items.len() as u64;
        for e in &items {
            if let Some(c) = st.counters_of(e.port) {
                PortCounters::add(&c.cancelled, 1);
            }
        }
        self.settle_signal(&mut st);
        // Ports and C handles may keep the shared record for long after
        // (a utility that never unregisters): keep only what their stale
        // checks read, not the descriptors.
        let wakers = (st.fd.take(), st.udp.take());
        let mut cancels: Vec<(u64, CancelFn)> = Vec::new();
        let mut calls = Vec::new();
        for key in self.ports.keys() {
            self.ports.remove(key);
            let Some(book) = st.book(key) else { continue };
            calls.append(&mut book.calls);
            if let Some(f) = book.on_cancel.take() {
                cancels.push((book.seq, f));
            }
        }
        self.stale_epoch.fetch_add(1, Ordering::Release);
        // Last registered first, as DarkSideSync cancelled its utilities.
        cancels.sort_by_key(|c| std::cmp::Reverse(c.0));
        drop(st);
        self.room_cv.notify_all();
        self.consumer_cv.notify_all();
        drop(wakers);
        self.discard_all(stale, Discarded::Unregistered);
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
