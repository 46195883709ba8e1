//! DSS API 2v0 (`dss_api_2v0_t`). Semantics: section 3 of the header.

use core::ffi::{c_char, c_int, c_long, c_void};

use crate::lua_State;

/// `DSS_API_2v0_KEY`: key of the 2v0 light userdata in the registry table.
pub const API_KEY: &str = "DSS API 2v0";
/// The `version` field of the published struct.
pub const VERSION: &str = "DSS API 2v0";
/// [`VERSION`], NUL-terminated, as the struct points to it.
pub const VERSION_C: &core::ffi::CStr = c"DSS API 2v0";

/// `dss2_handle`: opaque; 0 is never valid.
pub type Handle = u64;

/// `DSS2_OK`: done / replied / queued.
pub const OK: c_int = 0;
/// `DSS2_EINVAL`: a NULL or invalid argument.
pub const EINVAL: c_int = -1;
/// `DSS2_ESTALE`: zero, garbage or unregistered handle.
pub const ESTALE: c_int = -2;
/// `DSS2_ECLOSED`: the handle's Lua state has closed.
pub const ECLOSED: c_int = -3;
/// `DSS2_ENOTSTARTED`: darksidesync is not loaded in that state.
pub const ENOTSTARTED: c_int = -4;
/// `DSS2_EALREADY`: `reg()` of a registered libid (its handle is given).
pub const EALREADY: c_int = -5;
/// `DSS2_EUNKNOWNLIB`: `getid()` of an unregistered libid.
pub const EUNKNOWNLIB: c_int = -6;
/// `DSS2_ENOMEM`: allocation failed.
pub const ENOMEM: c_int = -7;
/// `DSS2_EFULL`: queue full and the caller chose not to wait.
pub const EFULL: c_int = -8;
/// `DSS2_ETIMEDOUT`: `call()` got no reply within its timeout.
pub const ETIMEDOUT: c_int = -9;
/// `DSS2_EWOULDDEADLOCK`: blocking on the Lua thread would wait for itself.
pub const EWOULDDEADLOCK: c_int = -10;
/// `DSS2_ECANCELLED`: dropped unrun.
pub const ECANCELLED: c_int = -11;
/// `DSS2_EHANDLER`: the Lua callback raised; its text is in `errbuf`.
pub const EHANDLER: c_int = -12;
/// `DSS2_EINTERNAL`: a bug in darksidesync (caught).
pub const EINTERNAL: c_int = -13;

/// `DSS2_NOWAIT`: `call()` flag, refuse with `EFULL` when the queue is full.
pub const NOWAIT: c_int = 1;

/// `DSS2_WAITS_STATE`: `waits()` flag, the whole state's items.
pub const WAITS_STATE: c_int = 1;

/// `DSS2_INLINE_MAX`: the most bytes `post_inline()` carries in the item.
pub const INLINE_MAX: usize = 24;
/// `DSS2_RAN`: what a `post_inline()` run returns when it did the item's
/// work itself and pushed nothing (the item counts as run).
pub const RAN: c_int = -1;

/// `dss2_run_fn`.
///
/// `"C-unwind"`: given a state it may raise a Lua error (against the
/// header's rule, or out of memory in `lua_pushstring`), which on LuaJIT
/// x64 is an unwind through the caller's frames. So may [`ReplyFn`] and
/// [`FinalizeFn`]; the callbacks without a state cannot.
pub type RunFn = unsafe extern "C-unwind" fn(*mut lua_State, *mut c_void, Handle) -> c_int;
/// `dss2_reply_fn` (`"C-unwind"`, see [`RunFn`]).
pub type ReplyFn = unsafe extern "C-unwind" fn(*mut lua_State, *mut c_void, Handle, c_int) -> c_int;
/// `dss2_free_fn`.
pub type FreeFn = unsafe extern "C" fn(*mut c_void, c_int);
/// `dss2_cancel_fn`.
pub type CancelFn = unsafe extern "C" fn(Handle, *mut c_void);
/// `dss2_finalize_fn`: the utility's Lua-thread finalizer (`"C-unwind"`,
/// see [`RunFn`]).
pub type FinalizeFn = unsafe extern "C-unwind" fn(*mut lua_State, Handle, *mut c_void);

/// `dss2_reg_fn`.
pub type RegFn = unsafe extern "C" fn(
    *mut lua_State,
    *const c_void,
    *const c_char,
    Option<CancelFn>,
    *mut c_void,
    *mut Handle,
) -> c_int;
/// `dss2_getid_fn`.
pub type GetIdFn = unsafe extern "C" fn(*mut lua_State, *const c_void, *mut Handle) -> c_int;
/// `dss2_unreg_fn`.
pub type UnregFn = unsafe extern "C" fn(Handle) -> c_int;
/// `dss2_post_fn`.
pub type PostFn =
    unsafe extern "C" fn(Handle, Option<RunFn>, Option<FreeFn>, *mut c_void, c_long) -> c_int;
