//! [`Slots`]: a generation-checked table of shared records with lock-free
//! lookups. Each hub keeps its ports in one; the C ABI keeps its utility
//! handles in one (process-wide).
//!
//! # Invariants
//!
//! 1. **A key names one record, forever.** A [`SlotKey`] is a slot index
//!    and the generation the slot had when the key was issued. Generations
//!    come from one counter per table that starts at 1 and skips 0 on
//!    wrap-around, so a key is never issued twice (until 2^32
//!    registrations) and a key whose slot was freed and reused is stale
//!    for ever. Generation 0 never occurs: 0 and small garbage bit
//!    patterns ([`SlotKey::from_bits`]) are never valid.
//! 2. **Slots are never freed while the table lives.** They sit in chunks
//!    (the first 64 slots, then chunks twice as large each time)
//!    allocated on demand under the table's lock and freed only when the
//!    table drops; a lookup may read any slot it finds without a lock.
//! 3. **Phases.** A slot's `word` is `generation << 2 | phase`: `FREE`,
//!    `RESERVED` (a key is issued, no record yet) or `LIVE` (the record
//!    is in `value`, stored before `word` says `LIVE`).
//! 4. **Lookups write only their own slot.** [`Slots::get`] announces
//!    itself in the slot's `readers`, then checks `word`, then takes its
//!    own reference to the record ([`Slots::borrow`] stays announced
//!    while its [`SlotRef`] lives, instead); [`Slots::remove`] sets `FREE`, then
//!    waits for the readers it may have missed before it takes the
//!    table's reference out. No lock and no counter shared by all slots is
//!    written by a lookup; [`Slots::is_live`] only loads `word`.
//! 5. **Issuing and freeing** (reserve, fill, remove) take the table's
//!    lock, which is never held while user code runs.

use std::marker::PhantomData;

use crate::sync::{
    lock, seqcst_pairing, yield_now, Arc, AtomicPtr, AtomicU32, AtomicU64, Mutex, Ordering,
};

/// A record's identity in a [`Slots`] table: its slot and the slot's
/// generation when the key was issued (see the module's invariants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotKey {
    index: u32,
    generation: u32,
}

impl SlotKey {
    /// The slot's index.
    pub fn index(self) -> u32 {
        self.index
    }

    /// The generation the key was issued with (never 0).
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// The key as one never-zero integer: the generation in the high 32
    /// bits, the index plus one in the low 32 bits.
    pub fn to_bits(self) -> u64 {
        ((self.generation as u64) << 32) | (self.index as u64 + 1)
    }

    /// The key `bits` stands for, or `None` when it cannot be one (0, or a
    /// zero index or generation part). A key that decodes may still be
    /// stale or out of range: the table checks that.
    pub fn from_bits(bits: u64) -> Option<SlotKey> {
        let index = (bits & 0xffff_ffff) as u32;
        let generation = (bits >> 32) as u32;
        if index == 0 || generation == 0 {
            return None;
        }
        Some(SlotKey {
            index: index - 1,
            generation,
        })
    }
}

/// Slots in the first chunk; chunk `c` holds `BASE << c`.
#[cfg(not(loom))]
const BASE: usize = 64;
#[cfg(loom)]
const BASE: usize = 1;
/// Chunks at most: `BASE * (2^CHUNKS - 1)` slots (4 194 240).
const CHUNKS: usize = 16;

const FREE: u64 = 0;
const RESERVED: u64 = 1;
const LIVE: u64 = 2;

fn word(generation: u32, phase: u64) -> u64 {
    ((generation as u64) << 2) | phase
}

/// The chunk of slot `index` and its place in it.
fn locate(index: usize) -> (usize, usize) {
    let n = index / BASE + 1;
    let chunk = (usize::BITS - 1 - n.leading_zeros()) as usize;
    (chunk, index - BASE * ((1 << chunk) - 1))
}

fn chunk_len(chunk: usize) -> usize {
    BASE << chunk
}

