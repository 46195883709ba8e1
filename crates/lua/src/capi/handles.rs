//! The process-global, generation-checked table of registered C utilities:
//! a [`Slots`] table of the core (its invariants are documented there).
//!
//! Every utility registered through the C ABI (1v0 or 2v0) gets a slot
//! here. What C code holds is never a pointer to the record but a
//! [`Handle`]: the slot's key as bits ([`SlotKey::to_bits`]: the index
//! plus one in the low 32 bits, so that 0 is never valid, and the
//! generation the slot had when the utility registered in the high 32
//! bits). Generations come from one counter of the table that starts at 1,
//! so
//!
//! * a handle whose slot was freed and reused by another utility is stale
//!   (its generation no longer matches), forever;
//! * 0, NULL, and small garbage values (generation 0) are never valid;
//! * a garbage value that decodes to an index out of range, or to a
//!   generation that does not match, is rejected, never dereferenced.
//!
//! A 1v0 `utilid` is the same handle cast to `void*` (on 32-bit targets a
//! shortened form, see [`to_utilid`]).
//!
//! # Life of a record
//!
//! * `reserve` + `fill` (registration, on the Lua thread), or `release`
//!   when registration failed in between.
//! * While live, lookups clone its `Arc<Util>` (or borrow the record,
//!   [`borrow`]) without a lock, touching only the handle's own slot (no lock or counter shared by every
//!   utility is written per delivery). Only registration, `unreg` and
//!   `getutilid` take the table's lock, and never while a C callback runs.
//! * When the state closes the record stays, marked closed (lookups then
//!   report "closed", not "stale"), until the utility calls `unreg`, which
//!   frees the slot. A utility that never calls `unreg` keeps one small
//!   record for the life of the process.
//!
//! The utility's counters (2v0 `stats()`) are its port's, kept by the core
//! ([`darksidesync_core::PortStats`]).

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use darksidesync_core::{KeepAlive, Port, SlotKey, SlotRef, Slots};

use crate::item::Item;

/// An opaque utility handle (see the module docs). 0 is never valid.
pub(crate) use darksidesync_sys::v2::Handle;

/// Which API version a utility registered with; each has its own libid
/// namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// A C pointer that may travel between threads. The C ABI's contract makes
/// the utility responsible for what it points to being usable from any
/// thread (DarkSideSync's `pData`, 2v0's `ud`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendPtr(pub(crate) *mut c_void);

// SAFETY: the pointer is only handed back to the utility's own callbacks,
// which the documented contract (include/darksidesync.h) allows to run on
// any thread; darksidesync never dereferences it.
unsafe impl Send for SendPtr {}
// SAFETY: as above; shared references only copy the pointer value.
unsafe impl Sync for SendPtr {}

/// What to call when the utility's state closes.
#[derive(Clone, Copy)]
pub(crate) enum Cancel {
    V1(darksidesync_sys::v1::CancelFn),
    V2(Option<darksidesync_sys::v2::CancelFn>, SendPtr),
}

/// One registered utility.
pub(crate) struct Util {
    pub(crate) api: Version,
    /// The darksidesync instance (Lua state) it registered with.
    pub(crate) state: u64,
    /// The utility's identity within its API version and state.
    pub(crate) libid: usize,
    pub(crate) handle: Handle,
    pub(crate) port: Port<Item>,
    /// Set when the state closed (before the cancel callback runs).
    pub(crate) closed: AtomicBool,
    /// Keep-alive references taken through 2v0 `hold()`.
    pub(crate) keep: Mutex<Vec<KeepAlive<Item>>>,
    pub(crate) cancel: Cancel,
    /// Whether the shared object of the utility's callbacks is pinned.
    pub(crate) pinned: AtomicBool,
    /// Set by `unreg()` before it waits for a running callback (see
    /// `running.rs`): no callback of the utility starts afterwards.
    pub(crate) gone: crate::sync::AtomicBool,
    /// What the C ABI keeps for the utility's state.
    pub(crate) shared: Arc<super::PerState>,
}