/// `dss2_call_fn`.
pub type CallFn = unsafe extern "C" fn(
    Handle,
    Option<RunFn>,
    Option<ReplyFn>,
    *mut c_void,
    c_long,
    c_int,
    *mut c_char,
    usize,
) -> c_int;
/// `dss2_hold_fn`.
pub type HoldFn = unsafe extern "C" fn(Handle) -> c_int;
/// `dss2_release_fn`.
pub type ReleaseFn = unsafe extern "C" fn(Handle) -> c_int;
/// `dss2_stats_fn`.
pub type StatsFn = unsafe extern "C" fn(Handle, *mut Stats) -> c_int;
/// `dss2_status_fn`.
pub type StatusFn = unsafe extern "C" fn(Handle) -> c_int;
/// `dss2_strerror_fn`.
pub type StrerrorFn = unsafe extern "C" fn(c_int) -> *const c_char;
/// `dss2_waits_fn`.
pub type WaitsFn = unsafe extern "C" fn(Handle, c_int, *mut Waits) -> c_int;
/// `dss2_post_inline_fn`.
pub type PostInlineFn = unsafe extern "C" fn(
    Handle,
    Option<RunFn>,
    Option<FreeFn>,
    *const c_void,
    usize,
    c_long,
) -> c_int;
/// `dss2_setfinalizer_fn`.
pub type SetFinalizerFn = unsafe extern "C" fn(Handle, Option<FinalizeFn>, *mut c_void) -> c_int;

/// `dss2_stats_t`: per-utility counters. Set `size` before calling
/// `stats()`; only the fields that fit in it are written.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// `sizeof(dss2_stats_t)` as the caller knows it.
    pub size: usize,
    /// Items accepted (post and call).
    pub posted: u64,
    /// Items whose `run()` was called on the Lua thread.
    pub ran: u64,
    /// Accepted items dropped unrun.
    pub cancelled: u64,
    /// `post()`/`call()` refused (full, closed, would deadlock ...).
    pub refused: u64,
    /// Calls answered (`reply()` ran).
    pub replies: u64,
    /// Calls answered with a handler error.
    pub errors: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Keep-alive references held now.
    pub keep_alive: u64,
}

/// `dss2_waits_t`: how long items waited in the queue, post to run, while
/// timing is on in the state. Set `size` before calling `waits()`; only
/// the fields that fit in it are written.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// `sizeof(dss2_waits_t)` as the caller knows it.
    pub size: usize,
    /// 1 while timing is on; 0 (and every field below 0) while off.
    pub enabled: u64,
    /// Items taken to run since timing was turned on.
    pub count: u64,
    /// Median wait, nanoseconds (at most 12.5 % above the true value).
    pub p50_ns: u64,
    /// 99th percentile, nanoseconds (as `p50_ns`).
    pub p99_ns: u64,
    /// Longest wait, nanoseconds (exact).
    pub max_ns: u64,
    /// All waits added up, nanoseconds (exact).
    pub total_ns: u64,
}

/// `dss_api_2v0_t`: fields are only ever appended; `size` tells how many
/// the publisher has.
#[repr(C)]
pub struct Api {
    /// `sizeof(dss_api_2v0_t)` of the publisher.
    pub size: usize,
    /// `"DSS API 2v0"`, NUL-terminated.
    pub version: *const c_char,
    /// Registers a library in a state (Lua thread).
    pub reg: RegFn,
    /// The handle of a registered library (Lua thread).
    pub getid: GetIdFn,
    /// Unregisters (any thread).
    pub unreg: UnregFn,
    /// Fire-and-forget delivery (any thread).
    pub post: PostFn,
    /// Blocking delivery (any thread but the Lua thread).
    pub call: CallFn,
    /// Takes a keep-alive reference.
    pub hold: HoldFn,
    /// Drops a keep-alive reference.
    pub release: ReleaseFn,
    /// Copies the utility's counters.
    pub stats: StatsFn,
    /// Live, closed or stale.
    pub status: StatusFn,
    /// A static description of a code.
    pub strerror: StrerrorFn,
    /// Copies the waits of the utility's (or its state's) items. Appended
    /// after `strerror`: check `size` before use.
    pub waits: WaitsFn,
    /// Fire-and-forget delivery of up to [`INLINE_MAX`] bytes carried in
    /// the item (any thread). Appended after `waits`: check `size` before
    /// use ([`Api::has_post_inline`]).
    pub post_inline: PostInlineFn,
    /// Sets the utility's Lua-thread finalizer. Appended after
    /// `post_inline`: check `size` before use ([`Api::has_setfinalizer`]).
    pub setfinalizer: SetFinalizerFn,
}

impl Api {
    /// Whether the publisher's struct has `post_inline` (`DSS2_HAS`).
    pub fn has_post_inline(&self) -> bool {
        self.size >= core::mem::offset_of!(Api, post_inline) + core::mem::size_of::<PostInlineFn>()
    }

    /// The size of the struct without `post_inline`: what a publisher of
    /// 0.1.0 before it had (the least a user of `waits` needs).
    pub const SIZE_WITH_WAITS: usize = core::mem::offset_of!(Api, post_inline);

    /// Whether the publisher's struct has `setfinalizer` (`DSS2_HAS`).
    pub fn has_setfinalizer(&self) -> bool {
        self.size
            >= core::mem::offset_of!(Api, setfinalizer) + core::mem::size_of::<SetFinalizerFn>()
    }
}

// SAFETY: the published struct is an immutable static of the module, valid
// for the life of the process; its fields are function pointers and a
// pointer to a static string, all readable from any thread.
unsafe impl Sync for Api {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for Api {}
