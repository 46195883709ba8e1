//! DSS API 1v0: DarkSideSync 1.0's C API, binary compatible
//! (`DSS_api_1v0_t` in include/darksidesync.h), minus its crashes.
//!
//! Mechanical names: the header's `reg`, `getutilid`, `deliver`, `unreg`
//! are [`reg`], [`getutilid`], [`deliver`], [`unreg`] here. Each one runs
//! its body under [`super::guard`], so a panic becomes an error code.

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use darksidesync_core::{CallError, Discarded, PostErrorKind, Posted};
use darksidesync_sys::lua_State;
pub(crate) use darksidesync_sys::v1::*;

use super::handles::{self, Cancel, Util, Version};
use super::item::{CItem, Callbacks};
use super::turns::{Settled, Turns};
use super::{guard, StateError};
use crate::item::Item;

pub(crate) static API: Api = Api {
    version: VERSION_C.as_ptr(),
    reg,
    getutilid,
    deliver,
    unreg,
};

fn v1_code(c: StateError) -> c_int {
    match c {
        StateError::NoState => ERR_NO_GLOBALS,
        StateError::NotStarted | StateError::Closed => ERR_NOT_STARTED,
        StateError::NoMem => ERR_OUT_OF_MEMORY,
    }
}

/// Writes `code` through `errcode` when it is not NULL.
///
/// # Safety
/// `errcode` is NULL or valid for a write (the caller's contract).
unsafe fn set(errcode: *mut c_int, code: c_int) {
    if !errcode.is_null() {
        // SAFETY: non-NULL, and valid by the function's contract.
        unsafe { *errcode = code };
    }
}

/// `reg`: see `DSS_register_1v0_t` in the header.
///
/// # Safety
/// Called from C per the header: `l` NULL or a live state of this thread
/// (the Lua thread), `errcode` NULL or writable.
unsafe extern "C" fn reg(
    l: *mut lua_State,
    libid: *mut c_void,
    cancel: Option<CancelFn>,
    errcode: *mut c_int,
) -> *mut c_void {
    let (id, code) = guard((std::ptr::null_mut(), ERR_OUT_OF_MEMORY), || {
        if l.is_null() {
            return (std::ptr::null_mut(), ERR_NO_GLOBALS);
        }
        let Some(cancel) = cancel else {
            return (std::ptr::null_mut(), ERR_NO_CANCEL_PROVIDED);
        };
        // SAFETY: reg is called on the Lua thread with a state of a live
        // Lua (1v0 contract); `state_of` checks that darksidesync runs in it.
        let found = unsafe { super::state_of(l) };
        let (st, state) = match found {
            Ok(v) => v,
            Err(c) => return (std::ptr::null_mut(), v1_code(c)),
        };
        if let Some(h) = handles::find(state, Version::V1, libid as usize) {
            return (handles::to_utilid(h), ERR_ALREADY_REGISTERED);
        }
        super::pin(cancel as *const c_void);
        match super::register(
            &st,
            state,
            Version::V1,
            libid as usize,
            format!("dss1v0:{libid:p}"),
            Cancel::V1(cancel),
        ) {
            Ok(util) => (handles::to_utilid(util.handle), SUCCESS),
            Err(c) => (std::ptr::null_mut(), v1_code(c)),
        }
    });
    // SAFETY: 1v0 contract: errcode is NULL or points to an int.
    unsafe { set(errcode, code) };
    id
}

/// `getutilid`: see `DSS_getutilid_1v0_t`.
///
/// # Safety
/// As for [`reg`].
unsafe extern "C" fn getutilid(
    l: *mut lua_State,
    libid: *mut c_void,
    errcode: *mut c_int,
) -> *mut c_void {
    let (id, code) = guard((std::ptr::null_mut(), ERR_OUT_OF_MEMORY), || {
        if l.is_null() {
            return (std::ptr::null_mut(), ERR_NO_GLOBALS);
        }
        // SAFETY: as in `reg`.
        match unsafe { super::state_of(l) } {
            Err(c) => (std::ptr::null_mut(), v1_code(c)),
            Ok((_, state)) => match handles::find(state, Version::V1, libid as usize) {
                Some(h) => (handles::to_utilid(h), SUCCESS),
                None => (std::ptr::null_mut(), ERR_UNKNOWN_LIB),
            },
        }
    });
    // SAFETY: 1v0 contract: errcode is NULL or points to an int.
    unsafe { set(errcode, code) };
    id
}

/// The live 1v0 record of `utilid`, or the code to return.
fn lookup(utilid: *mut c_void) -> Result<Arc<Util>, c_int> {
    handles::live(
        handles::from_utilid(utilid),
        Version::V1,
        ERR_NOT_STARTED,
        ERR_INVALID_UTILID,
    )
}

fn post_code(kind: PostErrorKind) -> c_int {
    match kind {
        PostErrorKind::Closed => ERR_NOT_STARTED,
        PostErrorKind::Unregistered => ERR_INVALID_UTILID,
        // A full queue on the Lua thread: waiting for room would never end.
        PostErrorKind::WouldDeadlock | PostErrorKind::Full => ERR_OUT_OF_MEMORY,
    }
}

