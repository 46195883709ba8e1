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

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::handles::{Handle, Util};

/// One per state (see the module docs).
#[derive(Default)]
pub(crate) struct Running {
    /// The handle whose callback runs now; 0 when none.
    now: AtomicU64,
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
