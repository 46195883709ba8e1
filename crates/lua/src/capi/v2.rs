//! DSS API 2v0 (`dss_api_2v0_t` in include/darksidesync.h): opaque
//! generation-checked handles, explicit outcomes, bounded queue with the
//! caller's choice, ownership through a free callback, keep-alive
//! references and per-utility statistics.
//!
//! Mechanical names: the header's `reg`, `getid`, `unreg`, `post`, `call`,
//! `hold`, `release`, `stats`, `status`, `strerror`, `waits` are the functions of
//! the same names here; each runs its body under [`super::guard`].

use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use darksidesync_core::{CallError, Discarded, PostError, PostErrorKind, Posted};
use darksidesync_sys::lua_State;
pub(crate) use darksidesync_sys::v2::*;

use super::finalize::Finalizer;
use super::handles::{self, Cancel, SendPtr, Util, Version};
use super::task::{CItem, CPost, Callbacks, PostRun};
use super::{guard, StateError};
use crate::item::Item;

pub(crate) static API: Api = Api {
    size: std::mem::size_of::<Api>(),
    version: c"DSS API 2v0".as_ptr(),
    reg,
    getid,
    unreg,
    post,
    call,
    hold,
    release,
    stats,
    status,
    strerror,
    waits,
    setfinalizer,
};

fn v2_code(c: StateError) -> c_int {
    match c {
        StateError::NoState => EINVAL,
        StateError::NotStarted => ENOTSTARTED,
        StateError::Closed => ECLOSED,
        StateError::NoMem => ENOMEM,
    }
}

/// The prologue of `post` and `call`: a live 2v0 handle (else `ECLOSED`
/// or `ESTALE`), borrowed (see [`handles::Borrowed`]), and a run callback,
/// whose shared object is then pinned (see `pin_once`). A refusal for a
/// closed state counts as refused (as every other one).
fn lookup_with_run(h: Handle, run: Option<RunFn>) -> Result<(handles::Borrowed, RunFn), c_int> {
    let util = match handles::borrow(h) {
        Some(u) if u.api == Version::V2 && u.is_closed() => {
            u.port.count_refused();
            return Err(ECLOSED);
        }
        Some(u) if u.api == Version::V2 => u,
        _ => return Err(ESTALE),
    };
    let Some(run) = run else {
        util.port.count_refused();
        return Err(EINVAL);
    };
    if !util.pinned.load(Ordering::Acquire) {
        // Pinning may wait for the loader's lock: not under the borrow.
        let owned = util.to_arc();
        drop(util);
        super::pin_once(&owned, run as *const c_void);
        return lookup_with_run(h, Some(run));
    }
    Ok((util, run))
}

fn lookup(h: Handle) -> Result<Arc<Util>, c_int> {
    handles::live(h, Version::V2, ECLOSED, ESTALE)
}

/// `reg`: see `dss2_reg_fn` in the header.
///
/// # Safety
/// `l` NULL or a live state of this thread (the Lua thread); `name` NULL
/// or NUL-terminated; `out` NULL or writable.
unsafe extern "C" fn reg(
    l: *mut lua_State,
    libid: *const c_void,
    name: *const c_char,
    cancel: Option<CancelFn>,
    ud: *mut c_void,
    out: *mut Handle,
) -> c_int {
    guard(EINTERNAL, || {
        if l.is_null() || libid.is_null() || out.is_null() {
            return EINVAL;
        }
        // SAFETY: reg runs on the Lua thread with a valid state (contract).
        let (st, state) = match unsafe { super::state_of(l) } {
            Ok(v) => v,
            Err(c) => return v2_code(c),
        };
        if let Some(h) = handles::find(state, Version::V2, libid as usize) {
            // SAFETY: `out` is non-NULL and points to a handle (contract).
            unsafe { *out = h };
            return EALREADY;
        }
        let name = if name.is_null() {
            format!("dss2v0:{libid:p}")
        } else {
            // SAFETY: a non-NULL name is a NUL-terminated string (contract).
            unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned()
        };
        match super::register(
            &st,
            state,
            Version::V2,
            libid as usize,
            name,
            Cancel::V2(cancel, SendPtr(ud)),
        ) {
            Ok(util) => {
                super::bind_finalizers(&st);
                if let Some(c) = cancel {
                    super::pin_once(&util, c as *const c_void);
                }
                // SAFETY: as above.
                unsafe { *out = util.handle };
                OK
            }
            Err(c) => v2_code(c),
        }
    })
}

