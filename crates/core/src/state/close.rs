//! Closing (invariant 5 of the parent module).

use super::{CancelFn, Shared};
use crate::error::{CancelReason, Discarded};
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
