//! Fire-and-forget deliveries of closures: [`Dss::post`] (the closure
//! runs on the Lua thread) and [`Dss::post_callback`] (the closure
//! prepares a Lua callback that darksidesync calls), on 2v0 `post`.

use std::ffi::{c_long, c_void};
use std::time::Duration;

use mlua::Lua;

use crate::callback::{run_post_callback, Prepared};
use crate::error::{error_of, Error};
use crate::ffi;
use crate::handle::Dss;
use crate::trampoline::{free_post, run_post};

/// A timeout as 2v0 takes it: -1 waits without limit.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> c_long {
    match timeout {
        None => -1,
        Some(d) => c_long::try_from(d.as_millis()).unwrap_or(c_long::MAX),
    }
}

impl Dss {
    /// Queues `f` to run on the Lua thread, waiting for room while the
    /// queue is full. An error returned by `f` (or a panic in it) goes to
    /// the state's error handler (`darksidesync.seterrorhandler`), like an
    /// error in any fire-and-forget callback.
    ///
    /// On the Lua thread itself a full queue gives [`Error::WouldDeadlock`]
    /// instead of waiting.
    pub fn post<F>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(&Lua) -> mlua::Result<()> + Send + 'static,
    {
        self.post_inner(f, -1)
    }

    /// Like [`post`](Dss::post), but refuses with [`Error::Full`] at once
    /// when the queue is full. The refused closure is dropped.
    pub fn try_post<F>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(&Lua) -> mlua::Result<()> + Send + 'static,
    {
        self.post_inner(f, 0)
    }

    /// Like [`post`](Dss::post), but waits at most `timeout` for room in a
    /// full queue, then refuses with [`Error::Full`] (the closure is
    /// dropped). For a thread that must not stall on one slow state.
    pub fn post_timeout<F>(&self, f: F, timeout: Duration) -> Result<(), Error>
    where
        F: FnOnce(&Lua) -> mlua::Result<()> + Send + 'static,
    {
        self.post_inner(f, timeout_ms(Some(timeout)))
    }

    fn post_inner<F>(&self, f: F, timeout: c_long) -> Result<(), Error>
    where
        F: FnOnce(&Lua) -> mlua::Result<()> + Send + 'static,
    {
        // SAFETY: run_post::<F> reads `data` as the Box<Option<F>> that
        // post_boxed makes.
        unsafe { self.post_boxed(f, run_post::<F>, timeout) }
    }

    /// Hands `value` to 2v0 `post` as a `Box<Option<V>>` with `run` and
    /// [`free_post`]: post() owns it and calls `free_post::<V>` exactly
    /// once, whatever happens (header: "Ownership").
    ///
    /// # Safety
    /// `run` must read its `data` as a `Box<Option<V>>`.
    pub(crate) unsafe fn post_boxed<V: Send + 'static>(
        &self,
        value: V,
        run: ffi::RunFn,
        timeout: c_long,
    ) -> Result<(), Error> {
        let data = Box::into_raw(Box::new(Some(value))) as *mut c_void;
        // SAFETY: post() takes ownership of `data` and frees it once through
        // free_post::<V>; `run` agrees on its type (the caller's contract).
        unsafe { self.post_raw(run, Some(free_post::<V>), data, timeout) }
    }

    /// 2v0 `post` of `data` as it is.
    ///
    /// # Safety
    /// `run` and `free` accept `data` (header: "Ownership").
    pub(crate) unsafe fn post_raw(
        &self,
        run: ffi::RunFn,
        free: Option<ffi::FreeFn>,
        data: *mut c_void,
        timeout: c_long,
    ) -> Result<(), Error> {
        let api = self.inner.api;
        // SAFETY: the caller's contract; post() accepts any handle value.
        let rc = unsafe { (api.post)(self.inner.handle, Some(run), free, data, timeout) };
        if rc == ffi::OK {
            Ok(())
        } else {
            Err(error_of(api, rc))
        }
    }

    /// Queues a Lua callback that darksidesync calls itself, like the
    /// module's own deliveries: `prepare` runs on the Lua thread and
    /// returns the Lua function and its arguments; `dispatch()` then calls
    /// it under the state's error handler (which sees the error value as
    /// raised) and `poll()` returns it to its Lua caller. Waits for room
    /// while the queue is full.
    pub fn post_callback<P>(&self, prepare: P) -> Result<(), Error>
    where
        P: FnOnce(&Lua) -> mlua::Result<Prepared> + Send + 'static,
    {
        self.post_callback_inner(prepare, -1)
    }

    /// Like [`post_callback`](Dss::post_callback), but refuses with
    /// [`Error::Full`] at once when the queue is full.
    pub fn try_post_callback<P>(&self, prepare: P) -> Result<(), Error>
    where
        P: FnOnce(&Lua) -> mlua::Result<Prepared> + Send + 'static,
    {
        self.post_callback_inner(prepare, 0)
    }

    fn post_callback_inner<P>(&self, prepare: P, timeout: c_long) -> Result<(), Error>
    where
        P: FnOnce(&Lua) -> mlua::Result<Prepared> + Send + 'static,
    {
        // SAFETY: run_post_callback::<P> reads `data` as the
        // Box<Option<P>> that post_boxed makes.
        unsafe { self.post_boxed(prepare, run_post_callback::<P>, timeout) }
    }
}
