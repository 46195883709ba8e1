//! [`LuaCallback`]: a Lua function kept for background threads, which
//! post values to it ([`LuaCallback::post`]); darksidesync calls it
//! with them on the Lua thread, as it calls the module's own deliveries.
//!
//! The cheapest way for a library to reach Lua: no closure and no mlua
//! call per item. On the Lua thread the trampoline pushes the function
//! (one registry read by its reference) and the values through the Lua C
//! API, and `dispatch()` calls it in its fast loop, like a C utility's
//! `run`.
//!
//! # What an item carries
//!
//! The registry reference of the function and the values, in the item's
//! `data` word when they fit (a 64-bit target, and one value that
//! [`Args::packed`] fits in 32 bits: an integer that fits in an `i32`, a
//! boolean, or none), with no allocation and no free callback; otherwise
//! boxed, as the owned values [`Args::carry`] made at the sender (byte
//! strings, `Option`s and [`ArgTable`](crate::ArgTable)s are copied there;
//! what cannot cross is refused there). Items hold no count on the
//! [`LuaCallback`]: its registry slot is released by one item that the
//! drop of its last clone queues behind every post of it (see
//! [`release`]), so the slot cannot be reused for another value while a
//! post of it is still queued.

use std::ffi::{c_int, c_long, c_void};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mlua::{Function, Lua, RegistryKey};

use crate::args::sealed::Carried;
use crate::args::Args;
use crate::error::Error;
use crate::ffi::{self, Handle};
use crate::handle::Dss;
use crate::raw::{self, lua_State};

/// A Lua function that any thread can hand values to: made on the Lua
/// thread with [`Dss::callback`], then [`post`](LuaCallback::post)ed to
/// from anywhere. `Send + Sync + Clone`; the function stays referenced
/// (in the registry) until the last clone is dropped and the posts
/// queued before that ran or were discarded. Dropping the last clone
/// never waits: it queues one item that releases the reference on the
/// Lua thread (it counts in the library's [`Stats`](crate::Stats) like
/// any post, but not in what `dispatch()` returns); when the queue is
/// full then, the release waits for this library's next post or release.
///
/// A post behaves like one of the module's own deliveries:
/// `darksidesync.dispatch()` calls the function with the values under the
/// state's error handler (`seterrorhandler`), and `poll()` returns it and
/// the values to its Lua caller. Items keep their FIFO order with every
/// other delivery.
///
/// ```
/// use darksidesync_binding::{Dss, LibId};
/// use mlua::{Function, Lua};
///
/// static TICKS: LibId = LibId::new();
///
/// # fn main() -> mlua::Result<()> {
/// let lua = Lua::new();
/// let dssmod = darksidesync::open(&lua)?; // a real library lets register require it
/// let dss = Dss::register(&lua, &TICKS, "ticks")?;
/// let f: Function = lua.load("function(n, label) total = (total or 0) + n end").eval()?;
/// let tick = dss.callback(&lua, f)?;
/// let worker = std::thread::spawn(move || {
///     for n in 1..=3i64 {
///         tick.post((n, "tick")).unwrap();
///     }
/// });
/// worker.join().unwrap();
/// let ran: i64 = dssmod.get::<Function>("dispatch")?.call(())?;
/// assert_eq!(ran, 3);
/// assert_eq!(lua.globals().get::<i64>("total")?, 6);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LuaCallback {
    inner: Arc<Kept>,
}

struct Kept {
    dss: Dss,
    /// The function, in the state's registry; taken by `Drop`.
    key: Option<RegistryKey>,
    /// `key`'s reference.
    id: c_int,
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            release(&self.dss, vec![key]);
        }
    }
}

/// Queues the release of `keys` (and of those kept earlier) behind every
/// post queued so far: each was posted before its callback's last clone
/// went, so an item queued now comes after all of its posts. Never waits:
/// when the item is refused (a full queue; on the Lua thread, would-
/// deadlock) the keys are kept for the next release or post of this
/// library (see [`free_release`]).
fn release(dss: &Dss, mut keys: Vec<RegistryKey>) {
    keys.extend(dss.dig_up());
    if keys.is_empty() {
        return;
    }
    let data = Box::into_raw(Box::new(Release {
        keys,
        dss: dss.clone(),
    })) as *mut c_void;
    // SAFETY: run_release and free_release read `data` as the
    // Box<Release> made here; post() frees it once (free_release).
    let _ = unsafe { dss.post_raw(run_release, Some(free_release), data, 0) };
}

/// A release item: registry keys to drop on the Lua thread.
struct Release {
    keys: Vec<RegistryKey>,
    dss: Dss,
}

/// `run` of the release item: drops the registry keys on the Lua thread
/// (mlua frees their slots there, later). Pushes nothing: not counted by
/// `dispatch()` (it is in the library's stats).
unsafe extern "C-unwind" fn run_release(
    _l: *mut lua_State,
    data: *mut c_void,
    _h: Handle,
) -> c_int {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the Box<Release> made by `release`; run is
        // called at most once, on the Lua thread, before free.
        drop(std::mem::take(
            &mut unsafe { &mut *(data as *mut Release) }.keys,
        ))
    }));
    0
}

