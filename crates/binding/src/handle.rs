//! [`Dss`]: a registered library's handle on one Lua state's darksidesync:
//! registration, identity, status, counters and unregistration. (Its
//! keep-alive is in `keep_alive.rs`, its close notification in
//! `notice.rs`, its deliveries in `post.rs` and `call.rs`.)

use std::collections::HashMap;
use std::ffi::{c_int, c_void, CString};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mlua::{Lua, RegistryKey};

use crate::discovery::find_api;
use crate::error::{error_of, strerror, Error};
use crate::ffi::{self, Api, Handle};
use crate::notice::{end_registration, notice_of, notices, state_closing, Notice};
use crate::stats::Stats;
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

pub(crate) struct Inner {
    pub(crate) api: &'static Api,
    pub(crate) handle: Handle,
    /// The registration's own keep-alive reference is held.
    pub(crate) keeps_run_alive: AtomicBool,
    /// The module has 2v0 `post_inline` (closures travel without a box).
    pub(crate) inline: bool,
    /// Also in `NOTICES` until the registration ends.
    pub(crate) notice: Arc<Notice>,
    /// Registry keys of dropped `LuaCallback`s whose release item could
    /// not be queued yet (see `lua_callback.rs`, `Dss::bury`); `graves_waiting` is set
    /// while there are any.
    pub(crate) graves: Mutex<Vec<RegistryKey>>,
    pub(crate) graves_waiting: AtomicBool,
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
    pub(crate) inner: Arc<Inner>,
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
                    inline: api.has_post_inline(),
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
