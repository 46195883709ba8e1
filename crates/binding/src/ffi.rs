//! The DSS API 2v0 as `include/darksidesync.h` declares it: the struct of
//! function pointers published in `registry["DSS.DarkSideSync"]["DSS API
//! 2v0"]`, its result codes and callback types. Mirrored here by hand (the
//! header is the contract; this crate does not link to darksidesync).

// The whole header is mirrored, including codes this crate does not test for.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_long, c_void};

use mlua::ffi::lua_State;

/// `registry[REGISTRY_NAME]` is the table holding the API pointers.
pub const REGISTRY_NAME: &str = "DSS.DarkSideSync";
/// The key of the 2v0 light userdata in that table.
pub const API_KEY: &str = "DSS API 2v0";

/// An opaque handle; 0 is never valid.
pub type Handle = u64;

pub const OK: c_int = 0;
pub const EINVAL: c_int = -1;
pub const ESTALE: c_int = -2;
pub const ECLOSED: c_int = -3;
pub const ENOTSTARTED: c_int = -4;
pub const EALREADY: c_int = -5;
pub const EUNKNOWNLIB: c_int = -6;
pub const ENOMEM: c_int = -7;
pub const EFULL: c_int = -8;
pub const ETIMEDOUT: c_int = -9;
pub const EWOULDDEADLOCK: c_int = -10;
pub const ECANCELLED: c_int = -11;
pub const EHANDLER: c_int = -12;
pub const EINTERNAL: c_int = -13;

/// `call()` flag: refuse with `EFULL` instead of waiting for room.
pub const NOWAIT: c_int = 1;

pub type RunFn = unsafe extern "C" fn(*mut lua_State, *mut c_void, Handle) -> c_int;
pub type ReplyFn = unsafe extern "C" fn(*mut lua_State, *mut c_void, Handle, c_int) -> c_int;
pub type FreeFn = unsafe extern "C" fn(*mut c_void, c_int);
pub type CancelFn = unsafe extern "C" fn(Handle, *mut c_void);

/// `dss2_stats_t`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub size: usize,
    pub posted: u64,
    pub ran: u64,
    pub cancelled: u64,
    pub refused: u64,
    pub replies: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub keep_alive: u64,
}

/// `dss_api_2v0_t`: fields are only ever appended; `size` tells how many
/// the publisher has.
#[repr(C)]
pub struct Api {
    pub size: usize,
    pub version: *const c_char,
    pub reg: unsafe extern "C" fn(
        *mut lua_State,
        *const c_void,
        *const c_char,
        Option<CancelFn>,
        *mut c_void,
        *mut Handle,
    ) -> c_int,
    pub getid: unsafe extern "C" fn(*mut lua_State, *const c_void, *mut Handle) -> c_int,
    pub unreg: unsafe extern "C" fn(Handle) -> c_int,
    pub post:
        unsafe extern "C" fn(Handle, Option<RunFn>, Option<FreeFn>, *mut c_void, c_long) -> c_int,
    #[allow(clippy::type_complexity)]
    pub call: unsafe extern "C" fn(
        Handle,
        Option<RunFn>,
        Option<ReplyFn>,
        *mut c_void,
        c_long,
        c_int,
        *mut c_char,
        usize,
    ) -> c_int,
    pub hold: unsafe extern "C" fn(Handle) -> c_int,
    pub release: unsafe extern "C" fn(Handle) -> c_int,
    pub stats: unsafe extern "C" fn(Handle, *mut Stats) -> c_int,
    pub status: unsafe extern "C" fn(Handle) -> c_int,
    pub strerror: unsafe extern "C" fn(c_int) -> *const c_char,
}

// SAFETY: the published struct is an immutable static of the module,
// valid for the life of the process (the module pins itself in memory);
// its fields are function pointers and a pointer to a static string, all
// of which may be read from any thread.
unsafe impl Sync for Api {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for Api {}
