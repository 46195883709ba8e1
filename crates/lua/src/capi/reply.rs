//! [`CReply`]: the answer path of a blocking C delivery (Lua thread only):
//! the 1v0 return callback or the 2v0 reply callback, called with the
//! answer as the only values on a fresh stack.

use std::ffi::c_void;
use std::sync::Arc;

use darksidesync_core::Reply;
use darksidesync_sys::v1::ReturnFn;
use darksidesync_sys::v2::ReplyFn;
use mlua::{ffi, Lua, MultiValue};

use super::handles::{self, Handle};
use super::turns::Turns;
use crate::item::ReplySink;
use crate::raw;

/// Which callback answers.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    Return1(ReturnFn),
    Reply2(Option<ReplyFn>),
}

/// The answer path of a blocking C delivery (Lua thread only).
pub(crate) struct CReply {
    answer: Answer,
    data: *mut c_void,
    handle: Handle,
    reply: Option<Reply<()>>,
    turns: Option<Arc<Turns>>,
    /// The state's main thread, for the return callback of a reply
    /// collected uncalled.
    main: *mut ffi::lua_State,
}

impl CReply {
    pub(crate) fn new(
        lua: &Lua,
        answer: Answer,
        data: *mut c_void,
        handle: Handle,
        reply: Reply<()>,
        turns: Option<Arc<Turns>>,
    ) -> CReply {
        CReply {
            answer,
            data,
            handle,
            reply: Some(reply),
            turns,
            main: super::main_thread(lua),
        }
    }

    /// Runs `answer` unless the 1v0 return callback's turn was taken (it
    /// runs once per item); `None` then.
    fn once<R>(&self, answer: impl FnOnce() -> R) -> Option<R> {
        match &self.turns {
            Some(turns) => turns.answer(answer),
            None => Some(answer()),
        }
    }
}

impl ReplySink for CReply {
    fn send(mut self: Box<Self>, lua: &Lua, values: MultiValue) -> mlua::Result<MultiValue> {
        let data = self.data;
        let handle = self.handle;
        let id = handles::to_utilid(handle);
        let Some(reply) = self.reply.take() else {
            return Ok(MultiValue::new());
        };
        let result = if reply.claim() {
            self.once(|| match self.answer {
                // SAFETY: 1v0 contract: the return callback runs on the Lua
                // thread with the answer on an otherwise empty stack; it
                // uses only that frame and must not raise.
                Answer::Return1(ret) => unsafe {
                    raw::call_with_values(lua, values, |state, _| ret(state.cast(), data, id, 0))
                },
                // SAFETY: 2v0 contract, likewise; `data` is lent (claimed).
                Answer::Reply2(Some(f)) => unsafe {
                    raw::call_with_values(lua, values, |state, n| f(state.cast(), data, handle, n))
                },
                Answer::Reply2(None) => Ok(MultiValue::new()),
            })
        } else {
            None
        };
        let Some(result) = result else {
            // The call ended (2v0 timeout, unreg, close): its data is gone,
            // or the return callback already ran. Answer nothing.
            return Ok(MultiValue::new());
        };
        match &result {
            Ok(_) => {
                let _ = reply.send(());
            }
            Err(e) => {
                let _ = reply.fail(e.to_string());
            }
        }
        result
    }

    fn fail(mut self: Box<Self>, lua: &Lua, message: String) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        if let Answer::Return1(ret) = self.answer {
            if reply.claim() {
                // 1v0 cannot carry the error: the return callback sees garbage.
                let data = self.data;
                let id = handles::to_utilid(self.handle);
                // SAFETY: 1v0 contract, on the Lua thread with a valid
                // state; called once (`once`).
                self.once(|| unsafe {
                    raw::call_with_values(lua, MultiValue::new(), |state, _| {
                        ret(state.cast(), data, id, 1)
                    })
                });
            }
        }
        let _ = reply.fail(message);
    }
}

impl Drop for CReply {
    fn drop(&mut self) {
        let Some(reply) = self.reply.take() else {
            return; // answered
        };
        if let Answer::Return1(ret) = self.answer {
            if !reply.is_abandoned() {
                // Collected uncalled, on the Lua thread: garbage, with the
                // state, as DarkSideSync 1.0 did from its `__gc`.
                // SAFETY: 1v0 contract; `main` is this state's main thread
                // (valid while the state is, and collection runs inside
                // it); called once (`once`).
                self.once(|| unsafe {
                    ret(
                        self.main.cast(),
                        self.data,
                        handles::to_utilid(self.handle),
                        1,
                    )
                });
            }
        }
        // `reply` drops next, releasing the waiter.
    }
}
