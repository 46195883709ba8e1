//! [`Counted`]: a value shared between threads by hand-counted handles,
//! so that a holder of several handles can give them all up with one
//! atomic operation ([`Counted::release`]).
//!
//! It is an `Arc` with one more operation: [`Callback`](crate::item::Callback)
//! uses it so that `dispatch()` releases a run of items' references at once
//! (see there for why). The value is dropped exactly once, by whoever gives
//! up the last count, after every other holder's last use (the model:
//! `loom_models.rs`).

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
    pub(crate) fn release(self, extra: usize) {
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
