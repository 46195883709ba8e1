//! Blocking deliveries of closures: [`Dss::call`] (the closure runs on
//! the Lua thread, its result comes back) and [`Dss::call_callback`] (the
//! closure prepares a Lua callback whose results are the answer), on 2v0
//! `call`.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::time::Duration;

use mlua::{Lua, MultiValue};

use crate::callback::{reply_callback, run_call_callback, CallbackSlot, Prepared};
use crate::error::{error_of, Error, LuaError};
use crate::ffi;
use crate::handle::Dss;
use crate::post::timeout_ms;
use crate::trampoline::{run_call, CallSlot};

impl Dss {
    /// A blocking [`post_callback`](Dss::post_callback): waits until the
    /// Lua side answered (the callback's results under `dispatch()`, or the
    /// arguments of the reply userdata under `poll()`), and returns what
    /// `answer` made of them on the Lua thread. The callback raising gives
    /// [`Error::Lua`] with its text; a reply userdata collected unanswered
    /// gives [`Error::Cancelled`]. `nowait`: fail with [`Error::Full`] at
    /// once on a full queue.
    pub fn call_callback<R, P, A>(
        &self,
        prepare: P,
        answer: A,
        timeout: Option<Duration>,
        nowait: bool,
    ) -> Result<R, Error>
    where
        P: FnOnce(&Lua) -> mlua::Result<Prepared> + Send,
        A: FnOnce(&Lua, MultiValue) -> mlua::Result<R> + Send,
        R: Send,
    {
        let mut slot: CallbackSlot<P, A, R> = CallbackSlot {
            prepare: Some(prepare),
            answer: Some(answer),
            result: None,
        };
        let mut errbuf = [0 as c_char; 1024];
        let api = self.inner.api;
        // SAFETY: as in call_inner: `slot` is lent to the trampolines only
        // while this call is blocked; errbuf is live for its length.
        let rc = unsafe {
            (api.call)(
                self.inner.handle,
                Some(run_call_callback::<P, A, R>),
                Some(reply_callback::<P, A, R>),
                &mut slot as *mut CallbackSlot<P, A, R> as *mut c_void,
                timeout_ms(timeout),
                if nowait { ffi::NOWAIT } else { 0 },
                errbuf.as_mut_ptr(),
                errbuf.len(),
            )
        };
        self.answer(rc, slot.result.take(), &mut errbuf)
    }

    /// The outcome of a call from its code and what the trampolines left.
    fn answer<R>(
        &self,
        rc: c_int,
        result: Option<Result<R, Error>>,
        errbuf: &mut [c_char],
    ) -> Result<R, Error> {
        match (rc, result) {
            (ffi::OK, Some(result)) => result,
            (ffi::OK, None) => Err(Error::Cancelled),
            // The closure failed: its own error, not the text copy.
            (ffi::EHANDLER, Some(Err(e))) => Err(e),
            (ffi::EHANDLER, _) => {
                // SAFETY: on EHANDLER errbuf holds a NUL-terminated text
                // (header contract); the last byte is NUL in any case.
                let last = errbuf.len() - 1;
                errbuf[last] = 0;
                let text = unsafe { CStr::from_ptr(errbuf.as_ptr()) }.to_string_lossy();
                Err(Error::Lua(LuaError::from_text(&text)))
            }
            (other, _) => Err(error_of(self.inner.api, other)),
        }
    }

    /// Runs `f` on the Lua thread and returns its result, blocking until it
    /// ran, the state closed or `timeout` (for the whole call) passed.
    /// Like [`post`](Dss::post)'s, Lua code `f` calls cannot yield: a
    /// call into a Lua callback is [`call_callback`](Dss::call_callback). `f`
    /// returning `Err` gives [`Error::Lua`] with the message and traceback
    /// apart, and counts in [`Stats::errors`](crate::Stats::errors). Waits for room while the
    /// queue is full.
    ///
    /// On the Lua thread itself it fails at once with
    /// [`Error::WouldDeadlock`] (`f` is dropped unrun).
    pub fn call<R, F>(&self, f: F, timeout: Option<Duration>) -> Result<R, Error>
    where
        F: FnOnce(&Lua) -> mlua::Result<R> + Send,
        R: Send,
    {
        self.call_inner(f, timeout, 0)
    }

    /// Like [`call`](Dss::call), but fails with [`Error::Full`] at once
    /// when the queue is full.
    pub fn try_call<R, F>(&self, f: F, timeout: Option<Duration>) -> Result<R, Error>
    where
        F: FnOnce(&Lua) -> mlua::Result<R> + Send,
        R: Send,
    {
        self.call_inner(f, timeout, ffi::NOWAIT)
    }

    fn call_inner<R, F>(&self, f: F, timeout: Option<Duration>, flags: c_int) -> Result<R, Error>
    where
        F: FnOnce(&Lua) -> mlua::Result<R> + Send,
        R: Send,
    {
        let mut slot: CallSlot<F, R> = CallSlot {
            f: Some(f),
            result: None,
        };
        let mut errbuf = [0 as c_char; 1024];
        let api = self.inner.api;
        // SAFETY: call() lends `slot` to run_call::<F, R> on the Lua thread
        // only while this call is blocked, and never after it returned
        // (header: "call(): data is borrowed"); errbuf is a live buffer of
        // the given length.
        let rc = unsafe {
            (api.call)(
                self.inner.handle,
                Some(run_call::<F, R>),
                None,
                &mut slot as *mut CallSlot<F, R> as *mut c_void,
                timeout_ms(timeout),
                flags,
                errbuf.as_mut_ptr(),
                errbuf.len(),
            )
        };
        self.answer(rc, slot.result.take(), &mut errbuf)
    }
}
