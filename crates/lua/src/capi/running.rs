//! Which utility's callback the Lua thread is running now, so that an
//! `unreg()` from another thread can wait for it to return (header: "a
//! callback running when unreg() is called is waited for").
//!
//! # The hand-off
//!
//! The Lua thread, before calling a decoder, `run`, `free(OK)` or a reply
//! callback of utility `h`: stores `h` in [`Running::now`], *then* reads
//! the utility's `gone` flag (or, for an item, whether `h` is still live
//! in the handle table: [`Running::enter_live`]); it runs the callback
//! only when the flag is clear (the handle live), and stores 0 afterwards.
//! `unreg()` makes `h` stale and sets `gone`, *then* waits while
//! `now == h`. Both sides are `SeqCst` (a store, then a load of the
//! other variable: the store-buffer pattern, which weaker orderings allow
//! to interleave so that neither sees the other). So either the Lua thread
//! sees `gone` and calls nothing of `h` (its item is discarded), or
//! `unreg()` sees `h` running and waits until it returned. After `unreg()`
//! returns nothing of `h` starts either.
//!
//! An `unreg()` on the Lua thread itself (from inside a callback, or a
//! finaliser) does not wait: it would wait for itself. Neither does one
//! after the state closed: the Lua thread no longer runs items.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::handles::{self, Handle, Util};

/// One per state (see the module docs).
#[derive(Default)]
pub(crate) struct Running {
    /// The handle whose callback runs now; 0 when none.
    now: AtomicU64,
    /// How many utilities of the state `unreg()` released: bumped after
    /// the handle went stale, before the wait.
    unregs: AtomicU64,
    /// Lua thread only (Relaxed: no other thread reads them): the last
    /// handle [`enter_live`](Running::enter_live) found live, and
    /// `unregs` as it read it just before.
    live_handle: AtomicU64,
    live_at: AtomicU64,
}

impl Running {
    /// Marks `util`'s callback as about to run; false (and nothing is
    /// marked) when the utility is gone, whose items must not run. Lua
    /// thread only. Pair a true answer with [`leave`](Running::leave).
    #[inline]
    pub(crate) fn enter(&self, util: &Util) -> bool {
        self.now.store(util.handle, Ordering::SeqCst);
        if util.gone.load(Ordering::SeqCst) {
            self.now.store(0, Ordering::Release);
            return false;
        }
        true
    }

    /// [`enter`](Running::enter) for an item's utility, known by handle
    /// only: instead of its `gone` flag, reads whether `h` is still live in
    /// the handle table, which `unreg()` makes stale before it sets `gone`
    /// and bumps `unregs`, then waits. Items come in runs of one utility,
    /// so the answer is kept: while `unregs` has not moved since `h` was
    /// found live, `h` is still live (a release of `h` after that check
    /// would have bumped it), and the only read per item is of a line no
    /// producer writes. The same hand-off: `now`, then `unregs`, both
    /// SeqCst, against `unreg()`'s `unregs`, then `now`.
    #[inline]
    pub(crate) fn enter_live(&self, h: Handle) -> bool {
        self.now.store(h, Ordering::SeqCst);
        let unregs = self.unregs.load(Ordering::SeqCst);
        if self.live_handle.load(Ordering::Relaxed) == h
            && self.live_at.load(Ordering::Relaxed) == unregs
        {
            return true;
        }
        if !handles::is_live(h) {
            self.now.store(0, Ordering::Release);
            return false;
        }
        self.live_handle.store(h, Ordering::Relaxed);
        self.live_at.store(unregs, Ordering::Relaxed);
        true
    }

    /// `unreg()` made a handle of this state stale (before it waits).
    pub(crate) fn unregistered(&self) {
        self.unregs.fetch_add(1, Ordering::SeqCst);
    }

    /// The callback returned (or raised).
    #[inline]
    pub(crate) fn leave(&self) {
        self.now.store(0, Ordering::Release);
    }

    /// Waits until no callback of `h` runs (`gone` was set first).
    /// Callbacks are short (they must not block): yield, then sleep.
    pub(crate) fn wait_out(&self, h: Handle) {
        let mut spins = 0u32;
        while self.now.load(Ordering::SeqCst) == h {
            spins += 1;
            if spins < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}
