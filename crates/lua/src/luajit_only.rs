//! The LuaJIT build refers to three functions only LuaJIT has: mlua opens
//! `bit`, `jit` and `ffi` in the states `darksidesync.states` creates.
//! Lua 5.1 `dlopen`s C modules with `RTLD_NOW`, so without a definition
//! somewhere the LuaJIT build fails to load there with `undefined symbol:
//! luaopen_bit`, before `interpreter.rs` could say what is wrong. These
//! exported definitions satisfy the dynamic linker; in LuaJIT its own
//! functions come first in the lookup order and are the ones called (the
//! interpreter is loaded before any module). In Lua 5.1 the entry points
//! refuse to run (`interpreter::check`), so these are never reached; if
//! one were, it stops the process with a message rather than guess.

use std::ffi::c_int;

use mlua::ffi::lua_State;

fn unreachable_in_lua51(name: &str) -> ! {
    eprintln!("darksidesync: {name} called in an interpreter without it; this build is for LuaJIT");
    std::process::abort()
}

/// Stands in for LuaJIT's `luaopen_bit` (see the module docs).
#[no_mangle]
pub extern "C-unwind" fn luaopen_bit(_: *mut lua_State) -> c_int {
    unreachable_in_lua51("luaopen_bit")
}

/// Stands in for LuaJIT's `luaopen_jit` (see the module docs).
#[no_mangle]
pub extern "C-unwind" fn luaopen_jit(_: *mut lua_State) -> c_int {
    unreachable_in_lua51("luaopen_jit")
}

/// Stands in for LuaJIT's `luaopen_ffi` (see the module docs).
#[no_mangle]
pub extern "C-unwind" fn luaopen_ffi(_: *mut lua_State) -> c_int {
    unreachable_in_lua51("luaopen_ffi")
}
