//! [`Dss::on_finalize`]: the library's Lua-thread finalizer (2v0
//! `setfinalizer`), run once after its last closure ran or was dropped,
//! where it can drop what it keeps in the Lua state (registry keys,
//! `LuaCallback`s) and free its context.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mlua::Lua;

use crate::error::{error_of, Error};
use crate::ffi::{self, Handle};
use crate::handle::Dss;
use crate::raw::lua_State;

/// A library's finalizer (see [`Dss::on_finalize`]).
type Finalize = Box<dyn FnOnce(Option<&Lua>) + Send>;

/// What the C side calls back, shared with this crate's cancel callback.
#[derive(Default)]
struct Slot {
    /// Set when the state closes (before finalizers run): no `&Lua` then,
    /// mlua's own per-state data may be gone.
    closing: AtomicBool,
    f: Mutex<Option<Finalize>>,
}

/// Slots by handle, until their finalizer ran.
static SLOTS: Mutex<Vec<(Handle, Arc<Slot>)>> = Mutex::new(Vec::new());

fn slots() -> std::sync::MutexGuard<'static, Vec<(Handle, Arc<Slot>)>> {
    SLOTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The state of `h` is closing (its cancel callback runs).
pub(crate) fn closing(h: Handle) {
    if let Some((_, slot)) = slots().iter().find(|(k, _)| *k == h) {
        slot.closing.store(true, Ordering::Release);
    }
}

/// The finalizer darksidesync calls, once, on the Lua thread.
unsafe extern "C-unwind" fn finalize(l: *mut lua_State, h: Handle, _ud: *mut c_void) {
    let slot = {
        let mut all = slots();
        match all.iter().position(|(k, _)| *k == h) {
            Some(at) => all.swap_remove(at).1,
            None => return,
        }
    };
    let f = slot.f.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(f) = f else { return };
    let closing = slot.closing.load(Ordering::Acquire);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if closing {
            f(None);
        } else {
            // SAFETY: after unregister() the state is open and `l` a valid
            // state of it on the Lua thread (2v0 contract); the Lua it
            // gives outlives this call.
            let lua = unsafe { Lua::get_or_init_from_ptr(l) };
            f(Some(lua));
        }
    }));
}

impl Dss {
    /// Sets what runs once on the Lua thread after this library's last
    /// closure ran or was dropped: after [`unregister`](Dss::unregister)
    /// (with `Some(lua)`, when the state next takes its queue), or when
    /// the state closes (with `None`: inside `lua_close` the state is
    /// going away, and with it whatever the library kept in it). Drop
    /// registry keys and free the library's context here (as Node-API's
    /// `finalize_cb`). Replaces an earlier one. A panic in it is caught.
    pub fn on_finalize<F>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(Option<&Lua>) + Send + 'static,
    {
        let (api, h) = (self.api(), self.handle());
        let slot = {
            let mut all = slots();
            match all.iter().find(|(k, _)| *k == h) {
                Some((_, slot)) => slot.clone(),
                None => {
                    let slot = Arc::new(Slot::default());
                    all.push((h, slot.clone()));
                    slot
                }
            }
        };
        *slot.f.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
        // SAFETY: setfinalizer() accepts any handle value and returns a
        // code; `finalize` has the header's signature and ignores `ud`.
        let rc = unsafe { (api.setfinalizer)(h, Some(finalize), std::ptr::null_mut()) };
        if rc == ffi::OK {
            Ok(())
        } else {
            slots().retain(|(k, _)| *k != h);
            Err(error_of(api, rc))
        }
    }
}
