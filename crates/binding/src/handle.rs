//! [`Dss`]: a registered library's handle on one Lua state's darksidesync,
//! with its keep-alive ([`Hold`], the registration's own reference) and
//! its close notification.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::{Lua, MultiValue, RegistryKey};

use crate::callback::{
    reply_callback, run_call_callback, run_post_callback, CallbackSlot, Prepared,
};
use crate::discovery::find_api;
use crate::error::{error_of, strerror, Error, LuaError};
use crate::ffi::{self, Api, Handle};
use crate::stats::Stats;
use crate::trampoline::{free_post, run_call, run_post, CallSlot};
use crate::waits::Waits;

/// Identifies one library: declare a `static` and pass its address to
/// [`Dss::register`]. Two statics are two libraries, even with the same
/// name.
/// Not zero-sized: distinct statics must have distinct addresses.
pub struct LibId(#[allow(dead_code)] u8);

impl LibId {
    /// A new identity (its address is what counts).
    #[allow(clippy::new_without_default)]
    pub const fn new() -> LibId {
        LibId(0)
    }
}

/// What to run once when the library's registration ends.
type Notice = Mutex<Option<Box<dyn FnOnce() + Send>>>;

struct Inner {
    api: &'static Api,
    handle: Handle,
    /// The registration's own keep-alive reference is held.
    keeps_run_alive: AtomicBool,
    /// Also in `NOTICES` until the registration ends.
    notice: Arc<Notice>,
    /// Registry keys of dropped `LuaCallback`s whose release item could
    /// not be queued yet (see `lua_callback.rs`); `graves_waiting` is set
    /// while there are any.
    graves: Mutex<Vec<RegistryKey>>,
    graves_waiting: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // After the state closed the record stays until unreg() releases
        // it; while the state is open, dropping the last handle must not
        // cancel items still queued, so the library stays registered and
        // only lets go of run().
        // SAFETY: status/unreg/release accept any handle value and only
        // return codes.
        let status = unsafe { (self.api.status)(self.handle) };
        // SAFETY: as above.
        unsafe {
            if status == ffi::ECLOSED {
                (self.api.unreg)(self.handle);
            } else if self.keeps_run_alive.swap(false, Ordering::AcqRel) {
                (self.api.release)(self.handle);
            }
        }
        let graves = std::mem::take(self.graves.get_mut().unwrap_or_else(|p| p.into_inner()));
        if status == ffi::OK {
            // Posts of these callbacks may still be queued: their slots
            // must not be reused under them; kept until the state closes.
            graves.into_iter().for_each(std::mem::forget);
        }
    }
}

/// A registered library's handle on one Lua state's darksidesync:
/// `Send + Sync + Clone`, cheap to clone, safe to use after the state is
/// gone (every use then fails with [`Error::Closed`]). Two handles are
/// equal when they are the same library in the same state.
#[derive(Clone)]
pub struct Dss {
    inner: Arc<Inner>,
}

impl PartialEq for Dss {
    fn eq(&self, other: &Dss) -> bool {
        self.inner.handle == other.inner.handle
    }
}

impl Eq for Dss {}

impl fmt::Debug for Dss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dss")
            .field("handle", &self.inner.handle)
            .finish()
    }
}

/// This state's registrations made through this copy of the crate, by
/// `LibId` address, so registering again returns the same handle.
#[derive(Default)]
struct Registrations(HashMap<usize, Dss>);

fn timeout_ms(timeout: Option<Duration>) -> c_long {
    match timeout {
        None => -1,
        Some(d) => c_long::try_from(d.as_millis()).unwrap_or(c_long::MAX),
    }
}

/// The close notifications of live registrations, by handle: whoever
/// takes a handle's entry out (the state's close, or `unregister`) runs
/// it, so it runs once even when both race. Touched only when a library
/// registers or its registration ends, never per delivery.
static NOTICES: Mutex<Vec<(Handle, Arc<Notice>)>> = Mutex::new(Vec::new());

fn notices() -> std::sync::MutexGuard<'static, Vec<(Handle, Arc<Notice>)>> {
    NOTICES.lock().unwrap_or_else(|p| p.into_inner())
}

/// The notice registered for `h`, if its registration has not ended.
fn notice_of(h: Handle) -> Option<Arc<Notice>> {
    notices()
        .iter()
        .find(|(k, _)| *k == h)
        .map(|(_, n)| n.clone())
}

