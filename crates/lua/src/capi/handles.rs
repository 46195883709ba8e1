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
//! * While live, lookups clone its `Arc<Util>` (or borrow the record,
//!   [`borrow`]) without a lock: the slots
//!   live in chunks that are allocated once and never freed, each with an
//!   atomic `generation | phase` word, and a lookup only touches its own
//!   slot (no lock or counter shared by every utility is written per
//!   delivery). Only registration, `unreg` and `getutilid` take the
//!   registry lock, and never while a C callback runs.
//! * When the state closes the record stays, marked closed (lookups then
//!   report "closed", not "stale"), until the utility calls `unreg`, which
//!   frees the slot. A utility that never calls `unreg` keeps one small
//!   record for the life of the process.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
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

/// Slots per chunk, and chunks at most: up to 1024 * 1024 utilities
/// registered at the same time.
const CHUNK: usize = 1024;
const CHUNKS: usize = 1024;

/// A slot of the table. Slots are reused, never freed, so a lookup may
/// read any slot it finds without a lock.
struct Slot {
    /// `generation << 2 | phase` ([`FREE`], [`RESERVED`], [`LIVE`]).
    word: AtomicU64,
    /// The record while live (the table's reference, from
    /// `Arc::into_raw`); null otherwise.
    util: AtomicPtr<Util>,
    /// Lookups between their check of `word` and their clone of `util`;
    /// [`release`] waits for them before it takes the record out.
    readers: AtomicU32,
}

const FREE: u64 = 0;
const RESERVED: u64 = 1;
const LIVE: u64 = 2;

fn word(generation: u32, phase: u64) -> u64 {
    ((generation as u64) << 2) | phase
}

#[allow(clippy::declare_interior_mutable_const)] // only as an array initialiser
const EMPTY_SLOT: Slot = Slot {
    word: AtomicU64::new(0),
    util: AtomicPtr::new(std::ptr::null_mut()),
    readers: AtomicU32::new(0),
};

/// The chunks, allocated on demand (under [`REGISTRY`]) and never freed.
static CHUNK_TABLE: [AtomicPtr<Slot>; CHUNKS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS];

