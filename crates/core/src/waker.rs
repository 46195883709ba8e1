//! Ways to wake the consumer from outside the process's own condvars: a file
//! descriptor for poll loops and an optional UDP packet for `select()` loops.
//!
//! The hub decides *when* to wake (once per burst, see `state.rs`); this file
//! only knows *how*.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A descriptor that is readable while it is set: an eventfd on Linux, the
/// read end of a non-blocking pipe elsewhere.
#[derive(Debug)]
pub(crate) struct FdSignal {
    read: OwnedFd,
    /// The write end of the pipe; `None` for an eventfd, which is both.
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    write: Option<OwnedFd>,
}

impl FdSignal {
    #[cfg(target_os = "linux")]
    pub(crate) fn new() -> io::Result<FdSignal> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a fresh
        // descriptor that nothing else owns, so OwnedFd may take it.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: see above: `fd` is valid and owned by nobody else.
        Ok(FdSignal {
            read: unsafe { OwnedFd::from_raw_fd(fd) },
            write: None,
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new() -> io::Result<FdSignal> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe to fill.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe succeeded, both descriptors are fresh and ours.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [read.as_raw_fd(), write.as_raw_fd()] {
            // SAFETY: fcntl on a descriptor we own, with integer flags only.
            unsafe {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(FdSignal {
            read,
            write: Some(write),
        })
    }

    /// The descriptor to poll for readability.
    pub(crate) fn raw(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The descriptor [`set`](Self::set) writes to.
    pub(crate) fn write_raw(&self) -> RawFd {
        self.write.as_ref().unwrap_or(&self.read).as_raw_fd()
    }

    /// Makes the descriptor readable. Called at most once per burst, so an
    /// extra byte or count can never accumulate past what `clear` removes.
    pub(crate) fn set(&self) {
        #[cfg(target_os = "linux")]
        {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to a descriptor we own.
            // A full counter (EAGAIN) still leaves it readable, which is all
            // we want, so the result is deliberately ignored.
            unsafe { libc::write(self.read.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
        #[cfg(not(target_os = "linux"))]
        {
            let byte = 1u8;
            let fd = self.write.as_ref().map_or(-1, |w| w.as_raw_fd());
            // SAFETY: writes one byte from a live u8 to a descriptor we own;
            // EAGAIN means the pipe is already readable, which is enough.
            unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        }
    }

    /// Makes the descriptor unreadable again.
    pub(crate) fn clear(&self) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a live 64-byte buffer (an eventfd needs 8)
            // from a non-blocking descriptor we own.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 || cfg!(target_os = "linux") {
                break;
            }
        }
    }

    /// True when the descriptor is readable now (for tests and assertions).
    pub fn is_readable(&self) -> bool {
        poll_readable(self.raw(), 0)
    }
}

/// Makes the descriptor whose write end is `fd` (see
/// [`FdSignal::write_raw`]) readable: one `write(2)`, async-signal-safe.
/// For the side ring, which has no lock to reach the `FdSignal`.
pub(crate) fn set_raw(fd: RawFd) {
    #[cfg(target_os = "linux")]
    let (buf, len) = (&1u64 as *const u64 as *const libc::c_void, 8);
    #[cfg(not(target_os = "linux"))]
    let (buf, len) = (&1u8 as *const u8 as *const libc::c_void, 1);
    // SAFETY: writes `len` bytes from a live constant; `fd` stays open
    // while a ring post is in flight (close waits for those). EAGAIN means
    // the descriptor is already readable, which is all we want.
    unsafe { libc::write(fd, buf, len) };
}

/// Polls one descriptor for readability; `timeout_ms` < 0 waits forever.
pub fn poll_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    n > 0 && (p.revents & libc::POLLIN) != 0
}

/// Sends one short text datagram to a loopback port per wake-up.
#[derive(Debug)]
pub(crate) struct UdpNotifier {
    socket: UdpSocket,
    port: u16,
}

/// The datagram's payload: plain text (the original sent pointer bytes).
pub const UDP_PAYLOAD: &[u8] = b"darksidesync";

impl UdpNotifier {
    pub(crate) fn new(port: u16) -> io::Result<UdpNotifier> {
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
        socket.set_nonblocking(true)?;
        Ok(UdpNotifier { socket, port })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The socket's descriptor, for [`send_raw`].
    pub(crate) fn raw(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Sends the wake-up datagram; `false` when the send failed (the item
    /// was still queued: this is a warning, DSS's -99).
    pub(crate) fn send(&self) -> bool {
        self.socket
            .send_to(
                UDP_PAYLOAD,
                SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port),
            )
            .is_ok()
    }
}

/// Sends the wake-up datagram from socket `fd` to loopback port `port`:
/// one `sendto(2)`, async-signal-safe. For the side ring, which has no
/// lock to reach the [`UdpNotifier`]. False when the send failed.
pub(crate) fn send_raw(fd: RawFd, port: u16) -> bool {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::AF_INET as libc::sa_family_t;
    to.sin_port = port.to_be();
    to.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
    // SAFETY: sends from a live constant buffer to a live, correctly sized
    // sockaddr_in; `fd` stays open while a ring post is in flight (close
    // and `set_udp_port` wait for those before they drop the socket).
    let n = unsafe {
        libc::sendto(
            fd,
            UDP_PAYLOAD.as_ptr().cast(),
            UDP_PAYLOAD.len(),
            0,
            (&to as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    n >= 0
}
