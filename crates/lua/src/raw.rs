//! Raw Lua C API work, fenced in one place (mlua style).
//!
//! Everything else in the glue goes through mlua's safe API; the few paths
//! that need the C API directly (the `poll()` fast path, the `dispatch()`
//! run loop, the reply userdata) call the helpers here. Each helper says
//! what it does to the stack ("pushes 1", "uses N slots") and whether it can
//! raise; a function that can raise is only called when no Rust value with a
//! destructor is alive in the frames a `longjmp` would skip.

use std::ffi::{c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::{ffi, Function, IntoLuaMulti, Lua, RegistryKey, Value};

use crate::data::Data;

/// The message every darksidesync function raises once the state's
/// finalisers run at `lua_close` (see `prelude.lua`: a guard object created
/// at the first `require` sets the closing flag from its `__gc`).
pub(crate) const CLOSING_C: &CStr = c"darksidesync: state is closing";

/// Raises the value on top of the stack as the error.
///
/// # Safety
/// `state` is running with a value on top; no Rust value with a
/// destructor is alive in the frames the error skips.
pub(crate) unsafe fn raise_top(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: per the contract.
    unsafe { ffi::lua_error(state) }
}

/// Pushes a non-string [`Data`]: pushes 1, cannot raise.
///
/// # Safety
/// `state` is the running state and has a free stack slot.
pub(crate) unsafe fn push_scalar(state: *mut ffi::lua_State, value: &Data) {
    // SAFETY: per the function's contract.
    unsafe {
        match value {
            Data::Nil | Data::String(_) => ffi::lua_pushnil(state),
            Data::Boolean(b) => ffi::lua_pushboolean(state, *b as c_int),
            #[cfg(any(feature = "lua53", feature = "lua54"))]
            Data::Integer(i) => ffi::lua_pushinteger(state, *i as ffi::lua_Integer),
            #[cfg(not(any(feature = "lua53", feature = "lua54")))]
            Data::Integer(i) => ffi::lua_pushnumber(state, *i as ffi::lua_Number),
            Data::Number(n) => ffi::lua_pushnumber(state, *n as ffi::lua_Number),
        }
    }
}

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

/// A Rust value kept in a Lua full userdata by [`new_userdata`].
pub(crate) trait RawUserdata: Default {
    /// The registry field holding the type's metatable (its `__gc` is
    /// [`drop_userdata`]); also the type's identity.
    const METATABLE: &'static CStr;
}

/// Creates a full userdata holding `T::default()` whose metatable is the
/// registry's field `T::METATABLE` (a table the caller stored there, with
/// [`gc_metamethod`] as its `__gc`). Pushes nothing (mlua moves the value
/// to its own reference), can raise out of memory (as an `Err`).
///
/// The block is owned by Lua: `T` is dropped by its `__gc`, never by Rust.
pub(crate) fn new_userdata<T: RawUserdata>(lua: &Lua) -> mlua::Result<Value> {
    // SAFETY: runs in mlua's protected call with 3 free slots; uses 2
    // (the userdata, then the metatable that setmetatable pops). The
    // block is initialised right after allocation, before anything else
    // can raise, and `T::default()` owns no resource a longjmp could leak.
    unsafe {
        lua.exec_raw::<Value>((), |state| {
            let p = ffi::lua_newuserdata(state, std::mem::size_of::<T>()) as *mut T;
            p.write(T::default());
            ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, T::METATABLE.as_ptr());
            ffi::lua_setmetatable(state, -2);
        })
    }
}

