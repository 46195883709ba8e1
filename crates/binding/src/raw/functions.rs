//! The C functions a closure's `run` pushes as the delivery darksidesync
//! then calls (and counts): one with no effect when the closure succeeded,
//! one that raises its argument when it failed, so that the message
//! reaches the state's error handler and a call is answered as failed.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::{push_bytes, reserve};

/// The delivery of a closure that succeeded: the closure already ran.
/// Cannot panic or raise.
unsafe extern "C-unwind" fn nothing(_l: *mut lua_State) -> c_int {
    0
}

/// The delivery of a closure that failed: raises its argument. Cannot
/// panic; raises (its purpose).
unsafe extern "C-unwind" fn raise_arg(l: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with our one string argument; lua_error raises
    // the value on top. No Rust value with a destructor is live here.
    unsafe {
        ffi::lua_settop(l, 1);
        ffi::lua_error(l)
    }
}

/// Pushes the delivery with no effect: pushes 1 and returns 1, or pushes
/// nothing and returns 0 when the stack cannot grow. Cannot raise.
///
/// # Safety
/// `l` is running on this thread.
pub(crate) unsafe fn push_nothing(l: *mut lua_State) -> c_int {
    // SAFETY: per the contract; one slot is checked for first; a light C
    // function allocates nothing.
    unsafe {
        if !reserve(l, 1) {
            return 0;
        }
        ffi::lua_pushcfunction(l, nothing);
    }
    1
}

/// Pushes the delivery that raises `message` (a C function and the
/// message): pushes 2 and returns 2, or pushes nothing and returns 0 when
/// the stack cannot grow. Raises only on memory exhaustion.
///
/// # Safety
/// `l` is running on this thread.
pub(crate) unsafe fn push_raise(l: *mut lua_State, message: &str) -> c_int {
    // SAFETY: per the contract; two slots are checked for first.
    unsafe {
        if !reserve(l, 2) {
            return 0;
        }
        ffi::lua_pushcfunction(l, raise_arg);
        push_bytes(l, message.as_bytes());
    }
    2
}
