//! `warn()` as in `lua5.4`: off until `warn("@on")` (or `-W`), then each
//! message on standard error as `Lua warning: <pieces>\n`; `"@off"` turns
//! them off again. A port of lauxlib's `warnfoff`/`warnfon`/`warnfcont`:
//! the state's warning function itself is the on/off/continued state, as
//! there. mlua creates states with `lua_newstate`, which installs none, so
//! without this every warning was dropped.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::Write;

use mlua::{ffi, Lua};

/// The warning function of a state whose warnings are off: only control
/// messages matter.
unsafe extern "C-unwind" fn off(ud: *mut c_void, message: *const c_char, tocont: c_int) {
    // SAFETY: Lua passes the `ud` given with this function (the state's
    // main thread) and a NUL-terminated message valid during the call.
    unsafe { control(ud.cast(), message, tocont) };
}

/// Warnings on, at the start of a message.
unsafe extern "C-unwind" fn on(ud: *mut c_void, message: *const c_char, tocont: c_int) {
    // SAFETY: as in `off`.
    unsafe {
        if control(ud.cast(), message, tocont) {
            return;
        }
        write(b"Lua warning: ");
        cont(ud, message, tocont);
    }
}

/// Warnings on, in the middle of a message.
unsafe extern "C-unwind" fn cont(ud: *mut c_void, message: *const c_char, tocont: c_int) {
    // SAFETY: as in `off`; `ud` is the main thread, valid while the state
    // lives, and `lua_setwarnf` only stores a pointer in its global state.
    unsafe {
        write(CStr::from_ptr(message).to_bytes());
        let next = if tocont != 0 {
            cont as ffi::lua_WarnFunction
        } else {
            write(b"\n");
            on as ffi::lua_WarnFunction
        };
        ffi::lua_setwarnf(ud.cast(), Some(next), ud);
    }
}

/// Handles `@on` / `@off` (only as a whole message); true when `message`
/// was a control message.
///
/// # Safety
/// `state` is a live state's main thread; `message` is NUL-terminated.
unsafe fn control(state: *mut ffi::lua_State, message: *const c_char, tocont: c_int) -> bool {
    // SAFETY: see the function's contract.
    let text = unsafe { CStr::from_ptr(message) }.to_bytes();
    if tocont != 0 || text.first() != Some(&b'@') {
        return false;
    }
    let next: Option<ffi::lua_WarnFunction> = match &text[1..] {
        b"off" => Some(off),
        b"on" => Some(on),
        _ => None,
    };
    if let Some(next) = next {
        // SAFETY: see the function's contract.
        unsafe { ffi::lua_setwarnf(state, Some(next), state.cast()) };
    }
    true
}

/// Writes to standard error, unbuffered as `lua_writestringerror`; a
/// failed write is ignored (there is nowhere to report it).
fn write(bytes: &[u8]) {
    let _ = std::io::stderr().write_all(bytes);
}

/// Installs the warning function on `lua`, warnings off.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    // SAFETY: the closure only reads the registry's main-thread slot, which
    // every Lua 5.4 state has, and installs `off` with that thread as its
    // user data: the main thread lives as long as the state, and so as
    // long as the warning function can be called.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_MAINTHREAD);
            let main = ffi::lua_tothread(state, -1);
            ffi::lua_pop(state, 1);
            ffi::lua_setwarnf(main, Some(off), main.cast());
        })
    }
}