/// `getid`: see `dss2_getid_fn`.
///
/// # Safety
/// As for [`reg`].
unsafe extern "C" fn getid(l: *mut lua_State, libid: *const c_void, out: *mut Handle) -> c_int {
    guard(EINTERNAL, || {
        if l.is_null() || out.is_null() {
            return EINVAL;
        }
        // SAFETY: as in `reg`.
        let state = match unsafe { super::state_of(l) } {
            Ok((_, id)) => id,
            Err(c) => return v2_code(c),
        };
        match handles::find(state, Version::V2, libid as usize) {
            Some(h) => {
                // SAFETY: `out` is non-NULL and points to a handle (contract).
                unsafe { *out = h };
                OK
            }
            None => EUNKNOWNLIB,
        }
    })
}

/// `unreg`: see `dss2_unreg_fn`. Any thread, any value.
///
/// # Safety
/// None beyond the C calling convention.
unsafe extern "C" fn unreg(h: Handle) -> c_int {
    guard(EINTERNAL, || match handles::get(h) {
        Some(u) if u.api == Version::V2 => {
            if super::unregister(h) {
                OK
            } else {
                ESTALE
            }
        }
        _ => ESTALE,
    })
}

fn post_code(kind: PostErrorKind) -> c_int {
    match kind {
        PostErrorKind::Full => EFULL,
        PostErrorKind::Closed => ECLOSED,
        PostErrorKind::Unregistered => ESTALE,
        PostErrorKind::WouldDeadlock => EWOULDDEADLOCK,
    }
}

/// `post`: see `dss2_post_fn`. Any thread.
///
/// # Safety
/// The callbacks, if given, have the header's signatures; `data` is only
/// handed back to them.
unsafe extern "C" fn post(
    h: Handle,
    run: Option<RunFn>,
    free: Option<FreeFn>,
    data: *mut c_void,
    timeout_ms: c_long,
) -> c_int {
    // A panic (a bug) returns EINTERNAL without calling `free`: leaking
    // `data` is the safe side of not knowing whether it was queued.
    guard(EINTERNAL, || {
        let code = post_inner(h, run, free, data, timeout_ms);
        if code != OK {
            if let Some(free) = free {
                // SAFETY: the 2v0 contract: post owns `data` and calls its
                // free callback exactly once; a refused item was not
                // queued (its Drop skipped `free`), so this is that once.
                unsafe { free(data, code) };
            }
        }
        code
    })
}

fn post_inner(
    h: Handle,
    run: Option<RunFn>,
    free: Option<FreeFn>,
    data: *mut c_void,
    timeout_ms: c_long,
) -> c_int {
    let (util, run) = match lookup_with_run(h, run) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let item = Item::post(CPost::new(PostRun::Run2(run, free), data, util.handle));
    if timeout_ms == 0 {
        // Never waits, not even for the hub's lock (signal handlers).
        let result = util.port.post_nowait(item);
        return posted(result);
    }
    // A post that may wait for room does not wait under the borrow
    // (`unreg` waits for borrows to end). Usually there is room: it is
    // queued here, under the borrow. Otherwise it waits through its own
    // clone of the port (references on the hub's records, taken only
    // then).
    let item = match util.port.post_if_room(item) {
        Err(e) if e.kind == PostErrorKind::Full => e.item,
        result => return posted(result),
    };
    let port = util.port.clone();
    drop(util);
    let result = if timeout_ms < 0 {
        port.post(item)
    } else {
        port.post_timeout(item, Duration::from_millis(timeout_ms as u64))
    };
    posted(result)
}

/// The code of a post's outcome; a refused item is discarded as such.
fn posted(result: Result<Posted, PostError<Item>>) -> c_int {
    match result {
        Ok(_) => OK,
        Err(e) => {
            // Refused: `post` frees `data` itself, with the code.
            e.item.discard(Discarded::Refused(e.kind));
            post_code(e.kind)
        }
    }
}

/// Copies `text` into the caller's buffer, truncated, NUL-terminated.
///
/// # Safety
/// `buf` is NULL or valid for `len` bytes (the caller's contract).
unsafe fn copy_text(buf: *mut c_char, len: usize, text: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    let n = text.len().min(len - 1);
    // SAFETY: `n + 1 <= len` bytes of `buf` are written; the source is `n`
    // bytes of `text`; the two cannot overlap (ours vs the caller's).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), buf, n);
        *buf.add(n) = 0;
    }
}

