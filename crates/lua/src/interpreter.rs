//! The module's `luaopen_*` entries check that the interpreter loading
//! them is the one this build is for, before anything else runs. LuaRocks
//! puts LuaJIT's and Lua 5.1's C modules in the same `lib/lua/5.1`, and
//! both load a `.so` built for the other: a Lua 5.1 build in LuaJIT would
//! create states LuaJIT cannot run, a LuaJIT build in Lua 5.1 call
//! functions Lua 5.1 lacks (see `luajit_only.rs`). The mismatch is raised
//! as one line naming both and the command that builds the right one.

use std::ffi::CStr;

use mlua::ffi;

/// The interpreter this build is for, as `_VERSION` (or LuaJIT) names it.
pub(crate) const BUILT_FOR: &str = if cfg!(feature = "luajit") {
    "LuaJIT"
} else if cfg!(feature = "lua51") {
    "Lua 5.1"
} else if cfg!(feature = "lua52") {
    "Lua 5.2"
} else if cfg!(feature = "lua53") {
    "Lua 5.3"
} else {
    "Lua 5.4"
};

/// The running interpreter: `LuaJIT` when the `jit` library is loaded,
/// else its `_VERSION`.
///
/// # Safety
/// `state` is a live state inside a C function, with 2 free stack slots;
/// only functions present in every Lua 5.1 to 5.4 and LuaJIT are called.
unsafe fn running(state: *mut ffi::lua_State) -> String {
    // SAFETY: see the contract; every value pushed is popped.
    unsafe {
        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, c"_LOADED".as_ptr());
        let jit = ffi::lua_type(state, -1) == ffi::LUA_TTABLE && {
            ffi::lua_getfield(state, -1, c"jit".as_ptr());
            let loaded = ffi::lua_type(state, -1) == ffi::LUA_TTABLE;
            ffi::lua_pop(state, 1);
            loaded
        };
        ffi::lua_pop(state, 1);
        if jit {
            return "LuaJIT".into();
        }
        ffi::lua_getglobal(state, c"_VERSION".as_ptr());
        let version = if ffi::lua_type(state, -1) == ffi::LUA_TSTRING {
            CStr::from_ptr(ffi::lua_tostring(state, -1))
                .to_string_lossy()
                .into_owned()
        } else {
            "an unknown Lua".into()
        };
        ffi::lua_pop(state, 1);
        version
    }
}

/// The command that builds the module for `lua` (a `_VERSION` or LuaJIT).
fn build_command(lua: &str) -> String {
    match lua {
        "LuaJIT" => "cargo xtask module --lua jit --out DIR, or luarocks --lua-version 5.1 \
                     --tree TREE make rockspecs/darksidesync-scm-1.rockspec LUA=/usr/bin/luajit"
            .into(),
        other => {
            let v = other.strip_prefix("Lua ").unwrap_or(other);
            format!(
                "cargo xtask module --lua {v} --out DIR, or luarocks --lua-version {v} make \
                 rockspecs/darksidesync-scm-1.rockspec"
            )
        }
    }
}

/// The one-line error for a mismatch, or `None` when `state` runs the
/// interpreter this build is for.
///
/// # Safety
/// As [`running`].
pub(crate) unsafe fn mismatch(state: *mut ffi::lua_State) -> Option<String> {
    // SAFETY: forwarded contract.
    let lua = unsafe { running(state) };
    (lua != BUILT_FOR).then(|| {
        format!(
            "darksidesync: this build is for {BUILT_FOR} but {lua} loaded it; \
             build one for {lua} ({}) and keep the two in separate folders",
            build_command(&lua)
        )
    })
}

/// Raises the mismatch error, if any; otherwise returns.
///
/// # Safety
/// `state` is inside the `luaopen_*` C function Lua called, with no Rust
/// value with a destructor alive in the calling frames (`lua_error`
/// unwinds past them).
pub(crate) unsafe fn check(state: *mut ffi::lua_State) {
    // SAFETY: see the contract; the message is copied by lua_pushlstring
    // before the String is dropped, and lua_error does not return.
    unsafe {
        if let Some(text) = mismatch(state) {
            ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len());
            drop(text);
            ffi::lua_error(state);
        }
    }
}
