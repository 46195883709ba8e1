//! The one place that chooses between `std` and `loom` primitives.
//!
//! Every other module imports its locks and atomics from here, so the code
//! never branches on `cfg(loom)` and the model tests in `tests/loom.rs`
//! exercise exactly the code that ships.

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// `std`'s `UnsafeCell` with loom's access API (`with`, `with_mut`), so
/// loom can check the accesses in the models.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(v: T) -> UnsafeCell<T> {
        UnsafeCell(std::cell::UnsafeCell::new(v))
    }

    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Locks `m`, ignoring poisoning.
///
/// The core never runs user code while holding one of its locks (payload
/// drops and cancel callbacks run after the guard is released), so a poisoned
/// lock can only come from a panic inside the core's own bookkeeping, which
/// leaves the protected state consistent at every await point.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Locks `m` only if nobody holds it (never waits): `None` when taken.
pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Orders a SeqCst store (or RMW) before a later SeqCst load of another
/// location, for a Dekker-style pairing whose both sides are SeqCst: the
/// accesses' single total order already does that, so this compiles to
/// nothing; loom models SeqCst accesses alone as acquire/release, so there
/// it is a SeqCst fence (the pairing the code relies on, made visible).
#[inline]
pub(crate) fn seqcst_pairing() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// Busy-waits briefly; a no-op under loom, where spinning explodes the model.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Lets another thread run (a slot of the side ring is being written).
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// A small number that identifies the calling OS thread for the
/// would-deadlock check (never 0).
pub(crate) fn thread_token() -> u64 {
    #[cfg(not(loom))]
    {
        use std::cell::Cell;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        thread_local!(static TOKEN: Cell<u64> = const { Cell::new(0) });
        TOKEN.with(|t| {
            if t.get() == 0 {
                t.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            }
            t.get()
        })
    }
    #[cfg(loom)]
    {
        // loom threads are modelled; each has its own thread-local.
        use std::cell::Cell;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        loom::thread_local!(static TOKEN: Cell<u64> = Cell::new(0));
        TOKEN.with(|t| {
            if t.get() == 0 {
                t.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            }
            t.get()
        })
    }
}

/// A timed condvar wait that ignores poisoning (see [`lock`]).
#[cfg(not(loom))]
pub(crate) fn condvar_wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    dur: std::time::Duration,
) -> MutexGuard<'a, T> {
    cv.wait_timeout(guard, dur)
        .unwrap_or_else(|p| p.into_inner())
        .0
}

/// A timed condvar wait; loom does not model time, so there it is untimed.
#[cfg(loom)]
pub(crate) fn condvar_wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    _dur: std::time::Duration,
) -> MutexGuard<'a, T> {
    // loom does not model time; a timed wait is an untimed one there.
    cv.wait(guard).unwrap_or_else(|p| p.into_inner())
}

/// A deadline so far away it stands for "never" where an `Instant` is
/// needed (a timeout that overflows `Instant`).
pub(crate) fn far_future() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30)
}

/// Marks the current thread as inside a hub call that may hold the hub's
/// lock or a half-written side-ring slot, for as long as it lives.
///
/// A no-wait post that finds this thread already inside such a call was
/// made by a signal handler that interrupted it: waiting for the lock or
/// for that slot would wait for the interrupted code, which cannot run
/// until the handler returns. Such a post never waits (`queue.rs`).
///
/// A thread-local counter with a constant initialiser and no destructor:
/// reading it allocates nothing after the thread's first hub call (the
/// signal-safety rule in the header asks for one call before a handler).
pub(crate) struct InCore(());

#[cfg(not(loom))]
std::thread_local!(static IN_CORE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
#[cfg(loom)]
loom::thread_local!(static IN_CORE: std::cell::Cell<u32> = std::cell::Cell::new(0));

impl InCore {
    pub(crate) fn enter() -> InCore {
        IN_CORE.with(|c| c.set(c.get() + 1));
        InCore(())
    }

    /// True when this thread is inside a hub call now (see [`InCore`]).
    pub(crate) fn here() -> bool {
        IN_CORE.with(|c| c.get() > 0)
    }
}

impl Drop for InCore {
    fn drop(&mut self) {
        IN_CORE.with(|c| c.set(c.get() - 1));
    }
}
