//! [`Dss`], the handle, and the trampolines that carry closures through the
//! C ABI.

use std::any::Any;
use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use mlua::ffi::{self as lua, lua_State};
use mlua::{Lua, Value};

use crate::ffi::{self, Api, Handle};

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

/// How a post or call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The Lua state has closed (or closed before the closure ran).
    Closed,
    /// The closure was dropped unrun while the state stayed open: the
    /// handle was unregistered.
    Cancelled,
    /// No answer within the call's timeout. The closure will not run any
    /// more once this is returned.
    TimedOut,
    /// The queue was full and the caller chose not to wait.
    Full,
    /// A blocking operation was attempted on the Lua thread itself, which
    /// would wait for itself forever.
    WouldDeadlock,
    /// The closure returned an error (or the Lua side raised one while
    /// answering): its message.
    Lua(String),
    /// The closure panicked on the Lua thread (the panic was caught there).
    Panicked(String),
    /// The handle was unregistered.
    Stale,
    /// Another darksidesync result code, with its description.
    Other(i32, String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("the Lua state has closed"),
            Error::Cancelled => f.write_str("cancelled"),
            Error::TimedOut => f.write_str("timed out"),
            Error::Full => f.write_str("the queue is full"),
            Error::WouldDeadlock => f.write_str("would deadlock: blocking call on the Lua thread"),
            Error::Lua(m) => write!(f, "Lua error: {m}"),
            Error::Panicked(m) => write!(f, "the closure panicked: {m}"),
            Error::Stale => f.write_str("the handle was unregistered"),
            Error::Other(code, m) => write!(f, "darksidesync error {code}: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// A library's counters (see `dss2_stats_t`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Items accepted (posts and calls).
    pub posted: u64,
    /// Items whose closure ran on the Lua thread.
    pub ran: u64,
    /// Accepted items dropped unrun.
    pub cancelled: u64,
    /// Posts and calls refused (full, closed, would deadlock ...).
    pub refused: u64,
    /// Calls answered.
    pub replies: u64,
    /// Calls answered with a handler error.
    pub errors: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Keep-alive references held now.
    pub keep_alive: u64,
}

struct Inner {
    api: &'static Api,
    handle: Handle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // After the state closed the record stays until unreg() releases
        // it; while the state is open, dropping the last handle must not
        // cancel items still queued, so the library stays registered.
        // SAFETY: status/unreg accept any handle value and only return codes.
        unsafe {
            if (self.api.status)(self.handle) == ffi::ECLOSED {
                (self.api.unreg)(self.handle);
            }
        }
    }
}

/// A registered library's handle on one Lua state's darksidesync:
/// `Send + Sync + Clone`, cheap to clone, safe to use after the state is
/// gone (every use then fails with [`Error::Closed`]).
#[derive(Clone)]
pub struct Dss {
    inner: Arc<Inner>,
}

impl fmt::Debug for Dss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dss")
            .field("handle", &self.inner.handle)
            .finish()
    }
}

