//! Stopping a child's Lua code when its parent closes, the way the stock
//! `lua` stops a script at Ctrl-C: a signal sent to the child's thread sets
//! a hook there (`lua_sethook` is the Lua API call meant for asynchronous
//! use), and the hook raises an error in the child's Lua code.
//!
//! A count hook set all along would need no signal, but it makes Lua 5.4
//! run more than twice as slow (once any count hook is set, its VM checks
//! on every instruction); this costs nothing until a stop. The signal is
//! one real-time signal, installed on first use only if nothing else
//! handles it; without it a child looping in Lua is left running (see
//! `child::stop_all`).

use std::cell::Cell;
use std::ffi::c_int;
use std::ptr;
use std::sync::{Mutex, OnceLock};

use mlua::{ffi, Lua};

use crate::raw;

thread_local! {
    /// The main `lua_State` of the state this thread runs, while it runs
    /// Lua code that may be interrupted; null otherwise.
    static ARMED_STATE: Cell<*mut ffi::lua_State> = const { Cell::new(ptr::null_mut()) };
}

/// VM instructions between two stop errors once stopped, so that code that
/// catches the first one (a `pcall` loop) is stopped too.
const REPEAT_INSTRUCTIONS: c_int = 1000;

const STOPPED: &std::ffi::CStr = c"darksidesync.states: stopped because the parent state closed";

/// A child thread's interrupt switch, shared with its parent.
#[derive(Default)]
pub(crate) struct Interrupt {
    /// The child's thread while it runs its chunk, and whether a stop was
    /// asked for. The parent signals only under this lock, so the thread is
    /// alive and its state open; a stop asked before the child armed is
    /// seen by `arm` under the same lock, so it cannot be lost.
    switch: Mutex<Switch>,
}

#[derive(Default)]
struct Switch {
    thread: Option<libc::pthread_t>,
    stop_requested: bool,
}

impl Interrupt {
    /// On the child's thread, before its chunk runs.
    pub(crate) fn arm(&self, lua: &Lua) -> mlua::Result<()> {
        let mut main = ptr::null_mut();
        // SAFETY: the closure only reads the state pointer mlua runs on (the
        // main state: no coroutine is running at this point).
        unsafe { lua.exec_raw::<()>((), |state| main = state)? };
        ARMED_STATE.with(|s| s.set(main));
        let mut switch = self.switch.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: pthread_self has no preconditions.
        switch.thread = Some(unsafe { libc::pthread_self() });
        if switch.stop_requested {
            // The parent closed before this chunk started: stop it at its
            // first instruction, as the signal would have.
            set_stop_hook(main);
        }
        Ok(())
    }

    /// On the child's thread, after its chunk, before its state closes.
    pub(crate) fn disarm(&self) {
        self.switch.lock().unwrap_or_else(|p| p.into_inner()).thread = None;
        let state = ARMED_STATE.with(|s| s.replace(ptr::null_mut()));
        if !state.is_null() {
            // SAFETY: this thread owns the state, which is still open; a
            // signal that arrived before the swap above may have set the
            // stop hook, removed here so that the close runs no hook.
            unsafe { raw::set_hook(state, None, false, 0) };
        }
    }

    /// From the parent: interrupts the child's Lua code if it runs. False
    /// when it does not, or no signal is available.
    /// A child that has not armed yet stops when it does.
    pub(crate) fn fire(&self) -> bool {
        let mut switch = self.switch.lock().unwrap_or_else(|p| p.into_inner());
        switch.stop_requested = true;
        let (Some(t), Some(sig)) = (switch.thread, signal()) else {
            return false;
        };
        // SAFETY: `t` is alive: it clears `thread` under this lock before
        // it ends its chunk, so it cannot have exited while we hold it.
        unsafe { libc::pthread_kill(t, sig) == 0 }
    }
}

/// The signal, installed on first use; `None` when the application
/// handles it already or installing failed.
fn signal() -> Option<c_int> {
    static SIGNAL: OnceLock<Option<c_int>> = OnceLock::new();
    *SIGNAL.get_or_init(|| {
        let sig = libc::SIGRTMAX() - 4;
        // SAFETY: sigaction with valid pointers; the handler is
        // async-signal-safe (a thread-local read and lua_sethook).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, ptr::null(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL
            {
                return None;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            (libc::sigaction(sig, &action, ptr::null_mut()) == 0).then_some(sig)
        }
    })
}

extern "C" fn on_signal(_sig: c_int) {
    let state = ARMED_STATE.with(|s| s.get());
    if !state.is_null() {
        set_stop_hook(state);
    }
}

/// Makes `state` raise the stop error at its next call, return or
/// instruction. `state` must be this thread's open, armed state; the Lua
/// manuals and the stock interpreters' Ctrl-C handlers call `lua_sethook`
/// from a signal handler exactly like this, so it may run in one.
fn set_stop_hook(state: *mut ffi::lua_State) {
    // SAFETY: per the contract above, `state` is open and owned by this
    // thread; lua_sethook only stores the hook fields.
    unsafe { raw::set_hook(state, Some(stop_hook), true, 1) };
}

/// Raises the stop error, and again every [`REPEAT_INSTRUCTIONS`].
unsafe extern "C-unwind" fn stop_hook(state: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
    // SAFETY: called by the VM on the state's own thread with room for a
    // value on the stack (hooks get LUA_MINSTACK slots); lua_error unwinds
    // to the nearest protected call, through no Rust frame with drops.
    unsafe {
        raw::set_hook(state, Some(stop_hook), false, REPEAT_INSTRUCTIONS);
        raw::raise(state, STOPPED);
    }
}
