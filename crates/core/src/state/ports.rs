//! The port table: registration, liveness, unregister, and the items of
//! stale ports left in a consumer's batch (invariants 1, 2 and 5 of the
//! parent module).

use std::collections::VecDeque;

use super::{CancelFn, Entry, PortKey, PortSlot, Shared, PRUNE_FIRST};
use crate::error::{CancelReason, Discarded, PostErrorKind};
use crate::sync::Ordering;

impl<T> Shared<T> {
    pub(crate) fn register(
        &self,
        name: String,
        on_cancel: Option<CancelFn>,
    ) -> Result<PortKey, PostErrorKind> {
        let mut st = self.lock();
        if st.closed {
            return Err(PostErrorKind::Closed);
        }
        let index = match st.free_ports.pop() {
            Some(i) => i,
            None => {
                st.ports.push(PortSlot {
                    generation: 0,
                    seq: 0,
                    live: false,
                    name: String::new(),
                    on_cancel: None,
                    calls: Vec::new(),
                    prune_at: PRUNE_FIRST,
                    waits: None,
                });
                (st.ports.len() - 1) as u32
            }
        };
        st.next_seq += 1;
        let seq = st.next_seq;
        let slot = &mut st.ports[index as usize];
        slot.seq = seq;
        slot.live = true;
        slot.name = name;
        slot.on_cancel = on_cancel;
        let key = PortKey {
            index,
            generation: slot.generation,
        };
        self.timing_registered(&mut st, index);
        Ok(key)
    }

    pub(crate) fn port_live(&self, key: PortKey) -> bool {
        let st = self.lock();
        !st.closed && st.port_live(key)
    }

    pub(crate) fn port_name(&self, key: PortKey) -> Option<String> {
        let st = self.lock();
        if st.closed || !st.port_live(key) {
            return None;
        }
        Some(st.ports[key.index as usize].name.clone())
    }

    /// Unregisters `key`: its queued items are cancelled (FIFO of the rest
    /// kept) and its cancel notification fires with `Unregistered`.
    /// Returns false when the key was already stale.
    pub(crate) fn unregister(&self, key: PortKey) -> bool {
        let mut st = self.lock();
        if st.closed || !st.port_live(key) {
            return false;
        }
        let mut stale = Vec::new();
        self.fold_ring(&mut st, &mut stale);
        let slot = &mut st.ports[key.index as usize];
        slot.live = false;
        slot.generation = slot.generation.wrapping_add(1);
        slot.name.clear();
        let on_cancel = slot.on_cancel.take();
        let calls = std::mem::take(&mut slot.calls);
        slot.prune_at = PRUNE_FIRST;
        slot.waits = None;
        st.free_ports.push(key.index);
        Self::timing_changed(&mut st);
        let gone = remove_port_items(&mut st.queue, key);
        st.counters.cancelled += gone.len() as u64;
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
        if !batch.iter().any(|e| !st.port_live(e.port)) {
            return;
        }
        let closed = st.closed;
        let mut gone = Vec::new();
        let mut kept = VecDeque::with_capacity(batch.len());
        for e in batch.drain(..) {
            if st.port_live(e.port) {
                kept.push_back(e);
            } else {
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