fn strerror(api: &Api, code: c_int) -> String {
    // SAFETY: strerror returns a static NUL-terminated string, never NULL
    // (header contract); checked anyway.
    unsafe {
        let p = (api.strerror)(code);
        if p.is_null() {
            return format!("code {code}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

fn error_of(api: &Api, code: c_int) -> Error {
    match code {
        ffi::ECLOSED | ffi::ENOTSTARTED => Error::Closed,
        ffi::ECANCELLED => Error::Cancelled,
        ffi::ETIMEDOUT => Error::TimedOut,
        ffi::EFULL => Error::Full,
        ffi::EWOULDDEADLOCK => Error::WouldDeadlock,
        ffi::ESTALE => Error::Stale,
        other => Error::Other(other, strerror(api, other)),
    }
}

fn timeout_ms(timeout: Option<Duration>) -> c_long {
    match timeout {
        None => -1,
        Some(d) => c_long::try_from(d.as_millis()).unwrap_or(c_long::MAX),
    }
}

fn panic_text(p: Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_string()
    }
}

/// Finds the published 2v0 table in `lua`, or says why not.
fn find_api(lua: &Lua, name: &str) -> mlua::Result<&'static Api> {
    let missing = || {
        mlua::Error::runtime(format!(
            "{name}: darksidesync is not loaded in this Lua state; require \"darksidesync\" before \"{name}\""
        ))
    };
    let table = match lua.named_registry_value::<Value>(ffi::REGISTRY_NAME)? {
        Value::Table(t) => t,
        _ => return Err(missing()),
    };
    let ptr = match table.raw_get::<Value>(ffi::API_KEY)? {
        Value::LightUserData(p) if !p.0.is_null() => p.0 as *const Api,
        _ => {
            return Err(mlua::Error::runtime(format!(
                "{name}: the loaded darksidesync does not publish \"{}\" (too old?)",
                ffi::API_KEY
            )))
        }
    };
    // SAFETY: the registry entry is the module's static `dss_api_2v0_t`,
    // valid for the process (header contract: the module pins itself).
    // Only `size` is read before it is known that the rest is there.
    let api: &'static Api = unsafe { &*ptr };
    if api.size < std::mem::size_of::<Api>() {
        return Err(mlua::Error::runtime(format!(
            "{name}: the loaded darksidesync publishes a smaller DSS API 2v0 ({} bytes, need {})",
            api.size,
            std::mem::size_of::<Api>()
        )));
    }
    Ok(api)
}

impl Dss {
    /// Registers the library `libid` (named `name` in darksidesync's
    /// statistics) with the darksidesync instance of `lua`. Lua thread
    /// only; registering again returns the same handle.
    ///
    /// Fails with a Lua error when `require "darksidesync"` has not run in
    /// this state, or the state is closing.
    pub fn register(lua: &Lua, libid: &'static LibId, name: &str) -> mlua::Result<Dss> {
        let api = find_api(lua, name)?;
        let cname = CString::new(name.replace('\0', "?")).expect("NULs replaced");
        let mut handle: Handle = 0;
        let mut rc = ffi::EINTERNAL;
        let id = libid as *const LibId as *const c_void;
        // SAFETY: exec_raw hands us this state's running lua_State on the
        // Lua thread; reg() follows the header contract (Lua thread, valid
        // L, a libid address, a NUL-terminated name, an out pointer to a
        // live local). It neither raises nor keeps `cname`.
        unsafe {
            lua.exec_raw::<()>((), |state| {
                rc = (api.reg)(
                    state,
                    id,
                    cname.as_ptr(),
                    None,
                    std::ptr::null_mut(),
                    &mut handle,
                );
            })?;
        }
        match rc {
            ffi::OK | ffi::EALREADY => Ok(Dss {
                inner: Arc::new(Inner { api, handle }),
            }),
            other => Err(mlua::Error::runtime(format!(
                "{name}: cannot register with darksidesync: {}",
                strerror(api, other)
            ))),
        }
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

    fn post_inner<F>(&self, f: F, timeout: c_long) -> Result<(), Error>
    where
        F: FnOnce(&Lua) -> mlua::Result<()> + Send + 'static,
    {
        let data = Box::into_raw(Box::new(Some(f))) as *mut c_void;
        let api = self.inner.api;
        // SAFETY: post() takes ownership of `data` and calls free_post::<F>
        // exactly once, whatever happens (header: "Ownership"); run_post::<F>
        // and free_post::<F> agree on its type.
        let rc = unsafe {
            (api.post)(
                self.inner.handle,
                Some(run_post::<F>),
                Some(free_post::<F>),
                data,
                timeout,
            )
        };
        if rc == ffi::OK {
            Ok(())
        } else {
            Err(error_of(api, rc))
        }
    }

    /// Runs `f` on the Lua thread and returns its result, blocking until it
    /// ran, the state closed or `timeout` (for the whole call) passed. `f`
    /// returning `Err` gives [`Error::Lua`] with its message. Waits for
    /// room while the queue is full.
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
        match rc {
            ffi::OK => match slot.result.take() {
                Some(result) => result,
                None => Err(Error::Cancelled),
            },
            ffi::EHANDLER => {
                // SAFETY: on EHANDLER errbuf holds a NUL-terminated text
                // (header contract); the last byte is NUL in any case.
                errbuf[errbuf.len() - 1] = 0;
                let text = unsafe { CStr::from_ptr(errbuf.as_ptr()) }
                    .to_string_lossy()
                    .into_owned();
                Err(Error::Lua(text))
            }
            other => Err(error_of(api, other)),
        }
    }

    /// Takes a keep-alive reference: while it is held,
    /// `darksidesync.run()` keeps waiting for this library's deliveries.
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
        Ok(Stats {
            posted: s.posted,
            ran: s.ran,
            cancelled: s.cancelled,
            refused: s.refused,
            replies: s.replies,
            errors: s.errors,
            timeouts: s.timeouts,
            keep_alive: s.keep_alive,
        })
    }

    /// Unregisters the library: its queued closures are dropped unrun,
    /// blocked calls return [`Error::Cancelled`], and every clone of this
    /// handle becomes stale. False when it already was.
    pub fn unregister(&self) -> bool {
        // SAFETY: unreg() accepts any handle value and returns a code.
        unsafe { (self.inner.api.unreg)(self.inner.handle) == ffi::OK }
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

// ----- trampolines (run on the Lua thread, called by the module) -------------

/// What `call()` lends to the Lua thread.
struct CallSlot<F, R> {
    f: Option<F>,
    result: Option<Result<R, Error>>,
}

/// The callback a call's `run` pushes: darksidesync calls it and answers
/// the caller with its (no) results; the closure already ran in `run`.
unsafe extern "C-unwind" fn nothing(_l: *mut lua_State) -> c_int {
    0
}

/// The callback a post's `run` pushes when the closure failed: raises its
/// argument, so the message reaches the state's error handler.
unsafe extern "C-unwind" fn raise_arg(l: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with our one string argument; lua_error raises
    // the value on top. No Rust value with a destructor is live here.
    unsafe {
        lua::lua_settop(l, 1);
        lua::lua_error(l)
    }
}

/// Pushes `raise_arg, message`; returns how many values were pushed.
///
/// # Safety
/// `l` is the running state, on the Lua thread.
unsafe fn push_raise(l: *mut lua_State, message: &str) -> c_int {
    // SAFETY: per the contract; two slots are checked for first. Pushing a
    // C function and a string only raises on memory exhaustion.
    unsafe {
        if lua::lua_checkstack(l, 2) == 0 {
            return 0;
        }
        lua::lua_pushcfunction(l, raise_arg);
        lua::lua_pushlstring(l, message.as_ptr() as *const c_char, message.len());
    }
    2
}

/// `run` of a post: runs the closure with `&Lua`.
unsafe extern "C" fn run_post<F>(l: *mut lua_State, data: *mut c_void, _h: Handle) -> c_int
where
    F: FnOnce(&Lua) -> mlua::Result<()> + Send + 'static,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the Box<Option<F>> made by post_inner::<F>; the
        // module owns it until free_post, and run is called at most once,
        // on the Lua thread, before free.
        let slot = unsafe { &mut *(data as *mut Option<F>) };
        let f = slot.take()?;
        // SAFETY: `l` is a valid state on its own thread (2v0 contract: run
        // never gets NULL); the Lua it gives outlives this call.
        let lua = unsafe { Lua::get_or_init_from_ptr(l) };
        match catch_unwind(AssertUnwindSafe(|| f(lua))) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => Some(format!("panic in a posted closure: {}", panic_text(p))),
        }
    }));
    match outcome {
        Ok(None) => 0,
        // SAFETY: on the Lua thread, inside run (see above).
        Ok(Some(message)) => unsafe { push_raise(l, &message) },
        Err(_) => 0,
    }
}

