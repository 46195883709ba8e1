//! Which utility's callback the Lua thread is running now, so that an
//! `unreg()` from another thread can wait for it to return (header: "a
//! callback running when unreg() is called is waited for").
//!
//! # The hand-off
//!
//! The Lua thread, before calling a decoder, `run`, `free(OK)` or a reply
//! callback of utility `h`: stores `h` in [`Running::now`], *then* reads
//! the utility's `gone` flag; it runs the callback only when the flag is
//! clear, and stores 0 afterwards. `unreg()` sets `gone`, *then* waits
//! while `now == h`. Both sides are `SeqCst` (a store, then a load of the
//! other variable: the store-buffer pattern, which weaker orderings allow
//! to interleave so that neither sees the other). So either the Lua thread
//! sees `gone` and calls nothing of `h` (its item is discarded), or
//! `unreg()` sees `h` running and waits until it returned. After `unreg()`
//! returns nothing of `h` starts either.
//!
//! An `unreg()` on the Lua thread itself (from inside a callback, or a
//! finaliser) does not wait: it would wait for itself. Neither does one
//! after the state closed: the Lua thread no longer runs items.

use super::handles::Handle;
use crate::sync::{seqcst_pairing, wait_round, AtomicBool, AtomicU64, Ordering};

/// One per state (see the module docs).
#[derive(Default)]
pub(crate) struct Running {
    /// The handle whose callback runs now; 0 when none.
    now: AtomicU64,
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

    /// The callback returned (or raised).
    #[inline]
    pub(crate) fn leave(&self) {
        self.now.store(0, Ordering::Release);
    }

    /// `unreg()`'s first half: no callback of the utility whose flag is
    /// `gone` starts after this (one running now is waited for with
    /// [`wait_out`](Running::wait_out)).
    pub(crate) fn forbid(gone: &AtomicBool) {
        gone.store(true, Ordering::SeqCst);
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
