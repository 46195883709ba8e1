//! C frames: the module opener, C closures, and running a producer's
//! code in a fresh frame whose values come back to mlua.

use std::ffi::c_int;

use mlua::{ffi, Function, IntoLuaMulti, Lua, MultiValue};

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

/// Calls `call` in a fresh Lua C frame (mlua's `exec_raw` runs it as a
/// protected C function whose stack holds only its arguments, here none)
/// and returns the top `n` values it pushed, `n` being its return value
/// clamped to what it really pushed. A Lua error it raises (against its
/// contract) becomes an `Err` at exec_raw's protected boundary.
///
/// # Safety
/// `call` only uses the stack of the frame it is given, and owns nothing
/// that needs dropping when a Lua error unwinds it.
pub(crate) unsafe fn call_pushing(
    lua: &Lua,
    call: impl FnOnce(*mut ffi::lua_State) -> c_int,
) -> mlua::Result<MultiValue> {
    // SAFETY: the closure receives a valid state of this Lua, on the Lua
    // thread, inside a protected call; per the contract `call` uses only
    // that frame, which then holds exactly the values to return.
    unsafe {
        lua.exec_raw::<MultiValue>((), |state| {
            let n = call(state);
            keep_top(state, n);
        })
    }
}

/// Up to this many values are handed to a callback on the current frame;
/// more go through a fresh Lua thread (see [`call_with_values`]).
const FRAME_VALUES: usize = 200;

/// Values moved to the fresh thread per protected frame: well below the
/// 8000 values (`LUAI_MAXCSTACK`) one C frame may hold on 5.1 and LuaJIT.
const CHUNK_VALUES: usize = 1000;

/// Calls `call(state, nargs)` with `values` as the only values on a fresh
/// stack; returns what it pushed (its return value, clamped).
///
/// Many values (a reply userdata called with thousands of arguments) would
/// not fit in the frame that already holds them on 5.1 and LuaJIT, whose C
/// frames are limited to 8000 values: they are moved in chunks to a new
/// Lua thread of the state, and `call` gets that thread as its state.
///
/// # Safety
/// As [`call_pushing`].
pub(crate) unsafe fn call_with_values(
    lua: &Lua,
    values: MultiValue,
    call: impl FnOnce(*mut ffi::lua_State, c_int) -> c_int,
) -> mlua::Result<MultiValue> {
    if values.len() <= FRAME_VALUES {
        // SAFETY: as in `call_pushing`; here the frame starts with `values`.
        return unsafe {
            lua.exec_raw::<MultiValue>(values, |state| {
                let nargs = ffi::lua_gettop(state);
                let n = call(state, nargs);
                keep_top(state, n);
            })
        };
    }
    // SAFETY: pushes one new thread (cannot raise but on memory errors,
    // which exec_raw's protected frame catches); mlua anchors the result.
    let thread: mlua::Thread = unsafe {
        lua.exec_raw((), |state| {
            ffi::lua_newthread(state);
        })
    }?;
    let values: Vec<mlua::Value> = values.into_iter().collect();
    let mut room = true;
    for chunk in values.chunks(CHUNK_VALUES) {
        let args = std::iter::once(mlua::Value::Thread(thread.clone()))
            .chain(chunk.iter().cloned())
            .collect::<MultiValue>();
        // SAFETY: the frame holds the thread then the chunk; the thread's
        // stack is grown first (checkstack only grows), and xmove moves
        // the chunk from this frame to it, leaving the frame with the
        // thread alone. Nothing here raises.
        unsafe {
            lua.exec_raw::<()>(args, |state| {
                let n = ffi::lua_gettop(state) - 1;
                let co = ffi::lua_tothread(state, 1);
                if ffi::lua_checkstack(co, n + 1) == 0 {
                    room = false;
                    return;
                }
                ffi::lua_xmove(state, co, n);
                ffi::lua_settop(state, 0);
            })?;
        }
        if !room {
            return Err(mlua::Error::runtime(format!(
                "darksidesync: a reply of {} values is too large for this Lua",
                values.len()
            )));
        }
    }
    // SAFETY: the thread is not running and holds exactly the values; the
    // callback runs with it as its state on the Lua thread, inside this
    // protected frame. Its results (at most what it pushed) move back to
    // this frame, after its one slot for the thread is freed, so the room
    // the results need is checked first.
    unsafe {
        lua.exec_raw::<MultiValue>(thread, |state| {
            let co = ffi::lua_tothread(state, 1);
            ffi::lua_settop(state, 0);
            let nargs = ffi::lua_gettop(co);
            let n = call(co, nargs);
            keep_top(co, n);
            let n = ffi::lua_gettop(co);
            if ffi::lua_checkstack(state, n) != 0 {
                ffi::lua_xmove(co, state, n);
            }
        })
    }
}