/// `free` of the release item. Discarded or refused because the state
/// closed (its registry is gone) or the library unregistered (no item of
/// it starts any more; one already running only reads its slot, which
/// mlua frees later, on the Lua thread), the keys are dropped. Refused
/// otherwise (full, would-deadlock), posts of the callbacks may still be
/// queued: the keys wait for the next release or post (`Dss::bury`), or
/// the state's close.
unsafe extern "C" fn free_release(data: *mut c_void, outcome: c_int) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: called once per release item with the box made by
        // `release` (header contract).
        let item = unsafe { Box::from_raw(data as *mut Release) };
        let Release { keys, dss } = *item;
        if !matches!(
            outcome,
            ffi::OK | ffi::ECLOSED | ffi::ECANCELLED | ffi::ESTALE
        ) {
            dss.bury(keys);
        }
    }));
}

impl fmt::Debug for LuaCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LuaCallback")
            .field("dss", &self.inner.dss)
            .finish()
    }
}

impl Dss {
    /// Keeps `f` for [`LuaCallback::post`] from any thread. Lua thread
    /// only; `lua` must be the state this handle was registered in (a
    /// Lua error otherwise).
    pub fn callback(&self, lua: &Lua, f: Function) -> mlua::Result<LuaCallback> {
        if !self.registered_in(lua) {
            return Err(mlua::Error::runtime(
                "darksidesync-binding: callback: not the state this library registered in",
            ));
        }
        let key = lua.create_registry_value(f)?;
        Ok(LuaCallback {
            inner: Arc::new(Kept {
                dss: self.clone(),
                id: key.id(),
                key: Some(key),
            }),
        })
    }
}

impl LuaCallback {
    /// Queues a call of the function with `args` (a value or a tuple of up
    /// to four: integers, floats, booleans, strings, byte strings and
    /// paths, `Option`s for nil, [`ArgTable`](crate::ArgTable)s; `()` for
    /// none: see [`Arg`](crate::Arg)), waiting for room while the queue is
    /// full. On the Lua thread itself a full queue gives
    /// [`Error::WouldDeadlock`] instead of waiting. A value that cannot
    /// cross gives [`Error::Unsupported`], and nothing is queued.
    pub fn post<A: Args>(&self, args: A) -> Result<(), Error> {
        self.post_inner(args, -1)
    }

    /// Like [`post`](LuaCallback::post), but refuses with [`Error::Full`]
    /// at once when the queue is full.
    pub fn try_post<A: Args>(&self, args: A) -> Result<(), Error> {
        self.post_inner(args, 0)
    }

    /// The handle this callback posts through.
    pub fn dss(&self) -> &Dss {
        &self.inner.dss
    }

    fn post_inner<A: Args>(&self, args: A, timeout: c_long) -> Result<(), Error> {
        let (id, dss) = (self.inner.id, &self.inner.dss);
        let posted = match packed::<A>(id, &args) {
            // SAFETY: run_packed::<A::Carried> decodes the word made by
            // `packed` (A::packed and A::Carried::push_packed agree);
            // nothing to free.
            Some(bits) => unsafe {
                dss.post_raw(run_packed::<A::Carried>, None, bits as *mut c_void, timeout)
            },
            // SAFETY: run_boxed::<A::Carried> reads `data` as the
            // Box<Option<(c_int, A::Carried)>> that post_boxed makes.
            None => unsafe {
                dss.post_boxed((id, args.carry()?), run_boxed::<A::Carried>, timeout)
            },
        };
        if posted.is_ok() && dss.has_graves() {
            // Keys whose release was refused earlier go now, behind this.
            release(dss, Vec::new());
        }
        posted
    }
}

/// The `data` word of a post that fits in it: the registry reference in
/// the high 32 bits, the value's 32 bits below. 64-bit targets only.
fn packed<A: Args>(id: c_int, args: &A) -> Option<usize> {
    if usize::BITS < 64 {
        return None;
    }
    let low = args.packed()?;
    Some(((id as u32 as u64) << 32 | low as u64) as usize)
}

/// `run` of a packed post: pushes the function and the value.
unsafe extern "C-unwind" fn run_packed<A: Carried>(
    l: *mut lua_State,
    data: *mut c_void,
    _h: Handle,
) -> c_int {
    let word = data as usize as u64;
    let id = (word >> 32) as u32 as c_int;
    catch_unwind(|| {
        // SAFETY: on the Lua thread, in this state's run (2v0 contract);
        // the reference is this state's (Dss::callback checked the state,
        // the item is queued in it) and its slot is held until the release
        // item queued behind this one ran. Room is checked first; pushing
        // raises only on memory exhaustion.
        unsafe {
            if !raw::reserve(l, A::COUNT + 1) {
                return 0;
            }
            raw::push_registry_ref(l, id);
            A::push_packed(word as u32, l);
        }
        A::COUNT + 1
    })
    .unwrap_or(0)
}

/// `run` of a boxed post: pushes the function and the values.
unsafe extern "C-unwind" fn run_boxed<A: Carried>(
    l: *mut lua_State,
    data: *mut c_void,
    _h: Handle,
) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the Box<Option<(c_int, A)>> made by
        // post_boxed; the module owns it until free_post, and run is
        // called at most once, on the Lua thread, before free. Pushing: as
        // in run_packed.
        unsafe {
            let Some((id, args)) = (*(data as *mut Option<(c_int, A)>)).take() else {
                return 0;
            };
            if !raw::reserve(l, A::COUNT + 1) {
                return 0;
            }
            raw::push_registry_ref(l, id);
            args.push(l);
        }
        A::COUNT + 1
    }))
    .unwrap_or(0)
}

impl Dss {
    /// Keeps registry keys whose release item could not be queued (see
    /// [`release`]).
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
}
