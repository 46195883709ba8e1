//! The reply slot of a blocking call: a one-shot hand-off from the consumer
//! (which holds the [`Reply`]) to the producer blocked in
//! [`Port::call`](crate::Port::call) (which holds the [`Waiter`]), and the
//! one place that decides how a call ends.
//!
//! # Invariants
//!
//! 1. The slot reaches exactly one end: `Replied` (by [`Reply::send`] or
//!    [`Reply::fail`]), `Dropped` (the `Reply` was dropped unanswered: its
//!    item was discarded, or the consumer never answered), `Cancelled` (its
//!    port was unregistered or its hub closed while the call was pending,
//!    wherever the item sat: queue, consumer's batch or a Lua reply
//!    userdata) or `Abandoned` (the waiter timed out first). Whoever moves
//!    it does so under the slot's lock, so a late reply is refused, never
//!    lost in a slot nobody reads.
//! 2. `Claimed` marks work on the consumer thread that uses what the caller
//!    lent it (a C caller's `data`): while claimed, neither a timeout nor a
//!    cancellation ends the call; they wait for the claim to end. So after
//!    the caller returned, nothing the consumer does touches its data. Who
//!    waits for the claim to end says so (`watched`), and only then does
//!    ending the claim wake anyone: a waiter still inside its timed wait
//!    needs no wake-up, and a needless one costs a blocking call a futex
//!    wake and a context switch on the caller's thread.
//! 3. `settled` is set (release) when the waiter's answer is there; the
//!    waiter may spin on it (acquire) before taking the lock and sleeping,
//!    which is what keeps a round trip with a busy consumer in the low
//!    microseconds. `finished` is set once the slot reached its end, so the
//!    hub can forget it without taking its lock.

use std::fmt;
use std::time::{Duration, Instant};

use crate::sync::{
    condvar_wait_timeout, lock, spin_hint, Arc, AtomicBool, Condvar, Mutex, Ordering,
};

/// How long the waiter polls `settled` before sleeping on the condvar,
/// when it polls at all (see [`SKIP_FIRST`]). A consumer that is already
/// running answers within a few microseconds, sooner than a futex wake-up
/// (10-40 µs on an idle vCPU). Measured in time, not iterations (a spin
/// hint costs 4 ns on one CPU and 40 on another). Kept short: a spin that
/// misses delays the round trip by about this much.
/// Zero under loom, where every poll would be a modelled scheduling point.
const SPIN_TIME: Duration = Duration::from_micros(if cfg!(loom) { 0 } else { 12 });

/// After a spin that ended without the answer, this thread skips the spin
/// for its next calls: 16 after the first miss, doubling with every further
/// miss up to 1024, back to spinning at once when a spin pays off again.
///
/// Spinning is a bet that the consumer answers within [`SPIN_TIME`] while
/// the caller keeps its CPU. It pays off when the consumer is running (a
/// busy Lua thread: round trips of ~4 µs instead of a futex wake-up each).
/// It loses when the consumer was asleep: on the 2-core bench VM the woken
/// consumer usually lands on the caller's own vCPU and cannot run before
/// the spin ends, so every round trip paid the whole spin (median 37-42 µs
/// with the old 4000-iteration spin, 9 µs without spinning).
const SKIP_FIRST: u32 = 16;
const SKIP_MAX: u32 = 1024;

#[derive(Clone, Copy)]
struct SpinLuck {
    /// Calls left to wait without spinning.
    skip: u32,
    /// The skip length after the next miss.
    next: u32,
}

thread_local! {
    static SPIN_LUCK: std::cell::Cell<SpinLuck> =
        const { std::cell::Cell::new(SpinLuck { skip: 0, next: SKIP_FIRST }) };
}

/// Whether this call should spin (see [`SKIP_FIRST`]).
fn spin_worth_trying() -> bool {
    SPIN_LUCK.with(|c| {
        let mut l = c.get();
        let spin = l.skip == 0;
        if !spin {
            l.skip -= 1;
            c.set(l);
        }
        spin
    })
}