/// Leaves only the top `n` values of the current frame (fewer if fewer
/// are there; none when `n < 1`), moving them down in one pass: O(n).
///
/// # Safety
/// `state` is a state of the running Lua on its thread (the running one
/// inside a C frame, or a thread that is not running).
unsafe fn keep_top(state: *mut ffi::lua_State, n: c_int) {
    // SAFETY: per the function contract, the indices are within our frame
    // (1..=top); pushvalue uses the free slot checked for, which replace
    // pops; without one, remove shifts values down in place.
    unsafe {
        let top = ffi::lua_gettop(state);
        let keep = n.clamp(0, top);
        let first = top - keep + 1;
        if first > 1 && ffi::lua_checkstack(state, 1) != 0 {
            for i in 0..keep {
                ffi::lua_pushvalue(state, first + i);
                ffi::lua_replace(state, 1 + i);
            }
        } else {
            // No free slot (the callback used them all): remove the
            // unwanted bottom values in place instead.
            for _ in 1..first {
                ffi::lua_remove(state, 1);
            }
        }
        ffi::lua_settop(state, keep);
    }
}

/// Runs `body` as a C function called in protected mode from `state`'s
/// current frame: `body` gets a fresh, empty frame (LUA_MINSTACK free
/// slots) whose upvalues 2, 3, ... are copies of the values at the
/// absolute indices `upvalues`, and returns how many of the values on its
/// frame's top are its results. With `handler` (an absolute index, 0 for
/// none) as the message handler, a Lua error raised inside `body` (by code
/// it calls) ends the call. Returns false when it did, the error value
/// then on top (`nresults` is ignored); otherwise `nresults` results are
/// on top (`LUA_MULTRET`: all). One `lua_pcall` whatever `body` does: how
/// the glue runs producers' code that may raise, and many items per
/// protected call. Without upvalues nothing is allocated (a light C
/// function); with them, one closure.
///
/// # Safety
/// `state` is running on this thread with `upvalues.len() + 2` free
/// slots; `body` owns nothing that needs dropping whenever it calls code
/// that may raise (a Lua error unwinds it), and only uses the frame it is
/// given.
pub(crate) unsafe fn pcall_body<F>(
    state: *mut ffi::lua_State,
    upvalues: &[c_int],
    nresults: c_int,
    handler: c_int,
    body: &mut F,
) -> bool
where
    F: FnMut(*mut ffi::lua_State) -> c_int,
{
    /// `body` as argument 1 (a light C function: nothing allocated).
    unsafe extern "C-unwind" fn with_argument<F>(state: *mut ffi::lua_State) -> c_int
    where
        F: FnMut(*mut ffi::lua_State) -> c_int,
    {
        // SAFETY: argument 1 is the light userdata pcall_body pushed,
        // pointing to its `body`, alive (borrowed) for the whole call;
        // once it is popped the frame is empty. No Rust value with a
        // destructor lives in this frame.
        unsafe {
            let body = &mut *ffi::lua_touserdata(state, 1).cast::<F>();
            ffi::lua_settop(state, 0);
            let n = body(state);
            n.clamp(0, ffi::lua_gettop(state))
        }
    }
    /// `body` as upvalue 1 of a closure.
    unsafe extern "C-unwind" fn with_upvalue<F>(state: *mut ffi::lua_State) -> c_int
    where
        F: FnMut(*mut ffi::lua_State) -> c_int,
    {
        // SAFETY: upvalue 1 is the light userdata pcall_body pushed, as
        // above; the closure is called with no arguments.
        unsafe {
            let body = &mut *ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)).cast::<F>();
            let n = body(state);
            n.clamp(0, ffi::lua_gettop(state))
        }
    }
    // SAFETY: per the contract: slots for the function, its light
    // userdata and the upvalues; pcall pops the function (and its
    // argument) and leaves the results or the error.
    unsafe {
        if upvalues.is_empty() {
            ffi::lua_pushcfunction(state, with_argument::<F>);
            ffi::lua_pushlightuserdata(state, (body as *mut F).cast());
            return ffi::lua_pcall(state, 1, nresults, handler) == 0;
        }
        ffi::lua_pushlightuserdata(state, (body as *mut F).cast());
        for &i in upvalues {
            ffi::lua_pushvalue(state, i);
        }
        ffi::lua_pushcclosure(state, with_upvalue::<F>, upvalues.len() as c_int + 1);
        ffi::lua_pcall(state, 0, nresults, handler) == 0
    }
}

