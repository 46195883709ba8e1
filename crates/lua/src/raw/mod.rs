//! Raw Lua C API work, fenced in one place (mlua style).
//!
//! Everything else in the glue goes through mlua's safe API; the few paths
//! that need the C API directly (the item loop, the `poll()` fast path,
//! the reply userdata, the C ABI's frames, the interrupt hook) call the
//! helpers here and in the submodules. Each helper says what it does to the
//! stack ("pushes 1", "uses N slots") and whether it can raise; a function
//! that can raise is only called when no Rust value with a destructor is
//! alive in the frames a `longjmp` would skip. A frame that pushes and
//! pops per item restores its top with a [`StackGuard`], on every exit.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the stack guard, calls under a message handler, registry reads, hooks |
//! | `args.rs` | `poll()`'s values: a scalar, the count, the `args` table |
//! | `frames.rs` | fresh C frames: the opener, C closures, a producer's pushes, values handed to a callback |
//! | `userdata.rs` | Lua-owned blocks: userdata holding Rust values, pointer cells |

mod args;
mod frames;
mod userdata;

use std::ffi::{c_int, CStr};

use mlua::{ffi, RegistryKey};

use crate::data::Data;

pub(crate) use args::*;
pub(crate) use frames::*;
pub(crate) use userdata::*;

/// Restores the stack top it found when it drops (mlua's `StackGuard`,
/// without the check): a loop body that pushes per item holds one, so the
/// stack is back where it was on every exit from the body.
///
/// A Lua error (a `longjmp`) skips its drop: hold it only where nothing
/// raises, or where the protected boundary resets the stack anyway.
pub(crate) struct StackGuard {
    state: *mut ffi::lua_State,
    top: c_int,
}

impl StackGuard {
    /// Remembers the current top of `state`.
    ///
    /// # Safety
    /// `state` is running on this thread and stays so while the guard
    /// lives; nothing pops below the remembered top meanwhile.
    pub(crate) unsafe fn new(state: *mut ffi::lua_State) -> StackGuard {
        // SAFETY: per the contract.
        let top = unsafe { ffi::lua_gettop(state) };
        StackGuard { state, top }
    }
}

impl Drop for StackGuard {
    fn drop(&mut self) {
        // SAFETY: per `new`'s contract the state is running and its stack
        // holds at least `top` values; settop only drops values above.
        unsafe { ffi::lua_settop(self.state, self.top) }
    }
}

/// The stack top (the number of values in the current frame).
///
/// # Safety
/// `state` is running on this thread.
#[inline]
pub(crate) unsafe fn top(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: per the contract.
    unsafe { ffi::lua_gettop(state) }
}

/// The pseudo-index of the running C closure's upvalue `i`.
#[inline]
pub(crate) fn upvalue(i: c_int) -> c_int {
    ffi::lua_upvalueindex(i)
}

/// Moves the value on top to `index`, shifting the values above it up:
/// cannot raise.
///
/// # Safety
/// `state` is running; `index` is a valid stack index.
pub(crate) unsafe fn insert(state: *mut ffi::lua_State, index: c_int) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_insert(state, index) }
}

/// Whether `registry[name]` is a table: uses 1 slot, leaves the stack as
/// it was, cannot raise; `None` when the stack cannot grow.
///
/// # Safety
/// `state` is a valid state running on this thread.
pub(crate) unsafe fn registry_field_is_table(
    state: *mut ffi::lua_State,
    name: &CStr,
) -> Option<bool> {
    // SAFETY: per the contract; the registry has no metatable and the
    // key string is pushed first, so rawget cannot raise (but for memory,
    // the key being short and usually interned).
    unsafe {
        if ffi::lua_checkstack(state, 2) == 0 {
            return None;
        }
        ffi::lua_pushstring(state, name.as_ptr());
        ffi::lua_rawget(state, ffi::LUA_REGISTRYINDEX);
        let is_table = ffi::lua_type(state, -1) == ffi::LUA_TTABLE;
        ffi::lua_pop(state, 1);
        Some(is_table)
    }
}

/// Whether `registry[name][1]` is true (`None`: no stack room). Uses 2
/// slots, cannot raise.
///
/// # Safety
/// `state` is a valid state on its thread.
pub(crate) unsafe fn registry_flag(state: *mut ffi::lua_State, name: &CStr) -> Option<bool> {
    // SAFETY: per the contract; the registry and the flag table have no
    // metatable, so raw reads cannot raise (but for memory, see above).
    unsafe {
        if ffi::lua_checkstack(state, 2) == 0 {
            return None;
        }
        ffi::lua_pushstring(state, name.as_ptr());
        ffi::lua_rawget(state, ffi::LUA_REGISTRYINDEX);
        let set = ffi::lua_type(state, -1) == ffi::LUA_TTABLE && {
            ffi::lua_rawgeti(state, -1, 1);
            let set = ffi::lua_toboolean(state, -1) != 0;
            ffi::lua_pop(state, 1);
            set
        };
        ffi::lua_pop(state, 1);
        Some(set)
    }
}

