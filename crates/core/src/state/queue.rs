//! The FIFO: producers push (waiting, timing out or refusing when full),
//! the consumer drains (invariants 1-4 of the parent module).

use std::collections::VecDeque;
use std::time::Instant;

use super::{Entry, PortKey, Posted, Shared, State, WhenFull, PRUNE_FIRST};
use crate::error::{PostError, PostErrorKind};
use crate::reply::PendingCall;
use crate::sync::{condvar_wait_timeout, MutexGuard};

impl<T> Shared<T> {
    /// Queues `item` for `port`; `call` is the pending call it answers,
    /// tracked so unregister and close can cancel it.
    pub(crate) fn push(
        &self,
        port: PortKey,
        item: T,
        when_full: WhenFull,
        call: Option<Box<dyn PendingCall>>,
    ) -> Result<Posted, PostError<T>> {
        let mut st = self.lock();
        let refuse = |mut st: MutexGuard<'_, State<T>>, kind, item| {
            st.counters.dropped += 1;
            Err(PostError { kind, item })
        };
        loop {
            if st.closed {
                return refuse(st, PostErrorKind::Closed, item);
            }
            if !st.port_live(port) {
                return refuse(st, PostErrorKind::Unregistered, item);
            }
            if st.queue.len() < st.capacity {
                break;
            }
            let deadline = match when_full {
                WhenFull::Refuse => return refuse(st, PostErrorKind::Full, item),
                WhenFull::Block(_) if self.on_consumer_thread() => {
                    return refuse(st, PostErrorKind::WouldDeadlock, item)
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
                        return refuse(st, PostErrorKind::Full, item);
                    }
                    condvar_wait_timeout(&self.room_cv, st, deadline - now)
                }
            };
            st.blocked_producers -= 1;
        }
        st.queue.push_back(Entry { port, item });
        if let Some(call) = call {
            let slot = &mut st.ports[port.index as usize];
            if slot.calls.len() >= slot.prune_at {
                slot.calls.retain(|c| !c.is_finished());
                slot.prune_at = (slot.calls.len() * 2).max(PRUNE_FIRST);
            }
            slot.calls.push(call);
        }
        let depth = st.queue.len();
        let c = &mut st.counters;
        c.posted += 1;
        c.peak_depth = c.peak_depth.max(depth);
        if st.signalled {
            return Ok(Posted::Queued);
        }
        // The wake-up edge (invariant 4).
        st.signalled = true;
        st.counters.wakeups += 1;
        if let Some(fd) = &st.fd {
            fd.set();
        }
        let notify = st.consumer_waiting;
        let udp = st.udp.clone();
        drop(st);
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
    pub(crate) fn drain(&self, max: usize, out: &mut VecDeque<Entry<T>>) -> usize {
        let mut st = self.lock();
        let n = st.queue.len().min(max);
        if n == 0 {
            return 0;
        }
        if out.is_empty() && n == st.queue.len() {
            std::mem::swap(&mut st.queue, out);
        } else {
            out.extend(st.queue.drain(..n));
        }
        st.counters.delivered += n as u64;
        st.settle_signal();
        let room = st.blocked_producers > 0;
        drop(st);
        if room {
            self.room_cv.notify_all();
        }
        n
    }
}