/// Records whether the spin of this call saw the answer.
fn spin_outcome(answered: bool) {
    SPIN_LUCK.with(|c| {
        let l = c.get();
        c.set(if answered {
            SpinLuck {
                skip: 0,
                next: SKIP_FIRST,
            }
        } else {
            SpinLuck {
                skip: l.next,
                next: (l.next * 2).min(SKIP_MAX),
            }
        });
    })
}

/// Polls of `settled` between two reads of the clock.
const SPINS_PER_CHECK: u32 = 32;

enum State<R> {
    /// Queued, or its callback ran and the answer is pending.
    Waiting,
    /// The consumer is inside work that uses the caller's lent data;
    /// `watched` once a waiter or a cancellation waits for it to end.
    Claimed {
        watched: bool,
    },
    Replied(Result<R, String>),
    Dropped,
    Cancelled,
    Abandoned,
    /// The waiter took the end.
    Taken,
}

struct Slot<R> {
    state: Mutex<State<R>>,
    cv: Condvar,
    settled: AtomicBool,
    finished: AtomicBool,
}

impl<R> Slot<R> {
    /// Moves to an end the waiter reads, and wakes it.
    fn settle(&self, mut state: crate::sync::MutexGuard<'_, State<R>>, to: State<R>) {
        *state = to;
        self.settled.store(true, Ordering::Release);
        self.finished.store(true, Ordering::Release);
        drop(state);
        self.cv.notify_all();
    }
}

/// The consumer's half of a blocking call: answer it once with
/// [`send`](Reply::send) or [`fail`](Reply::fail). Dropping it unanswered
/// releases the caller with [`CallError::Cancelled`](crate::CallError::Cancelled)
/// (or `Closed` when the hub has closed).
pub struct Reply<R> {
    slot: Arc<Slot<R>>,
    answered: bool,
}

/// What a waiter learned.
pub(crate) enum Outcome<R> {
    Replied(Result<R, String>),
    /// Dropped unanswered, or cancelled.
    Ended,
    TimedOut,
}

/// The caller's half; private to the crate, driven by `Port::call`.
pub(crate) struct Waiter<R> {
    slot: Arc<Slot<R>>,
}

/// A pending call as its hub tracks it, to cancel it when its port is
/// unregistered or the hub closes (see invariant 1).
pub(crate) trait PendingCall: Send + Sync {
    /// Ends a pending call as cancelled (waits out a claim; a no-op once
    /// the call has ended).
    fn cancel(&self);
    /// True once the call reached its end; the hub may forget it.
    fn is_finished(&self) -> bool;
}

impl<R: Send> PendingCall for Arc<Slot<R>> {
    fn cancel(&self) {
        let mut state = lock(&self.state);
        loop {
            match *state {
                State::Claimed { .. } => {
                    *state = State::Claimed { watched: true };
                    state = self.cv.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                State::Waiting => {
                    self.settle(state, State::Cancelled);
                    return;
                }
                _ => return,
            }
        }
    }

    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

pub(crate) fn pair<R>() -> (Reply<R>, Waiter<R>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State::Waiting),
        cv: Condvar::new(),
        settled: AtomicBool::new(false),
        finished: AtomicBool::new(false),
    });
    (
        Reply {
            slot: slot.clone(),
            answered: false,
        },
        Waiter { slot },
    )
}

impl<R: Send + 'static> Waiter<R> {
    /// The handle the hub keeps to cancel this call.
    pub(crate) fn pending(&self) -> Box<dyn PendingCall> {
        Box::new(self.slot.clone())
    }
}

impl<R> Reply<R> {
    /// Answers the call with a value. Returns the value back when the caller
    /// has already given up (timed out) or the call was cancelled, so the
    /// consumer can dispose of it.
    pub fn send(self, value: R) -> Result<(), R> {
        self.answer(Ok(value)).map_err(|r| match r {
            Ok(v) => v,
            Err(_) => unreachable!("answer returns what it was given"),
        })
    }

    /// Answers the call with a handler error; the caller receives
    /// [`CallError::Handler`](crate::CallError::Handler) with this text.
    /// Returns `false` when the caller had already given up.
    pub fn fail(self, text: impl Into<String>) -> bool {
        self.answer(Err(text.into())).is_ok()
    }

