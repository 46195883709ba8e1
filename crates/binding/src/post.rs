//! Fire-and-forget deliveries of closures: [`Dss::post`] (the closure
//! runs on the Lua thread) and [`Dss::post_callback`] (the closure
//! prepares a Lua callback that darksidesync calls).
//!
//! A closure is a trampoline function plus its captures: the shape of a
//! 2v0 post. One of at most `DSS2_INLINE_MAX` bytes (a handle or two and a
//! value) travels inside the item through 2v0 `post_inline`, with no
//! allocation, and runs in the module's item loop like its own items; a
//! larger one is boxed and goes through 2v0 `post`.

use std::ffi::{c_long, c_void};
use std::time::Duration;

use mlua::Lua;

use crate::callback::{run_post_callback, run_post_callback_inline, Prepared};
use crate::error::{error_of, Error};
use crate::ffi;
use crate::handle::Dss;
use crate::trampoline::{fits_inline, free_inline, free_post, run_inline, run_post};

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
    ///
    /// `f` runs inside `dispatch()`, not in a coroutine: Lua code it calls
    /// **cannot yield** (see [Yielding](crate#yielding-callbacks)). To
    /// deliver a Lua callback, use [`post_callback`](Dss::post_callback)
    /// or a [`LuaCallback`](crate::LuaCallback).
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
        if fits_inline::<F>() && self.inner.inline {
            // SAFETY: run_inline::<F> and free_inline::<F> read the bytes
            // as the F that post_inline copies.
            return unsafe { self.post_inline(f, run_inline::<F>, timeout) };
        }
        // SAFETY: run_post::<F> reads `data` as the Box<Option<F>> that
        // post_boxed makes.
        unsafe { self.post_boxed(f, run_post::<F>, timeout) }
    }

    /// Hands `value` itself to 2v0 `post_inline` with `run` and
    /// [`free_inline`]: the item carries its bytes, so nothing is
    /// allocated; `post_inline` owns it from here and calls
    /// `free_inline::<V>` exactly once (header: "post_inline").
    ///
    /// # Safety
    /// `run` must read its `data` as a `V` (moving it out), `V` must fit
    /// ([`fits_inline`]), and the module must have `post_inline`.
    pub(crate) unsafe fn post_inline<V: Send + 'static>(
        &self,
        value: V,
        run: ffi::RunFn,
        timeout: c_long,
    ) -> Result<(), Error> {
        let value = std::mem::ManuallyDrop::new(value);
        let free = std::mem::needs_drop::<V>().then_some(free_inline::<V> as ffi::FreeFn);
        let api = self.inner.api;
        // SAFETY: the caller's contract; the bytes are `value`'s, which
        // post_inline copies and owns from here (the original is never
        // dropped: ManuallyDrop), handing the copy to `run` or `free`.
        let rc = unsafe {
            (api.post_inline)(
                self.inner.handle,
                Some(run),
                free,
                &*value as *const V as *const c_void,
                std::mem::size_of::<V>(),
                timeout,
            )
        };
        if rc == ffi::OK {
            Ok(())
        } else {
            Err(error_of(api, rc))
        }
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
    /// while the queue is full. The callback may yield under the
    /// coroutine adapters ([Yielding](crate#yielding-callbacks)); `prepare`
    /// itself runs inside `dispatch()` and must not call Lua that yields.
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

    /// Like [`post_callback`](Dss::post_callback), but waits at most
    /// `timeout` for room in a full queue, then refuses with
    /// [`Error::Full`] (`prepare` is dropped). For a thread that must not
    /// stall on one slow state.
    pub fn post_callback_timeout<P>(&self, prepare: P, timeout: Duration) -> Result<(), Error>
    where
        P: FnOnce(&Lua) -> mlua::Result<Prepared> + Send + 'static,
    {
        self.post_callback_inner(prepare, timeout_ms(Some(timeout)))
    }

    fn post_callback_inner<P>(&self, prepare: P, timeout: c_long) -> Result<(), Error>
    where
        P: FnOnce(&Lua) -> mlua::Result<Prepared> + Send + 'static,
    {
        if fits_inline::<P>() && self.inner.inline {
            // SAFETY: run_post_callback_inline::<P> and free_inline::<P>
            // read the bytes as the P that post_inline copies.
            return unsafe { self.post_inline(prepare, run_post_callback_inline::<P>, timeout) };
        }
        // SAFETY: run_post_callback::<P> reads `data` as the
        // Box<Option<P>> that post_boxed makes.
        unsafe { self.post_boxed(prepare, run_post_callback::<P>, timeout) }
    }
}
