//! Running items on the Lua thread: `dispatch([max])`, `run()`, `stop()`
//! and the error handler.
//!
//! A dispatched callback runs under `xpcall`:
//!
//! * fire-and-forget: the message handler is the state's error handler
//!   (`seterrorhandler`), so it runs in the failing callback's context;
//! * blocking delivery: the message handler is `tostring`, the callback's
//!   return values become the reply, its error text the handler error.
//!
//! Either way the error stops at that item: the next one runs.

use std::time::Duration;

use mlua::{ffi, Function, Lua, MultiValue, Value};

use crate::args;
use crate::item::{Callback, Item};
use crate::raw;
use crate::reply;
use crate::state::StateHub;
use crate::ApiResult;

/// Counts a running callback; `forbid_in_callback` sees it.
struct CallbackGuard<'a>(&'a StateHub);

impl<'a> CallbackGuard<'a> {
    fn enter(st: &'a StateHub) -> CallbackGuard<'a> {
        st.in_callback.set(st.in_callback.get() + 1);
        CallbackGuard(st)
    }
}

impl Drop for CallbackGuard<'_> {
    fn drop(&mut self) {
        self.0.in_callback.set(self.0.in_callback.get() - 1);
    }
}

/// Runs one item to completion. Returns false when the item had nothing
/// to call (skipped: a call whose caller already timed out, a DSS decoder
/// that pushed nothing), which `dispatch()` does not count as run. Errors
/// of the callback never escape; an `Err` here is a failure of the Lua
/// machinery itself (out of memory).
pub(crate) fn run_item(lua: &Lua, st: &StateHub, item: Item) -> mlua::Result<bool> {
    let prepared = match item.prepare(lua) {
        Ok(p) => p,
        Err(e) => {
            // Reported to the error handler, as a failing callback is.
            report(lua, st, Value::String(lua.create_string(e.to_string())?))?;
            return Ok(true);
        }
    };
    let Some((callback, mut values)) = prepared.call else {
        return Ok(false);
    };
    let _guard = CallbackGuard::enter(st);
    match prepared.reply {
        None => {
            let handler = current_handler(st);
            values.push_front(Value::Function(handler));
            values.push_front(callback);
            // The handler already ran inside xpcall; nothing more to do.
            let _ = st.helpers.xpcall.call::<MultiValue>(values)?;
        }
        Some(sink) => {
            values.push_front(Value::Function(st.helpers.reply_handler.clone()));
            values.push_front(callback);
            // `reply()` may take the sink while the callback runs.
            // Dispatched callbacks do not nest (dispatch() raises inside
            // one), but the outer slot is restored all the same.
            let outer = st.current_reply.replace(Some(sink));
            let called = st.helpers.xpcall.call::<MultiValue>(values);
            let sink = st.current_reply.replace(outer);
            let mut results = called?;
            let ok = matches!(results.pop_front(), Some(Value::Boolean(true)));
            let Some(sink) = sink else {
                // Taken by `reply()`: the reply object answers. An error
                // goes to the error handler, as a fire-and-forget one.
                if !ok {
                    let err = results.pop_front().unwrap_or(Value::Nil);
                    report(lua, st, err)?;
                }
                return Ok(true);
            };
            if ok {
                if let Err(e) = sink.send(lua, results) {
                    report(lua, st, Value::String(lua.create_string(e.to_string())?))?;
                }
            } else {
                let text = match results.pop_front() {
                    Some(Value::String(s)) => s.to_string_lossy(),
                    Some(other) => format!("{other:?}"),
                    None => "error".to_string(),
                };
                sink.fail(lua, text);
            }
        }
    }
    Ok(true)
}

fn current_handler(st: &StateHub) -> Function {
    st.error_handler
        .borrow()
        .clone()
        .unwrap_or_else(|| st.helpers.default_handler.clone())
}

/// Hands an error that did not come from inside a callback (a task that
/// failed to prepare) to the error handler.
fn report(_lua: &Lua, st: &StateHub, err: Value) -> mlua::Result<()> {
    let handler = current_handler(st);
    let _guard = CallbackGuard::enter(st);
    let _ =
        st.helpers
            .xpcall
            .call::<MultiValue>((handler, st.helpers.reply_handler.clone(), err))?;
    Ok(())
}

/// Hands a failure of a C callback (a decoder, `run` or finalizer that
/// raised, against its contract) to the error handler.
pub(crate) fn report_error(lua: &Lua, st: &StateHub, e: mlua::Error) {
    let text = match &e {
        mlua::Error::RuntimeError(text) => text.clone(),
        other => other.to_string(),
    };
    if let Ok(text) = lua.create_string(text) {
        let _ = report(lua, st, Value::String(text));
    }
}