    /// True once the call ended without this reply: the caller stopped
    /// waiting (its timeout passed) or the call was cancelled (its port was
    /// unregistered, its hub closed). A consumer may skip the work of such
    /// an item; answering it is harmless.
    pub fn is_abandoned(&self) -> bool {
        matches!(*lock(&self.slot.state), State::Abandoned | State::Cancelled)
    }

    /// Starts work that uses what the caller lent (invariant 2): until
    /// [`unclaim`](Reply::unclaim) or the answer, the caller waits even when
    /// its timeout passes, and a cancellation waits too. Returns false when
    /// the call already ended (timed out, cancelled): its lent data must
    /// not be touched.
    pub fn claim(&self) -> bool {
        let mut state = lock(&self.slot.state);
        match *state {
            State::Waiting => {
                *state = State::Claimed { watched: false };
                true
            }
            _ => false,
        }
    }

    /// Ends a [`claim`](Reply::claim) without answering: the call waits
    /// for its answer again (and may time out or be cancelled).
    pub fn unclaim(&self) {
        let mut state = lock(&self.slot.state);
        if let State::Claimed { watched } = *state {
            *state = State::Waiting;
            drop(state);
            if watched {
                self.slot.cv.notify_all();
            }
        }
    }

    fn answer(mut self, result: Result<R, String>) -> Result<(), Result<R, String>> {
        self.answered = true;
        let state = lock(&self.slot.state);
        if !matches!(*state, State::Waiting | State::Claimed { .. }) {
            return Err(result);
        }
        self.slot.settle(state, State::Replied(result));
        Ok(())
    }
}

impl<R> Drop for Reply<R> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let state = lock(&self.slot.state);
        if matches!(*state, State::Waiting | State::Claimed { .. }) {
            self.slot.settle(state, State::Dropped);
        } else {
            // The waiter left (timed out) or the call was cancelled:
            // nobody will read the slot again.
            self.slot.finished.store(true, Ordering::Release);
        }
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("abandoned", &self.is_abandoned())
            .finish()
    }
}

impl<R> Waiter<R> {
    /// Blocks until the slot reaches its end or `deadline` passes. On
    /// timeout the slot becomes `Abandoned` so a late answer is refused,
    /// not stored; a claimed slot is waited out first (invariant 2).
    pub(crate) fn wait(self, deadline: Option<Instant>) -> Outcome<R> {
        if !SPIN_TIME.is_zero() && spin_worth_trying() {
            let start = Instant::now();
            let limit = deadline.map_or(start + SPIN_TIME, |d| d.min(start + SPIN_TIME));
            let mut answered = false;
            'spin: loop {
                for _ in 0..SPINS_PER_CHECK {
                    if self.slot.settled.load(Ordering::Acquire) {
                        answered = true;
                        break 'spin;
                    }
                    spin_hint();
                }
                if Instant::now() >= limit {
                    break;
                }
            }
            spin_outcome(answered);
        }
        let mut state = lock(&self.slot.state);
        loop {
            match &*state {
                State::Replied(_) => match std::mem::replace(&mut *state, State::Taken) {
                    State::Replied(r) => return Outcome::Replied(r),
                    _ => unreachable!("matched above"),
                },
                // Left in place: the consumer's `is_abandoned` reads it.
                State::Dropped | State::Cancelled => return Outcome::Ended,
                State::Abandoned | State::Taken => {
                    unreachable!("only the waiter abandons or takes")
                }
                State::Waiting | State::Claimed { .. } => {}
            }
            let claimed = matches!(*state, State::Claimed { .. });
            state = match deadline {
                None => self.slot.cv.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(_) if claimed => {
                    // Back to the timed wait when the claim ends.
                    *state = State::Claimed { watched: true };
                    self.slot.cv.wait(state).unwrap_or_else(|p| p.into_inner())
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        *state = State::Abandoned;
                        self.slot.finished.store(true, Ordering::Release);
                        return Outcome::TimedOut;
                    }
                    condvar_wait_timeout(&self.slot.cv, state, deadline - now)
                }
            };
        }
    }
}
