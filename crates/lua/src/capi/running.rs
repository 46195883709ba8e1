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

use super::handles::{self, Handle};
use crate::sync::{seqcst_pairing, wait_round, AtomicBool, AtomicU64, Ordering};

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
    /// Marks the callback of utility `h` as about to run; false (and
    /// nothing is marked) when the utility is `gone`, whose items must not
    /// run. Lua thread only. Pair a true answer with
    /// [`leave`](Running::leave).
    #[inline]
    pub(crate) fn enter(&self, h: Handle, gone: &AtomicBool) -> bool {
        self.now.store(h, Ordering::SeqCst);
        seqcst_pairing();
        if gone.load(Ordering::SeqCst) {
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
        self.enter_if_live(h, handles::is_live)
    }

    /// [`enter_live`](Running::enter_live) with the handle table's answer
    /// given as `is_live` (the loom model's stand-in for the table).
    #[inline]
    pub(crate) fn enter_if_live(&self, h: Handle, is_live: impl FnOnce(Handle) -> bool) -> bool {
        self.now.store(h, Ordering::SeqCst);
        seqcst_pairing();
        let unregs = self.unregs.load(Ordering::SeqCst);
        if self.live_handle.load(Ordering::Relaxed) == h
            && self.live_at.load(Ordering::Relaxed) == unregs
        {
            return true;
        }
        if !is_live(h) {
            self.now.store(0, Ordering::Release);
            return false;
        }
        self.live_handle.store(h, Ordering::Relaxed);
        self.live_at.store(unregs, Ordering::Relaxed);
        true
    }

    /// The callback returned (or raised).
    #[inline]
    pub(crate) fn leave(&self) {
        self.now.store(0, Ordering::Release);
    }

    /// `unreg()`'s first half, once the utility's handle went stale: no
    /// callback of it starts after this (its `gone` flag is set, and
    /// `unregs` moves); one running now is waited for with
    /// [`wait_out`](Running::wait_out).
    pub(crate) fn forbid(&self, gone: &AtomicBool) {
        gone.store(true, Ordering::SeqCst);
        self.unregs.fetch_add(1, Ordering::SeqCst);
        seqcst_pairing();
    }

    /// Waits until no callback of `h` runs ([`forbid`](Running::forbid)
    /// was called first). Callbacks are short (they must not block).
    pub(crate) fn wait_out(&self, h: Handle) {
        let mut round = 0;
        while self.now.load(Ordering::SeqCst) == h {
            wait_round(&mut round);
        }
    }
}
