//! The close notification of a registration ([`Dss::on_close`]): runs
//! once, when the state closes or the library unregisters, whichever
//! comes first.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use crate::ffi::Handle;
use crate::handle::Dss;

/// What to run once when the library's registration ends.
pub(crate) type Notice = Mutex<Option<Box<dyn FnOnce() + Send>>>;

/// The close notifications of live registrations, by handle: whoever
/// takes a handle's entry out (the state's close, or `unregister`) runs
/// it, so it runs once even when both race. Touched only when a library
/// registers or its registration ends, never per delivery.
static NOTICES: Mutex<Vec<(Handle, Arc<Notice>)>> = Mutex::new(Vec::new());

pub(crate) fn notices() -> std::sync::MutexGuard<'static, Vec<(Handle, Arc<Notice>)>> {
    NOTICES.lock().unwrap_or_else(|p| p.into_inner())
}

/// The notice registered for `h`, if its registration has not ended.
pub(crate) fn notice_of(h: Handle) -> Option<Arc<Notice>> {
    notices()
        .iter()
        .find(|(k, _)| *k == h)
        .map(|(_, n)| n.clone())
}

/// Ends `h`'s registration: takes its notice out and runs it, once; a
/// panic in it stays here.
pub(crate) fn end_registration(h: Handle) {
    let taken = {
        let mut all = notices();
        all.iter()
            .position(|(k, _)| *k == h)
            .map(|at| all.swap_remove(at).1)
    };
    let Some(notice) = taken else { return };
    let f = notice.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(f) = f {
        let _ = catch_unwind(AssertUnwindSafe(f));
    }
}

/// The cancel callback given to reg(): the state is closing.
pub(crate) unsafe extern "C" fn state_closing(h: Handle, _ud: *mut c_void) {
    crate::finalizer::closing(h);
    end_registration(h);
}

impl Dss {
    /// Sets what runs once when this library's registration ends: the
    /// state closes (on the thread that closes it, inside `lua_close`,
    /// after the library's queued closures were dropped: it must not use
    /// Lua) or [`unregister`](Dss::unregister) succeeds (on its caller's
    /// thread). Stop the library's threads here. Replaces an earlier one.
    pub fn on_close<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        *self.inner.notice.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }
}