/// Creates a full userdata without a metatable holding the pointer `p`:
/// a cell that a C closure holding it as an upvalue reads with
/// [`cell_pointer`] and [`clear_cell`] sets to null. Lua owns the block;
/// it stays valid while any closure holds it, and during `lua_close`
/// until every finaliser has run. Can raise out of memory (as an `Err`).
pub(crate) fn new_pointer_cell(lua: &Lua, p: *const c_void) -> mlua::Result<Value> {
    // SAFETY: runs in mlua's protected call with free slots; pushes the
    // block, which is written before anything else can raise.
    unsafe {
        lua.exec_raw::<Value>((), |state| {
            let cell = ffi::lua_newuserdata(state, std::mem::size_of::<*const c_void>());
            cell.cast::<*const c_void>().write(p);
        })
    }
}

/// The pointer in the cell at `index` (made by [`new_pointer_cell`]).
///
/// # Safety
/// `index` holds such a cell (an upvalue of the running C closure, say).
#[inline]
pub(crate) unsafe fn cell_pointer(state: *mut ffi::lua_State, index: c_int) -> *const c_void {
    // SAFETY: per the contract the block holds a pointer.
    unsafe { *ffi::lua_touserdata(state, index).cast::<*const c_void>() }
}

/// Sets the cell at `index` to null.
///
/// # Safety
/// As [`cell_pointer`].
pub(crate) unsafe fn clear_cell(state: *mut ffi::lua_State, index: c_int) {
    // SAFETY: per the contract the block holds a pointer.
    unsafe {
        ffi::lua_touserdata(state, index)
            .cast::<*const c_void>()
            .write(std::ptr::null())
    };
}

/// Runs `f` on the `T` inside `value` when it is a userdata made by
/// [`new_userdata`] for `T`; `None` for any other value. `f` must not run
/// Lua code (which could reach the same block again): take what you need
/// out of the block and use it after `f` returns.
pub(crate) fn with_userdata<T: RawUserdata, R>(
    lua: &Lua,
    value: &Value,
    f: impl FnOnce(&mut T) -> R,
) -> Option<R> {
    if !matches!(value, Value::UserData(_)) {
        return None;
    }
    let mut block: *mut T = std::ptr::null_mut();
    // SAFETY: mlua's protected call with the value at index 1 and 3 free
    // slots; block_at uses 2 and cannot raise.
    let checked = unsafe {
        lua.exec_raw::<()>(value.clone(), |state| {
            block = block_at::<T>(state, 1);
        })
    };
    checked.ok()?;
    // SAFETY: the block holds an initialised `T` (made by new_userdata)
    // and `value` keeps it alive during `f`; `f` runs no Lua code, so no
    // other reference to the block exists meanwhile.
    unsafe { block.as_mut() }.map(f)
}

/// The `__gc` metamethod for `T`'s metatable ([`drop_userdata`]).
pub(crate) fn gc_metamethod<T: RawUserdata>(lua: &Lua) -> mlua::Result<Function> {
    // SAFETY: drop_userdata checks the type of its argument itself.
    unsafe { lua.create_c_function(drop_userdata::<T>) }
}

/// A `__gc` for userdata made by [`new_userdata`]: replaces the block's
/// value with `T::default()` and drops the old one, catching a panic (the
/// drop of a reply sink runs foreign code). Leaves the block valid, so a
/// finaliser that still holds the userdata at `lua_close` sees an empty
/// one, never freed memory. Pushes nothing, cannot raise.
unsafe extern "C-unwind" fn drop_userdata<T: RawUserdata>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua has LUA_MINSTACK free slots; the
    // type check keeps `getmetatable(x).__gc(other)` (through the debug
    // library) from touching a foreign block.
    let block = unsafe { block_at::<T>(state, 1) };
    if !block.is_null() {
        // SAFETY: as above; the old value is moved out exactly once.
        let old = unsafe { block.replace(T::default()) };
        let _ = catch_unwind(AssertUnwindSafe(move || drop(old)));
    }
    0
}