/// The main thread of the state `state` belongs to (on 5.1, which keeps
/// none in the registry, `state` itself: the thread the module is opened
/// in, as mlua takes it). Uses 1 slot, cannot raise.
///
/// # Safety
/// `state` is running on this thread with a free slot.
pub(crate) unsafe fn main_thread(state: *mut ffi::lua_State) -> *mut ffi::lua_State {
    #[cfg(any(feature = "lua52", feature = "lua53", feature = "lua54"))]
    // SAFETY: per the contract; rawgeti on the registry does not raise.
    unsafe {
        ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_MAINTHREAD);
        let main = ffi::lua_tothread(state, -1);
        ffi::lua_pop(state, 1);
        main
    }
    #[cfg(not(any(feature = "lua52", feature = "lua53", feature = "lua54")))]
    state
}

/// A hook function, as `lua_sethook` takes it.
pub(crate) type Hook = unsafe extern "C-unwind" fn(*mut ffi::lua_State, *mut ffi::lua_Debug);

/// Sets `hook` on `state` for calls, returns and every `count`
/// instructions (`calls`), or for every `count` instructions only; `None`
/// removes it. `lua_sethook` only stores fields: it may run in a signal
/// handler (as the stock `lua` does at Ctrl-C).
///
/// # Safety
/// `state` is open and owned by this thread.
pub(crate) unsafe fn set_hook(
    state: *mut ffi::lua_State,
    hook: Option<Hook>,
    calls: bool,
    count: c_int,
) {
    let mask = match (hook, calls) {
        (None, _) => 0,
        (Some(_), true) => ffi::LUA_MASKCALL | ffi::LUA_MASKRET | ffi::LUA_MASKCOUNT,
        (Some(_), false) => ffi::LUA_MASKCOUNT,
    };
    // SAFETY: per the contract. `lua_sethook` returns an int before Lua
    // 5.3 and nothing after: its result is not used.
    unsafe {
        ffi::lua_sethook(state, hook, mask, count);
    }
}

/// The message every darksidesync function raises once the state's
/// finalisers run at `lua_close` (see `prelude.lua`: a guard object created
/// at the first `require` sets the closing flag from its `__gc`).
pub(crate) const CLOSING_C: &CStr = c"darksidesync: state is closing";
/// Raises `text` as a plain string error. Never returns.
///
/// # Safety
/// `state` is running inside a C function called by Lua, with a free slot,
/// and no Rust value with a destructor is alive in the frames between here
/// and that C function's caller.
pub(crate) unsafe fn raise(state: *mut ffi::lua_State, text: &CStr) -> c_int {
    // SAFETY: per the function's contract: the longjmp skips only
    // frames without destructors.
    unsafe {
        ffi::lua_pushstring(state, text.as_ptr());
        ffi::lua_error(state)
    }
}
/// Makes room for `n` more slots; false when the stack cannot grow. Cannot
/// raise.
///
/// # Safety
/// `state` is running.
pub(crate) unsafe fn reserve(state: *mut ffi::lua_State, n: c_int) -> bool {
    // SAFETY: lua_checkstack reports failure instead of raising.
    unsafe { ffi::lua_checkstack(state, n) != 0 }
}

/// Pushes the value of the registry slot `key`: pushes 1, cannot raise.
///
/// # Safety
/// `state` is running, has a free slot, and `key` belongs to this state
/// and stays alive while the value is read.
pub(crate) unsafe fn push_registry_value(state: *mut ffi::lua_State, key: &RegistryKey) {
    // SAFETY: rawgeti on the registry (a table without metamethods).
    unsafe {
        ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, key.id() as _);
    }
}

/// Replaces the value at `index` with the registry slot `key`'s value.
/// Leaves the stack size as it was (uses 1 slot), cannot raise.
///
/// # Safety
/// As [`push_registry_value`]; `index` is a valid absolute index.
pub(crate) unsafe fn replace_with_registry_value(
    state: *mut ffi::lua_State,
    index: c_int,
    key: &RegistryKey,
) {
    // SAFETY: per the contract; replace pops the pushed value.
    unsafe {
        push_registry_value(state, key);
        ffi::lua_replace(state, index);
    }
}

/// Calls the function at `function` with the scalar `arg`, with the
/// message handler at `handler`, and drops its results or its error: uses
/// 2 slots, leaves the stack as it was, cannot raise (lua_pcall catches
/// the callback's errors). Returns false when the callback failed.
///
/// # Safety
/// `state` is running and has 2 free slots; both indices are absolute.
pub(crate) unsafe fn pcall_scalar(
    state: *mut ffi::lua_State,
    function: c_int,
    handler: c_int,
    arg: &Data,
) -> bool {
    // SAFETY: per the contract; pcall with no results pops the function
    // and its argument and leaves only an error value, which is popped.
    unsafe {
        ffi::lua_pushvalue(state, function);
        push_scalar(state, arg);
        if ffi::lua_pcall(state, 1, 0, handler) != 0 {
            ffi::lua_pop(state, 1);
            return false;
        }
        true
    }
}

/// Pushes an integer: pushes 1, cannot raise.
///
/// # Safety
/// `state` is running with a free slot.
pub(crate) unsafe fn push_integer(state: *mut ffi::lua_State, n: i64) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_pushinteger(state, n as ffi::lua_Integer) }
}

/// Pushes nil: pushes 1, cannot raise.
///
/// # Safety
/// `state` is running with a free slot.
pub(crate) unsafe fn push_nil(state: *mut ffi::lua_State) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_pushnil(state) }
}