/// `free` of a post: drops the box (and the closure if it never ran).
unsafe extern "C" fn free_post<F>(data: *mut c_void, _outcome: c_int)
where
    F: FnOnce(&Lua) -> mlua::Result<()> + Send + 'static,
{
    // SAFETY: called exactly once per post with the Box made by
    // post_inner::<F> (header contract). A panicking Drop of the closure's
    // captures must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        drop(unsafe { Box::from_raw(data as *mut Option<F>) })
    }));
}

/// `run` of a call: runs the closure, keeps its result in the lent slot,
/// and pushes a callback with no effect so the call is answered.
unsafe extern "C" fn run_call<F, R>(l: *mut lua_State, data: *mut c_void, _h: Handle) -> c_int
where
    F: FnOnce(&Lua) -> mlua::Result<R> + Send,
    R: Send,
{
    let ran = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the caller's CallSlot<F, R>, lent while the
        // caller is blocked in call(); the module claims it before calling
        // run and the caller cannot return meanwhile.
        let slot = unsafe { &mut *(data as *mut CallSlot<F, R>) };
        let Some(f) = slot.f.take() else { return false };
        // SAFETY: as in run_post.
        let lua = unsafe { Lua::get_or_init_from_ptr(l) };
        slot.result = Some(match catch_unwind(AssertUnwindSafe(|| f(lua))) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(Error::Lua(e.to_string())),
            Err(p) => Err(Error::Panicked(panic_text(p))),
        });
        true
    }));
    if !matches!(ran, Ok(true)) {
        return 0;
    }
    // SAFETY: on the Lua thread inside run; one slot checked for first.
    unsafe {
        if lua::lua_checkstack(l, 1) == 0 {
            return 0;
        }
        lua::lua_pushcfunction(l, nothing);
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn the_handle_is_send_sync_clone() {
        assert_send_sync_clone::<Dss>();
    }

    #[test]
    fn registering_without_darksidesync_is_a_clear_lua_error() {
        static ID: LibId = LibId::new();
        let lua = Lua::new();
        let e = Dss::register(&lua, &ID, "mylib").unwrap_err().to_string();
        assert!(
            e.contains("mylib: darksidesync is not loaded in this Lua state; require \"darksidesync\" before \"mylib\""),
            "{e}"
        );
    }

    #[test]
    fn registering_twice_gives_the_same_library() {
        static ID: LibId = LibId::new();
        let lua = Lua::new();
        darksidesync::open(&lua).unwrap();
        let a = Dss::register(&lua, &ID, "twice").unwrap();
        let b = Dss::register(&lua, &ID, "twice").unwrap();
        assert_eq!(a.inner.handle, b.inner.handle);
        assert!(a.is_live());
    }

    #[test]
    fn a_closed_state_gives_closed_and_drops_queued_closures() {
        static ID: LibId = LibId::new();
        let lua = Lua::new();
        darksidesync::open(&lua).unwrap();
        let dss = Dss::register(&lua, &ID, "closing").unwrap();
        let dropped = Arc::new(());
        let witness = dropped.clone();
        std::thread::spawn({
            let dss = dss.clone();
            move || {
                dss.post(move |_| {
                    let _w = witness;
                    Ok(())
                })
            }
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(Arc::strong_count(&dropped), 2, "queued, not run");
        drop(lua);
        assert_eq!(Arc::strong_count(&dropped), 1, "dropped with the state");
        assert!(!dss.is_live());
        let r = std::thread::spawn(move || (dss.post(|_| Ok(())), dss.call(|_| Ok(1), None)))
            .join()
            .unwrap();
        assert_eq!(r.0, Err(Error::Closed));
        assert_eq!(r.1, Err(Error::Closed));
    }

    #[test]
    fn a_call_times_out_when_nobody_dispatches() {
        static ID: LibId = LibId::new();
        let lua = Lua::new();
        darksidesync::open(&lua).unwrap();
        let dss = Dss::register(&lua, &ID, "timeout").unwrap();
        let r = std::thread::spawn(move || dss.call(|_| Ok(1), Some(Duration::from_millis(20))))
            .join()
            .unwrap();
        assert_eq!(r, Err(Error::TimedOut));
    }

    #[test]
    fn a_full_queue_refuses_try_post_and_try_call() {
        static ID: LibId = LibId::new();
        let lua = Lua::new();
        let m = darksidesync::open(&lua).unwrap();
        m.get::<mlua::Function>("setcapacity")
            .unwrap()
            .call::<()>(1)
            .unwrap();
        let dss = Dss::register(&lua, &ID, "full").unwrap();
        let r = std::thread::spawn(move || {
            dss.try_post(|_| Ok(())).unwrap();
            (dss.try_post(|_| Ok(())), dss.try_call(|_| Ok(()), None))
        })
        .join()
        .unwrap();
        assert_eq!(r.0, Err(Error::Full));
        assert_eq!(r.1, Err(Error::Full));
    }

    #[test]
    fn unregister_cancels_and_makes_the_handle_stale() {
        static ID: LibId = LibId::new();
        let lua = Lua::new();
        darksidesync::open(&lua).unwrap();
        let dss = Dss::register(&lua, &ID, "unreg").unwrap();
        assert!(dss.unregister());
        assert!(!dss.unregister());
        let r = std::thread::spawn(move || dss.post(|_| Ok(())))
            .join()
            .unwrap();
        assert_eq!(r, Err(Error::Stale));
    }
}
