//! [`Counted`]: a value shared between threads by hand-counted handles,
//! so that a holder of several handles can give them all up with one
//! atomic operation ([`Held`]).
//!
//! It is an `Arc` with one more operation: [`Callback`](crate::item::Callback)
//! is one, so that the item loop releases a run of items' references at
//! once (see there for why). The value is dropped exactly once, by whoever
//! gives up the last count, after every other holder's last use (the
//! model: `loom_models.rs`).

use std::ptr::NonNull;

use crate::sync::{fence, AtomicUsize, Ordering};

/// A counted handle to a shared `T`.
pub(crate) struct Counted<T>(NonNull<Shared<T>>);

struct Shared<T> {
    refs: AtomicUsize,
    value: T,
}

// SAFETY: like `Arc<T>`: handles on several threads share `&T` (so `T:
// Sync`), and the last one, on any thread, drops `T` (so `T: Send`). The
// count is atomic; the allocation is freed once (see `release_refs`).
unsafe impl<T: Send + Sync> Send for Counted<T> {}
// SAFETY: as above; `&Counted<T>` only reads `T` or bumps the count.
unsafe impl<T: Send + Sync> Sync for Counted<T> {}

impl<T> Counted<T> {
    /// The first handle.
    pub(crate) fn new(value: T) -> Counted<T> {
        let shared = Box::new(Shared {
            refs: AtomicUsize::new(1),
            value,
        });
        Counted(NonNull::from(Box::leak(shared)))
    }

    fn shared(&self) -> &Shared<T> {
        // SAFETY: `self` holds one of the counts, so the allocation is live
        // for as long as `self` is.
        unsafe { self.0.as_ref() }
    }

    /// The shared value.
    pub(crate) fn get(&self) -> &T {
        &self.shared().value
    }

    /// Gives up `self` and `extra` more handles to the same value that the
    /// caller forgot (`std::mem::forget`), in one atomic operation.
    fn release(self, extra: usize) {
        let ptr = self.0;
        std::mem::forget(self);
        // SAFETY: the caller owned `1 + extra` counts (`self` and the
        // handles it forgot), and gives them all up here.
        unsafe { release_refs(ptr, 1 + extra) }
    }
}

/// Drops `n` counts of `ptr`, freeing it with the last one.
///
/// # Safety
/// The caller owns `n` counts (no handle that will drop them again remains).
unsafe fn release_refs<T>(ptr: NonNull<Shared<T>>, n: usize) {
    // SAFETY: the count is at least `n`, so the allocation is live until
    // this decrement. Release orders this thread's uses before the free;
    // the acquire fence orders every other thread's uses before it (as
    // `Arc` does). Only the thread that takes the count to zero frees it,
    // once, as the `Box` it was leaked from.
    unsafe {
        if ptr.as_ref().refs.fetch_sub(n, Ordering::Release) == n {
            fence(Ordering::Acquire);
            drop(Box::from_raw(ptr.as_ptr()));
        }
    }
}

impl<T> Clone for Counted<T> {
    fn clone(&self) -> Counted<T> {
        // Relaxed as in `Arc::clone`: a new count is made from an existing
        // one, which keeps the allocation alive meanwhile.
        let old = self.shared().refs.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            std::process::abort();
        }
        Counted(self.0)
    }
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        // SAFETY: this handle owns one count and is going away.
        unsafe { release_refs(self.0, 1) }
    }
}

/// Handles to one shared value at a time, given up together: the item
/// loop's held callback (`item_loop.rs`). Consecutive items usually share
/// a callback; their handles join the held one's count instead of being
/// released one by one, and all go in one atomic operation when another
/// value is held or the holder drops. Holding a value also keeps its
/// address (its identity) from being reused meanwhile.
pub(crate) struct Held<T>(Option<(Counted<T>, usize)>);

impl<T> Default for Held<T> {
    fn default() -> Held<T> {
        Held(None)
    }
}

impl<T> Held<T> {
    /// The held value.
    pub(crate) fn get(&self) -> Option<&T> {
        self.0.as_ref().map(|(c, _)| c.get())
    }

    /// Holds `c`: false when it is a handle to the value already held
    /// (its count joins the held ones); true when it is another value,
    /// held now, the handles held before being released.
    pub(crate) fn hold(&mut self, c: Counted<T>) -> bool {
        match &mut self.0 {
            Some((held, extra)) if held.0 == c.0 => {
                // Released with `held`'s (counted in `extra`).
                std::mem::forget(c);
                *extra += 1;
                false
            }
            _ => {
                if let Some((old, extra)) = self.0.replace((c, 0)) {
                    old.release(extra);
                }
                true
            }
        }
    }
}

impl<T> Drop for Held<T> {
    fn drop(&mut self) {
        if let Some((c, extra)) = self.0.take() {
            c.release(extra);
        }
    }
}