impl Util {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.port.is_closed()
    }

    pub(crate) fn keep_alive(&self) -> MutexGuard<'_, Vec<KeepAlive<Item>>> {
        self.keep.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Utilities registered at the same time, at most: the index plus one
/// must fit in the 20 bits of a 32-bit `utilid`.
const LIMIT: usize = (1 << 20) - 1;

static TABLE: LazyLock<Slots<Util>> = LazyLock::new(|| Slots::with_limit(LIMIT));

/// Reserves a slot and returns its handle; fill it with [`fill`] or give it
/// back with [`release`]. `None` when the table is full.
pub(crate) fn reserve() -> Option<Handle> {
    TABLE.reserve().map(SlotKey::to_bits)
}

/// Puts the record of a reserved handle in place.
pub(crate) fn fill(h: Handle, util: Arc<Util>) {
    if let Some(key) = SlotKey::from_bits(h) {
        TABLE.fill(key, util);
    }
}

/// Frees the slot of `h` and returns its record; `None` when `h` is stale.
pub(crate) fn release(h: Handle) -> Option<Arc<Util>> {
    TABLE.remove(SlotKey::from_bits(h)?)
}

/// The live record of `h` registered through `api`, or the code to return:
/// `closed` when its state has closed, `stale` when the handle is unknown,
/// released, or belongs to the other API version.
pub(crate) fn live(
    h: Handle,
    api: Version,
    closed: c_int,
    stale: c_int,
) -> Result<Arc<Util>, c_int> {
    live_of(get(h), api, closed, stale)
}

/// [`live`], borrowed (see [`borrow`]).
pub(crate) fn borrow_live(
    h: Handle,
    api: Version,
    closed: c_int,
    stale: c_int,
) -> Result<Borrowed, c_int> {
    live_of(borrow(h), api, closed, stale)
}

/// What [`live`] and [`borrow_live`] answer for a record found (or not).
fn live_of<R: std::ops::Deref<Target = Util>>(
    found: Option<R>,
    api: Version,
    closed: c_int,
    stale: c_int,
) -> Result<R, c_int> {
    match found {
        Some(u) if u.api == api && u.is_closed() => Err(closed),
        Some(u) if u.api == api => Ok(u),
        _ => Err(stale),
    }
}

/// The record of a live or closed handle; `None` when stale or garbage.
/// Takes no lock: atomics on the handle's own slot only.
pub(crate) fn get(h: Handle) -> Option<Arc<Util>> {
    TABLE.get(SlotKey::from_bits(h)?)
}

/// Whether `h` is live (or closed) now, not yet released: one SeqCst
/// load, nothing written.
pub(crate) fn is_live(h: Handle) -> bool {
    SlotKey::from_bits(h).is_some_and(|k| TABLE.is_live(k))
}

/// A utility record borrowed from the table (see [`borrow`]).
pub(crate) type Borrowed = SlotRef<'static, Util>;

/// The record of a live or closed handle, borrowed without taking a
/// reference ([`Slots::borrow`]): `unreg` waits until the borrow drops, so
/// hold it only for work that never waits (a post that refuses when full),
/// never across a blocking wait or a callback. Saves a fire-and-forget
/// delivery the increment and decrement of the record's count that [`get`]
/// and its drop cost; its item names the utility by handle and takes no
/// reference either (see `post.rs`), so such a delivery never frees the
/// record, even racing `unreg`.
pub(crate) fn borrow(h: Handle) -> Option<Borrowed> {
    TABLE.borrow(SlotKey::from_bits(h)?)
}

/// The handle of `libid` registered with `api` in `state`, if any.
pub(crate) fn find(state: u64, api: Version, libid: usize) -> Option<Handle> {
    TABLE
        .keys()
        .into_iter()
        .filter_map(|k| TABLE.get(k))
        .find(|u| u.state == state && u.api == api && u.libid == libid && !u.is_closed())
        .map(|u| u.handle)
}

