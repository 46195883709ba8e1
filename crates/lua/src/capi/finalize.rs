//! Lua-thread finalizers of 2v0 utilities (`setfinalizer()`): a callback
//! with the state, after the utility's last item ran or was discarded,
//! where it can `luaL_unref` its callbacks and free its context (SPEC
//! section 7; Node-API's `finalize_cb`).
//!
//! # When one runs
//!
//! * After `unreg(h)`: `unreg()` moves the finalizer to `pending` and
//!   queues a wake-up item on the state's own port (registered with the
//!   first C utility). The Lua thread runs the pending finalizers when it
//!   takes that item. FIFO puts it after every item the utility queued
//!   before `unreg()`: those were discarded by `unreg()` itself, or, taken
//!   already, are purged from the batch before the wake-up item runs. A
//!   wake-up refused by a full queue is posted again by the next purge of
//!   the Lua thread (`retry`), which frees room by draining.
//! * At `lua_close` ([`Finalizers::run_at_close`], from the closing
//!   flag's hook, while the state still runs finalisers): the pending
//!   ones, then every finalizer still set (utilities that never
//!   unregistered), after the hub closed (items discarded, cancel
//!   callbacks run).
//!
//! Each runs once: it is moved out of `set`/`pending` under the lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use darksidesync_core::Port;
use darksidesync_sys::v2::FinalizeFn;
use mlua::{ffi, Lua};

use super::handles::{Handle, SendPtr};
use crate::item::{Item, Prepared};
use crate::raw;

/// A finalizer and what it is called with.
#[derive(Clone, Copy)]
pub(crate) struct Finalizer {
    pub(crate) f: FinalizeFn,
    pub(crate) h: Handle,
    pub(crate) ud: SendPtr,
}

#[derive(Default)]
struct Lists {
    /// Set by `setfinalizer()`, in registration order of their handles'
    /// first `setfinalizer()`.
    set: Vec<Finalizer>,
    /// Moved here by `unreg()`, waiting for the Lua thread.
    pending: Vec<Finalizer>,
}

/// One per state (see the module docs).
#[derive(Default)]
pub(crate) struct Finalizers {
    lists: Mutex<Lists>,
    /// The state's own port, for wake-up items.
    wake: OnceLock<Port<Item>>,
    /// A wake-up was refused (full queue): post it again.
    retry: AtomicBool,
}

impl Finalizers {
    fn lists(&self) -> MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the state's port for wake-up items, once.
    pub(crate) fn bind_port(&self, wake: impl FnOnce() -> Option<Port<Item>>) {
        if self.wake.get().is_none() {
            if let Some(port) = wake() {
                let _ = self.wake.set(port);
            }
        }
    }

    /// Sets (or with `None` clears) the finalizer of `h`.
    pub(crate) fn set(&self, h: Handle, f: Option<Finalizer>) {
        let mut lists = self.lists();
        match (lists.set.iter().position(|x| x.h == h), f) {
            (Some(i), Some(f)) => lists.set[i] = f,
            (Some(i), None) => {
                lists.set.remove(i);
            }
            (None, Some(f)) => lists.set.push(f),
            (None, None) => {}
        }
    }

    /// `unreg(h)`: its finalizer, if any, is due on the Lua thread.
    pub(crate) fn unregistered(&self, h: Handle) {
        let mut lists = self.lists();
        let Some(i) = lists.set.iter().position(|x| x.h == h) else {
            return;
        };
        let f = lists.set.remove(i);
        lists.pending.push(f);
        drop(lists);
        self.wake();
    }

    /// Queues a wake-up item (see the module docs).
    fn wake(&self) {
        let Some(port) = self.wake.get() else { return };
        let item = Item::from_fn(|lua| {
            run_pending(lua);
            Ok(Prepared {
                call: None,
                reply: None,
            })
        });
        match port.try_post(item) {
            Ok(_) => {}
            Err(e) => {
                self.retry.store(
                    e.kind == darksidesync_core::PostErrorKind::Full,
                    Ordering::Release,
                );
                e.item
                    .discard(darksidesync_core::Discarded::Refused(e.kind));
            }
        }
    }

    /// Called by the Lua thread's purges: posts a refused wake-up again.
    #[inline]
    pub(crate) fn retry(&self) {
        if self.retry.load(Ordering::Relaxed) && self.retry.swap(false, Ordering::AcqRel) {
            self.wake();
        }
    }

    fn take_pending(&self) -> Vec<Finalizer> {
        std::mem::take(&mut self.lists().pending)
    }

    /// Runs every finalizer still due, at `lua_close`, after the hub
    /// closed: pending ones first, then those set, last registered first.
    /// `state` is the closing state, running a finaliser (the closing
    /// flag's hook); without one (the hub dropped after `lua_close`) they
    /// are dropped uncalled: the state and its registry are gone. Each
    /// runs in a protected call: an error it raises is dropped.
    pub(crate) fn run_at_close(&self, state: Option<*mut ffi::lua_State>) {
        let mut due = self.take_pending();
        due.extend(std::mem::take(&mut self.lists().set).into_iter().rev());
        let Some(state) = state else { return };
        for f in due {
            // SAFETY: the hook runs inside a finaliser of lua_close on the
            // Lua thread, a C function frame with LUA_MINSTACK slots;
            // call_protected restores the stack and lets no error escape.
            unsafe { call_protected(state, f) };
        }
    }
}

/// The wake-up item's work: runs the finalizers pending in this state.
fn run_pending(lua: &Lua) {
    let Some(st) = lua
        .app_data_ref::<std::rc::Rc<crate::state::StateHub>>()
        .map(|s| s.clone())
    else {
        return;
    };
    let due = st.producers.finalizers.take_pending();
    for f in due {
        // SAFETY: exec_raw runs the closure on this state's thread in a
        // protected C frame with free slots; the finalizer is the
        // utility's, called as its contract says. An error it raises
        // unwinds to exec_raw's boundary (no Rust value with a destructor
        // lives in between) and goes to the error handler.
        let result = unsafe {
            lua.exec_raw::<()>((), |state| {
                (f.f)(state.cast(), f.h, f.ud.0);
                raw::set_top(state, 0);
            })
        };
        if let Err(e) = result {
            crate::item_loop::report_error(lua, &st, e);
        }
    }
}

/// Calls `f` with `state` inside `lua_pcall`, dropping an error.
///
/// # Safety
/// `state` is a valid state on its thread with two free stack slots.
unsafe fn call_protected(state: *mut ffi::lua_State, f: Finalizer) {
    let mut body = |state: *mut ffi::lua_State| {
        // SAFETY: a fresh frame on the state's thread; the finalizer is
        // the utility's, called as its contract says.
        unsafe { (f.f)(state.cast(), f.h, f.ud.0) };
        0
    };
    // SAFETY: per the contract; `body` holds a copy of `f` (plain values:
    // nothing to drop when an error unwinds it).
    unsafe {
        let top = raw::top(state);
        let _ = raw::pcall_body(state, &[], 0, 0, &mut body);
        raw::set_top(state, top);
    }
}
