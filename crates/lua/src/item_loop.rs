//! The one loop that runs items on the Lua thread, for `dispatch()`,
//! `run()` and `yield()`, and the one way to take an item from the front of
//! the batch, which `poll()` shares.
//!
//! A dispatched callback runs as `xpcall` would run it:
//!
//! * fire-and-forget: the message handler is the state's error handler
//!   (`seterrorhandler`), so it runs in the failing callback's context;
//! * blocking delivery: the message handler is `tostring`, the callback's
//!   return values become the reply, its error text the handler error.
//!
//! Either way the error stops at that item: the next one runs.
//!
//! # The loop
//!
//! [`run_items`] runs inside one protected C frame whose stack holds the
//! error handler (index 1) and the function of the last [`Item::call`]
//! callback (index 2). Per item it purges the batch of items whose library
//! unregistered, takes the front item ([`take_front`]), and then
//!
//! * a scalar [`Item::call`]: pushes the argument and calls the function
//!   with `lua_pcall` (what `xpcall` does, without mlua's call machinery);
//! * an inline post (`post.rs`): counts it as ran, lets the producer push
//!   the callback and its arguments and calls them with `lua_pcall` (or
//!   nothing, when the producer's code did the work itself); the posts
//!   that follow it run in the same protected call, which catches a
//!   producer's error once per run instead of once per item
//!   (`post_run.rs`);
//! * anything else: [`run_item`], through mlua.
//!
//! A [`StackGuard`](crate::raw::StackGuard) puts the stack back after each
//! item. The loop stops after `max` items that ran (skipped items, which
//! had nothing to call, do not count), when the batch is empty, or right
//! after the callback that called `stop()`.

use mlua::{ffi, Function, Lua, MultiValue, RegistryKey, Value};

use crate::counted::Held;
use crate::data::Data;
use crate::item::{Callback, Item};
use crate::post::{PostFrame, RanCounter};
use crate::post_run::run_posts;
use crate::raw;
use crate::state::StateHub;
use darksidesync_core::Batch;

/// Counts a running callback; `forbid_in_callback` sees it.
pub(crate) struct CallbackGuard<'a>(&'a StateHub);

impl<'a> CallbackGuard<'a> {
    pub(crate) fn enter(st: &'a StateHub) -> CallbackGuard<'a> {
        st.in_callback.set(st.in_callback.get() + 1);
        CallbackGuard(st)
    }
}

impl Drop for CallbackGuard<'_> {
    fn drop(&mut self) {
        self.0.in_callback.set(self.0.in_callback.get() - 1);
    }
}

/// The state's error handler, or the default one.
pub(crate) fn current_handler(st: &StateHub) -> Function {
    st.error_handler
        .borrow()
        .clone()
        .unwrap_or_else(|| st.helpers.default_handler.clone())
}

/// Hands an error that did not come from inside a callback (a task that
/// failed to prepare) to the error handler.
pub(crate) fn report(st: &StateHub, err: Value) -> mlua::Result<()> {
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
        let _ = report(st, Value::String(text));
    }
}

/// What [`take_front`] found at the front of the batch.
pub(crate) enum Front {
    /// Nothing queued.
    Empty,
    /// Taken: an [`Item::call`] of this state with a scalar argument.
    Call(Callback, Data),
    /// Taken and counted as ran: an inline post, to run now.
    Post(PostFrame),
    /// Left in place: an item for the general path (a boxed task, a string
    /// argument, a callback of another state).
    General,
}

/// Takes the front item of `batch` when it can run on a raw frame. `owns`
/// tells whether a callback's key belongs to this state (asked only for
/// callbacks other than `known`, the one the caller already checked).
/// The caller purged the batch first.
pub(crate) fn take_front(
    batch: &mut Batch<Item>,
    ran: &RanCounter,
    known: Option<*const RegistryKey>,
    owns: impl FnOnce(&RegistryKey) -> bool,
) -> Front {
    let Some(front) = batch.front() else {
        return Front::Empty;
    };
    if front.is_post() {
        return match take_post(batch, ran) {
            Some(post) => Front::Post(post),
            None => Front::Empty, // not reached: the front was checked
        };
    }
    let Some((cb, _)) = front.as_scalar_call() else {
        return Front::General;
    };
    if known != Some(cb.id()) && !owns(cb.key()) {
        return Front::General;
    }
    match batch.pop().and_then(Item::into_call) {
        Some((cb, arg)) => Front::Call(cb, arg),
        None => Front::Empty, // not reached: the front was checked
    }
}

/// Takes the front item when it is an inline post, counted as ran.
pub(crate) fn take_post(batch: &mut Batch<Item>, ran: &RanCounter) -> Option<PostFrame> {
    if !batch.front()?.is_post() {
        return None;
    }
    Some(batch.pop().and_then(Item::into_post)?.take(ran))
}

