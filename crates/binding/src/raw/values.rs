//! Scalars and bytes onto the stack, a plain value off it, fresh tables.

use std::ffi::{c_char, c_int};

use mlua::ffi::{self, lua_State};

/// Pushes nil: pushes 1, cannot raise.
///
/// # Safety
/// `l` is running on this thread with a free slot.
#[inline]
pub(crate) unsafe fn push_nil(l: *mut lua_State) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_pushnil(l) }
}

/// Pushes a boolean: pushes 1, cannot raise.
///
/// # Safety
/// `l` is running on this thread with a free slot.
#[inline]
pub(crate) unsafe fn push_boolean(l: *mut lua_State, b: bool) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_pushboolean(l, b as c_int) }
}

/// Pushes an integer (a number before Lua 5.3): pushes 1, cannot raise.
///
/// # Safety
/// `l` is running on this thread with a free slot.
#[inline]
pub(crate) unsafe fn push_integer(l: *mut lua_State, n: i64) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_pushinteger(l, n as ffi::lua_Integer) }
}

/// Pushes a float: pushes 1, cannot raise.
///
/// # Safety
/// `l` is running on this thread with a free slot.
#[inline]
pub(crate) unsafe fn push_number(l: *mut lua_State, x: f64) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_pushnumber(l, x as ffi::lua_Number) }
}

/// Pushes `bytes` as a Lua string (Lua copies them): pushes 1, raises
/// only on memory exhaustion.
///
/// # Safety
/// `l` is running on this thread with a free slot.
#[inline]
pub(crate) unsafe fn push_bytes(l: *mut lua_State, bytes: &[u8]) {
    // SAFETY: per the contract; the pointer and length are a live slice.
    unsafe { ffi::lua_pushlstring(l, bytes.as_ptr() as *const c_char, bytes.len()) };
}

/// A value of the stack that crosses without a reference: nil, a boolean,
/// a number, a string (its bytes, borrowed from the stack).
pub(crate) enum Plain<'a> {
    Nil,
    Boolean(bool),
    Integer(i64),
    Number(f64),
    Bytes(&'a [u8]),
}

/// The value at `index` when it is plain, as mlua converts it (an integer
/// is the integer subtype on 5.3+, or on older Luas a float that is
/// exactly an integer: mlua-sys's `lua_isinteger` is that test there);
/// `None` for any other type. Leaves the stack as it was, cannot raise
/// (no conversion: `lua_tolstring` is only called on strings).
///
/// # Safety
/// `l` is running on this thread; `index` is a valid index. The bytes of
/// a string are borrowed from the stack: `'a` ends before the value is
/// popped.
pub(crate) unsafe fn plain_value<'a>(l: *mut lua_State, index: c_int) -> Option<Plain<'a>> {
    // SAFETY: per the contract; each read matches the type just checked.
    unsafe {
        Some(match ffi::lua_type(l, index) {
            ffi::LUA_TNIL => Plain::Nil,
            ffi::LUA_TBOOLEAN => Plain::Boolean(ffi::lua_toboolean(l, index) != 0),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(l, index) != 0 => {
                Plain::Integer(ffi::lua_tointeger(l, index) as i64)
            }
            ffi::LUA_TNUMBER => Plain::Number(ffi::lua_tonumber(l, index) as f64),
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let p = ffi::lua_tolstring(l, index, &mut len);
                Plain::Bytes(std::slice::from_raw_parts(p as *const u8, len))
            }
            _ => return None,
        })
    }
}

/// Pushes a fresh table sized for `narr` list items and `nrec` fields:
/// pushes 1, raises only on memory exhaustion.
///
/// # Safety
/// `l` is running on this thread with a free slot.
#[inline]
pub(crate) unsafe fn push_new_table(l: *mut lua_State, narr: c_int, nrec: c_int) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_createtable(l, narr, nrec) }
}

/// Pops the value on top into `t[i]`, `t` the table at `table` (a
/// relative index counts the value): pops 1, raises only on memory
/// exhaustion (a raw set, no metamethod).
///
/// # Safety
/// `l` is running on this thread; `table` holds a table and is not the
/// top.
#[inline]
pub(crate) unsafe fn set_index(l: *mut lua_State, table: c_int, i: i64) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_rawseti(l, table, i as _) }
}

/// Pops a key and the value above it into the table at `table` (a
/// relative index counts both): pops 2, raises only on memory exhaustion
/// (a raw set, no metamethod; the key is never nil or NaN here: callers
/// push strings).
///
/// # Safety
/// `l` is running on this thread; `table` holds a table below the two
/// values; the key is neither nil nor NaN.
#[inline]
pub(crate) unsafe fn set_field(l: *mut lua_State, table: c_int) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_rawset(l, table) }
}
