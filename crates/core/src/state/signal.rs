//! Wake-ups: the consumer's wait, keep-alive references, the descriptor
//! and the UDP notifier (invariant 4 of the parent module).

use std::io;
use std::time::Instant;

use super::Shared;
use crate::sync::{condvar_wait_timeout, Arc, Ordering};
use crate::waker::{FdSignal, UdpNotifier};

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
            if !st.queue.is_empty() {
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
            st = match deadline {
                None => self.consumer_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        st.consumer_waiting = false;
                        return false;
                    }
                    condvar_wait_timeout(&self.consumer_cv, st, deadline - now)
                }
            };
            st.consumer_waiting = false;
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
        st.fd = Some(fd);
        Ok(raw)
    }

    pub(crate) fn fd_readable(&self) -> Option<bool> {
        self.lock().fd.as_ref().map(FdSignal::is_readable)
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
