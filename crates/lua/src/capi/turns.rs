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
//! turn first; `deliver`, released early by a cancellation, waits for a
//! callback another thread took to return before it returns itself
//! ([`Turns::settle`]; the loom model: `loom_models.rs`).

use std::sync::Arc;

use crate::sync::{wait_round, AtomicBool, AtomicU8, Ordering};

/// One once-only callback: free, then taken (its taker runs it), then done.
struct Turn(AtomicU8);

const FREE: u8 = 0;
const TAKEN: u8 = 1;
const DONE: u8 = 2;

impl Turn {
    fn new() -> Turn {
        Turn(AtomicU8::new(FREE))
    }

    /// Runs `f` when this caller takes the turn (`Some` of its result);
    /// marks the turn done when `f` returned (or unwound).
    fn run<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        if self
            .0
            .compare_exchange(FREE, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        struct Done<'a>(&'a AtomicU8);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                // Release: what the callback did is seen by `wait_done`.
                self.0.store(DONE, Ordering::Release);
            }
        }
        let _done = Done(&self.0);
        Some(f())
    }

    /// Waits until the callback of a taken turn returned (callbacks are
    /// short: they must not block).
    fn wait_done(&self) {
        let mut round = 0;
        while self.0.load(Ordering::Acquire) != DONE {
            wait_round(&mut round);
        }
    }
}

/// Which of a 1v0 blocking delivery's once-only callbacks were taken.
pub(crate) struct Turns {
    decoder: Turn,
    /// The decoder's taker had a state: a return callback may be due.
    decoded: AtomicBool,
    /// The return callback (or the decision that none is due).
    ret: Turn,
}

/// What [`Turns::settle`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The decoder ran with `NULL` (here or on a discarding thread).
    Cancelled,
    /// The answer was pending: the return callback ran here, with `NULL`.
    Garbage,
    /// The return callback ran on the Lua thread, or none was due.
    Answered,
}

impl Turns {
    pub(crate) fn new() -> Arc<Turns> {
        Arc::new(Turns {
            decoder: Turn::new(),
            decoded: AtomicBool::new(false),
            ret: Turn::new(),
        })
    }

    /// The item is cancelled (any thread): runs `decoder_null` unless the
    /// decoder was called already. True when it ran.
    pub(crate) fn decode_null(&self, decoder_null: impl FnOnce()) -> bool {
        self.decoder.run(decoder_null).is_some()
    }

    /// The Lua thread, with the call claimed (so `deliver` has not taken
    /// the turn): runs `decoder` with a state. `None` if the turn was
    /// taken all the same.
    pub(crate) fn decode<R>(&self, decoder: impl FnOnce() -> R) -> Option<R> {
        self.decoder.run(|| {
            self.decoded.store(true, Ordering::Relaxed);
            decoder()
        })
    }

    /// The Lua thread's answer: runs `ret` unless the return callback ran
    /// already (or was found not due).
    pub(crate) fn answer<R>(&self, ret: impl FnOnce() -> R) -> Option<R> {
        self.ret.run(ret)
    }

    /// The decoder pushed nothing: no return callback is due.
    pub(crate) fn no_answer(&self) {
        self.ret.run(|| {});
    }

    /// `deliver`, after its call ended unanswered (cancelled or closed):
    /// runs what is still due (`decoder_null`, or `ret_null` when the
    /// decoder ran with a state), and waits for what another thread is
    /// running, so that nothing touches `pData` once this returned.
    pub(crate) fn settle(&self, decoder_null: impl FnOnce(), ret_null: impl FnOnce()) -> Settled {
        if self.decoder.run(decoder_null).is_some() {
            return Settled::Cancelled;
        }
        self.decoder.wait_done();
        // Ordered by `wait_done`'s acquire of the decoder's `DONE`.
        if !self.decoded.load(Ordering::Relaxed) {
            return Settled::Cancelled;
        }
        if self.ret.run(ret_null).is_some() {
            return Settled::Garbage;
        }
        self.ret.wait_done();
        Settled::Answered
    }
}
