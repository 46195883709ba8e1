//! Wake-ups: the consumer's wait, keep-alive references, the descriptor
//! and the UDP notifier (invariant 4 of the parent module).

use std::io;
use std::time::{Duration, Instant};

use super::Shared;
use crate::sync::{condvar_wait_timeout, Arc, Ordering};
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
                None if slice.is_some() => {
                    condvar_wait_timeout(&self.consumer_cv, st, RING_RECHECK)
                }
                None => self.consumer_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        st.consumer_waiting = false;
                        self.consumer_sleeping.store(false, Ordering::SeqCst);
                        return false;
                    }
                    let left = deadline - now;
                    condvar_wait_timeout(&self.consumer_cv, st, slice.map_or(left, |s| s.min(left)))
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
        if st.signalled {
            fd.set();
        }
        let raw = fd.raw();
        self.fd_write.store(fd.write_raw(), Ordering::Release);
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
        if !st.closed {
            st.udp = notifier;
        }
        Ok(())
    }

    pub(crate) fn udp_port(&self) -> Option<u16> {
        self.lock().udp.as_ref().map(|u| u.port())
    }
}