/// The block of the value at `index` when it is a userdata whose metatable
/// is `T::METATABLE`, else null. Uses 2 slots temporarily, leaves the stack
/// as it was, cannot raise.
///
/// # Safety
/// `state` is running and has 2 free slots; `index` is absolute.
unsafe fn block_at<T: RawUserdata>(state: *mut ffi::lua_State, index: c_int) -> *mut T {
    // SAFETY: none of these calls raises; both pushed values are popped.
    unsafe {
        if ffi::lua_getmetatable(state, index) == 0 {
            return std::ptr::null_mut();
        }
        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, T::METATABLE.as_ptr());
        let same = ffi::lua_rawequal(state, -1, -2) != 0;
        ffi::lua_pop(state, 2);
        if same {
            ffi::lua_touserdata(state, index) as *mut T
        } else {
            std::ptr::null_mut()
        }
    }
}

/// Runs the module opener `open` (a C function that raises mlua's error
/// object on failure) in protected mode and re-raises a failure as a plain
/// string, so that `require` never gets a non-string error. On success the
/// module table is on top: returns 1.
///
/// # Safety
/// `state` is running inside the `luaopen_*` C function Lua called; no
/// Rust value with a destructor is alive in the calling frames.
#[cfg(feature = "module")]
pub(crate) unsafe fn open_protected(
    state: *mut ffi::lua_State,
    open: unsafe extern "C-unwind" fn(*mut ffi::lua_State) -> c_int,
) -> c_int {
    // SAFETY: a C function has LUA_MINSTACK free slots; pcall catches
    // the opener's errors; luaL_tolstring may raise (out of memory) with
    // no Rust value alive here.
    unsafe {
        ffi::lua_settop(state, 0);
        ffi::lua_pushcfunction(state, open);
        if ffi::lua_pcall(state, 0, 1, 0) == 0 {
            return 1;
        }
        if ffi::lua_type(state, -1) != ffi::LUA_TSTRING {
            let mut len = 0usize;
            let text = ffi::luaL_tolstring(state, -1, &mut len);
            let mut bytes = std::slice::from_raw_parts(text as *const u8, len);
            // mlua's text of an error from a callback: "runtime error: "
            // before the message, the callback's traceback after it.
            if let Some(rest) = bytes.strip_prefix(b"runtime error: ") {
                bytes = rest;
            }
            let traceback = b"\nstack traceback";
            let end = bytes.windows(traceback.len()).position(|w| w == traceback);
            let bytes = &bytes[..end.unwrap_or(bytes.len())];
            ffi::lua_pushlstring(state, bytes.as_ptr() as *const _, bytes.len());
        }
        ffi::lua_error(state)
    }
}

