//! Raw Lua C API work, fenced in one place (as in mlua and
//! `darksidesync-lua`'s `raw/`).
//!
//! The rest of the crate goes through mlua's safe API, or through the
//! helpers here when it must push onto (or read from) the stack of a `run`
//! or `reply` callback directly. Each helper says what it does to the
//! stack ("pushes 1", "pops n", "uses n slots") and whether it can raise
//! ("raises only on memory exhaustion": a Lua error then unwinds through
//! the caller, as from mlua's own raw pushes). Room is the caller's to
//! check, with [`reserve`], before it pushes.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the stack: room, top, pops, the stack guard |
//! | `values.rs` | pushing scalars and bytes, reading a plain value, fresh tables |
//! | `registry.rs` | registry references and the named slot values pass through |
//! | `functions.rs` | the C functions a `run` pushes as its delivery: one that raises, one that does nothing |

mod functions;
mod registry;
mod values;

use std::ffi::c_int;

use mlua::ffi;
/// The Lua state, as the C ABI hands it to callbacks.
pub(crate) use mlua::ffi::lua_State;

pub(crate) use functions::*;
pub(crate) use registry::*;
pub(crate) use values::*;

/// Makes room for `n` more slots; false when the stack cannot grow.
/// Cannot raise.
///
/// # Safety
/// `l` is running on this thread.
#[inline]
pub(crate) unsafe fn reserve(l: *mut lua_State, n: c_int) -> bool {
    // SAFETY: per the contract; lua_checkstack reports failure instead
    // of raising.
    unsafe { ffi::lua_checkstack(l, n) != 0 }
}

/// The stack top (the number of values in the current frame). Cannot
/// raise.
///
/// # Safety
/// `l` is running on this thread.
#[inline]
pub(crate) unsafe fn top(l: *mut lua_State) -> c_int {
    // SAFETY: per the contract.
    unsafe { ffi::lua_gettop(l) }
}

/// Sets the top of the current frame to `top` (drops the values above
/// it). Cannot raise.
///
/// # Safety
/// `l` is running on this thread; `top` is at most the current top.
#[inline]
pub(crate) unsafe fn set_top(l: *mut lua_State, top: c_int) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_settop(l, top) }
}

/// Pops `n` values. Cannot raise.
///
/// # Safety
/// `l` is running on this thread with at least `n` values in its frame.
#[inline]
pub(crate) unsafe fn pop(l: *mut lua_State, n: c_int) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_pop(l, n) }
}

/// Sets the top back to where it was before the `n` values now on top
/// when it drops (mlua's `StackGuard`, without the check): a reader that
/// takes those values holds one, so they are popped on every exit.
///
/// A Lua error (a `longjmp`) skips its drop: hold it only where nothing
/// raises.
pub(crate) struct StackGuard {
    l: *mut lua_State,
    top: c_int,
}

impl StackGuard {
    /// Remembers the top below the `n` values on top of `l`.
    ///
    /// # Safety
    /// `l` is running on this thread and stays so while the guard lives,
    /// with at least `n >= 0` values in its frame; nothing pops below
    /// them meanwhile.
    pub(crate) unsafe fn popping(l: *mut lua_State, n: c_int) -> StackGuard {
        // SAFETY: per the contract.
        let top = unsafe { top(l) } - n;
        StackGuard { l, top }
    }
}

impl Drop for StackGuard {
    fn drop(&mut self) {
        // SAFETY: per `popping`'s contract the state is running and its
        // frame holds at least `top` values; settop only drops values
        // above.
        unsafe { set_top(self.l, self.top) }
    }
}
