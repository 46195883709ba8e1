//! The C ABI: DSS API 1v0 (DarkSideSync 1.0 compatible) and 2v0, published
//! in the Lua registry when the module opens. `include/darksidesync.h` is
//! the contract and the table of contents; this module implements it.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | publishing the registry table, finding a state's hub from a raw `lua_State*`, registration, panic guard, pinning utility libraries |
//! | `handles.rs` | the process-global generation-checked table of utilities: what a utilid / `dss2_handle` stands for |
//! | `post.rs` | fire-and-forget deliveries (1v0 `deliver`, 2v0 `post`) as the glue's inline posts |
//! | `item.rs` | blocking deliveries (1v0 `deliver` with a return callback, 2v0 `call`): the [`Task`](crate::item::Task) that calls the utility's decoder or `run` |
//! | `reply.rs` | their answer path: the [`ReplySink`](crate::item::ReplySink) that calls the return or reply callback |
//! | `turns.rs` | a 1v0 blocking delivery's once-only callbacks, shared with the thread blocked in `deliver` |
//! | `running.rs` | which utility's callback the Lua thread runs now: what `unreg()` from another thread waits for |
//! | `finalize.rs` | 2v0 Lua-thread finalizers (`setfinalizer()`), run after `unreg()` or at close |
//! | `v1.rs` | `DSS_api_1v0_t` |
//! | `v2.rs` | `dss_api_2v0_t`: registration, deliveries, keep-alive |
//! | `v2_post.rs` | 2v0's `post` and `post_inline`, and the queueing they share |
//! | `v2_query.rs` | 2v0's `stats`, `waits`, `status`, `strerror` |
//!
//! This layer is thin: the glue runs its items (an inline post, a
//! [`Task`](crate::item::Task)) like every other; the C ABI only maps the
//! utilities' callbacks, handles and codes onto them.
//!
//! # Rules every entry point keeps
//!
//! * Panics never cross the C boundary: every `extern "C"` function runs its
//!   body in [`guard`], which turns a panic into an error code.
//! * Arguments are validated; NULL, zero, stale and garbage handles return
//!   codes (a handle is looked up in the table, never dereferenced).
//! * No lock is held while a utility's callback runs.
//! * A state's close cancels only its own utilities (each utility is a port
//!   of that state's hub; the hub fires their cancel notifications, last
//!   registered first).
//! * Function pointers stay valid: this module is linked `-z nodelete`
//!   (`build.rs`), and every registering utility's shared object is pinned
//!   ([`pin`]), so Lua's `dlclose` at `lua_close` cannot unmap code that is
//!   still called (DarkSideSync 1.0 crashed there).

pub(crate) mod finalize;
pub(crate) mod handles;
mod item;
mod post;
mod reply;
pub(crate) mod running;
pub(crate) mod turns;
pub(crate) mod v1;
pub(crate) mod v2;
mod v2_post;
mod v2_query;

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use darksidesync_core::CancelReason;
use darksidesync_sys as sys;
use mlua::{ffi, LightUserData, Lua, Table};

use crate::raw;
use crate::state::StateHub;
use handles::{Cancel, Handle, Util, Version};

/// Why no usable darksidesync instance was found for a `lua_State*` (or a
/// registration failed), before mapping to a version's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateError {
    /// NULL `lua_State*`.
    NoState,
    /// darksidesync is not loaded in that state.
    NotStarted,
    /// The state's hub has closed.
    Closed,
    /// Out of memory.
    NoMem,
}

/// This module's per-state record, kept in mlua's app data.
struct CapiState {
    id: u64,
    /// The state's main thread (see [`main_thread`]).
    main: *mut ffi::lua_State,
}

static NEXT_STATE: AtomicU64 = AtomicU64::new(1);

/// What the C ABI keeps per state, shared by the state's hub (the Lua
/// thread's side) and its utilities' records (`unreg()`'s side).
#[derive(Default)]
pub(crate) struct PerState {
    pub(crate) running: running::Running,
    pub(crate) finalizers: finalize::Finalizers,
}

impl PerState {
    /// The Lua thread purges its batch (it takes or counts items): a
    /// finalizer's wake-up refused by a full queue goes again.
    #[inline]
    pub(crate) fn purged(&self) {
        self.finalizers.retry();
    }

    /// The state closes, its items gone and its utilities cancelled: the
    /// finalizers still due run (with `state`, while `lua_close` runs
    /// finalisers).
    pub(crate) fn closing(&self, state: Option<*mut mlua::ffi::lua_State>) {
        self.finalizers.run_at_close(state);
    }
}