/// A 1v0 `utilid` for a handle.
pub(crate) fn to_utilid(h: Handle) -> *mut c_void {
    #[cfg(target_pointer_width = "64")]
    {
        h as usize as *mut c_void
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        // 20 bits of index, 12 of generation: still never 0, still checked.
        let key = SlotKey::from_bits(h).expect("a handle made by reserve");
        let (index, generation) = (key.index() as usize, key.generation());
        ((((generation & 0xfff) as usize) << 20) | ((index + 1) & 0xf_ffff)) as *mut c_void
    }
}

/// The handle a 1v0 `utilid` stands for (checked by the lookups).
pub(crate) fn from_utilid(p: *mut c_void) -> Handle {
    #[cfg(target_pointer_width = "64")]
    {
        p as usize as u64
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        let v = p as usize;
        let index = (v & 0xf_ffff) as u64;
        let low = (v >> 20) as u32;
        // Recover the full generation from the slot, then compare the low bits.
        match index
            .checked_sub(1)
            .and_then(|i| TABLE.generation_at(i as u32))
        {
            Some(generation) if (generation & 0xfff) == low => ((generation as u64) << 32) | index,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn zero_and_garbage_are_never_valid() {
        assert!(get(0).is_none());
        assert!(get(0xdead_beef).is_none(), "generation 0");
        assert!(get(u64::MAX).is_none());
        assert!(release(0x0000_0abc_0000_0001).is_none());
    }

    #[test]
    fn reserved_then_released_is_stale_and_slot_reuse_gets_a_new_generation() {
        let a = reserve().expect("a free slot");
        assert_ne!(a, 0);
        assert!(get(a).is_none(), "reserved but not filled");
        assert!(release(a).is_none());
        assert!(release(a).is_none(), "released twice");
        let b = reserve().expect("a free slot");
        assert_ne!(a, b, "a reused slot has a new generation");
        release(b);
        assert_eq!(from_utilid(to_utilid(b)), b);
    }

    fn util(hub: &darksidesync_core::Hub<Item>, handle: Handle) -> Arc<Util> {
        Arc::new(Util {
            api: Version::V2,
            state: 0,
            libid: 0,
            handle,
            port: hub.register("test", |_| {}).expect("an open hub"),
            closed: AtomicBool::new(false),
            keep: Mutex::new(Vec::new()),
            cancel: Cancel::V2(None, SendPtr(std::ptr::null_mut())),
            pinned: AtomicBool::new(false),
            gone: crate::sync::AtomicBool::new(false),
            shared: Arc::default(),
        })
    }

    #[test]
    fn lookups_racing_release_and_reuse_see_their_own_record_or_none() {
        use std::sync::atomic::AtomicBool as Flag;
        let hub = darksidesync_core::Hub::<Item>::new();
        let current = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(Flag::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (current, stop) = (current.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut found, mut wrong) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let h = current.load(Ordering::Relaxed);
                        if let Some(u) = get(h) {
                            found += 1;
                            if u.handle != h {
                                wrong += 1;
                            }
                        }
                        if let Some(b) = borrow(h) {
                            if b.handle != h || b.to_arc().handle != h {
                                wrong += 1;
                            }
                        }
                    }
                    (found, wrong)
                })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            let h = reserve().expect("a free slot");
            assert!(seen.insert(h), "a handle is never issued twice");
            fill(h, util(&hub, h));
            current.store(h, Ordering::Relaxed);
            assert_eq!(get(h).map(|u| u.handle), Some(h), "live");
            let u = release(h).expect("the record");
            assert_eq!(u.handle, h);
            assert!(get(h).is_none(), "stale once released");
            assert!(release(h).is_none(), "released once");
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            let (_found, wrong) = r.join().expect("reader");
            assert_eq!(wrong, 0, "a lookup returned another handle's record");
        }
    }
}
