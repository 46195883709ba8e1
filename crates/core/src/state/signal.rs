//! Wake-ups: the consumer's wait, keep-alive references, the descriptor
//! and the UDP notifier (invariant 4 of the parent module).

use std::io;
use std::time::{Duration, Instant};

use super::Shared;
use crate::sync::{fence, Arc, Ordering};
use crate::waker::{FdSignal, UdpNotifier};

/// How often `wait` looks at the side ring once it was used.
const RING_RECHECK: Duration = Duration::from_millis(10);

impl<T> Shared<T> {
    pub(crate) fn acquire_keep_alive(&self) {
        self.keep_alive.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn release_keep_alive(&self) {
        if self.keep_alive.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut st = self.lock();
            st.nudged = true;
            let notify = st.consumer_waiting;
            drop(st);
            if notify {
                self.consumer_cv.notify_one();
            }
        }
    }

    pub(crate) fn keep_alive_count(&self) -> usize {
        self.keep_alive.load(Ordering::Acquire)
    }

    /// Waits until work is queued (true), or the deadline passes, the hub
    /// closes or the last keep-alive goes away (false).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut st = self.lock();
        loop {
            if !st.queue.is_empty() || self.ring.is_pending() {
                return true;
            }
            if st.closed {
                return false;
            }
            if st.nudged {
                st.nudged = false;
                return false;
            }
            st.consumer_waiting = true;
            self.consumer_sleeping.store(true, Ordering::SeqCst);
            if self.ring.is_pending() {
                st.consumer_waiting = false;
                self.consumer_sleeping.store(false, Ordering::SeqCst);
                return true;
            }
            // A ring post notifies without the lock, which can race this
            // check: once the ring was used, wake up now and then to look.
            let slice = if self.ring_used.load(Ordering::Relaxed) {
                Some(RING_RECHECK)
            } else {
                None
            };
            st = match deadline {
                None if slice.is_some() => st.wait_timeout(&self.consumer_cv, RING_RECHECK),
                None => st.wait(&self.consumer_cv),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        st.consumer_waiting = false;
                        self.consumer_sleeping.store(false, Ordering::SeqCst);
                        return false;
                    }
                    let left = deadline - now;
                    st.wait_timeout(&self.consumer_cv, slice.map_or(left, |s| s.min(left)))
                }
            };
            st.consumer_waiting = false;
            self.consumer_sleeping.store(false, Ordering::SeqCst);
        }
    }

    pub(crate) fn fd(&self) -> io::Result<std::os::fd::RawFd> {
        let mut st = self.lock();
        if st.closed {
            return Err(io::Error::other("the hub is closed"));
        }
        if let Some(fd) = &st.fd {
            return Ok(fd.raw());
        }
        let fd = FdSignal::new()?;
        // Ring posts write it from now on; one that reserved before this
        // store wrote nothing, and the check below sees its reservation
        // (SeqCst on both sides).
        self.fd_write.store(fd.write_raw(), Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let raw = fd.raw();
        // Items queued before the descriptor existed wake it now
        // (invariant 4): whatever the order of posts and fd().
        self.fold_finished(&mut st, None);
        if st.signalled || !st.queue.is_empty() || self.ring.is_pending() {
            fd.set();
        }
        if !st.queue.is_empty() {
            st.signalled = true;
        }
        st.fd = Some(Arc::new(fd));
        Ok(raw)
    }

    pub(crate) fn fd_readable(&self) -> Option<bool> {
        self.lock().fd.as_deref().map(FdSignal::is_readable)
    }

    /// A post's wake-up edge, written after the lock was released so the
    /// consumer it wakes (in epoll on `fd()`) does not find the lock still
    /// taken and sleep on it again; `fd_late` makes a drain that cleared
    /// the descriptor before this write clear it again (invariant 4).
    pub(crate) fn set_fd_unlocked(&self, fd: &FdSignal) {
        fd.set();
        self.fd_late.store(true, Ordering::SeqCst);
    }

    pub(crate) fn set_udp_port(&self, port: Option<u16>) -> io::Result<()> {
        let notifier = match port {
            Some(p) if p != 0 => Some(Arc::new(UdpNotifier::new(p)?)),
            _ => None,
        };
        let mut st = self.lock();
        if st.closed {
            return Ok(());
        }
        // Ring posts send through the mirror: move it first, wait for the
        // ones that may still use the old socket, then replace it.
        let (raw, to) = notifier.as_ref().map_or((-1, 0), |n| (n.raw(), n.port()));
        self.udp_to.store(u32::from(to), Ordering::Relaxed);
        self.udp_fd.store(raw, Ordering::SeqCst);
        // `wait_ring_posters` fences: a ring post either sees this socket
        // or has reserved its slot, which the check below sees.
        self.wait_ring_posters();
        let old = std::mem::replace(&mut st.udp, notifier);
        // Items already queued (or in the ring) send their datagram now,
        // whatever the order of posts and the port's setting.
        let send = (!st.queue.is_empty() || self.ring.is_pending()).then(|| st.udp.clone());
        drop(st);
        drop(old);
        if let Some(Some(udp)) = send {
            udp.send();
        }
        Ok(())
    }

    pub(crate) fn udp_port(&self) -> Option<u16> {
        self.lock().udp.as_ref().map(|u| u.port())
    }
}
