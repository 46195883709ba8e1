//! `poll()` and `queuesize()`: the DarkSideSync 1.0 way of taking work.
//!
//! `poll()` is a C closure ([`poll_c`]) with a fast path for the items the
//! item loop runs on its own frame ([`take_front`]): an
//! [`Item::call`](crate::Item::call) with a scalar argument, whose count,
//! callback and a fresh `args` table it pushes straight through the C API,
//! and an inline post, which pushes its callback and arguments itself.
//! Every other case (boxed tasks, replies, an empty hub that needs no
//! table) goes to [`poll`], the general implementation, which the closure
//! holds as its upvalue.

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use mlua::{ffi, Function, IntoLua, Lua, MultiValue, Table, Value};

use crate::item_loop::{take_front, Front};
use crate::post::{PostFrame, Ran};
use crate::raw::{self, CLOSING_C};
use crate::reply;
use crate::state::StateHub;
use crate::ApiResult;

/// `poll()` → `-1` when empty; else `count` (nothing to call) or
/// `count, callback, args`, where `count` is the number of items left and
/// `args` is an array with `args.n` set. For a blocking delivery `args[1]`
/// is the reply userdata and the callback's arguments follow it.
pub(crate) fn poll(lua: &Lua, st: &StateHub, _args: MultiValue) -> ApiResult {
    let Some(item) = st.next_item() else {
        return Ok(MultiValue::from_iter([Value::Integer(-1)]));
    };
    // Prepare before counting, so items a decoder posted are counted too.
    let prepared = item.prepare(lua, st);
    let left = Value::Integer(st.pending() as i64);
    let prepared = prepared?;
    let Some((callback, values)) = prepared.call else {
        // Dropping an unused sink releases its waiter.
        return Ok(MultiValue::from_iter([left]));
    };
    let extra = usize::from(prepared.reply.is_some());
    let args = lua.create_table_with_capacity(values.len() + extra, 1)?;
    if let Some(sink) = prepared.reply {
        args.raw_set(1, reply::create(lua, sink)?)?;
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
pub(crate) fn queuesize(_lua: &Lua, st: &StateHub, _args: MultiValue) -> ApiResult {
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
    /// Took an inline post, to run (5 slots plus LUA_MINSTACK reserved),
    /// and the count of items left before it ran.
    Post(PostFrame, usize),
}

/// Builds the `poll` function: [`poll_c`] with `general` (the wrapped
/// [`poll`]), the string `"n"` and a cell holding the state's
/// [`StateHub`] pointer as its upvalues.
///
/// The cell spares `poll_c` mlua's app-data lookup and a read of the
/// closing flag per item: it is cleared (by [`forget_hub`], one of the
/// closing flag's `on_close` functions) when `lua_close` starts running
/// finalisers, before mlua's own (see `prelude.lua`), so while it is set
/// the `Rc` in mlua's app data (set once, never replaced or removed) keeps
/// the `StateHub` alive.
pub(crate) fn make_fast_poll(
    lua: &Lua,
    st: &Rc<StateHub>,
    general: Function,
    closing: Table,
) -> mlua::Result<Function> {
    let n = lua.create_string("n")?;
    let cell = raw::new_pointer_cell(lua, Rc::as_ptr(st).cast())?;
    // SAFETY: forget_hub reads exactly this upvalue, a pointer cell.
    let forget = unsafe { raw::c_closure(lua, forget_hub, cell.clone()) }?;
    closing.get::<Table>("on_close")?.raw_push(forget)?;
    // SAFETY: poll_c reads exactly these three upvalues, with these types.
    unsafe { raw::c_closure(lua, poll_c, (general, n, cell)) }
}

/// Clears the hub cell (upvalue 1) as the state starts closing.
unsafe extern "C-unwind" fn forget_hub(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: upvalue 1 is the pointer cell made by make_fast_poll.
    unsafe { raw::clear_cell(state, raw::upvalue(1)) };
    0
}

/// Takes the front item when it can run on this frame ([`take_front`]):
/// pushes `count, callback, arg` for a scalar call, or returns an inline
/// post to run. Reserves LUA_MINSTACK + 5 slots first. Every Rust value it
/// holds is dropped before it returns, so the caller may then use C API
/// functions that can raise.
///
/// # Safety
/// `state` is the running state of a call into [`poll_c`], `st` its hub.
unsafe fn fast_take(state: *mut ffi::lua_State, st: &StateHub) -> Fast {
    let Ok(mut batch) = st.batch.try_borrow_mut() else {
        return Fast::Slow;
    };
    if batch.is_empty() {
        st.hub.bind_consumer();
        st.refill(&mut batch);
    }
    // Items of a library unregistered since they were drained never run.
    st.purge_stale(&mut batch);
    if batch.is_empty() {
        return Fast::Empty;
    }
    // SAFETY: the state is running.
    if !unsafe { raw::reserve(state, ffi::LUA_MINSTACK + 5) } {
        return Fast::Slow;
    }
    let front = take_front(&mut batch, &st.ran, None, |key| {
        // SAFETY: the state is live and running (mlua set up its extra
        // data when the module was opened in it, and the closing check
        // passed).
        let lua = unsafe { Lua::get_or_init_from_ptr(state) };
        lua.owns_registry_value(key)
    });
    let left = st.pending_hint(batch.len());
    drop(batch);
    match front {
        Front::Empty => Fast::Empty,
        Front::General => Fast::Slow,
        Front::Post(post) => Fast::Post(post, left),
        Front::Call(cb, arg) => {
            // SAFETY: five slots were reserved; the registry slot is read
            // while `cb` holds the key.
            unsafe { raw::push_count_callback_arg(state, left as i64, cb.key(), &arg) };
            Fast::Taken
        }
    }
}

/// `poll()` as a C function: the fast path for scalar call items, the
/// general [`poll`] (upvalue 1) for the rest.
unsafe extern "C-unwind" fn poll_c(state: *mut ffi::lua_State) -> c_int {
    // At lua_close mlua's per-state data may be gone: the cell is
    // cleared then (see make_fast_poll).
    // SAFETY: upvalue 3 is the hub cell.
    let hub = unsafe { raw::cell_pointer(state, raw::upvalue(3)) }.cast::<StateHub>();
    if hub.is_null() {
        // SAFETY: a C function has LUA_MINSTACK free slots; no Rust value
        // is alive in this frame.
        return unsafe { raw::raise(state, CLOSING_C) };
    }
    // SAFETY: the cell holds the hub while it is set (see
    // make_fast_poll), which it was just now; nothing in this call can
    // close the state.
    let st = unsafe { &*hub };
    // A panic must not cross into Lua's C frames; fast_take pushes
    // nothing before its last step, so the general path can take over.
    // The hub stays usable after one: the batch's borrow ends with the
    // unwind, and an item taken before it is dropped, which cancels it.
    // SAFETY: called by Lua as a C function of this module.
    let taken =
        catch_unwind(AssertUnwindSafe(|| unsafe { fast_take(state, st) })).unwrap_or(Fast::Slow);
    match taken {
        Fast::Taken => {}
        // SAFETY: fast_take reserved the slots; `frame` is plain values,
        // and no other Rust value is alive in this frame.
        Fast::Post(frame, left) => unsafe { return poll_post(state, st, frame, left) },
        // SAFETY: a C function always has LUA_MINSTACK free slots.
        Fast::Empty => unsafe {
            raw::push_integer(state, -1);
            return 1;
        },
        // SAFETY: no Rust value is alive in this frame, so an error raised
        // by the general path may unwind through it.
        Fast::Slow => unsafe {
            return raw::call_all_results(state, raw::upvalue(1));
        },
    }
    // Stack: ..., count, callback, arg. No Rust value is alive in this
    // frame any more, so the allocation below may raise.
    // SAFETY: fast_take reserved two more slots; upvalue 2 is "n".
    unsafe { raw::wrap_in_args_table(state, raw::upvalue(2)) };
    3
}

/// The number of items left, for `poll()`'s first result, counted after
/// the item's decoder ran (items it posted count too). Needed only when
/// the count taken before was 0: a nonzero count comes from the batch and
/// the hub's depth at the last refill, which a decoder cannot change.
///
fn items_left(st: &StateHub) -> i64 {
    let Ok(batch) = st.batch.try_borrow() else {
        return 0;
    };
    st.pending_hint(batch.len()) as i64
}

/// `poll()` of an inline post taken by [`fast_take`]: runs it on this
/// frame (a C utility's decoder or `run`, say) and returns `count`, or
/// `count, callback, args` built from what it pushed.
///
/// A nonzero count is pushed before the post runs: when it pushed exactly
/// what it returned, the results then lie in place and only the `args`
/// table is built around the arguments.
///
/// # Safety
/// `state` is the running state of a call into [`poll_c`], `st` its hub,
/// with LUA_MINSTACK + 5 free slots; no Rust value with a destructor is
/// alive in the frames an error would skip.
unsafe fn poll_post(
    state: *mut ffi::lua_State,
    st: &StateHub,
    frame: PostFrame,
    left: usize,
) -> c_int {
    let placed = left > 0;
    // SAFETY: per the contract: 1 slot for the count, then LUA_MINSTACK
    // for the decoder/run.
    let base = unsafe {
        if placed {
            raw::push_integer(state, left as i64);
        }
        raw::top(state)
    };
    // SAFETY: as above.
    let n = match unsafe { frame.run_collect(state, st) } {
        Ran::Call(n) => n,
        // Ran (a closure that did its work) or skipped: the count alone.
        Ran::Done | Ran::Nothing => 0,
    };
    // SAFETY: reading the top of a running state.
    let pushed = unsafe { raw::top(state) } - base;
    let left = match left {
        // A decoder may have posted: count after it ran.
        0 => catch_unwind(AssertUnwindSafe(|| items_left(st))).unwrap_or(0),
        n => n as i64,
    };
    // SAFETY: the callback is at `top - n + 1` with its `n - 1` arguments
    // above it; 5 slots are reserved again (the decoder may have used
    // what was reserved, or the stack been shrunk meanwhile). The results
    // are the top 3 (or 1) values; what lies below is dropped with the
    // frame. createtable may raise out of memory: nothing here needs
    // dropping.
    unsafe {
        if n == 0 {
            raw::push_integer(state, left);
            return 1;
        }
        if !raw::reserve(state, 5) {
            return raw::raise(state, c"darksidesync.poll: stack overflow");
        }
        raw::args_table_of_top(state, n - 1, raw::upvalue(2));
        // ..., callback, args
        if placed && pushed == n {
            // The count pushed before the decoder is right below.
            return 3;
        }
        raw::push_integer(state, left);
        raw::insert(state, -3);
    }
    3
}