/// Calls the top `n` values (a function then `n - 1` arguments) with the
/// message handler at `handler` (any index, an upvalue's too), and drops
/// their results or the error: pops the `n` values, cannot raise.
///
/// # Safety
/// `state` is running with `n >= 1` values on top.
pub(crate) unsafe fn pcall_top_with(state: *mut ffi::lua_State, n: c_int, handler: c_int) {
    // SAFETY: per the contract: the handler goes below the function, at
    // an absolute index; pcall pops the function and its arguments and
    // leaves nothing or an error value, which goes with the handler.
    // Without room for the handler (out of memory), the call has none.
    unsafe {
        if ffi::lua_checkstack(state, 1) == 0 {
            if ffi::lua_pcall(state, n - 1, 0, 0) != 0 {
                ffi::lua_pop(state, 1);
            }
            return;
        }
        ffi::lua_pushvalue(state, handler);
        ffi::lua_insert(state, -(n + 1));
        let at = ffi::lua_gettop(state) - n;
        if ffi::lua_pcall(state, n - 1, 0, at) != 0 {
            ffi::lua_pop(state, 1);
        }
        ffi::lua_pop(state, 1);
    }
}

/// Calls the function at `handler` with the value on top (an error) and
/// drops what it returns or raises: pops the error, cannot raise.
///
/// # Safety
/// `state` is running with the error on top and a free slot; `handler`
/// is absolute.
pub(crate) unsafe fn call_handler_with_top(state: *mut ffi::lua_State, handler: c_int) {
    // SAFETY: per the contract: handler, error; pcall pops both and
    // leaves nothing or an error value, which is popped.
    unsafe {
        ffi::lua_pushvalue(state, handler);
        ffi::lua_insert(state, -2);
        if ffi::lua_pcall(state, 1, 0, 0) != 0 {
            ffi::lua_pop(state, 1);
        }
    }
}

/// Sets the top of the current frame to `top` (drops the values above
/// it): cannot raise.
///
/// # Safety
/// `state` is running; `top` is at most the current top.
pub(crate) unsafe fn set_top(state: *mut ffi::lua_State, top: c_int) {
    // SAFETY: per the contract.
    unsafe { ffi::lua_settop(state, top) }
}

/// Puts the function [`raise_arg`] below the value on top (an error):
/// the two make a call that raises that error again. Uses 1 slot, cannot
/// raise.
///
/// # Safety
/// `state` is running with a value on top and a free slot.
pub(crate) unsafe fn push_raiser_below_top(state: *mut ffi::lua_State) {
    // SAFETY: per the contract.
    unsafe {
        ffi::lua_pushcfunction(state, raise_arg);
        ffi::lua_insert(state, -2);
    }
}

/// A C function that raises its first argument: what `poll()` hands back
/// for a producer's code that raised, so its caller gets the error.
unsafe extern "C-unwind" fn raise_arg(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with the error as argument 1; no Rust value
    // with a destructor is alive here.
    unsafe {
        ffi::lua_settop(state, 1);
        ffi::lua_error(state)
    }
}