/// `deliver`: see `DSS_deliver_1v0_t`. Any thread; `utilid` may be
/// anything (it is looked up, never dereferenced).
///
/// # Safety
/// The callbacks, if given, are functions with the header's signatures;
/// `data` is only handed back to them.
unsafe extern "C" fn deliver(
    utilid: *mut c_void,
    decoder: Option<DecoderFn>,
    ret: Option<ReturnFn>,
    data: *mut c_void,
) -> c_int {
    guard(ERR_OUT_OF_MEMORY, || {
        let Some(decoder) = decoder else {
            // Checked after the handle, as before: a stale handle's code
            // comes first.
            return match lookup(utilid) {
                Ok(_) => ERR_NO_DECODE_PROVIDED,
                Err(code) => code,
            };
        };
        let Some(ret) = ret else {
            return deliver_nowait(utilid, decoder, data);
        };
        let util = match lookup(utilid) {
            Ok(u) => u,
            Err(code) => return code,
        };
        deliver_blocking(&util, decoder, ret, data)
    })
}

/// A fire-and-forget `deliver`: returns at once, as DarkSideSync 1.0
/// promised (a full queue is ERR_OUT_OF_MEMORY, not a wait), and never
/// waits, not even for the hub's lock: luaexit-style utilities deliver
/// from signal handlers. The record is borrowed (nothing here waits).
fn deliver_nowait(utilid: *mut c_void, decoder: DecoderFn, data: *mut c_void) -> c_int {
    let util = match handles::borrow_live(
        handles::from_utilid(utilid),
        Version::V1,
        ERR_NOT_STARTED,
        ERR_INVALID_UTILID,
    ) {
        Ok(u) => u,
        Err(code) => return code,
    };
    let item = super::post::deliver1(decoder, data, util.handle);
    match util.port.post_nowait(item) {
        Ok(Posted::Queued) => SUCCESS,
        Ok(Posted::QueuedUdpFailed) => ERR_UDP_SEND_FAILED,
        Err(e) => {
            let code = post_code(e.kind);
            // A refusal: the caller keeps `data`.
            e.item.discard(Discarded::Refused(e.kind));
            code
        }
    }
}

/// A blocking `deliver`: waits for the answer, then settles what is still
/// due for `data` before returning (see `turns.rs`).
fn deliver_blocking(
    util: &Arc<Util>,
    decoder: DecoderFn,
    ret: ReturnFn,
    data: *mut c_void,
) -> c_int {
    let turns = Turns::new();
    let result = util.port.call(
        |reply| {
            Item::new(CItem::new(
                Callbacks::Deliver1 { decoder, ret },
                data,
                util.handle,
                reply,
                Some(turns.clone()),
            ))
        },
        None,
    );
    let id = handles::to_utilid(util.handle);
    match result {
        Ok(()) | Err(CallError::Handler(_)) => SUCCESS,
        Err(CallError::WouldDeadlock) => ERR_WOULD_DEADLOCK,
        Err(CallError::Full | CallError::TimedOut) => ERR_OUT_OF_MEMORY,
        Err(CallError::Unregistered) => ERR_INVALID_UTILID,
        Err(e @ (CallError::Cancelled | CallError::Closed)) => {
            let closed = e == CallError::Closed;
            // Ended before the answer: whatever is still due for `data`
            // runs now, while it is surely alive (a queued item will not
            // call the decoder again), and what a discarding thread or the
            // Lua thread is running is waited out.
            let settled = turns.settle(
                || {
                    // SAFETY: 1v0 contract: decoder(NULL) once per
                    // cancelled item (`settle` runs it at most once).
                    unsafe { decoder(std::ptr::null_mut(), data, id) };
                },
                || {
                    // SAFETY: 1v0 contract; called once (`settle`).
                    unsafe { ret(std::ptr::null_mut(), data, id, 1) };
                },
            );
            match settled {
                Settled::Cancelled if closed => ERR_NOT_STARTED,
                Settled::Cancelled => ERR_INVALID_UTILID,
                // The answer was pending when the utility unregistered or
                // the state closed: garbage, without a state, at once (as
                // DarkSideSync 1.0 did at unreg).
                Settled::Garbage if closed => SUCCESS,
                Settled::Garbage => ERR_INVALID_UTILID,
                // Decoder returned 0, or the reply was answered (or as
                // garbage) on the Lua thread.
                Settled::Answered => SUCCESS,
            }
        }
    }
}

/// `unreg`: see `DSS_unregister_1v0_t`. Any thread, any value.
///
/// # Safety
/// None beyond the C calling convention; `utilid` is only looked up.
unsafe extern "C" fn unreg(utilid: *mut c_void) -> c_int {
    guard(ERR_OUT_OF_MEMORY, || {
        let h = handles::from_utilid(utilid);
        match handles::get(h) {
            Some(u) if u.api == Version::V1 => {
                super::unregister(h);
                SUCCESS
            }
            _ => ERR_INVALID_UTILID,
        }
    })
}