/// Runs one item through mlua (the general path). Returns false when the
/// item had nothing to call (skipped: a call whose caller already timed
/// out, a DSS decoder that pushed nothing), which is not counted as run.
/// Errors of the callback never escape; an `Err` here is a failure of the
/// Lua machinery itself (out of memory).
pub(crate) fn run_item(lua: &Lua, st: &StateHub, item: Item) -> mlua::Result<bool> {
    let prepared = match item.prepare(lua, st) {
        Ok(p) => p,
        Err(e) => {
            // Reported to the error handler, as a failing callback is.
            report(st, Value::String(lua.create_string(e.to_string())?))?;
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
                    report(st, err)?;
                }
                return Ok(true);
            };
            if ok {
                if let Err(e) = sink.send(lua, results) {
                    report(st, Value::String(lua.create_string(e.to_string())?))?;
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

/// The callback whose function sits at stack index 2, and the references
/// to it taken from items, released together (see [`Held`]): consecutive
/// items usually share a callback, so its function is fetched once, and
/// the references go in one atomic operation on a count the producer keeps
/// writing instead of one per item.
#[derive(Default)]
struct HeldCallback(Held<RegistryKey>);

impl HeldCallback {
    fn id(&self) -> Option<*const RegistryKey> {
        self.0.get().map(|key| key as *const RegistryKey)
    }

    /// Makes `cb` the held callback, its function at index 2.
    ///
    /// # Safety
    /// `state` is the loop's frame, with a free slot; `cb` belongs to it.
    unsafe fn hold(&mut self, state: *mut ffi::lua_State, cb: Callback) {
        if self.0.hold(cb.into_counted()) {
            if let Some(key) = self.0.get() {
                // SAFETY: per the contract; the key is alive (held).
                unsafe { raw::replace_with_registry_value(state, 2, key) };
            }
        }
    }
}

/// Why [`run_frame`] returned.
enum Ended {
    /// `max` items ran, the batch is empty, or `stop()` was called.
    Done,
    /// The error handler changed: the frame is made again with the new one.
    NewHandler,
}

/// Runs up to `max` items from the batch (the one loop, see the module
/// docs) and returns how many ran.
pub(crate) fn run_items(lua: &Lua, st: &StateHub, max: usize) -> mlua::Result<usize> {
    let mut ran = 0usize;
    let mut held = HeldCallback::default();
    let result = loop {
        match run_frame(lua, st, max, &mut ran, &mut held) {
            Ok(Ended::NewHandler) if ran < max && !st.stop_requested.get() => continue,
            Ok(_) => break Ok(ran),
            Err(e) => break Err(e),
        }
    };
    drop(held);
    result
}

/// One protected frame of [`run_items`], with the current error handler.
fn run_frame(
    lua: &Lua,
    st: &StateHub,
    max: usize,
    ran: &mut usize,
    held: &mut HeldCallback,
) -> mlua::Result<Ended> {
    let handler = current_handler(st);
    let handler_set = st.handler_set.get();
    let mut ended = Ended::Done;
    let mut failure = None;
    // SAFETY: the closure runs on this state's thread inside mlua's
    // protected call, with the handler at stack index 1; index 2 holds
    // the held callback's function (nil until one is held). Three free
    // slots above it are reserved for a call (a producer's code gets a
    // fresh frame of its own inside PostFrame::call). Per item the stack
    // is put back by a StackGuard. None of the raw calls in the loop
    // raises: pcall catches the callbacks' errors and the producers'
    // (whose code runs inside PostFrame::call's pcall); the batch is not
    // borrowed while a callback runs.
    // The general path runs through mlua, which keeps its own stack
    // discipline above this frame.
    let called = unsafe {
        lua.exec_raw::<()>(handler, |state| {
            if !raw::reserve(state, 3) {
                failure = Some(mlua::Error::runtime("darksidesync: stack overflow"));
                return;
            }
            raw::push_nil(state); // index 2: the held callback
            if let Some(cb) = held.0.get() {
                raw::replace_with_registry_value(state, 2, cb);
            }
            while *ran < max {
                let stack = raw::StackGuard::new(state);
                let front = {
                    let mut batch = st.batch.borrow_mut();
                    // Items of a library unregistered since they were
                    // drained (even by the callback that just ran) never run.
                    st.purge_stale(&mut batch);
                    take_front(&mut batch, &st.ran, held.id(), |key| {
                        lua.owns_registry_value(key)
                    })
                };
                // A callback runs (a general item's guard is run_item's,
                // which does not cover its task's `prepare`, as before).
                let guard = match front {
                    Front::Call(..) => Some(CallbackGuard::enter(st)),
                    // run_posts counts its callbacks itself.
                    Front::Empty | Front::General | Front::Post(_) => None,
                };
                match front {
                    Front::Empty => break,
                    Front::Call(cb, arg) => {
                        held.hold(state, cb);
                        raw::pcall_scalar(state, 2, 1, &arg);
                        *ran += 1;
                    }
                    // This post and those after it, in one protected call.
                    Front::Post(post) => run_posts(state, st, post, 1, ran, max),
                    Front::General => {
                        let item = st.batch.borrow_mut().pop();
                        let Some(item) = item else { break };
                        match run_item(lua, st, item) {
                            Ok(true) => *ran += 1,
                            Ok(false) => {}
                            Err(e) => {
                                failure = Some(e);
                                break;
                            }
                        }
                    }
                }
                drop(guard);
                drop(stack);
                if st.stop_requested.get() {
                    break;
                }
                if st.handler_set.get() != handler_set {
                    ended = Ended::NewHandler;
                    break;
                }
            }
        })
    };
    called?;
    match failure {
        Some(e) => Err(e),
        None => Ok(ended),
    }
}
