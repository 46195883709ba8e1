//! DSS API 1v0: DarkSideSync 1.0's C API, binary compatible
//! (`DSS_api_1v0_t` in include/darksidesync.h), minus its crashes.
//!
//! Mechanical names: the header's `reg`, `getutilid`, `deliver`, `unreg`
//! are [`reg`], [`getutilid`], [`deliver`], [`unreg`] here. Each one runs
//! its body under [`super::guard`], so a panic becomes an error code.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

use darksidesync_core::{CallError, PostErrorKind, Posted};
use mlua::ffi::lua_State;

use super::handles::{self, Api, Cancel, Util};
use super::task::{CTask, Ctl, Kind, Refusing};
use super::{guard, Code};
use crate::item::Item;

pub(crate) type Decoder1 = unsafe extern "C" fn(*mut lua_State, *mut c_void, *mut c_void) -> c_int;
pub(crate) type Return1 =
    unsafe extern "C" fn(*mut lua_State, *mut c_void, *mut c_void, c_int) -> c_int;
pub(crate) type Cancel1 = unsafe extern "C" fn(*mut c_void);

pub(crate) const SUCCESS: c_int = -100;
pub(crate) const ERR_UDP_SEND_FAILED: c_int = -99;
pub(crate) const ERR_INVALID_UTILID: c_int = -101;
pub(crate) const ERR_NOT_STARTED: c_int = -102;
pub(crate) const ERR_NO_CANCEL_PROVIDED: c_int = -103;
pub(crate) const ERR_OUT_OF_MEMORY: c_int = -104;
pub(crate) const ERR_NO_DECODE_PROVIDED: c_int = -105;
pub(crate) const ERR_NO_GLOBALS: c_int = -106;
pub(crate) const ERR_UNKNOWN_LIB: c_int = -107;
pub(crate) const ERR_ALREADY_REGISTERED: c_int = -108;
pub(crate) const ERR_WOULD_DEADLOCK: c_int = -109;

/// `DSS_api_1v0_t`, field for field.
#[repr(C)]
pub(crate) struct Api1 {
    version: *const c_char,
    reg: unsafe extern "C" fn(
        *mut lua_State,
        *mut c_void,
        Option<Cancel1>,
        *mut c_int,
    ) -> *mut c_void,
    getutilid: unsafe extern "C" fn(*mut lua_State, *mut c_void, *mut c_int) -> *mut c_void,
    deliver:
        unsafe extern "C" fn(*mut c_void, Option<Decoder1>, Option<Return1>, *mut c_void) -> c_int,
    unreg: unsafe extern "C" fn(*mut c_void) -> c_int,
}

// SAFETY: immutable after initialisation; `version` points to a static
// NUL-terminated string, the rest are function pointers.
unsafe impl Sync for Api1 {}

pub(crate) static API: Api1 = Api1 {
    version: c"DSS API 1v0".as_ptr(),
    reg,
    getutilid,
    deliver,
    unreg,
};

fn v1_code(c: Code) -> c_int {
    match c {
        Code::NoState => ERR_NO_GLOBALS,
        Code::NotStarted | Code::Closed => ERR_NOT_STARTED,
        Code::NoMem => ERR_OUT_OF_MEMORY,
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
    cancel: Option<Cancel1>,
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
        if let Some(h) = handles::find(state, Api::V1, libid as usize) {
            return (handles::to_utilid(h), ERR_ALREADY_REGISTERED);
        }
        super::pin(cancel as *const c_void);
        match super::register(
            &st,
            state,
            Api::V1,
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
            Ok((_, state)) => match handles::find(state, Api::V1, libid as usize) {
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
        Api::V1,
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
    decoder: Option<Decoder1>,
    ret: Option<Return1>,
    data: *mut c_void,
) -> c_int {
    guard(ERR_OUT_OF_MEMORY, || {
        let util = match lookup(utilid) {
            Ok(u) => u,
            Err(code) => return code,
        };
        let Some(decoder) = decoder else {
            return ERR_NO_DECODE_PROVIDED;
        };
        let kind = Kind::V1 { decoder, ret };
        match ret {
            None => {
                let refusing = Refusing::new();
                match util
                    .port
                    .post(Item::new(CTask::new(kind, data, util.clone(), None, None)))
                {
                    Ok(posted) => {
                        drop(refusing);
                        match posted {
                            Posted::Queued => SUCCESS,
                            Posted::QueuedUdpFailed => ERR_UDP_SEND_FAILED,
                        }
                    }
                    Err(e) => {
                        let code = post_code(e.kind);
                        drop(e); // a refusal: the caller keeps `data`
                        code
                    }
                }
            }
            Some(_) => {
                let ctl = Ctl::new();
                let refusing = Refusing::new();
                let result = util.port.call(
                    |reply| {
                        Item::new(CTask::new(
                            kind,
                            data,
                            util.clone(),
                            Some(ctl.clone()),
                            Some(reply),
                        ))
                    },
                    None,
                );
                drop(refusing);
                match result {
                    Ok(()) | Err(CallError::Handler(_)) => SUCCESS,
                    // Decoder returned 0, or the reply went unanswered.
                    Err(CallError::Cancelled | CallError::Closed) if ctl.ran() => SUCCESS,
                    Err(CallError::Closed) => ERR_NOT_STARTED,
                    Err(CallError::Cancelled | CallError::Unregistered) => ERR_INVALID_UTILID,
                    Err(CallError::WouldDeadlock) => ERR_WOULD_DEADLOCK,
                    Err(CallError::Full | CallError::TimedOut) => ERR_OUT_OF_MEMORY,
                }
            }
        }
    })
}

/// `unreg`: see `DSS_unregister_1v0_t`. Any thread, any value.
///
/// # Safety
/// None beyond the C calling convention; `utilid` is only looked up.
unsafe extern "C" fn unreg(utilid: *mut c_void) -> c_int {
    guard(ERR_OUT_OF_MEMORY, || {
        let h = handles::from_utilid(utilid);
        match handles::get(h) {
            Some(u) if u.api == Api::V1 => {
                super::unregister(h);
                SUCCESS
            }
            _ => ERR_INVALID_UTILID,
        }
    })
}
