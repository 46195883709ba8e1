//! [`CItem`]: the item of a blocking C delivery (1v0 `deliver` with a
//! return callback, 2v0 `call`), a [`Task`] holding the utility's
//! callbacks and its data pointer; its answer path is a [`CReply`].
//! (Fire-and-forget deliveries are inline posts: `post.rs`.)
//!
//! # Exactly once
//!
//! | item | ran on the Lua thread | discarded (close, unreg) | refused by deliver/call |
//! |---|---|---|---|
//! | 1v0 | `decoder(L, ..)` | `decoder(NULL, ..)` | nothing (the caller keeps `pData`) |
//! | 2v0 call | `run(L, ..)` unless the call ended | nothing (`data` is borrowed) | nothing |
//!
//! The core tells an item why it is discarded ([`Task::discard`]); a
//! refusal comes back to the delivering entry point, which discards the
//! item as [`Discarded::Refused`]. `Drop` only backs this up for an item
//! dropped without either (it is treated as cancelled). The counters
//! (2v0 `stats()`) are the port's, kept by the core; this layer only
//! tells it which items ran ([`Port::count_ran`](darksidesync_core::Port::count_ran)).
//!
//! # Lent data
//!
//! The core's [`Reply`] is the hand-off: the Lua thread *claims* it before
//! calling `run`/`decoder` or `reply`/`return` (a caller whose timeout
//! passes meanwhile waits for the claim to end), and a call that ended
//! (timed out, cancelled by unreg or close) cannot be claimed. So after a
//! 2v0 `call()` returned, nothing touches its `data`. A 1v0 delivery's
//! once-only callbacks are shared out by [`Turns`].

use std::ffi::c_void;
use std::sync::Arc;

use darksidesync_core::{Discarded, Reply};
use darksidesync_sys::v1::{DecoderFn, ReturnFn};
use darksidesync_sys::v2::{ReplyFn, RunFn};
use mlua::Lua;

use super::handles::{self, Handle};
use super::post::closed;
use super::reply::{Answer, CReply};
use super::turns::Turns;
use crate::item::{Prepared, ReplySink, Task};
use crate::raw;

/// What a blocking C item calls.
#[derive(Clone, Copy)]
pub(crate) enum Callbacks {
    /// A 1v0 blocking `deliver`.
    Deliver1 { decoder: DecoderFn, ret: ReturnFn },
    /// A 2v0 `call`.
    Call2 { run: RunFn, reply: Option<ReplyFn> },
}

/// One blocking C delivery. It names its utility by handle and holds no
/// reference to the record: after `unreg` the record goes at once, and a
/// queued item's few uses of it look it up.
pub(crate) struct CItem {
    callbacks: Callbacks,
    data: *mut c_void,
    handle: Handle,
    reply: Option<Reply<()>>,
    /// 1v0 only.
    turns: Option<Arc<Turns>>,
    /// Ran, discarded or refused: nothing is due any more.
    done: bool,
}

// SAFETY: `data` is the utility's pointer, which the C contract lets us
// hand to its callbacks on any thread (we never dereference it); the
// callbacks are plain C function pointers; every other field is Send.
unsafe impl Send for CItem {}

impl CItem {
    pub(crate) fn new(
        callbacks: Callbacks,
        data: *mut c_void,
        handle: Handle,
        reply: Reply<()>,
        turns: Option<Arc<Turns>>,
    ) -> CItem {
        CItem {
            callbacks,
            data,
            handle,
            reply: Some(reply),
            turns,
            done: false,
        }
    }

    fn id(&self) -> *mut c_void {
        handles::to_utilid(self.handle)
    }

    /// The discard path (see the module docs); runs once.
    fn discard_now(&mut self, why: Discarded) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Discarded::Refused(_) = why {
            // The port counted it; it never entered the queue.
            return;
        }
        if let Callbacks::Deliver1 { decoder, .. } = self.callbacks {
            let (data, id) = (self.data, self.id());
            let decoder_null = || {
                // SAFETY: 1v0 contract: a cancelled item gets its decoder
                // with a NULL state, exactly once (`done` and the turn
                // guard it).
                unsafe { decoder(std::ptr::null_mut(), data, id) };
            };
            match &self.turns {
                Some(turns) => {
                    turns.decode_null(decoder_null);
                }
                None => decoder_null(),
            }
        }
        // `self.reply` drops with the item, after the callbacks above
        // returned, releasing a waiter.
    }
}