struct Slot<V> {
    /// `generation << 2 | phase` (invariant 3).
    word: AtomicU64,
    /// The record while `LIVE` (the table's reference, from
    /// `Arc::into_raw`); null otherwise.
    value: AtomicPtr<V>,
    /// Lookups between their check of `word` and their clone of `value`
    /// (invariant 4).
    readers: AtomicU32,
}

struct Alloc {
    /// Slots handed out so far: the next new index.
    next_index: usize,
    free: Vec<u32>,
    next_generation: u32,
    live: usize,
}

/// A record borrowed from a [`Slots`] table ([`Slots::borrow`]): derefs
/// to it; its slot's `remove` waits until this drops.
pub struct SlotRef<'a, V> {
    slot: &'a Slot<V>,
    value: *const V,
}

impl<V> SlotRef<'_, V> {
    /// A counted reference to the record.
    pub fn to_arc(&self) -> Arc<V> {
        // SAFETY: `value` is the table's record (from `Arc::into_raw` in
        // `fill`), alive while we are counted in `readers` (see
        // `Slots::borrow`); we add our own reference.
        unsafe {
            Arc::increment_strong_count(self.value);
            Arc::from_raw(self.value)
        }
    }
}

impl<V> std::ops::Deref for SlotRef<'_, V> {
    type Target = V;
    fn deref(&self) -> &V {
        // SAFETY: as in `to_arc`: alive while the borrow is.
        unsafe { &*self.value }
    }
}

impl<V> Drop for SlotRef<'_, V> {
    fn drop(&mut self) {
        self.slot.readers.fetch_sub(1, Ordering::Release);
    }
}

/// A generation-checked table of `Arc<V>` records (see the module docs).
pub struct Slots<V> {
    chunks: [AtomicPtr<Slot<V>>; CHUNKS],
    alloc: Mutex<Alloc>,
    limit: usize,
    _owns: PhantomData<Arc<V>>,
}

// SAFETY: the table hands out `Arc<V>` clones to any thread and drops its
// references on whichever thread removes them, exactly as `Arc<V>` would:
// it is `Send`/`Sync` when `Arc<V>` is. The raw pointers are the table's
// own references and chunks (invariant 2).
unsafe impl<V: Send + Sync> Send for Slots<V> {}
// SAFETY: as above.
unsafe impl<V: Send + Sync> Sync for Slots<V> {}

impl<V> Default for Slots<V> {
    fn default() -> Self {
        Slots::new()
    }
}

impl<V> Slots<V> {
    /// An empty table of up to 4 194 240 records.
    pub fn new() -> Slots<V> {
        Slots::with_limit(usize::MAX)
    }

    /// An empty table of up to `limit` records at once.
    pub fn with_limit(limit: usize) -> Slots<V> {
        Slots {
            chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            alloc: Mutex::new(Alloc {
                next_index: 0,
                free: Vec::new(),
                next_generation: 1,
                live: 0,
            }),
            limit: limit.min(BASE * ((1 << CHUNKS) - 1)),
            _owns: PhantomData,
        }
    }

    /// The slot at `index`, if its chunk exists.
    fn slot(&self, index: usize) -> Option<&Slot<V>> {
        let (chunk, at) = locate(index);
        let p = self.chunks.get(chunk)?.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: a published chunk is an array of `chunk_len(chunk)`
        // slots, freed only when the table drops (invariant 2), and `at`
        // is within it.
        Some(unsafe { &*p.add(at) })
    }

    /// Issues a key for a record to come ([`fill`](Slots::fill)), or to
    /// give back ([`remove`](Slots::remove)); lookups see nothing until it
    /// is filled. `None` when the table is full.
    pub fn reserve(&self) -> Option<SlotKey> {
        let mut a = lock(&self.alloc);
        let index = match a.free.pop() {
            Some(i) => i as usize,
            None => {
                if a.next_index >= self.limit {
                    return None;
                }
                let index = a.next_index;
                let (chunk, _) = locate(index);
                let cell = self.chunks.get(chunk)?;
                if cell.load(Ordering::Relaxed).is_null() {
                    let slots: Box<[Slot<V>]> = (0..chunk_len(chunk))
                        .map(|_| Slot {
                            word: AtomicU64::new(0),
                            value: AtomicPtr::new(std::ptr::null_mut()),
                            readers: AtomicU32::new(0),
                        })
                        .collect();
                    // Release: a lookup that sees the pointer sees the slots.
                    cell.store(Box::into_raw(slots).cast::<Slot<V>>(), Ordering::Release);
                }
                a.next_index += 1;
                index
            }
        };
        let generation = a.next_generation;
        a.next_generation = a.next_generation.wrapping_add(1).max(1);
        a.live += 1;
        self.slot(index)?
            .word
            .store(word(generation, RESERVED), Ordering::SeqCst);
        Some(SlotKey {
            index: index as u32,
            generation,
        })
    }

