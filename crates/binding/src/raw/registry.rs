//! The registry: values by reference (a [`LuaCallback`](crate::LuaCallback)'s
//! function), and a named slot values pass through between mlua and the
//! raw stack (`callback.rs`'s mailbox).
//!
//! The registry has no metatable: raw reads and writes, with string keys
//! pushed by `lua_getfield`/`lua_setfield` (raising only on memory
//! exhaustion, for the key string).

use std::ffi::{c_int, CStr};

use mlua::ffi::{self, lua_State};

/// Pushes the value of the registry reference `id` (`luaL_ref`, mlua's
/// `RegistryKey::id`): pushes 1, cannot raise.
///
/// # Safety
/// `l` is running on this thread with a free slot; `id` is a reference
/// of this state, alive while the value is read.
#[inline]
pub(crate) unsafe fn push_registry_ref(l: *mut lua_State, id: c_int) {
    // SAFETY: per the contract; rawgeti on the registry.
    unsafe {
        ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, id as _);
    }
}

/// Pushes `registry[name]` and empties the slot: pushes 1 (uses 2 slots),
/// raises only on memory exhaustion.
///
/// # Safety
/// `l` is running on this thread with 2 free slots.
pub(crate) unsafe fn take_registry_field(l: *mut lua_State, name: &CStr) {
    // SAFETY: per the contract; setfield pops the nil it is given.
    unsafe {
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, name.as_ptr());
        ffi::lua_pushnil(l);
        ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, name.as_ptr());
    }
}

/// Pushes `t[1]` .. `t[n]` of the table `t` at `registry[name]` and
/// empties the slot: pushes `n` (uses `n + 1` slots), raises only on
/// memory exhaustion. A missing index pushes nil.
///
/// # Safety
/// `l` is running on this thread with `n + 1` free slots;
/// `registry[name]` holds a table without a metatable.
pub(crate) unsafe fn take_registry_sequence(l: *mut lua_State, name: &CStr, n: c_int) {
    // SAFETY: per the contract: the table, then its n values; remove
    // drops the table below them, setfield pops the nil it is given
    // (the slot the table left).
    unsafe {
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, name.as_ptr());
        let table = ffi::lua_gettop(l);
        for i in 1..=n {
            ffi::lua_rawgeti(l, table, i as _);
        }
        ffi::lua_remove(l, table);
        ffi::lua_pushnil(l);
        ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, name.as_ptr());
    }
}

/// Pops the top `n` values into a fresh table `t` (`t[k]` the k-th of
/// them from below) and stores it at `registry[name]`: pops `n` (uses 2
/// slots), raises only on memory exhaustion.
///
/// # Safety
/// `l` is running on this thread with `n >= 0` values on top and 2 free
/// slots.
pub(crate) unsafe fn set_registry_sequence(l: *mut lua_State, name: &CStr, n: c_int) {
    // SAFETY: per the contract: the table goes below the values, which
    // rawseti pops from the top (t[n] first); setfield pops the table.
    unsafe {
        ffi::lua_createtable(l, n, 0);
        ffi::lua_insert(l, -(n + 1));
        for k in (1..=n).rev() {
            ffi::lua_rawseti(l, -(k + 1), k as _);
        }
        ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, name.as_ptr());
    }
}