/// What registration needs (which slots are free, the next generation);
/// deliveries never take this lock.
struct Registry {
    len: usize,
    free: Vec<u32>,
    next_generation: u32,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    len: 0,
    free: Vec::new(),
    next_generation: 1,
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while holding the lock cannot leave it inconsistent: every
    // mutation below is a single assignment or push/pop.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// The slot at `index`, if its chunk exists.
fn slot(index: usize) -> Option<&'static Slot> {
    let chunk = CHUNK_TABLE.get(index / CHUNK)?.load(Ordering::Acquire);
    if chunk.is_null() {
        return None;
    }
    // SAFETY: a published chunk is an array of CHUNK slots that is never
    // freed (leaked in `reserve`), and `index % CHUNK` is within it.
    Some(unsafe { &*chunk.add(index % CHUNK) })
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
/// back with [`release`]. `None` when the table is full.
pub(crate) fn reserve() -> Option<Handle> {
    let mut r = registry();
    let index = match r.free.pop() {
        Some(i) => i as usize,
        None => {
            let index = r.len;
            let chunk = CHUNK_TABLE.get(index / CHUNK)?;
            if chunk.load(Ordering::Relaxed).is_null() {
                let slots: &'static mut [Slot; CHUNK] = Box::leak(Box::new([EMPTY_SLOT; CHUNK]));
                // Release: a lookup that sees the pointer sees the slots.
                chunk.store(slots.as_mut_ptr(), Ordering::Release);
            }
            r.len += 1;
            index
        }
    };
    let generation = r.next_generation;
    // Skip 0 on wrap-around (after 4 billion registrations).
    r.next_generation = r.next_generation.wrapping_add(1).max(1);
    slot(index)?
        .word
        .store(word(generation, RESERVED), Ordering::SeqCst);
    Some(((generation as u64) << 32) | (index as u64 + 1))
}

/// Puts the record of a reserved handle in place.
pub(crate) fn fill(h: Handle, util: Arc<Util>) {
    let _r = registry();
    let Some((index, generation)) = split(h) else {
        return;
    };
    let Some(s) = slot(index) else { return };
    if s.word.load(Ordering::SeqCst) == word(generation, RESERVED) {
        s.util
            .store(Arc::into_raw(util).cast_mut(), Ordering::Release);
        // After the record: a lookup that sees LIVE sees it.
        s.word.store(word(generation, LIVE), Ordering::SeqCst);
    }
}

/// Frees the slot of `h` and returns its record; `None` when `h` is stale.
pub(crate) fn release(h: Handle) -> Option<Arc<Util>> {
    let mut r = registry();
    let (index, generation) = split(h)?;
    let s = slot(index)?;
    let w = s.word.load(Ordering::SeqCst);
    if w != word(generation, LIVE) && w != word(generation, RESERVED) {
        return None;
    }
    // From here no lookup starts using the record (it checks `word` after
    // announcing itself in `readers`); wait for those that did.
    s.word.store(word(generation, FREE), Ordering::SeqCst);
    while s.readers.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
    let p = s.util.swap(std::ptr::null_mut(), Ordering::Acquire);
    r.free.push(index as u32);
    // SAFETY: `p` came from `Arc::into_raw` in `fill` and is the table's
    // reference, taken out once (swapped for null).
    (!p.is_null()).then(|| unsafe { Arc::from_raw(p) })
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
    match get(h) {
        Some(u) if u.api == api && u.is_closed() => Err(closed),
        Some(u) if u.api == api => Ok(u),
        _ => Err(stale),
    }
}

/// The record of a live or closed handle; `None` when stale or garbage.
/// Takes no lock: atomics on the handle's own slot only.
pub(crate) fn get(h: Handle) -> Option<Arc<Util>> {
    borrow(h).map(|b| b.to_arc())
}

/// The record of a live handle, borrowed without taking a reference: the
/// lookup stays announced in its slot's `readers` until the borrow drops,
/// so [`release`] (and with it `unreg`) waits for it. Hold it only for
/// work that never waits (a post that refuses when full), never across a
/// blocking wait or a callback; [`Borrowed::to_arc`] makes a reference
/// that outlives it. Saves the delivery paths an increment and a
/// decrement of the record's count, a cache line the Lua thread writes.
pub(crate) struct Borrowed {
    slot: &'static Slot,
    util: *const Util,
}

impl Borrowed {
    /// A counted reference to the record.
    pub(crate) fn to_arc(&self) -> Arc<Util> {
        // SAFETY: `util` is the table's record (from `Arc::into_raw` in
        // `fill`), alive while we are counted in `readers` (see `borrow`);
        // we add our own reference.
        unsafe {
            Arc::increment_strong_count(self.util);
            Arc::from_raw(self.util)
        }
    }
}

impl std::ops::Deref for Borrowed {
    type Target = Util;
    fn deref(&self) -> &Util {
        // SAFETY: as in `to_arc`: alive while the borrow is.
        unsafe { &*self.util }
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        self.slot.readers.fetch_sub(1, Ordering::Release);
    }
}

/// Borrows the record of a live or closed handle (see [`Borrowed`]);
/// `None` when stale or garbage. Takes no lock.
pub(crate) fn borrow(h: Handle) -> Option<Borrowed> {
    let (index, generation) = split(h)?;
    let s = slot(index)?;
    // Announce before checking (SeqCst on both sides, against `release`'s
    // store of `word` then load of `readers`): either `release` sees us
    // and waits until the borrow drops, or we see its FREE.
    s.readers.fetch_add(1, Ordering::SeqCst);
    if s.word.load(Ordering::SeqCst) != word(generation, LIVE) {
        s.readers.fetch_sub(1, Ordering::Release);
        return None;
    }
    // LIVE is stored after `util`, so this is the record; `release`
    // cannot take the table's reference while we are counted.
    let util = s.util.load(Ordering::Acquire).cast_const();
    Some(Borrowed { slot: s, util })
}

/// The handle of `libid` registered with `api` in `state`, if any.
pub(crate) fn find(state: u64, api: Version, libid: usize) -> Option<Handle> {
    let r = registry();
    (0..r.len)
        .filter_map(|i| {
            let s = slot(i)?;
            let w = s.word.load(Ordering::SeqCst);
            if w & 3 != LIVE {
                return None;
            }
            get(((w >> 2) << 32) | (i as u64 + 1))
        })
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
        match index.checked_sub(1).and_then(|i| slot(i as usize)) {
            Some(s) => {
                let w = s.word.load(Ordering::SeqCst);
                let generation = (w >> 2) as u32;
                if w & 3 != FREE && (generation & 0xfff) == low {
                    ((generation as u64) << 32) | index
                } else {
                    0
                }
            }
            None => 0,
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
            counters: Counters::default(),
            pinned: AtomicBool::new(false),
        })
    }

    #[test]
    fn release_waits_until_a_borrow_ends() {
        use std::sync::atomic::AtomicBool as Flag;
        let hub = darksidesync_core::Hub::<Item>::new();
        let h = reserve().expect("a free slot");
        fill(h, util(&hub, h));
        let borrowed = borrow(h).expect("live");
        let released = Arc::new(Flag::new(false));
        let releaser = {
            let released = released.clone();
            std::thread::spawn(move || {
                let record = release(h);
                released.store(true, Ordering::SeqCst);
                record.map(|u| u.handle)
            })
        };
        // Long enough for a release that did not wait to finish.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !released.load(Ordering::SeqCst),
            "release waits for the borrow"
        );
        assert_eq!(borrowed.handle, h, "the borrowed record is intact");
        drop(borrowed);
        assert_eq!(releaser.join().expect("releaser"), Some(h));
        assert!(borrow(h).is_none(), "stale once released");
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
