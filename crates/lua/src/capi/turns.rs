//! [`Turns`]: a 1v0 blocking delivery's progress, shared by its item, its
//! reply and the thread blocked in `deliver`.
//!
//! A 1v0 blocking delivery's `pData` is usually on the caller's stack, so
//! everything due for it happens before `deliver` returns: `decoder(NULL)`
//! of an item cancelled before it ran, and the return callback, which runs
//! once: on the Lua thread (answer, error, the reply userdata collected
//! uncalled) or, when the utility unregistered or the state closed while
//! the answer was pending, on the thread blocked in `deliver`, with
//! `L == NULL`. Each callback that is due once goes to whoever takes its
//! turn first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Which of a 1v0 blocking delivery's once-only callbacks were taken.
#[derive(Default)]
pub(crate) struct Turns {
    /// The decoder was called (with a state, or NULL).
    decoder: AtomicBool,
    /// ... with a state: a return callback may be due.
    decoded: AtomicBool,
    /// The return callback ran, or will never be due (decoder pushed
    /// nothing).
    returned: AtomicBool,
}

impl Turns {
    pub(crate) fn new() -> Arc<Turns> {
        Arc::default()
    }

    /// True for exactly one caller: the one that calls the decoder.
    pub(crate) fn decoder_turn(&self) -> bool {
        !self.decoder.swap(true, Ordering::AcqRel)
    }

    /// The decoder was called with a state (by the turn's taker).
    pub(crate) fn set_decoded(&self) {
        self.decoded.store(true, Ordering::Release);
    }

    /// Whether the decoder ran with a state.
    pub(crate) fn decoded(&self) -> bool {
        self.decoded.load(Ordering::Acquire)
    }

    /// True for exactly one caller: the one that calls `ret`.
    pub(crate) fn return_turn(&self) -> bool {
        !self.returned.swap(true, Ordering::AcqRel)
    }
}
