//! The one place that chooses between `std` and `loom` atomics for the
//! glue's hand-counted and hand-ordered types (`counted.rs`,
//! `capi/turns.rs`, `capi/running.rs`), so the models in `loom_models.rs`
//! run the code that ships (as `darksidesync-core`'s `sync.rs` does).
//!
//! The switch is `--cfg darksidesync_loom`, not `--cfg loom`: tokio, a
//! dependency of the bundled libraries, does not build under `cfg(loom)`.

#[cfg(darksidesync_loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

#[cfg(not(darksidesync_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Orders a SeqCst store before a later SeqCst load of another location
/// (the store-buffer pairing `capi/running.rs` relies on): the accesses'
/// single total order already does, so this compiles to nothing; loom
/// models SeqCst accesses alone as acquire/release, so there it is the
/// SeqCst fence that makes the pairing visible to the model.
#[inline]
pub(crate) fn seqcst_pairing() {
    #[cfg(darksidesync_loom)]
    fence(Ordering::SeqCst);
}

/// One round of waiting for another thread that is inside a short callback
/// (it must not block): yield first, then sleep. Under loom a yield, which
/// lets the model schedule the thread waited for.
#[inline]
pub(crate) fn wait_round(round: &mut u32) {
    #[cfg(not(darksidesync_loom))]
    {
        *round = round.saturating_add(1);
        if *round < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
    #[cfg(darksidesync_loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
}