/// A C closure of `f` with `upvalues` (pushed in order) as its upvalues.
/// Can raise out of memory (as an `Err`).
///
/// # Safety
/// `f` reads at most `upvalues`' count of upvalues, with the types pushed.
pub(crate) unsafe fn c_closure(
    lua: &Lua,
    f: unsafe extern "C-unwind" fn(*mut ffi::lua_State) -> c_int,
    upvalues: impl IntoLuaMulti,
) -> mlua::Result<Function> {
    // SAFETY: exec_raw pushes the upvalues at 1..=n; pushcclosure pops
    // them and pushes the closure, which exec_raw returns.
    unsafe {
        lua.exec_raw(upvalues, |state| {
            let n = ffi::lua_gettop(state);
            ffi::lua_pushcclosure(state, f, n)
        })
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

/// Calls the top `n` values (a function then `n - 1` arguments) with the
/// message handler at `handler`, and drops their results or the error:
/// pops the `n` values, cannot raise. Returns false when the call failed.
///
/// # Safety
/// `state` is running, `n >= 1` values are on top, `handler` is absolute.
pub(crate) unsafe fn pcall_top(state: *mut ffi::lua_State, n: c_int, handler: c_int) -> bool {
    // SAFETY: per the contract; pcall pops the function and its
    // arguments and leaves only an error value, which is popped.
    unsafe {
        if ffi::lua_pcall(state, n - 1, 0, handler) != 0 {
            ffi::lua_pop(state, 1);
            return false;
        }
        true
    }
}

/// Pushes `count`, the callback in the registry slot `key` and `arg`:
/// pushes 3, cannot raise.
///
/// # Safety
/// `state` is running with 3 free slots; `key` as in
/// [`push_registry_value`].
pub(crate) unsafe fn push_count_callback_arg(
    state: *mut ffi::lua_State,
    count: i64,
    key: &RegistryKey,
    arg: &Data,
) {
    // SAFETY: per the contract; none of these calls raises.
    unsafe {
        ffi::lua_pushinteger(state, count as ffi::lua_Integer);
        push_registry_value(state, key);
        push_scalar(state, arg);
    }
}

/// Replaces the value on top with the table `{ [1] = value, n = 1 }`,
/// `poll()`'s `args`. The key `n` is the string at `n_key` (an interned
/// upvalue, so no string lookup per call). Both fields go to a hash part
/// of two nodes: one allocation fewer than an array part for `[1]` plus a
/// hash part for `n`, and `args[1]` reads the same. Uses 2 more slots;
/// can raise (out of memory).
///
/// # Safety
/// `state` is running with 2 free slots; no Rust value with a destructor
/// is alive in the frames an error would skip.
pub(crate) unsafe fn wrap_in_args_table(state: *mut ffi::lua_State, n_key: c_int) {
    // SAFETY: per the contract.
    unsafe {
        ffi::lua_createtable(state, 0, 2);
        ffi::lua_insert(state, -2);
        ffi::lua_rawseti(state, -2, 1);
        ffi::lua_pushvalue(state, n_key);
        ffi::lua_pushinteger(state, 1);
        ffi::lua_rawset(state, -3);
    }
}

/// Replaces the top `k` values with the table `{ ..., n = k }` holding
/// them (`poll()`'s `args`; `n_key` as in [`wrap_in_args_table`], which
/// builds the one-value shape). Uses 3 more slots; can raise (out of
/// memory).
///
/// # Safety
/// `state` is running with `k` values on top and 3 free slots; no Rust
/// value with a destructor is alive in the frames an error would skip.
pub(crate) unsafe fn args_table_of_top(state: *mut ffi::lua_State, k: c_int, n_key: c_int) {
    if k == 1 {
        // SAFETY: per the contract (it needs 2 of the 3 slots).
        return unsafe { wrap_in_args_table(state, n_key) };
    }
    // SAFETY: per the contract; the values are at `first..first + k`.
    unsafe {
        let first = ffi::lua_gettop(state) - k + 1;
        ffi::lua_createtable(state, k, 1);
        for i in 0..k {
            ffi::lua_pushvalue(state, first + i);
            ffi::lua_rawseti(state, -2, (i + 1) as _);
        }
        ffi::lua_pushvalue(state, n_key);
        ffi::lua_pushinteger(state, k as ffi::lua_Integer);
        ffi::lua_rawset(state, -3);
        if k > 0 {
            ffi::lua_replace(state, first);
            ffi::lua_settop(state, first);
        }
    }
}

/// Calls the function at `function` with no arguments and keeps all its
/// results on top; returns their number. Can raise (whatever the function
/// raises).
///
/// # Safety
/// `state` is running with a free slot; no Rust value with a destructor is
/// alive in the frames an error would skip.
pub(crate) unsafe fn call_all_results(state: *mut ffi::lua_State, function: c_int) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        let base = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, function);
        ffi::lua_call(state, 0, ffi::LUA_MULTRET);
        ffi::lua_gettop(state) - base
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

/// Sets the stack top to `top`, filling new slots with nil: cannot raise.
///
/// # Safety
/// `state` is running; `top` is at most the current top or within the
/// reserved slots.
pub(crate) unsafe fn set_top(state: *mut ffi::lua_State, top: c_int) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_settop(state, top) }
}