    /// Puts the record of a reserved key in place; false (and `value`
    /// dropped) when `key` is not reserved.
    pub fn fill(&self, key: SlotKey, value: Arc<V>) -> bool {
        let _a = lock(&self.alloc);
        let Some(s) = self.slot(key.index as usize) else {
            return false;
        };
        if s.word.load(Ordering::SeqCst) != word(key.generation, RESERVED) {
            return false;
        }
        s.value
            .store(Arc::into_raw(value).cast_mut(), Ordering::Release);
        // After the record: a lookup that sees LIVE sees it.
        s.word.store(word(key.generation, LIVE), Ordering::SeqCst);
        true
    }

    /// [`reserve`](Slots::reserve) then [`fill`](Slots::fill).
    pub fn insert(&self, value: Arc<V>) -> Option<SlotKey> {
        let key = self.reserve()?;
        self.fill(key, value);
        Some(key)
    }

    /// Frees the slot of a live or reserved `key` and returns its record
    /// (`None` for a reserved one); `None` when `key` is stale. Waits for
    /// lookups that are taking their reference (a few instructions each).
    pub fn remove(&self, key: SlotKey) -> Option<Arc<V>> {
        let mut a = lock(&self.alloc);
        let s = self.slot(key.index as usize)?;
        let w = s.word.load(Ordering::SeqCst);
        if w != word(key.generation, LIVE) && w != word(key.generation, RESERVED) {
            return None;
        }
        // From here no lookup starts using the record (it checks `word`
        // after announcing itself in `readers`); wait for those that did.
        s.word.store(word(key.generation, FREE), Ordering::SeqCst);
        seqcst_pairing();
        while s.readers.load(Ordering::SeqCst) != 0 {
            yield_now();
        }
        let p = s.value.swap(std::ptr::null_mut(), Ordering::Acquire);
        a.free.push(key.index);
        a.live -= 1;
        // SAFETY: `p` came from `Arc::into_raw` in `fill` and is the
        // table's reference, taken out once (swapped for null).
        (!p.is_null()).then(|| unsafe { Arc::from_raw(p) })
    }

    /// The record of a live `key`; `None` when stale, reserved or garbage.
    /// Takes no lock and writes only the key's own slot (invariant 4).
    pub fn get(&self, key: SlotKey) -> Option<Arc<V>> {
        let s = self.slot(key.index as usize)?;
        // Announce before checking (SeqCst on both sides, against
        // `remove`'s store of `word` then load of `readers`): either
        // `remove` sees us and waits, or we see its FREE.
        s.readers.fetch_add(1, Ordering::SeqCst);
        seqcst_pairing();
        let found = if s.word.load(Ordering::SeqCst) == word(key.generation, LIVE) {
            let p = s.value.load(Ordering::Acquire);
            // SAFETY: LIVE is stored after `value` (so `p` is the record),
            // and `remove` cannot take the table's reference while we are
            // counted in `readers`: the record is alive, and we add our
            // own reference.
            unsafe {
                Arc::increment_strong_count(p);
                Some(Arc::from_raw(p))
            }
        } else {
            None
        };
        s.readers.fetch_sub(1, Ordering::Release);
        found
    }