/// Ends `h`'s registration: takes its notice out and runs it, once; a
/// panic in it stays here.
fn end_registration(h: Handle) {
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
unsafe extern "C" fn state_closing(h: Handle, _ud: *mut c_void) {
    crate::finalizer::closing(h);
    end_registration(h);
}

impl Dss {
    /// Registers the library `libid` (named `name` in darksidesync's
    /// statistics) with the darksidesync instance of `lua`, loading it
    /// with `require "darksidesync"` if this state has not yet. Lua thread
    /// only; registering again returns the same handle.
    ///
    /// The registration keeps `darksidesync.run()` waiting until it ends
    /// ([`unregister`](Dss::unregister), or the state closes) or the
    /// library opts out with [`unref`](Dss::unref).
    ///
    /// Fails with a Lua error naming `name` when darksidesync cannot be
    /// loaded, or the state is closing.
    pub fn register(lua: &Lua, libid: &'static LibId, name: &str) -> mlua::Result<Dss> {
        let key = libid as *const LibId as usize;
        if let Some(known) = lua
            .app_data_ref::<Registrations>()
            .and_then(|r| r.0.get(&key).cloned())
            .filter(Dss::is_live)
        {
            return Ok(known);
        }
        let api = find_api(lua, name)?;
        let cname = CString::new(name.replace('\0', "?")).expect("NULs replaced");
        let mut handle: Handle = 0;
        let mut rc = ffi::EINTERNAL;
        // SAFETY: exec_raw hands us this state's running lua_State on the
        // Lua thread; reg() follows the header contract (Lua thread, valid
        // L, a libid address, a NUL-terminated name, a cancel callback
        // that ignores its NULL user data, an out pointer to a live
        // local). It neither raises nor keeps `cname`.
        unsafe {
            lua.exec_raw::<()>((), |state| {
                rc = (api.reg)(
                    state,
                    key as *const c_void,
                    cname.as_ptr(),
                    Some(state_closing),
                    std::ptr::null_mut(),
                    &mut handle,
                );
            })?;
        }
        let notice = match rc {
            ffi::OK => {
                let fresh: Arc<Notice> = Arc::new(Mutex::new(None));
                notices().push((handle, fresh.clone()));
                fresh
            }
            // Registered before by another copy of this crate: share.
            _ => notice_of(handle).unwrap_or_default(),
        };
        let dss = match rc {
            ffi::OK | ffi::EALREADY => Dss {
                inner: Arc::new(Inner {
                    api,
                    handle,
                    keeps_run_alive: AtomicBool::new(false),
                    notice,
                    graves: Mutex::new(Vec::new()),
                    graves_waiting: AtomicBool::new(false),
                }),
            },
            other => {
                return Err(mlua::Error::runtime(format!(
                    "{name}: cannot register with darksidesync: {}",
                    strerror(api, other)
                )))
            }
        };
        if rc == ffi::OK {
            dss.reference().map_err(|e| {
                mlua::Error::runtime(format!("{name}: cannot keep darksidesync.run() alive: {e}"))
            })?;
        }
        if lua.app_data_ref::<Registrations>().is_none() {
            lua.set_app_data(Registrations::default());
        }
        if let Some(mut r) = lua.app_data_mut::<Registrations>() {
            r.0.insert(key, dss.clone());
        }
        Ok(dss)
    }

    /// Lets `darksidesync.run()` return while this library is registered
    /// but idle: drops the registration's keep-alive reference (like
    /// Neon's `Channel::unref` or `napi_unref_threadsafe_function`). Take
    /// a [`hold`](Dss::hold) for each piece of pending work instead. True
    /// when the reference was held.
    pub fn unref(&self) -> bool {
        if !self.inner.keeps_run_alive.swap(false, Ordering::AcqRel) {
            return false;
        }
        // SAFETY: release() accepts any handle value and returns a code.
        unsafe { (self.inner.api.release)(self.inner.handle) };
        true
    }

    /// Takes the registration's keep-alive reference again after
    /// [`unref`](Dss::unref) (Neon's `Channel::reference`); registering
    /// takes it. Nothing happens when it is held.
    pub fn reference(&self) -> Result<(), Error> {
        if self.inner.keeps_run_alive.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // SAFETY: hold() accepts any handle value and returns a code.
        let rc = unsafe { (self.inner.api.hold)(self.inner.handle) };
        if rc == ffi::OK {
            Ok(())
        } else {
            self.inner.keeps_run_alive.store(false, Ordering::Release);
            Err(error_of(self.inner.api, rc))
        }
    }

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
    /// ran, the state closed or `timeout` (for the whole call) passed. `f`
    /// returning `Err` gives [`Error::Lua`] with the message and traceback
    /// apart, and counts in [`Stats::errors`]. Waits for room while the
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

    /// Takes a keep-alive reference: while it is held,
    /// `darksidesync.run()` keeps waiting for this library's deliveries.
    /// For a library that called [`unref`](Dss::unref): one per piece of
    /// pending work.
    pub fn hold(&self) -> Result<Hold, Error> {
        // SAFETY: hold() accepts any handle value and returns a code.
        let rc = unsafe { (self.inner.api.hold)(self.inner.handle) };
        if rc == ffi::OK {
            Ok(Hold {
                inner: self.inner.clone(),
            })
        } else {
            Err(error_of(self.inner.api, rc))
        }
    }

    /// Keeps registry keys whose release item could not be queued (see
    /// `lua_callback.rs`).
    pub(crate) fn bury(&self, keys: Vec<RegistryKey>) {
        let mut graves = self.inner.graves.lock().unwrap_or_else(|p| p.into_inner());
        graves.extend(keys);
        self.inner.graves_waiting.store(true, Ordering::Release);
    }

    /// Whether [`bury`](Dss::bury) kept keys (one relaxed load).
    #[inline]
    pub(crate) fn has_graves(&self) -> bool {
        self.inner.graves_waiting.load(Ordering::Relaxed)
    }

    /// Takes the keys [`bury`](Dss::bury) kept, if any.
    pub(crate) fn dig_up(&self) -> Vec<RegistryKey> {
        if !self.has_graves() {
            return Vec::new();
        }
        let mut graves = self.inner.graves.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.graves_waiting.store(false, Ordering::Relaxed);
        std::mem::take(&mut *graves)
    }

    /// Whether `lua` is the state this handle was registered in.
    pub(crate) fn registered_in(&self, lua: &Lua) -> bool {
        lua.app_data_ref::<Registrations>()
            .is_some_and(|r| r.0.values().any(|d| d == self))
    }

    /// True while the handle is registered and its state open.
    pub fn is_live(&self) -> bool {
        // SAFETY: status() accepts any handle value and returns a code.
        unsafe { (self.inner.api.status)(self.inner.handle) == ffi::OK }
    }

    /// This library's counters.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut s = ffi::Stats {
            size: std::mem::size_of::<ffi::Stats>(),
            ..Default::default()
        };
        // SAFETY: `s` is a live dss2_stats_t with `size` set (header contract).
        let rc = unsafe { (self.inner.api.stats)(self.inner.handle, &mut s) };
        if rc != ffi::OK {
            return Err(error_of(self.inner.api, rc));
        }
        Ok(s.into())
    }

    /// How long this library's items waited in the queue, post to run;
    /// `None` while timing is off in its state (see [`Waits`]).
    pub fn waits(&self) -> Result<Option<Waits>, Error> {
        self.waits_of(0)
    }

    /// [`waits`](Dss::waits) of every item of the library's state, its own
    /// and every other library's.
    pub fn state_waits(&self) -> Result<Option<Waits>, Error> {
        self.waits_of(ffi::WAITS_STATE)
    }

    fn waits_of(&self, flags: c_int) -> Result<Option<Waits>, Error> {
        let mut w = ffi::Waits {
            size: std::mem::size_of::<ffi::Waits>(),
            ..Default::default()
        };
        // SAFETY: `w` is a live dss2_waits_t with `size` set (header
        // contract); the API struct has `waits` (its size was checked
        // when the handle was made).
        let rc = unsafe { (self.inner.api.waits)(self.inner.handle, flags, &mut w) };
        if rc != ffi::OK {
            return Err(error_of(self.inner.api, rc));
        }
        Ok(Waits::from_ffi(&w))
    }

    /// The API struct and handle (for the other files of this crate).
    pub(crate) fn api(&self) -> &'static Api {
        self.inner.api
    }

    pub(crate) fn handle(&self) -> Handle {
        self.inner.handle
    }

    /// Unregisters the library: its queued closures are dropped unrun,
    /// blocked calls return [`Error::Cancelled`], its keep-alive references
    /// go, the [`on_close`](Dss::on_close) notification runs here, and
    /// every clone of this handle becomes stale. False when it already was.
    /// Off the Lua thread it returns only once no closure of this library
    /// runs there (do not call it holding a lock such a closure takes);
    /// closures the Lua thread already took are dropped there later, and
    /// [`on_finalize`](Dss::on_finalize) runs after them.
    pub fn unregister(&self) -> bool {
        // SAFETY: unreg() accepts any handle value and returns a code.
        if unsafe { (self.inner.api.unreg)(self.inner.handle) } != ffi::OK {
            return false;
        }
        self.inner.keeps_run_alive.store(false, Ordering::Release);
        end_registration(self.inner.handle);
        true
    }
}

/// A keep-alive reference ([`Dss::hold`]); released on drop.
pub struct Hold {
    inner: Arc<Inner>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        // SAFETY: release() accepts any handle value and returns a code; a
        // closed or unregistered handle already dropped its references.
        unsafe { (self.inner.api.release)(self.inner.handle) };
    }
}

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hold")
    }
}