#[allow(clippy::too_many_arguments)]
/// `call`: see `dss2_call_fn`. Any thread but the Lua thread.
///
/// # Safety
/// As for [`post`]; `errbuf` NULL or writable for `errlen` bytes.
unsafe extern "C" fn call(
    h: Handle,
    run: Option<RunFn>,
    reply: Option<ReplyFn>,
    data: *mut c_void,
    timeout_ms: c_long,
    flags: c_int,
    errbuf: *mut c_char,
    errlen: usize,
) -> c_int {
    guard(EINTERNAL, || {
        let (borrowed, run) = match lookup_with_run(h, run) {
            Ok(found) => found,
            Err(code) => return code,
        };
        // A call waits: not under the borrow.
        let util = borrowed.to_arc();
        drop(borrowed);
        let make = |r| {
            Item::new(CItem::new(
                Callbacks::Call2 { run, reply },
                data,
                util.handle,
                Some(r),
                None,
            ))
        };
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        let result = if flags & NOWAIT != 0 {
            util.port.try_call(make, timeout)
        } else {
            util.port.call(make, timeout)
        };
        // The port counted the outcome (refused, replied, timed out).
        match result {
            Ok(()) => OK,
            Err(CallError::Handler(text)) => {
                // SAFETY: errbuf is NULL or valid for errlen bytes (contract).
                unsafe { copy_text(errbuf, errlen, &text) };
                EHANDLER
            }
            // A reply claimed before the timeout passed is waited for
            // (the core's `Reply::claim`): this is a real timeout.
            Err(CallError::TimedOut) => ETIMEDOUT,
            Err(CallError::Cancelled) => ECANCELLED,
            Err(CallError::Closed) => ECLOSED,
            Err(CallError::Full) => EFULL,
            Err(CallError::Unregistered) => ESTALE,
            Err(CallError::WouldDeadlock) => EWOULDDEADLOCK,
        }
    })
}

/// `hold`: see `dss2_hold_fn`.
///
/// # Safety
/// None beyond the C calling convention.
unsafe extern "C" fn hold(h: Handle) -> c_int {
    guard(EINTERNAL, || {
        let util = match lookup(h) {
            Ok(u) => u,
            Err(code) => return code,
        };
        match util.port.keep_alive() {
            Ok(k) => {
                util.keep_alive().push(k);
                OK
            }
            Err(kind) => post_code(kind),
        }
    })
}

/// `release`: see `dss2_release_fn`.
///
/// # Safety
/// None beyond the C calling convention.
unsafe extern "C" fn release(h: Handle) -> c_int {
    guard(EINTERNAL, || {
        let util = match lookup(h) {
            Ok(u) => u,
            Err(code) => return code,
        };
        let k = util.keep_alive().pop();
        match k {
            Some(k) => {
                drop(k); // may wake a consumer waiting in run()
                OK
            }
            None => EINVAL,
        }
    })
}

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
unsafe extern "C" fn stats(h: Handle, out: *mut Stats) -> c_int {
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
unsafe extern "C" fn waits(h: Handle, flags: c_int, out: *mut Waits) -> c_int {
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

/// `setfinalizer`: see `dss2_setfinalizer_fn`.
///
/// # Safety
/// `f`, if given, has the header's signature; `ud` is only handed back.
unsafe extern "C" fn setfinalizer(h: Handle, f: Option<FinalizeFn>, ud: *mut c_void) -> c_int {
    guard(EINTERNAL, || {
        let util = match lookup(h) {
            Ok(u) => u,
            Err(code) => return code,
        };
        if let Some(f) = f {
            super::pin_once(&util, f as *const c_void);
        }
        let finalizers = &util.shared.finalizers;
        finalizers.set(
            h,
            f.map(|f| Finalizer {
                f,
                h,
                ud: SendPtr(ud),
            }),
        );
        if util.gone.load(Ordering::SeqCst) {
            // unreg() raced this call and may have missed it: due now.
            finalizers.unregistered(h);
        }
        OK
    })
}

/// `status`: see `dss2_status_fn`.
///
/// # Safety
/// None beyond the C calling convention.
unsafe extern "C" fn status(h: Handle) -> c_int {
    guard(EINTERNAL, || match lookup(h) {
        Ok(_) => OK,
        Err(code) => code,
    })
}

/// `strerror`: see `dss2_strerror_fn`; returns a static string.
///
/// # Safety
/// None beyond the C calling convention.
unsafe extern "C" fn strerror(code: c_int) -> *const c_char {
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