/// Registry key of the state's closing flag (`prelude.lua`'s `closing`
/// table), which the entry points taking a `lua_State*` read raw: once
/// lua_close runs finalisers mlua's per-state data may be gone.
pub(crate) const CLOSING_KEY: &std::ffi::CStr = c"darksidesync.closing";

/// Runs `f`, turning a panic into `fallback` (never unwinding into C).
pub(crate) fn guard<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Publishes `registry["DSS.DarkSideSync"]` in `lua` (on every open; the
/// pointers are the same process-wide statics).
pub(crate) fn publish(lua: &Lua) -> mlua::Result<()> {
    if lua.app_data_ref::<CapiState>().is_none() {
        let mut main = std::ptr::null_mut();
        // SAFETY: exec_raw hands us a running state of this Lua on its
        // thread with free slots; main_thread uses one and cannot raise.
        unsafe {
            lua.exec_raw::<()>((), |state| main = raw::main_thread(state))?;
        }
        lua.set_app_data(CapiState {
            id: NEXT_STATE.fetch_add(1, Ordering::Relaxed),
            main,
        });
    }
    // The entry points taking a lua_State* read the closing flag raw.
    let st = crate::state::StateHub::get(lua)?;
    lua.set_named_registry_value(
        CLOSING_KEY.to_str().unwrap_or_default(),
        st.helpers.closing.clone(),
    )?;
    let t: Table = lua.create_table()?;
    t.raw_set(sys::VERSION_KEY, sys::VERSION)?;
    t.raw_set(
        sys::v1::API_KEY,
        LightUserData(&v1::API as *const v1::Api as *mut c_void),
    )?;
    t.raw_set(
        sys::v2::API_KEY,
        LightUserData(&v2::API as *const v2::Api as *mut c_void),
    )?;
    lua.set_named_registry_value(sys::REGISTRY_NAME, t)
}

/// The main thread of `lua`'s state: what a 1v0 return callback gets as
/// `L` when its reply userdata is collected uncalled (a collection runs on
/// the Lua thread but hands the module no state).
pub(crate) fn main_thread(lua: &Lua) -> *mut ffi::lua_State {
    lua.app_data_ref::<CapiState>()
        .map_or(std::ptr::null_mut(), |s| s.main)
}

/// The hub and identity of the darksidesync instance running in `l`.
///
/// # Safety
/// `l` is a valid state (any thread/coroutine of it) and this is the Lua
/// thread, not inside a Lua error unwind: the caller's C contract.
pub(crate) unsafe fn state_of(l: *mut ffi::lua_State) -> Result<(Rc<StateHub>, u64), StateError> {
    if l.is_null() {
        return Err(StateError::NoState);
    }
    // SAFETY: `l` is valid on this thread (contract).
    let Some(published) = (unsafe { raw::registry_field_is_table(l, sys::REGISTRY_NAME_C) }) else {
        return Err(StateError::NoMem);
    };
    if !published {
        return Err(StateError::NotStarted);
    }
    // SAFETY: as above.
    if unsafe { raw::registry_flag(l, CLOSING_KEY) } != Some(false) {
        // lua_close runs finalisers: mlua's data may be gone already.
        return Err(StateError::Closed);
    }
    // SAFETY: the table is there, so this module's mlua instance was
    // initialised in this state (by our luaopen) and the pointer finds it.
    let lua = unsafe { Lua::get_or_init_from_ptr(l) };
    let id = match lua.app_data_ref::<CapiState>() {
        Some(s) => s.id,
        None => return Err(StateError::NotStarted),
    };
    let st = match lua.app_data_ref::<Rc<StateHub>>() {
        Some(st) => Rc::clone(&st),
        None => return Err(StateError::NotStarted),
    };
    if st.hub.is_closed() {
        return Err(StateError::Closed);
    }
    // This runs on the state's Lua thread (the contract of every entry
    // point taking a state): a host may have moved the state to another
    // thread, and the would-deadlock check of blocking deliveries must
    // follow it.
    st.hub.bind_consumer();
    Ok((st, id))
}

/// Registers a utility with the state's hub and the handle table.
pub(crate) fn register(
    st: &StateHub,
    state: u64,
    api: Version,
    libid: usize,
    name: String,
    cancel: Cancel,
) -> Result<Arc<Util>, StateError> {
    let Some(handle) = handles::reserve() else {
        return Err(StateError::NoMem);
    };
    let port = match st.register(name, move |reason| on_cancel(handle, reason)) {
        Ok(p) => p,
        Err(_) => {
            handles::release(handle);
            return Err(StateError::Closed);
        }
    };
    let util = Arc::new(Util {
        api,
        state,
        libid,
        handle,
        port,
        closed: AtomicBool::new(false),
        keep: Mutex::new(Vec::new()),
        cancel,
        pinned: AtomicBool::new(false),
        gone: crate::sync::AtomicBool::new(false),
        shared: st.producers.clone(),
    });
    handles::fill(handle, util.clone());
    Ok(util)
}

/// The hub's cancel notification of a utility's port.
fn on_cancel(handle: Handle, reason: CancelReason) {
    guard((), || {
        if reason != CancelReason::HubClosed {
            return; // unregistered by the utility itself: it knows
        }
        let Some(util) = handles::get(handle) else {
            return;
        };
        util.closed.store(true, Ordering::Release);
        drop(std::mem::take(&mut *util.keep_alive()));
        match util.cancel {
            // SAFETY: the utility's cancel callback, called once (the hub
            // fires each port's notification once), with its own utilid.
            Cancel::V1(cancel) => unsafe { cancel(handles::to_utilid(handle)) },
            // SAFETY: likewise, with the handle and the `ud` it gave us.
            Cancel::V2(Some(cancel), ud) => unsafe { cancel(handle, ud.0) },
            Cancel::V2(None, _) => {}
        }
    })
}

/// Unregisters (live) or forgets (closed) the utility of `h`. False when
/// `h` is stale.
pub(crate) fn unregister(h: Handle) -> bool {
    let Some(util) = handles::release(h) else {
        return false;
    };
    // No callback of it starts from now on (see `running.rs`).
    util.shared.running.forbid(&util.gone);
    // Queued items are cancelled here, on this thread; blocked callers
    // are released. The port's cancel notification sees `Unregistered`.
    util.port.unregister();
    drop(std::mem::take(&mut *util.keep_alive()));
    if !util.port.is_closed() && !util.port.on_consumer_thread() {
        // One running now is waited for (not on the Lua thread: from
        // inside a callback it would wait for itself).
        util.shared.running.wait_out(h);
    }
    util.shared.finalizers.unregistered(h);
    true
}

/// Gives the state's finalizers their wake-up port (registered on first
/// use: one port per state with a 2v0 utility).
pub(crate) fn bind_finalizers(st: &StateHub) {
    st.producers
        .finalizers
        .bind_port(|| st.hub.register("darksidesync.finalizers", |_| {}).ok());
}

/// Pins the shared object that contains `f` for the life of the process,
/// so Lua's `dlclose` (at `lua_close`) cannot unmap a utility whose
/// callbacks darksidesync still holds.
pub(crate) fn pin(f: *const c_void) {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct DlInfo {
            fname: *const std::ffi::c_char,
            fbase: *mut c_void,
            sname: *const std::ffi::c_char,
            saddr: *mut c_void,
        }
        extern "C" {
            fn dladdr(addr: *const c_void, info: *mut DlInfo) -> std::ffi::c_int;
            fn dlopen(filename: *const std::ffi::c_char, flags: std::ffi::c_int) -> *mut c_void;
        }
        const RTLD_NOW: std::ffi::c_int = 2;
        const RTLD_NOLOAD: std::ffi::c_int = 4;
        const RTLD_NODELETE: std::ffi::c_int = 0x1000;
        let mut info = DlInfo {
            fname: std::ptr::null(),
            fbase: std::ptr::null_mut(),
            sname: std::ptr::null(),
            saddr: std::ptr::null_mut(),
        };
        // SAFETY: dladdr only reads the address value and fills `info`.
        if unsafe { dladdr(f, &mut info) } == 0 || info.fname.is_null() {
            return;
        }
        // SAFETY: fname is the NUL-terminated path dladdr returned for an
        // object that is loaded now; NOLOAD never loads anything new, it
        // only adds a reference and the NODELETE flag to that object. The
        // handle is deliberately never closed.
        unsafe { dlopen(info.fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Pins the object of `f` once per utility (2v0 utilities may register
/// without a cancel callback; their first item's callback is pinned then).
pub(crate) fn pin_once(util: &Util, f: *const c_void) {
    // Checked first: a swap per post would write the record's cache line,
    // which every producer and the Lua thread read.
    if !util.pinned.load(Ordering::Acquire) && !util.pinned.swap(true, Ordering::AcqRel) {
        pin(f);
    }
}
