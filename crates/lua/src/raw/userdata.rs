//! Lua-owned blocks: full userdata holding a Rust value (dropped by
//! their `__gc`), and pointer cells read by C closures.

use std::ffi::{c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::{ffi, Function, Lua, Value};

/// A Rust value kept in a Lua full userdata by [`new_userdata_with`].
pub(crate) trait RawUserdata: Default {
    /// The registry field holding the type's metatable (its `__gc` is
    /// [`drop_userdata`]); also the type's identity.
    const METATABLE: &'static CStr;
}

/// Creates a full userdata holding `value` whose metatable is the
/// registry's field `T::METATABLE` (a table the caller stored there, with
/// [`gc_metamethod`] as its `__gc`), in one call into Lua. Pushes nothing
/// (mlua moves the value to its own reference), can raise out of memory
/// (as an `Err`).
///
/// The block is owned by Lua: `T` is dropped by its `__gc`, never by Rust.
/// `value` goes into the block only once the metatable (and so its
/// `__gc`) is set: should anything raise before, it is still in this
/// frame and Rust drops it.
pub(crate) fn new_userdata_with<T: RawUserdata>(lua: &Lua, value: T) -> mlua::Result<Value> {
    let mut value = Some(value);
    let slot = &mut value;
    // SAFETY: runs in mlua's protected call with 3 free slots; uses 2
    // (the userdata, then the metatable that setmetatable pops). The
    // block is initialised right after allocation, before anything else
    // can raise, with `T::default()`, which owns no resource a longjmp
    // could leak; nothing raises after the metatable is set, and only
    // then is the default (dropped in place, owning nothing) replaced by
    // `value`, taken out of `slot`: a raise before that leaves `value` in
    // this frame, which the longjmp does not skip (it stops at mlua's
    // protected call inside `exec_raw`).
    let created = unsafe {
        lua.exec_raw::<Value>((), |state| {
            let p = ffi::lua_newuserdata(state, std::mem::size_of::<T>()) as *mut T;
            p.write(T::default());
            ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, T::METATABLE.as_ptr());
            ffi::lua_setmetatable(state, -2);
            if let Some(v) = slot.take() {
                *p = v;
            }
        })
    };
    drop(value);
    created
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
/// [`new_userdata_with`] for `T`; `None` for any other value. `f` must not run
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
    // SAFETY: the block holds an initialised `T` (made by new_userdata_with)
    // and `value` keeps it alive during `f`; `f` runs no Lua code, so no
    // other reference to the block exists meanwhile.
    unsafe { block.as_mut() }.map(f)
}

/// The `__gc` metamethod for `T`'s metatable ([`drop_userdata`]).
pub(crate) fn gc_metamethod<T: RawUserdata>(lua: &Lua) -> mlua::Result<Function> {
    // SAFETY: drop_userdata checks the type of its argument itself.
    unsafe { lua.create_c_function(drop_userdata::<T>) }
}

/// A `__gc` for userdata made by [`new_userdata_with`]: replaces the block's
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