/// Hands one item to `spawn` instead of running it: `spawn(handler)`,
/// where `handler` (from `prelude.lua`) runs the callback in whatever
/// coroutine calls it, binds `reply()` to that coroutine and answers the
/// reply with the callback's results unless it was taken. Returns false
/// for a skipped item (nothing to call).
fn spawn_item(lua: &Lua, st: &StateHub, item: Item, spawn: &Function) -> mlua::Result<bool> {
    let prepared = match item.prepare(lua) {
        Ok(p) => p,
        Err(e) => {
            report(lua, st, Value::String(lua.create_string(e.to_string())?))?;
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
    values.push_front(Value::Function(current_handler(st)));
    values.push_front(reply);
    let handler: Function = st.helpers.make_handler.call(values)?;
    let _guard = CallbackGuard::enter(st);
    let _ = st
        .helpers
        .xpcall
        .call::<MultiValue>((spawn.clone(), current_handler(st), handler))?;
    Ok(true)
}

/// Runs up to `max` items (all queued now when `max` is `None`) and
/// returns how many it ran; skipped items (see [`run_item`]) are taken but
/// neither counted nor counted against `max`. Stops
/// early right after the callback that called `stop()` (only `run()`
/// lets `stop()` set the flag).
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
    let mut ran = 0;
    while ran < max {
        // Borrows end before callbacks run: callbacks may poll().
        let (fast, posts) = {
            let mut batch = st.batch.borrow_mut();
            // Items of a library unregistered since they were drained
            // (even by the callback that just ran) never run.
            st.purge_stale(&mut batch);
            let front = batch.front();
            (
                front.is_some_and(|i| i.as_scalar_call().is_some()),
                front.is_some_and(Item::is_post),
            )
        };
        if posts {
            let (n, taken) = run_posts(lua, st, max - ran)?;
            ran += n;
            if st.stop_requested.get() {
                break;
            }
            if taken > 0 {
                continue;
            }
            // No room on the stack: the general path takes this one.
        }
        if fast {
            let n = run_calls(lua, st, max - ran)?;
            if n > 0 {
                ran += n;
                if st.stop_requested.get() {
                    break;
                }
                continue;
            }
            // A callback of another state: the slow path reports it.
        }
        let item = st.batch.borrow_mut().pop();
        let Some(item) = item else { break };
        if run_item(lua, st, item)? {
            ran += 1;
        }
        if st.stop_requested.get() {
            break;
        }
    }
    Ok(ran)
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

/// The fast path: runs up to `max` [`Item::call`] items with scalar
/// arguments from the front of the batch, inside one protected frame, each
/// as `lua_pcall(callback, arg)` with the error handler as message handler
/// (what `xpcall` does, without building a `MultiValue` or crossing mlua's
/// call machinery per item). Stops at the first other item, or at a
/// callback that belongs to another state, or after a callback that
/// called `stop()`. Returns how many ran.
///
/// Consecutive items usually share a callback: its function is fetched
/// from the registry once and kept on the stack, and the items' references
/// to it are released together when the run ends (one atomic operation on
/// a count the producer keeps writing, instead of one per item).
fn run_calls(lua: &Lua, st: &StateHub, max: usize) -> mlua::Result<usize> {
    let handler = current_handler(st);
    let _guard = CallbackGuard::enter(st);
    let mut ran = 0usize;
    // The callback whose function sits at stack index 2 (found to belong
    // to this state), and how many more references to it were taken from
    // items and forgotten, to be released with it. Holding it keeps its
    // address from being reused while it is the cached identity.
    let mut current: Option<(Callback, usize)> = None;
    // SAFETY: the closure runs on this state's thread inside mlua's
    // protected call, with the handler at stack index 1. It keeps the
    // current callback's function at index 2 and per item uses two slots
    // above that (reserved), which `pcall_scalar` gives back; the stack is
    // reset to the handler at the end. None of the raw helpers used in
    // the loop can raise (pcall_scalar catches the callback's errors), so
    // no longjmp crosses the Rust frames. The registry slot is read while
    // `current` holds a reference to its key. The batch is not borrowed
    // while a callback runs.
    unsafe {
        lua.exec_raw::<()>(handler, |state| {
            if !raw::reserve(state, 4) {
                return;
            }
            raw::set_top(state, 2); // index 2: the current callback (nil)
            while ran < max {
                let (cb, arg) = {
                    let mut batch = st.batch.borrow_mut();
                    st.purge_stale(&mut batch);
                    let Some((cb, _)) = batch.front().and_then(Item::as_scalar_call) else {
                        break;
                    };
                    let same = current.as_ref().is_some_and(|(c, _)| c.id() == cb.id());
                    if !same && !lua.owns_registry_value(cb.key()) {
                        break;
                    }
                    let Some(call) = batch.pop().and_then(Item::into_call) else {
                        break; // not reached: the front item was checked
                    };
                    call
                };
                match &mut current {
                    Some((c, extra)) if c.id() == cb.id() => {
                        // Its reference is released with `c`'s (counted).
                        std::mem::forget(cb);
                        *extra += 1;
                    }
                    _ => {
                        raw::replace_with_registry_value(state, 2, cb.key());
                        if let Some((old, extra)) = current.replace((cb, 0)) {
                            old.release(extra);
                        }
                    }
                }
                raw::pcall_scalar(state, 2, 1, &arg);
                ran += 1;
                if st.stop_requested.get() {
                    break;
                }
            }
            raw::set_top(state, 1);
        })?;
    }
    if let Some((c, extra)) = current {
        c.release(extra);
    }
    Ok(ran)
}

/// The fast path for C utilities: runs up to `max` fire-and-forget C
/// deliveries (1v0 `deliver`, 2v0 `post`) from the front of the batch,
/// inside one protected frame. Per item the utility's decoder or `run`
/// pushes the callback and its arguments, which are called with
/// `lua_pcall` and the error handler as message handler (what `xpcall`
/// does in [`run_item`]). An item whose decoder pushed nothing is taken
/// but not counted. Stops at the first other item, or after a callback
/// that called `stop()`. Returns how many ran and how many were taken.
///
/// A decoder or `run` that raises (against its contract) ends the
/// protected frame: its item is finished (2v0 `free(data, OK)`), counted
/// as ran, its error goes to the error handler, and the run goes on.
fn run_posts(lua: &Lua, st: &StateHub, max: usize) -> mlua::Result<(usize, usize)> {
    let (mut ran, mut taken) = (0, 0);
    while ran < max {
        let raised = std::cell::Cell::new(None);
        match run_posts_frame(lua, st, max - ran, &raised) {
            Ok((n, t)) => return Ok((ran + n, taken + t)),
            Err(e) => {
                let Some((n, t, frame)) = raised.get() else {
                    return Err(e);
                };
                frame.finish(&st.ran);
                report_error(lua, st, e);
                ran += n + 1;
                taken += t;
                if st.stop_requested.get() {
                    break;
                }
            }
        }
    }
    Ok((ran, taken))
}

/// [`run_posts`] in one protected frame. While a decoder or `run` runs,
/// `raised` holds its frame and the counts before it, for the caller to
/// finish it when it raises.
fn run_posts_frame(
    lua: &Lua,
    st: &StateHub,
    max: usize,
    raised: &std::cell::Cell<Option<(usize, usize, crate::capi::task::PostFrame)>>,
) -> mlua::Result<(usize, usize)> {
    let handler = current_handler(st);
    let _guard = CallbackGuard::enter(st);
    let mut ran = 0usize;
    let mut taken = 0usize;
    // SAFETY: the closure runs on this state's thread inside mlua's
    // protected call, with the handler at stack index 1. Per item the
    // stack is reset to the handler afterwards; LUA_MINSTACK free slots
    // are reserved for the decoder/run first, as a C function has. The
    // batch borrow ends before a C or Lua callback runs; lua_pcall catches
    // the Lua callback's errors, and a decoder or `run` must not raise
    // (header contract). No Rust value with a destructor is alive across
    // a callback.
    unsafe {
        lua.exec_raw::<()>(handler, |state| {
            if !raw::reserve(state, ffi::LUA_MINSTACK + 2) {
                return;
            }
            while ran < max {
                let frame = {
                    let mut batch = st.batch.borrow_mut();
                    st.purge_stale(&mut batch);
                    if !batch.front().is_some_and(Item::is_post) {
                        break;
                    }
                    match batch.pop().and_then(Item::into_post) {
                        Some(post) => post.take(&st.ran),
                        None => break, // not reached: the front was checked
                    }
                };
                raised.set(Some((ran, taken, frame)));
                taken += 1;
                let n = frame.run_in(state, 1, &st.ran);
                raised.set(None);
                if n > 0 {
                    raw::pcall_top(state, n, 1);
                    ran += 1;
                }
                raw::set_top(state, 1);
                if st.stop_requested.get() {
                    break;
                }
            }
            raw::set_top(state, 1);
        })?;
    }
    Ok((ran, taken))
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
    Ok(MultiValue::from_iter([
        old.map_or(Value::Nil, Value::Function)
    ]))
}
