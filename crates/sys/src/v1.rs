//! DSS API 1v0 (`DSS_api_1v0_t`): DarkSideSync 1.0's C API, same names,
//! layout, signatures and codes. Semantics: section 2 of the header.

use core::ffi::{c_char, c_int, c_void};

use crate::lua_State;

/// `DSS_API_1v0_KEY`: key of the 1v0 light userdata in the registry table.
pub const API_KEY: &str = "DSS API 1v0";
/// The `version` field of the published struct.
pub const VERSION: &str = "DSS API 1v0";
/// [`VERSION`], NUL-terminated, as the struct points to it.
pub const VERSION_C: &core::ffi::CStr = c"DSS API 1v0";

/// `DSS_SUCCESS`: done.
pub const SUCCESS: c_int = -100;
/// `DSS_ERR_UDP_SEND_FAILED`: a warning; the item was queued, the UDP
/// wake-up failed.
pub const ERR_UDP_SEND_FAILED: c_int = -99;
/// `DSS_ERR_INVALID_UTILID`: NULL, garbage, unregistered or reused utilid.
pub const ERR_INVALID_UTILID: c_int = -101;
/// `DSS_ERR_NOT_STARTED`: darksidesync not loaded in that state, or closed.
pub const ERR_NOT_STARTED: c_int = -102;
/// `DSS_ERR_NO_CANCEL_PROVIDED`: `reg()` without a cancel callback.
pub const ERR_NO_CANCEL_PROVIDED: c_int = -103;
/// `DSS_ERR_OUT_OF_MEMORY`: allocation failed, or the queue is full.
pub const ERR_OUT_OF_MEMORY: c_int = -104;
/// `DSS_ERR_NO_DECODE_PROVIDED`: `deliver()` without a decoder.
pub const ERR_NO_DECODE_PROVIDED: c_int = -105;
/// `DSS_ERR_NO_GLOBALS`: `reg()`/`getutilid()` given a NULL state.
pub const ERR_NO_GLOBALS: c_int = -106;
/// `DSS_ERR_UNKNOWN_LIB`: `getutilid()`: libid not registered there.
pub const ERR_UNKNOWN_LIB: c_int = -107;
/// `DSS_ERR_ALREADY_REGISTERED`: `reg()` of a registered libid.
pub const ERR_ALREADY_REGISTERED: c_int = -108;
/// `DSS_ERR_WOULD_DEADLOCK`: a blocking `deliver()` from the Lua thread.
pub const ERR_WOULD_DEADLOCK: c_int = -109;

/// `DSS_decoder_1v0_t`: `L` NULL means cancelled (free `pData`).
///
/// `"C-unwind"`: called with a state it may raise a Lua error (against
/// the header's rule, or out of memory in `lua_pushstring`), which on
/// LuaJIT x64 is an unwind through the caller's frames.
pub type DecoderFn = unsafe extern "C-unwind" fn(*mut lua_State, *mut c_void, *mut c_void) -> c_int;
/// `DSS_return_1v0_t`: the answer of a blocking delivery (`garbage` 0 or
/// 1). `"C-unwind"` as [`DecoderFn`].
pub type ReturnFn =
    unsafe extern "C-unwind" fn(*mut lua_State, *mut c_void, *mut c_void, c_int) -> c_int;
/// `DSS_cancel_1v0_t`: the utility's state closed.
pub type CancelFn = unsafe extern "C" fn(*mut c_void);

/// `DSS_register_1v0_t`.
pub type RegFn =
    unsafe extern "C" fn(*mut lua_State, *mut c_void, Option<CancelFn>, *mut c_int) -> *mut c_void;
/// `DSS_getutilid_1v0_t`.
pub type GetUtilIdFn = unsafe extern "C" fn(*mut lua_State, *mut c_void, *mut c_int) -> *mut c_void;
/// `DSS_deliver_1v0_t`.
pub type DeliverFn =
    unsafe extern "C" fn(*mut c_void, Option<DecoderFn>, Option<ReturnFn>, *mut c_void) -> c_int;
/// `DSS_unregister_1v0_t`.
pub type UnregFn = unsafe extern "C" fn(*mut c_void) -> c_int;

/// `DSS_api_1v0_t`, field for field.
#[repr(C)]
pub struct Api {
    /// `"DSS API 1v0"`, NUL-terminated.
    pub version: *const c_char,
    /// Registers a library in a state (Lua thread).
    pub reg: RegFn,
    /// The utilid of a registered library (Lua thread).
    pub getutilid: GetUtilIdFn,
    /// Queues an item (any thread).
    pub deliver: DeliverFn,
    /// Unregisters (any thread).
    pub unreg: UnregFn,
}

// SAFETY: the published struct is an immutable static of the module, valid
// for the life of the process; its fields are function pointers and a
// pointer to a static string, all readable from any thread.
unsafe impl Sync for Api {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for Api {}
