//! `dispatch([max [, spawn]])`, `reply()`, `run()`, `stop()` and the error
//! handler (`seterrorhandler()`). Items run in the one item loop
//! (`item_loop.rs`); `dispatch(max, spawn)` hands them to `spawn` instead.

use std::time::Duration;

use mlua::{Function, Lua, MultiValue, Value};

use crate::args;
use crate::item::Item;
use crate::item_loop::{current_handler, report, run_items, CallbackGuard};
use crate::reply;
use crate::state::StateHub;
use crate::ApiResult;

/// Hands one item to `spawn` instead of running it: `spawn(handler)` in
/// protected mode (`spawn_item` of `prelude.lua`), where `handler` runs
/// the callback in a coroutine of its own (its yields forwarded to
/// whatever coroutine calls the handler), binds `reply()` to the
/// callback's coroutine and answers the reply with the callback's results
/// unless it was taken. Returns false for a skipped item (nothing to
/// call).
fn spawn_item(lua: &Lua, st: &StateHub, item: Item, spawn: &Function) -> mlua::Result<bool> {
    let prepared = match item.prepare(lua, st) {
        Ok(p) => p,
        Err(e) => {
            report(st, Value::String(lua.create_string(e.to_string())?))?;
            return Ok(true);
        }
    };
    let Some((callback, mut values)) = prepared.call else {
        return Ok(false);
    };
    let reply = match prepared.reply {
        Some(sink) => reply::create(lua, sink)?,
        None => Value::Nil,
    };
    values.push_front(callback);
    values.push_front(reply);
    let handler = current_handler(st);
    values.push_front(Value::Function(handler));
    values.push_front(Value::Function(spawn.clone()));
    let _guard = CallbackGuard::enter(st);
    let _ = st.helpers.spawn_item.call::<MultiValue>(values)?;
    Ok(true)
}

/// Runs up to `max` items (all queued now when `max` is `None`) in the item
/// loop and returns how many ran; skipped items (nothing to call) are
/// taken but neither counted nor counted against `max`. Stops early right
/// after the callback that called `stop()` (only `run()` lets `stop()` set
/// the flag).
pub(crate) fn dispatch_n(lua: &Lua, st: &StateHub, max: Option<usize>) -> mlua::Result<usize> {
    // "All queued now" is what one drain of everything finds: one lock
    // acquisition, not a count and then a drain.
    let max = match max {
        Some(max) => {
            take_up_to(st, max);
            max
        }
        None => {
            take_up_to(st, usize::MAX);
            st.batch_len()
        }
    };
    run_items(lua, st, max)
}

/// Drains the hub so that the batch holds up to `max` items.
fn take_up_to(st: &StateHub, max: usize) {
    let mut batch = st.batch.borrow_mut();
    let have = batch.len();
    if have < max {
        st.hub.drain(max - have, &mut batch);
        st.hub_left.set(0);
    }
}

/// `dispatch(max, spawn)`: hands up to `max` items to `spawn` (see
/// [`spawn_item`]) and returns how many it handed over.
fn spawn_n(lua: &Lua, st: &StateHub, max: Option<usize>, spawn: &Function) -> mlua::Result<usize> {
    let max = max.unwrap_or_else(|| st.pending());
    let mut ran = 0;
    take_up_to(st, max);
    while ran < max {
        let item = {
            let mut batch = st.batch.borrow_mut();
            // Items of a library unregistered since they were drained
            // never run.
            st.purge_stale(&mut batch);
            batch.pop()
        };
        let Some(item) = item else { break };
        if spawn_item(lua, st, item, spawn)? {
            ran += 1;
        }
    }
    Ok(ran)
}

/// `dispatch([max])` → number of items run.
pub(crate) fn dispatch(lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    st.forbid_in_callback("dispatch")?;
    let max = args::count(a.front().unwrap_or(&Value::Nil), "dispatch", usize::MAX)?;
    let max = if max == usize::MAX { None } else { Some(max) };
    let ran = match a.get(1) {
        None | Some(Value::Nil) => dispatch_n(lua, st, max)?,
        Some(Value::Function(spawn)) => spawn_n(lua, st, max, spawn)?,
        Some(other) => {
            return Err(format!(
                "darksidesync.dispatch: spawn must be a function or nil, got {}",
                args::type_name(other)
            )
            .into())
        }
    };
    Ok(MultiValue::from_iter([Value::Integer(ran as i64)]))
}

/// `reply()` → the reply object of the blocking call whose callback
/// `dispatch()` is running now, or nil (fire-and-forget, not inside a
/// dispatched callback, or already taken). Once taken, the callback's
/// return values no longer answer: the object does. (`prelude.lua` wraps
/// this with the lookup for handlers run by `dispatch(max, spawn)`.)
pub(crate) fn reply(lua: &Lua, st: &StateHub, _a: MultiValue) -> ApiResult {
    let sink = st.current_reply.borrow_mut().take();
    Ok(MultiValue::from_iter([match sink {
        Some(sink) => reply::create(lua, sink)?,
        None => Value::Nil,
    }]))
}

/// `run()`: dispatches until `stop()` or until nothing can arrive any more
/// (no keep-alive reference and an empty queue). Returns the number run.
pub(crate) fn run(lua: &Lua, st: &StateHub, _a: MultiValue) -> ApiResult {
    st.forbid_in_callback("run")?;
    if st.running.get() {
        return Err("darksidesync.run: already running".to_string().into());
    }
    st.running.set(true);
    st.stop_requested.set(false);
    let result = (|| -> mlua::Result<usize> {
        let mut total = 0;
        loop {
            if st.stop_requested.get() || st.hub.is_closed() {
                break;
            }
            // Under load, one look under the hub's lock finds work (as in
            // `wait()`); only an empty hub is asked whether it is idle.
            if st.batch.borrow().is_empty() && !st.hub.wait(Some(Duration::ZERO)) {
                if st.hub.is_idle() {
                    break;
                }
                if !st.hub.wait(None) {
                    continue; // closed, or the last keep-alive went: re-check
                }
            }
            total += dispatch_n(lua, st, None)?;
        }
        Ok(total)
    })();
    st.running.set(false);
    st.stop_requested.set(false);
    Ok(MultiValue::from_iter([Value::Integer(result? as i64)]))
}

/// `stop()`: makes a running `run()` return after the current callback.
/// Returns true when a `run()` was running.
pub(crate) fn stop(_lua: &Lua, st: &StateHub, _a: MultiValue) -> ApiResult {
    let running = st.running.get();
    if running {
        st.stop_requested.set(true);
    }
    Ok(MultiValue::from_iter([Value::Boolean(running)]))
}

/// `seterrorhandler(f)`: `f` handles errors of fire-and-forget callbacks;
/// `nil` restores the default. Returns the previous handler (nil for the
/// default).
pub(crate) fn seterrorhandler(_lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    let new = match a.front() {
        None | Some(Value::Nil) => None,
        Some(Value::Function(f)) => Some(f.clone()),
        Some(other) => {
            return Err(format!(
                "darksidesync.seterrorhandler: expected a function or nil, got {}",
                args::type_name(other)
            )
            .into())
        }
    };
    let old = st.error_handler.replace(new);
    st.handler_set.set(st.handler_set.get().wrapping_add(1));
    Ok(MultiValue::from_iter([
        old.map_or(Value::Nil, Value::Function)
    ]))
}
