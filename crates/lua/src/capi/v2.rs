//! DSS API 2v0 (`dss_api_2v0_t` in include/darksidesync.h): opaque
//! generation-checked handles, explicit outcomes, bounded queue with the
//! caller's choice, ownership through a free callback, keep-alive
//! references and per-utility statistics.
//!
//! Mechanical names: the header's `reg`, `getid`, `unreg`, `call`,
//! `hold`, `release`, `setfinalizer` are the functions of the same names
//! here (`post`, `post_inline`: `v2_post.rs`; `stats`, `status`,
//! `strerror`, `waits`: `v2_query.rs`); each runs its body under
//! [`super::guard`].

use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use darksidesync_core::{CallError, PostErrorKind};
use darksidesync_sys::lua_State;
pub(crate) use darksidesync_sys::v2::*;

use super::finalize::Finalizer;
use super::handles::{self, Cancel, SendPtr, Util, Version};
use super::item::{CItem, Callbacks};
use super::v2_post::{post, post_inline};
use super::v2_query::{stats, status, strerror, waits};
use super::{guard, StateError};
use crate::item::Item;

pub(crate) static API: Api = Api {
    size: std::mem::size_of::<Api>(),
    version: VERSION_C.as_ptr(),
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
    post_inline,
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
pub(super) fn lookup_with_run(
    h: Handle,
    run: Option<RunFn>,
) -> Result<(handles::Borrowed, RunFn), c_int> {
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

pub(crate) fn lookup(h: Handle) -> Result<Arc<Util>, c_int> {
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

pub(super) fn post_code(kind: PostErrorKind) -> c_int {
    match kind {
        PostErrorKind::Full => EFULL,
        PostErrorKind::Closed => ECLOSED,
        PostErrorKind::Unregistered => ESTALE,
        PostErrorKind::WouldDeadlock => EWOULDDEADLOCK,
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
                r,
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

/// `setfinalizer`: see `dss2_setfinalizer_fn`.
///
/// # Safety
/// `f`, if given, has the header's signature; `ud` is only handed back.
pub(super) unsafe extern "C" fn setfinalizer(
    h: Handle,
    f: Option<FinalizeFn>,
    ud: *mut c_void,
) -> c_int {
    guard(EINTERNAL, || {
        let util = match handles::live(h, Version::V2, ECLOSED, ESTALE) {
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
