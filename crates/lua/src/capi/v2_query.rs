//! 2v0's queries: `stats`, `waits`, `status`, `strerror` (see
//! `dss_api_2v0_t` in include/darksidesync.h); each runs its body under
//! [`super::guard`].

use std::ffi::{c_char, c_int, CStr};
use std::time::Duration;

use darksidesync_sys::v2::*;

use super::guard;
use super::handles::{self, Version};
use super::v2::lookup;

/// A versioned out-struct of 2v0 (`dss2_stats_t`, `dss2_waits_t`): its
/// first field, `size`, is set by the caller to the bytes it has, so a
/// struct that grew fields is written only as far as the caller's reaches.
trait SizedOut {
    /// The caller's `size`.
    ///
    /// # Safety
    /// `out` is non-NULL and points to such a struct.
    unsafe fn caller_size(out: *const Self) -> usize;
}

impl SizedOut for Stats {
    unsafe fn caller_size(out: *const Self) -> usize {
        // SAFETY: per the contract.
        unsafe { (*out).size }
    }
}

impl SizedOut for Waits {
    unsafe fn caller_size(out: *const Self) -> usize {
        // SAFETY: per the contract.
        unsafe { (*out).size }
    }
}

/// The caller's `size` of `out`; `None` (EINVAL) when `out` is NULL or too
/// small for `size` and the first 64-bit field.
///
/// # Safety
/// `out` NULL or a struct whose `size` the caller set (2v0 contract).
unsafe fn out_size<T: SizedOut>(out: *mut T) -> Option<usize> {
    if out.is_null() {
        return None;
    }
    // SAFETY: non-NULL, and the caller's contract.
    let size = unsafe { T::caller_size(out) };
    (size >= std::mem::size_of::<usize>() + std::mem::size_of::<u64>()).then_some(size)
}

/// Writes the first `size` bytes of `value` (all of it at most) to `out`.
///
/// # Safety
/// `out` holds at least `size` writable bytes.
unsafe fn write_out<T>(out: *mut T, value: &T, size: usize) {
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: `n <= size` bytes into the caller's struct (contract), from
    // a local that does not overlap it.
    unsafe { std::ptr::copy_nonoverlapping((value as *const T).cast::<u8>(), out.cast::<u8>(), n) };
}

/// `stats`: see `dss2_stats_fn`.
///
/// # Safety
/// `out` NULL or a `dss2_stats_t` of at least `out->size` bytes.
pub(crate) unsafe extern "C" fn stats(h: Handle, out: *mut Stats) -> c_int {
    guard(EINTERNAL, || {
        // SAFETY: `out` is NULL or a struct whose `size` the caller set
        // (this function's contract).
        let Some(size) = (unsafe { out_size(out) }) else {
            return EINVAL;
        };
        let util = match handles::get(h) {
            Some(u) if u.api == Version::V2 => u,
            _ => return ESTALE,
        };
        // The port's counters, kept by the core.
        let c = util.port.stats();
        let s = Stats {
            size,
            posted: c.posted,
            ran: c.ran,
            cancelled: c.cancelled,
            refused: c.refused,
            replies: c.replies,
            errors: c.errors,
            timeouts: c.timeouts,
            keep_alive: util.keep_alive().len() as u64,
        };
        // SAFETY: `out` holds `size` bytes (checked by out_size).
        unsafe { write_out(out, &s, size) };
        OK
    })
}

/// `waits`: see `dss2_waits_fn`.
///
/// # Safety
/// `out` NULL or a `dss2_waits_t` of at least `out->size` bytes.
pub(crate) unsafe extern "C" fn waits(h: Handle, flags: c_int, out: *mut Waits) -> c_int {
    guard(EINTERNAL, || {
        if flags & !WAITS_STATE != 0 {
            return EINVAL;
        }
        // SAFETY: `out` is NULL or a struct whose `size` the caller set
        // (this function's contract).
        let Some(size) = (unsafe { out_size(out) }) else {
            return EINVAL;
        };
        let util = match lookup(h) {
            Ok(u) => u,
            Err(code) => return code,
        };
        let found = if flags & WAITS_STATE != 0 {
            util.port.hub_waits()
        } else {
            util.port.waits()
        };
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let w = match found {
            Some(w) => Waits {
                size,
                enabled: 1,
                count: w.count,
                p50_ns: ns(w.p50),
                p99_ns: ns(w.p99),
                max_ns: ns(w.max),
                total_ns: ns(w.total),
            },
            None => Waits {
                size,
                ..Waits::default()
            },
        };
        // SAFETY: `out` holds `size` bytes (checked by out_size).
        unsafe { write_out(out, &w, size) };
        OK
    })
}

/// `status`: see `dss2_status_fn`.
///
/// # Safety
/// None beyond the C calling convention.
pub(crate) unsafe extern "C" fn status(h: Handle) -> c_int {
    guard(EINTERNAL, || match lookup(h) {
        Ok(_) => OK,
        Err(code) => code,
    })
}

/// `strerror`: see `dss2_strerror_fn`; returns a static string.
///
/// # Safety
/// None beyond the C calling convention.
pub(crate) unsafe extern "C" fn strerror(code: c_int) -> *const c_char {
    let s: &'static CStr = match code {
        OK => c"ok",
        EINVAL => c"invalid argument",
        ESTALE => c"stale or invalid handle",
        ECLOSED => c"the Lua state has closed",
        ENOTSTARTED => c"darksidesync is not loaded in this Lua state",
        EALREADY => c"already registered",
        EUNKNOWNLIB => c"library not registered in this Lua state",
        ENOMEM => c"out of memory",
        EFULL => c"queue full",
        ETIMEDOUT => c"timed out",
        EWOULDDEADLOCK => c"would deadlock (blocking on the Lua thread)",
        ECANCELLED => c"cancelled",
        EHANDLER => c"the Lua handler raised an error",
        EINTERNAL => c"internal error in darksidesync",
        darksidesync_sys::v1::SUCCESS => c"DSS 1v0: success",
        darksidesync_sys::v1::ERR_UDP_SEND_FAILED => {
            c"DSS 1v0: queued, but the UDP wake-up could not be sent"
        }
        darksidesync_sys::v1::ERR_INVALID_UTILID => c"DSS 1v0: invalid utilid",
        darksidesync_sys::v1::ERR_NOT_STARTED => c"DSS 1v0: not started, or already stopped",
        darksidesync_sys::v1::ERR_NO_CANCEL_PROVIDED => c"DSS 1v0: no cancel callback",
        darksidesync_sys::v1::ERR_OUT_OF_MEMORY => {
            c"DSS 1v0: out of memory (or queue full on the Lua thread)"
        }
        darksidesync_sys::v1::ERR_NO_DECODE_PROVIDED => c"DSS 1v0: no decoder",
        darksidesync_sys::v1::ERR_NO_GLOBALS => c"DSS 1v0: no Lua state given",
        darksidesync_sys::v1::ERR_UNKNOWN_LIB => c"DSS 1v0: unknown library",
        darksidesync_sys::v1::ERR_ALREADY_REGISTERED => c"DSS 1v0: already registered",
        darksidesync_sys::v1::ERR_WOULD_DEADLOCK => {
            c"DSS 1v0: would deadlock (blocking on the Lua thread)"
        }
        _ => c"unknown darksidesync result code",
    };
    s.as_ptr()
}
