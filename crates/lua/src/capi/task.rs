//! The items C utilities deliver: a [`CTask`] (a [`Task`] holding the
//! utility's callbacks and its data pointer) and, for blocking deliveries,
//! a [`CSink`] (a [`ReplySink`] holding the return/reply callback).
//!
//! # Exactly once
//!
//! | item | ran on the Lua thread | cancelled (close, unreg) | refused by deliver/post |
//! |---|---|---|---|
//! | 1v0 | `decoder(L, ..)` | `decoder(NULL, ..)` | nothing (the caller keeps `pData`) |
//! | 2v0 post | `run(L, ..)` then `free(data, OK)` | `free(data, ECANCELLED/ECLOSED)` | `free(data, code)`, called by `post` |
//! | 2v0 call | `run(L, ..)` unless abandoned | nothing (`data` is borrowed) | nothing |
//!
//! A refused item is dropped by the producer's own thread while
//! [`Refusing`] is in force, which is how its `Drop` tells a refusal from a
//! cancellation: the core hands a refused item back to the caller
//! synchronously (or drops it inside `Port::call`, on the caller's thread,
//! before queueing), while accepted items are only ever dropped by the
//! thread that drains, closes or unregisters.
//!
//! # Blocking deliveries and timeouts ([`Ctl`])
//!
//! A 2v0 `call()` lends `data`; once it returned, no callback may touch it.
//! The Lua thread *claims* the item before calling `run` or `reply`, and a
//! caller that timed out *abandons* it; both under `Ctl`'s lock, and the
//! caller waits while a claim is in progress. So after `call()` returns,
//! either the reply callback completed (the call then reports `OK`, even if
//! its timeout had just passed) or it will never run. 1v0 has no timeout;
//! its `Ctl` only records whether the decoder ran, which decides the code a
//! cancelled blocking `deliver()` returns.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::{Arc, Condvar, Mutex};

use darksidesync_core::Reply;
use mlua::{ffi, Lua, MultiValue};

use super::handles::{Counters, Util};
use crate::item::{Prepared, ReplySink, Task};
use darksidesync_sys::v1::{DecoderFn as Decoder1, ReturnFn as Return1};
use darksidesync_sys::v2::{
    FreeFn as Free2, ReplyFn as Reply2, RunFn as Run2, ECANCELLED, ECLOSED, OK,
};

thread_local! {
    static REFUSING: Cell<bool> = const { Cell::new(false) };
}

/// While alive, items dropped on this thread are refusals, not
/// cancellations (see the module docs).
pub(crate) struct Refusing(bool);

impl Refusing {
    pub(crate) fn new() -> Refusing {
        Refusing(REFUSING.with(|r| r.replace(true)))
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        REFUSING.with(|r| r.set(self.0));
    }
}

fn refusing() -> bool {
    REFUSING.with(|r| r.get())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Queued; nothing ran.
    Waiting,
    /// The Lua thread is inside `run`/`decoder` or `reply`/`return`.
    Busy,
    /// `run`/`decoder` ran; no answer yet.
    Ran,
    /// The reply callback completed.
    Done,
    /// The caller gave up (2v0 timeout); nothing may run any more.
    Abandoned,
}

/// The hand-off between a blocking caller and the Lua thread.
pub(crate) struct Ctl {
    phase: Mutex<Phase>,
    cv: Condvar,
}

