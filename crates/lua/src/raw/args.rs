//! The values `poll()` returns, pushed straight through the C API: a
//! scalar argument, the count, and the `args` table around them.

use std::ffi::c_int;

use mlua::{ffi, RegistryKey};

use super::push_registry_value;
use crate::data::Data;

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