impl Task for CItem {
    fn prepare(mut self: Box<Self>, lua: &Lua) -> mlua::Result<Prepared> {
        let data = self.data;
        let id = self.id();
        let handle = self.handle;
        if let Some(reply) = &self.reply {
            if !reply.claim() {
                // The call ended (timed out, or cancelled by unreg/close):
                // a 2v0 caller's data is gone. A 1v0 item is cancelled.
                let why = if closed(handle) {
                    Discarded::Closed
                } else {
                    Discarded::Unregistered
                };
                if let Callbacks::Deliver1 { .. } = self.callbacks {
                    self.discard_now(why);
                }
                self.done = true;
                return Ok(Prepared {
                    call: None,
                    reply: None,
                });
            }
        }
        // Marked running before its callbacks run (see `running.rs`); a
        // utility being unregistered gets its item discarded instead,
        // before a claimed call is let go (its data is still lent).
        let util = handles::get(handle).filter(|u| u.shared.running.enter(u.handle, &u.gone));
        let Some(util) = util else {
            let why = if closed(handle) {
                Discarded::Closed
            } else {
                Discarded::Unregistered
            };
            self.discard_now(why);
            if let Some(reply) = &self.reply {
                reply.unclaim();
            }
            return Ok(Prepared {
                call: None,
                reply: None,
            });
        };
        self.done = true;
        let call = || match self.callbacks {
            // SAFETY: the decoder is the utility's, called as its 1v0
            // contract says: on the Lua thread, with a valid state; it
            // uses only its frame and must not raise.
            Callbacks::Deliver1 { decoder, .. } => unsafe {
                raw::call_pushing(lua, |state| decoder(state.cast(), data, id))
            },
            // SAFETY: 2v0 contract, likewise; a call's `data` is still
            // lent (claimed above).
            Callbacks::Call2 { run, .. } => unsafe {
                raw::call_pushing(lua, |state| run(state.cast(), data, handle))
            },
        };
        let result = match &self.turns {
            // Claimed: the thread in `deliver` cannot have taken the turn
            // (if it had, nothing is called and nothing is due).
            Some(turns) => turns.decode(call).unwrap_or_else(|| Ok(Default::default())),
            None => call(),
        };
        util.shared.running.leave();
        if let Some(reply) = &self.reply {
            reply.unclaim();
        }
        // The general path: this Lua thread is the consumer.
        util.port.count_ran(1);
        let mut values = result?;
        let Some(callback) = values.pop_front() else {
            // Nothing to call: the 1v0 return callback is never due, and
            // dropping the reply releases the waiter.
            if let Some(turns) = &self.turns {
                turns.no_answer();
            }
            return Ok(Prepared {
                call: None,
                reply: None,
            });
        };
        let answer = match self.callbacks {
            Callbacks::Deliver1 { ret, .. } => Answer::Return1(ret),
            Callbacks::Call2 { reply, .. } => Answer::Reply2(reply),
        };
        let sink = self.reply.take().map(|reply| {
            Box::new(CReply::new(
                lua,
                answer,
                data,
                handle,
                reply,
                self.turns.clone(),
            )) as Box<dyn ReplySink>
        });
        Ok(Prepared {
            call: Some((callback, values)),
            reply: sink,
        })
    }

    fn discard(mut self: Box<Self>, why: Discarded) {
        self.discard_now(why);
    }
}

impl Drop for CItem {
    fn drop(&mut self) {
        if self.done {
            return; // ran, discarded or refused (no lookup per refusal)
        }
        // Dropped without being run or told why: cancelled.
        let why = if closed(self.handle) {
            Discarded::Closed
        } else {
            Discarded::Unregistered
        };
        self.discard_now(why);
    }
}