impl Ctl {
    pub(crate) fn new() -> Arc<Ctl> {
        Arc::new(Ctl {
            phase: Mutex::new(Phase::Waiting),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lua thread: may a callback run? Marks the item busy when it may.
    fn claim(&self) -> bool {
        let mut p = self.lock();
        if *p == Phase::Abandoned {
            return false;
        }
        *p = Phase::Busy;
        true
    }

    /// Lua thread: the callback returned (or raised).
    fn settle(&self, to: Phase) {
        *self.lock() = to;
        self.cv.notify_all();
    }

    /// Caller: gives up after a timeout. Returns the phase it found: `Done`
    /// means the reply completed after all; anything else is now
    /// `Abandoned`.
    pub(crate) fn abandon(&self) -> Phase {
        let mut p = self.lock();
        while *p == Phase::Busy {
            p = self.cv.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        let found = *p;
        if found != Phase::Done {
            *p = Phase::Abandoned;
        }
        found
    }

    /// Whether the decoder/run callback was called with a state.
    pub(crate) fn ran(&self) -> bool {
        matches!(*self.lock(), Phase::Ran | Phase::Done | Phase::Busy)
    }
}

/// What the item calls.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    V1 {
        decoder: Decoder1,
        ret: Option<Return1>,
    },
    V2Post {
        run: Run2,
        free: Option<Free2>,
    },
    V2Call {
        run: Run2,
        reply: Option<Reply2>,
    },
}

/// One delivered C item.
pub(crate) struct CTask {
    kind: Kind,
    data: *mut c_void,
    util: Arc<Util>,
    /// Blocking deliveries only.
    ctl: Option<Arc<Ctl>>,
    reply: Option<Reply<()>>,
    ran: bool,
}

// SAFETY: `data` is the utility's pointer, which the C contract lets us
// hand to its callbacks on any thread (we never dereference it); the
// callbacks are plain C function pointers; every other field is Send.
unsafe impl Send for CTask {}

impl CTask {
    pub(crate) fn new(
        kind: Kind,
        data: *mut c_void,
        util: Arc<Util>,
        ctl: Option<Arc<Ctl>>,
        reply: Option<Reply<()>>,
    ) -> CTask {
        Counters::bump(&util.counters.posted);
        CTask {
            kind,
            data,
            util,
            ctl,
            reply,
            ran: false,
        }
    }

    fn id(&self) -> *mut c_void {
        super::handles::to_utilid(self.util.handle)
    }
}

/// Calls a decoder/run callback in a fresh Lua C frame (mlua's `exec_raw`
/// runs the closure as a protected C function whose stack holds only its
/// arguments, here none) and returns the top `n` values it pushed, `n`
/// being its return value clamped to what it really pushed.
fn push_values(
    lua: &Lua,
    call: impl FnOnce(*mut ffi::lua_State) -> c_int,
) -> mlua::Result<MultiValue> {
    // SAFETY: the closure receives a valid state of this Lua, on the Lua
    // thread, inside a protected call; it only uses the stack of its own
    // frame, which starts empty, and leaves exactly the values to return.
    // A Lua error raised by the utility's callback (against its contract)
    // unwinds to exec_raw's protected boundary and becomes an `Err`; the
    // closure owns nothing that would need dropping.
    unsafe {
        lua.exec_raw::<MultiValue>((), |state| {
            let n = call(state);
            keep_top(state, n);
        })
    }
}

/// Calls a return/reply callback with `values` as the only values on a
/// fresh frame; returns what it pushed (its return value, clamped).
fn reply_values(
    lua: &Lua,
    values: MultiValue,
    call: impl FnOnce(*mut ffi::lua_State, c_int) -> c_int,
) -> mlua::Result<MultiValue> {
    // SAFETY: as in `push_values`; here the frame starts with `values`.
    unsafe {
        lua.exec_raw::<MultiValue>(values, |state| {
            let nargs = ffi::lua_gettop(state);
            let n = call(state, nargs);
            keep_top(state, n);
        })
    }
}

/// Leaves only the top `n` values of the current frame (fewer if fewer
/// are there; none when `n < 1`).
///
/// # Safety
/// `state` is the running state, inside a C frame.
unsafe fn keep_top(state: *mut ffi::lua_State, n: c_int) {
    // SAFETY: per the function contract, gettop/remove act on our frame.
    unsafe {
        let top = ffi::lua_gettop(state);
        let keep = n.clamp(0, top);
        for _ in 0..(top - keep) {
            ffi::lua_remove(state, 1);
        }
    }
}

impl Task for CTask {
    fn prepare(mut self: Box<Self>, lua: &Lua) -> mlua::Result<Prepared> {
        let data = self.data;
        let id = self.id();
        let handle = self.util.handle;
        let values = match self.kind {
            Kind::V1 { decoder, .. } => {
                self.ran = true;
                if let Some(ctl) = &self.ctl {
                    let _ = ctl.claim();
                }
                // SAFETY: the decoder is the utility's, called as its 1v0
                // contract says: on the Lua thread, with a valid state.
                let r = push_values(lua, |state| unsafe { decoder(state.cast(), data, id) });
                if let Some(ctl) = &self.ctl {
                    ctl.settle(Phase::Ran);
                }
                r
            }
            Kind::V2Post { run, .. } => {
                self.ran = true;
                // SAFETY: 2v0 contract: run on the Lua thread with a valid state.
                push_values(lua, |state| unsafe { run(state.cast(), data, handle) })
            }
            Kind::V2Call { run, .. } => {
                let ctl = self.ctl.clone().expect("a call has a Ctl");
                if !ctl.claim() {
                    // The caller timed out: `data` is no longer lent to us.
                    return Ok(Prepared {
                        call: None,
                        reply: None,
                    });
                }
                self.ran = true;
                // SAFETY: as above; `data` is still lent (claimed, not abandoned).
                let r = push_values(lua, |state| unsafe { run(state.cast(), data, handle) });
                ctl.settle(Phase::Ran);
                r
            }
        };
        Counters::bump(&self.util.counters.ran);
        let mut values = values?;
        let Some(callback) = values.pop_front() else {
            // Nothing to call: dropping `self` releases a waiter.
            return Ok(Prepared {
                call: None,
                reply: None,
            });
        };
        let sink = match (self.kind, self.reply.take(), self.ctl.clone()) {
            (Kind::V1 { ret: Some(ret), .. }, Some(reply), Some(ctl)) => Some(Box::new(CSink {
                answer: Answer::V1(ret),
                data,
                util: self.util.clone(),
                ctl,
                reply: Some(reply),
            })
                as Box<dyn ReplySink>),
            (Kind::V2Call { reply: r, .. }, Some(reply), Some(ctl)) => Some(Box::new(CSink {
                answer: Answer::V2(r),
                data,
                util: self.util.clone(),
                ctl,
                reply: Some(reply),
            })
                as Box<dyn ReplySink>),
            _ => None,
        };
        Ok(Prepared {
            call: Some((callback, values)),
            reply: sink,
        })
    }
}

impl Drop for CTask {
    fn drop(&mut self) {
        let refused = refusing() && !self.ran;
        let c = &self.util.counters;
        if refused {
            // Counted as posted when built; it never entered the queue.
            c.posted.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            Counters::bump(&c.refused);
        } else if !self.ran {
            Counters::bump(&c.cancelled);
        }
        let closed = self.util.is_closed();
        match self.kind {
            Kind::V1 { decoder, .. } => {
                if !self.ran && !refused {
                    // SAFETY: 1v0 contract: a cancelled item gets its
                    // decoder with a NULL state, exactly once (here: the
                    // task is dropped once and `ran` is false).
                    unsafe { decoder(std::ptr::null_mut(), self.data, self.id()) };
                }
            }
            Kind::V2Post {
                free: Some(free), ..
            } => {
                if !refused {
                    let outcome = if self.ran {
                        OK
                    } else if closed {
                        ECLOSED
                    } else {
                        ECANCELLED
                    };
                    // SAFETY: 2v0 contract: the post owns `data` and frees
                    // it exactly once (refusals are freed by `post`).
                    unsafe { free(self.data, outcome) };
                }
            }
            Kind::V2Post { free: None, .. } | Kind::V2Call { .. } => {}
        }
        // `self.reply` drops after this body, releasing a waiter only
        // after the callbacks above returned.
    }
}

enum Answer {
    V1(Return1),
    V2(Option<Reply2>),
}

/// The answer path of a blocking C delivery.
pub(crate) struct CSink {
    answer: Answer,
    data: *mut c_void,
    util: Arc<Util>,
    ctl: Arc<Ctl>,
    reply: Option<Reply<()>>,
}

impl ReplySink for CSink {
    fn send(mut self: Box<Self>, lua: &Lua, values: MultiValue) -> mlua::Result<MultiValue> {
        let data = self.data;
        let handle = self.util.handle;
        let id = super::handles::to_utilid(handle);
        if !self.ctl.claim() {
            // The 2v0 caller timed out: its data is gone; answer nothing.
            return Ok(MultiValue::new());
        }
        let result = match self.answer {
            // SAFETY: 1v0 contract: the return callback runs on the Lua
            // thread with the answer on an otherwise empty stack.
            Answer::V1(ret) => reply_values(lua, values, |state, _| unsafe {
                ret(state.cast(), data, id, 0)
            }),
            // SAFETY: 2v0 contract, likewise; `data` is lent (claimed).
            Answer::V2(Some(reply)) => reply_values(lua, values, |state, n| unsafe {
                reply(state.cast(), data, handle, n)
            }),
            Answer::V2(None) => Ok(MultiValue::new()),
        };
        let reply = self.reply.take().expect("answered once");
        match &result {
            Ok(_) => {
                self.ctl.settle(Phase::Done);
                Counters::bump(&self.util.counters.replies);
                let _ = reply.send(());
            }
            Err(e) => {
                self.ctl.settle(Phase::Ran);
                let _ = reply.fail(e.to_string());
            }
        }
        result
    }

    fn fail(mut self: Box<Self>, lua: &Lua, message: String) {
        let reply = self.reply.take().expect("answered once");
        Counters::bump(&self.util.counters.errors);
        if let Answer::V1(ret) = self.answer {
            // 1v0 cannot carry the error: the return callback sees garbage.
            let data = self.data;
            let id = super::handles::to_utilid(self.util.handle);
            // SAFETY: 1v0 contract, on the Lua thread with a valid state.
            let _ = reply_values(lua, MultiValue::new(), |state, _| unsafe {
                ret(state.cast(), data, id, 1)
            });
        }
        let _ = reply.fail(message);
    }
}

impl Drop for CSink {
    fn drop(&mut self) {
        if self.reply.is_none() {
            return; // answered
        }
        if let Answer::V1(ret) = self.answer {
            // Collected or dropped unanswered: garbage, with no state at hand.
            // SAFETY: 1v0 contract (documented: L is NULL when garbage = 1
            // outside a dispatch error); called once, the reply is pending.
            unsafe {
                ret(
                    std::ptr::null_mut(),
                    self.data,
                    super::handles::to_utilid(self.util.handle),
                    1,
                )
            };
        }
        // `self.reply` drops next, releasing the waiter.
    }
}
