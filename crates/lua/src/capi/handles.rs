//! The process-global, generation-checked table of registered C utilities.
//!
//! Every utility registered through the C ABI (1v0 or 2v0) gets a slot
//! here. What C code holds is never a pointer to the record but a
//! [`Handle`]: the slot index (plus one, so that 0 is never valid) in the
//! low 32 bits and the generation the slot had when the utility registered
//! in the high 32 bits. Generations come from one process-wide counter that
//! starts at 1, so
//!
//! * a handle whose slot was freed and reused by another utility is stale
//!   (its generation no longer matches), forever;
//! * 0, NULL, and small garbage values (generation 0) are never valid;
//! * a garbage value that decodes to an index out of range, or to a
//!   generation that does not match, is rejected, never dereferenced.
//!
//! A 1v0 `utilid` is the same handle cast to `void*`.
//!
//! # Life of a record
//!
//! * `reserve` + `fill` (registration, on the Lua thread), or `release`
//!   when registration failed in between.
//! * While live, lookups clone its `Arc<Util>` under the table lock; the
//!   lock is never held while any C callback runs.
//! * When the state closes the record stays, marked closed (lookups then
//!   report "closed", not "stale"), until the utility calls `unreg`, which
//!   frees the slot. A utility that never calls `unreg` keeps one small
//!   record for the life of the process.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use darksidesync_core::{KeepAlive, Port};

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

/// Per-utility counters (2v0 `stats()`).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) posted: AtomicU64,
    pub(crate) ran: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) replies: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
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
    pub(crate) counters: Counters,
    /// Whether the shared object of the utility's callbacks is pinned.
    pub(crate) pinned: AtomicBool,
}

impl Util {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.port.is_closed()
    }

    pub(crate) fn keep_alive(&self) -> MutexGuard<'_, Vec<KeepAlive<Item>>> {
        self.keep.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Slot {
    generation: u32,
    /// `None` while reserved or free.
    util: Option<Arc<Util>>,
    used: bool,
}

struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    next_generation: u32,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    slots: Vec::new(),
    free: Vec::new(),
    next_generation: 1,
});

fn table() -> MutexGuard<'static, Table> {
    // A panic while holding the lock cannot leave the table inconsistent:
    // every mutation below is a single assignment or push/pop.
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

fn split(h: Handle) -> Option<(usize, u32)> {
    let index = (h & 0xffff_ffff) as usize;
    let generation = (h >> 32) as u32;
    if index == 0 || generation == 0 {
        return None;
    }
    Some((index - 1, generation))
}

/// Reserves a slot and returns its handle; fill it with [`fill`] or give it
/// back with [`release`].
pub(crate) fn reserve() -> Handle {
    let mut t = table();
    let generation = t.next_generation;
    // Skip 0 on wrap-around (after 4 billion registrations).
    t.next_generation = t.next_generation.wrapping_add(1).max(1);
    let index = match t.free.pop() {
        Some(i) => i as usize,
        None => {
            t.slots.push(Slot {
                generation: 0,
                util: None,
                used: false,
            });
            t.slots.len() - 1
        }
    };
    let slot = &mut t.slots[index];
    slot.generation = generation;
    slot.used = true;
    slot.util = None;
    ((generation as u64) << 32) | (index as u64 + 1)
}

/// Puts the record of a reserved handle in place.
pub(crate) fn fill(h: Handle, util: Arc<Util>) {
    let mut t = table();
    if let Some((index, generation)) = split(h) {
        if let Some(slot) = t
            .slots
            .get_mut(index)
            .filter(|s| s.used && s.generation == generation)
        {
            slot.util = Some(util);
        }
    }
}

/// Frees the slot of `h` and returns its record; `None` when `h` is stale.
pub(crate) fn release(h: Handle) -> Option<Arc<Util>> {
    let mut t = table();
    let (index, generation) = split(h)?;
    let slot = t
        .slots
        .get_mut(index)
        .filter(|s| s.used && s.generation == generation)?;
    slot.used = false;
    let util = slot.util.take();
    t.free.push(index as u32);
    util
}

/// The record of a live or closed handle; `None` when stale or garbage.
/// The live record of `h` registered through `api`, or the code to return:
/// `closed` when its state has closed, `stale` when the handle is unknown,
/// released, or belongs to the other API version.
pub(crate) fn live(
    h: Handle,
    api: Version,
    closed: c_int,
    stale: c_int,
) -> Result<Arc<Util>, c_int> {
    match get(h) {
        Some(u) if u.api == api && u.is_closed() => Err(closed),
        Some(u) if u.api == api => Ok(u),
        _ => Err(stale),
    }
}

pub(crate) fn get(h: Handle) -> Option<Arc<Util>> {
    let t = table();
    let (index, generation) = split(h)?;
    t.slots
        .get(index)
        .filter(|s| s.used && s.generation == generation)?
        .util
        .clone()
}

/// The handle of `libid` registered with `api` in `state`, if any.
pub(crate) fn find(state: u64, api: Version, libid: usize) -> Option<Handle> {
    let t = table();
    t.slots
        .iter()
        .filter_map(|s| s.util.as_ref())
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
        let (index, generation) = split(h).expect("a handle made by reserve");
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
        let t = table();
        match index.checked_sub(1).and_then(|i| t.slots.get(i as usize)) {
            Some(s) if s.used && (s.generation & 0xfff) == low => {
                ((s.generation as u64) << 32) | index
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
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
        let a = reserve();
        assert_ne!(a, 0);
        assert!(get(a).is_none(), "reserved but not filled");
        assert!(release(a).is_none());
        assert!(release(a).is_none(), "released twice");
        let b = reserve();
        assert_ne!(a, b, "a reused slot has a new generation");
        release(b);
        assert_eq!(from_utilid(to_utilid(b)), b);
    }
}