    /// The record of a live `key`, borrowed without taking a reference:
    /// the lookup stays announced in the slot's `readers` until the
    /// [`SlotRef`] drops, so [`remove`](Slots::remove) waits for it. For
    /// short work that never waits for anything that may wait for a
    /// `remove` (a post that refuses when full; never a blocking wait or
    /// user code); [`SlotRef::to_arc`] makes a reference that outlives
    /// it. Saves the increment and decrement of the record's count that a
    /// [`get`](Slots::get) and its drop cost. `None` when stale, reserved
    /// or garbage.
    pub fn borrow(&self, key: SlotKey) -> Option<SlotRef<'_, V>> {
        let s = self.slot(key.index as usize)?;
        // As in `get`: either `remove` sees us and waits until the borrow
        // drops, or we see its FREE.
        s.readers.fetch_add(1, Ordering::SeqCst);
        seqcst_pairing();
        if s.word.load(Ordering::SeqCst) != word(key.generation, LIVE) {
            s.readers.fetch_sub(1, Ordering::Release);
            return None;
        }
        // LIVE is stored after `value`, so this is the record; `remove`
        // cannot take the table's reference while we are counted.
        let value = s.value.load(Ordering::Acquire).cast_const();
        Some(SlotRef { slot: s, value })
    }

    /// Whether `key` is live: one atomic load, nothing written.
    pub fn is_live(&self, key: SlotKey) -> bool {
        self.slot(key.index as usize)
            .is_some_and(|s| s.word.load(Ordering::SeqCst) == word(key.generation, LIVE))
    }

    /// The generation of slot `index` while it is reserved or live (to
    /// recover a key from a shortened form of it, e.g. a 32-bit 1v0
    /// `utilid`).
    pub fn generation_at(&self, index: u32) -> Option<u32> {
        let w = self.slot(index as usize)?.word.load(Ordering::SeqCst);
        (w & 3 != FREE).then_some((w >> 2) as u32)
    }

    /// The live keys now, in slot order (takes the table's lock).
    pub fn keys(&self) -> Vec<SlotKey> {
        let a = lock(&self.alloc);
        (0..a.next_index)
            .filter_map(|i| {
                let w = self.slot(i)?.word.load(Ordering::SeqCst);
                (w & 3 == LIVE).then_some(SlotKey {
                    index: i as u32,
                    generation: (w >> 2) as u32,
                })
            })
            .collect()
    }

    /// Keys issued and not removed (live or reserved).
    pub fn len(&self) -> usize {
        lock(&self.alloc).live
    }

    /// Whether no key is issued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V> Drop for Slots<V> {
    fn drop(&mut self) {
        for (chunk, cell) in self.chunks.iter().enumerate() {
            let p = cell.swap(std::ptr::null_mut(), Ordering::Acquire);
            if p.is_null() {
                continue;
            }
            // SAFETY: `p` is a chunk of `chunk_len(chunk)` slots made by
            // `Box::into_raw` in `reserve`; nobody else can reach it now
            // (`&mut self`).
            let slots =
                unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, chunk_len(chunk))) };
            for s in slots.iter() {
                let v = s.value.swap(std::ptr::null_mut(), Ordering::Acquire);
                if !v.is_null() {
                    // SAFETY: the table's reference of a live record
                    // (`fill`), dropped once.
                    drop(unsafe { Arc::from_raw(v) });
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn chunks_double_and_cover_every_index_once() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(BASE - 1), (0, BASE - 1));
        assert_eq!(locate(BASE), (1, 0));
        assert_eq!(locate(3 * BASE - 1), (1, 2 * BASE - 1));
        assert_eq!(locate(3 * BASE), (2, 0));
        let last = BASE * ((1 << CHUNKS) - 1) - 1;
        assert_eq!(locate(last), (CHUNKS - 1, chunk_len(CHUNKS - 1) - 1));
    }

    #[test]
    fn zero_and_garbage_are_never_keys() {
        assert_eq!(SlotKey::from_bits(0), None);
        assert_eq!(SlotKey::from_bits(0xdead_beef), None, "generation 0");
        assert_eq!(SlotKey::from_bits(0x0000_0abc_0000_0000), None, "index 0");
        let t: Slots<u8> = Slots::new();
        let k = SlotKey::from_bits(u64::MAX).expect("decodes");
        assert!(t.get(k).is_none(), "out of range");
        assert!(t.remove(k).is_none());
        assert!(!t.is_live(k));
    }

    #[test]
    fn reserved_then_removed_is_stale_and_reuse_gets_a_new_generation() {
        let t: Slots<u8> = Slots::new();
        let a = t.reserve().expect("a free slot");
        assert!(t.get(a).is_none(), "reserved but not filled");
        assert_eq!(t.generation_at(a.index()), Some(a.generation()));
        assert!(t.remove(a).is_none());
        assert!(t.remove(a).is_none(), "removed twice");
        assert!(!t.fill(a, Arc::new(1)), "a stale key cannot be filled");
        let b = t.insert(Arc::new(2)).expect("a free slot");
        assert_eq!(a.index(), b.index(), "the slot is reused");
        assert_ne!(a, b, "with a new generation");
        assert_eq!(SlotKey::from_bits(b.to_bits()), Some(b));
        assert_eq!(t.get(b).as_deref(), Some(&2));
        assert!(t.get(a).is_none());
        assert_eq!(t.keys(), vec![b]);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_limit_holds_and_freed_slots_are_reused() {
        let t: Slots<u8> = Slots::with_limit(BASE + 1);
        let keys: Vec<_> = (0..=BASE).map(|_| t.insert(Arc::new(0)).unwrap()).collect();
        assert!(t.reserve().is_none(), "full");
        t.remove(keys[BASE]).unwrap();
        assert!(t.insert(Arc::new(1)).is_some(), "a freed slot");
    }

    #[test]
    fn records_left_in_the_table_drop_with_it() {
        let v = Arc::new(7u8);
        let t: Slots<u8> = Slots::new();
        for _ in 0..3 * BASE {
            t.insert(v.clone()).unwrap();
        }
        assert_eq!(Arc::strong_count(&v), 3 * BASE + 1);
        drop(t);
        assert_eq!(Arc::strong_count(&v), 1);
    }

    #[test]
    fn remove_waits_until_a_borrow_ends() {
        use std::sync::atomic::AtomicBool;
        let t: Arc<Slots<u8>> = Arc::new(Slots::new());
        let key = t.insert(Arc::new(7)).expect("room");
        let borrowed = t.borrow(key).expect("live");
        let removed = Arc::new(AtomicBool::new(false));
        let remover = {
            let (t, removed) = (t.clone(), removed.clone());
            std::thread::spawn(move || {
                let record = t.remove(key);
                removed.store(true, Ordering::SeqCst);
                record.map(|v| *v)
            })
        };
        // Long enough for a remove that did not wait to finish.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !removed.load(Ordering::SeqCst),
            "remove waits for the borrow"
        );
        assert_eq!(*borrowed, 7, "the borrowed record is intact");
        let kept = borrowed.to_arc();
        drop(borrowed);
        assert_eq!(remover.join().expect("remover"), Some(7));
        assert_eq!(*kept, 7, "a reference taken under the borrow outlives it");
        assert!(t.borrow(key).is_none(), "stale once removed");
    }

    #[test]
    fn lookups_racing_remove_and_reuse_see_their_own_record_or_none() {
        use std::sync::atomic::AtomicBool;
        let t: Arc<Slots<u64>> = Arc::new(Slots::new());
        let current = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (t, current, stop) = (t.clone(), current.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut wrong = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let bits = current.load(Ordering::Relaxed);
                        let Some(k) = SlotKey::from_bits(bits) else {
                            continue;
                        };
                        if t.get(k).is_some_and(|v| *v != bits) {
                            wrong += 1;
                        }
                    }
                    wrong
                })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            let k = t.reserve().expect("a free slot");
            assert!(seen.insert(k), "a key is never issued twice");
            assert!(t.fill(k, Arc::new(k.to_bits())));
            current.store(k.to_bits(), Ordering::Relaxed);
            assert_eq!(t.get(k).as_deref(), Some(&k.to_bits()), "live");
            assert_eq!(t.remove(k).as_deref(), Some(&k.to_bits()));
            assert!(t.get(k).is_none(), "stale once removed");
            assert!(t.remove(k).is_none(), "removed once");
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert_eq!(
                r.join().expect("reader"),
                0,
                "a lookup saw another key's record"
            );
        }
    }
}
