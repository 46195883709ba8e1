//! `poll()` and `queuesize()`: the DarkSideSync 1.0 way of taking work.
//!
//! `poll()` is a C closure ([`poll_c`]) with a fast path for the common
//! item, an [`Item::call`](crate::Item::call) with a scalar argument: it
//! pushes the count, the callback and a fresh `args` table straight through
//! the C API. Every other case (boxed tasks, replies, an empty hub that
//! needs no table) goes to [`poll`], the general implementation, which the
//! closure holds as its upvalue.

use std::ffi::c_int;
use std::rc::Rc;

use mlua::{ffi, Function, IntoLua, Lua, MultiValue, Value};

use crate::dispatch::push_scalar;

use crate::reply::ReplyHandle;
use crate::state::StateHub;
use crate::Ret;

/// `poll()` → `-1` when empty; else `count` (nothing to call) or
/// `count, callback, args`, where `count` is the number of items left and
/// `args` is an array with `args.n` set. For a blocking delivery `args[1]`
/// is the reply userdata and the callback's arguments follow it.
pub(crate) fn poll(lua: &Lua, st: &StateHub, _args: MultiValue) -> Ret {
    let Some(item) = st.next_item() else {
        return Ok(MultiValue::from_iter([Value::Integer(-1)]));
    };
    // Prepare before counting, so items a decoder posted are counted too.
    let prepared = item.prepare(lua);
    let left = Value::Integer(st.pending() as i64);
    let prepared = prepared?;
    let Some((callback, values)) = prepared.call else {
        // Dropping an unused sink releases its waiter.
        return Ok(MultiValue::from_iter([left]));
    };
    let extra = usize::from(prepared.reply.is_some());
    let args = lua.create_table_with_capacity(values.len() + extra, 1)?;
    if let Some(sink) = prepared.reply {
        args.raw_set(1, lua.create_userdata(ReplyHandle::new(sink))?)?;
    }
    let n = values.len() + extra;
    for (i, v) in values.into_iter().enumerate() {
        if !v.is_nil() {
            args.raw_set(i + 1 + extra, v)?;
        }
    }
    args.raw_set("n", n)?;
    Ok(MultiValue::from_iter([left, callback, args.into_lua(lua)?]))
}

/// `queuesize()` → the number of items waiting.
pub(crate) fn queuesize(_lua: &Lua, st: &StateHub, _args: MultiValue) -> Ret {
    Ok(MultiValue::from_iter([Value::Integer(st.pending() as i64)]))
}

/// What [`fast_take`] did.
enum Fast {
    /// Nothing queued.
    Empty,
    /// Pushed the count, the callback and its argument.
    Taken,
    /// The front item needs the general path.
    Slow,
}

/// Builds the `poll` function: [`poll_c`] with `general` (the wrapped
/// [`poll`]) and the string `"n"` as its upvalues.
pub(crate) fn make_fast_poll(lua: &Lua, general: Function) -> mlua::Result<Function> {
    let n = lua.create_string("n")?;
    // SAFETY: `general` and `n` are at stack indices 1 and 2;
    // lua_pushcclosure pops them as the closure's two upvalues and leaves
    // the closure, which exec_raw returns.
    unsafe {
        lua.exec_raw((general, n), |state| {
            ffi::lua_pushcclosure(state, poll_c, 2)
        })
    }
}

/// Takes the front item when it is a scalar call of this state and pushes
/// `count, callback, arg` (3 slots). Every Rust value it holds is dropped
/// before it returns, so the caller may then use C API functions that can
/// raise.
///
/// # Safety
/// `state` is the running state of a call into [`poll_c`].
unsafe fn fast_take(state: *mut ffi::lua_State) -> Fast {
    // SAFETY: the state is live and running (mlua set up its extra data
    // when the module was opened in it).
    let lua = unsafe { Lua::get_or_init_from_ptr(state) };
    let Some(st) = lua.app_data_ref::<Rc<StateHub>>() else {
        return Fast::Slow;
    };
    let Ok(mut batch) = st.batch.try_borrow_mut() else {
        return Fast::Slow;
    };
    if batch.is_empty() {
        st.hub.bind_consumer();
        st.refill(&mut batch);
    }
    // Items of a library unregistered since they were drained never run.
    st.hub.purge_stale(&mut batch);
    let Some(front) = batch.front() else {
        return Fast::Empty;
    };
    let Some((cb, _)) = front.as_scalar_call() else {
        return Fast::Slow;
    };
    // SAFETY: checkstack only grows the stack.
    if !lua.owns_registry_value(cb.key()) || unsafe { ffi::lua_checkstack(state, 5) } == 0 {
        return Fast::Slow;
    }
    let item = batch.pop().expect("the front item is there");
    let left = st.pending_hint(batch.len());
    drop(batch);
    let (cb, arg) = item.as_scalar_call().expect("checked above");
    // SAFETY: three slots were reserved; none of these can raise. The
    // registry slot is read while `item` still holds the key.
    unsafe {
        ffi::lua_pushinteger(state, left as ffi::lua_Integer);
        ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, cb.key().id() as _);
        push_scalar(state, arg);
    }
    Fast::Taken
}

/// `poll()` as a C function: the fast path for scalar call items, the
/// general [`poll`] (upvalue 1) for the rest.
unsafe extern "C-unwind" fn poll_c(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua as a C function of this module.
    match unsafe { fast_take(state) } {
        Fast::Taken => {}
        // SAFETY: a C function always has LUA_MINSTACK free slots.
        Fast::Empty => unsafe {
            ffi::lua_pushinteger(state, -1);
            return 1;
        },
        // SAFETY: no Rust value is alive in this frame, so an error raised
        // by the general path may unwind through it.
        Fast::Slow => unsafe {
            let base = ffi::lua_gettop(state);
            ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
            ffi::lua_call(state, 0, ffi::LUA_MULTRET);
            return ffi::lua_gettop(state) - base;
        },
    }
    // Stack: ..., count, callback, arg. No Rust value is alive in this
    // frame any more, so the allocations below may raise.
    // SAFETY: fast_take reserved two more slots, for the table and then
    // key and value of `n` (the table's slot is reused by the argument's
    // move). The key is the interned string in upvalue 2, so no string
    // lookup per call. Both fields go to a hash part of two nodes: one
    // allocation fewer than an array part for `[1]` plus a hash part for
    // `n` (Lua's allocator was ~20% of this path), and `args[1]` reads
    // the same.
    unsafe {
        ffi::lua_createtable(state, 0, 2);
        ffi::lua_insert(state, -2);
        ffi::lua_rawseti(state, -2, 1);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
        ffi::lua_pushinteger(state, 1);
        ffi::lua_rawset(state, -3);
    }
    3
}
