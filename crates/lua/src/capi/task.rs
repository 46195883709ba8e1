//! The items C utilities deliver: a [`CItem`] (a [`Task`] holding the
//! utility's callbacks and its data pointer) and, for blocking deliveries,
//! a [`CReply`] (a [`ReplySink`] holding the return/reply callback).
//!
//! # Exactly once
//!
//! | item | ran on the Lua thread | discarded (close, unreg) | refused by deliver/post/call |
//! |---|---|---|---|
//! | 1v0 | `decoder(L, ..)` | `decoder(NULL, ..)` | nothing (the caller keeps `pData`) |
//! | 2v0 post | `run(L, ..)` then `free(data, OK)` | `free(data, ECANCELLED/ECLOSED)` | `free(data, code)`, called by `post` |
//! | 2v0 call | `run(L, ..)` unless the call ended | nothing (`data` is borrowed) | nothing |
//!
//! The core tells an item why it is discarded ([`Task::discard`]); a
//! refusal comes back to the delivering entry point, which discards the
//! item as [`Discarded::Refused`]. `Drop` only backs this up for an item
//! dropped without either (it is treated as cancelled). The counters
//! (2v0 `stats()`) are the port's, kept by the core; this layer only
//! tells it which items ran ([`Port::count_ran`](darksidesync_core::Port::count_ran)).
//!
//! # Blocking deliveries and lent data
//!
//! The core's [`Reply`] is the hand-off: the Lua thread *claims* it before
//! calling `run`/`decoder` or `reply`/`return` (a caller whose timeout
//! passes meanwhile waits for the claim to end), and a call that ended
//! (timed out, cancelled by unreg or close) cannot be claimed. So after a
//! 2v0 `call()` returned, nothing touches its `data`.
//!
//! A 1v0 blocking delivery's `pData` is usually on the caller's stack, so
//! everything due for it happens before `deliver` returns ([`Turns`]):
//! `decoder(NULL)` of an item cancelled before it ran, and the return
//! callback, which runs once: on the Lua thread (answer, error, the reply
//! userdata collected uncalled) or, when the utility unregistered or the
//! state closed while the answer was pending, on the thread blocked in
//! `deliver`, with `L == NULL`.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use darksidesync_core::{Discarded, Reply};
use darksidesync_sys::v1::{DecoderFn, ReturnFn};
use darksidesync_sys::v2::{FreeFn, ReplyFn, RunFn, ECANCELLED, ECLOSED, OK};
use mlua::{ffi, Lua, MultiValue};

use super::handles::{Handle, SendPtr, Util};
use super::PerState;
use crate::item::{Prepared, ReplySink, Task};

/// What a C item calls.
#[derive(Clone, Copy)]
pub(crate) enum Callbacks {
    /// A 1v0 `deliver`; `ret` present for a blocking one.
    Deliver1 {
        decoder: DecoderFn,
        ret: Option<ReturnFn>,
    },
    /// A 2v0 `post`.
    Post2 { run: RunFn, free: Option<FreeFn> },
    /// A 2v0 `call`.
    Call2 { run: RunFn, reply: Option<ReplyFn> },
}

/// A 1v0 blocking delivery's progress, shared by the item, its reply and
/// the thread blocked in `deliver`: each callback that is due once goes to
/// whoever takes its turn first.
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

    /// Whether the decoder ran with a state.
    pub(crate) fn decoded(&self) -> bool {
        self.decoded.load(Ordering::Acquire)
    }

    /// True for exactly one caller: the one that calls `ret`.
    pub(crate) fn return_turn(&self) -> bool {
        !self.returned.swap(true, Ordering::AcqRel)
    }
}

/// One delivered C item. It names its utility by handle and holds no
/// reference to the record: after `unreg` the record goes at once, and a
/// queued item's few uses of it look it up ([`closed`]).
pub(crate) struct CItem {
    callbacks: Callbacks,
    data: *mut c_void,
    handle: Handle,
    /// Blocking deliveries only.
    reply: Option<Reply<()>>,
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
        reply: Option<Reply<()>>,
        turns: Option<Arc<Turns>>,
    ) -> CItem {
        CItem {
            callbacks,
            data,
            handle,
            reply,
            turns,
            done: false,
        }
    }

    fn id(&self) -> *mut c_void {
        super::handles::to_utilid(self.handle)
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
        match self.callbacks {
            Callbacks::Deliver1 { decoder, .. } => {
                if self.turns.as_ref().map_or(true, |t| t.decoder_turn()) {
                    // SAFETY: 1v0 contract: a cancelled item gets its
                    // decoder with a NULL state, exactly once (`done` and
                    // the turn guard it).
                    unsafe { decoder(std::ptr::null_mut(), self.data, self.id()) };
                }
            }
            Callbacks::Post2 {
                free: Some(free), ..
            } => {
                let outcome = if why == Discarded::Closed || closed(self.handle) {
                    ECLOSED
                } else {
                    ECANCELLED
                };
                // SAFETY: 2v0 contract: the post owns `data` and frees it
                // exactly once (`done` guards it).
                unsafe { free(self.data, outcome) };
            }
            Callbacks::Post2 { free: None, .. } | Callbacks::Call2 { .. } => {}
        }
        // `self.reply` drops with the item, after the callbacks above
        // returned, releasing a waiter.
    }
}

/// What a fire-and-forget C delivery calls on the Lua thread.
#[derive(Clone, Copy)]
pub(crate) enum PostRun {
    /// A 1v0 `deliver` without a return callback.
    Decoder1(DecoderFn),
    /// A 2v0 `post`.
    Run2(RunFn, Option<FreeFn>),
}

/// A fire-and-forget C delivery (1v0 `deliver` without a return callback,
/// 2v0 `post`), carried inline in an [`Item`](crate::item::Item): no heap
/// allocation per item, and `dispatch()`/`poll()` call its decoder or
/// `run` straight through the C API ([`PostFrame::run_in`]). Like
/// [`CItem`] it names its utility by handle, so a post writes nothing on
/// the record's cache line (no reference count), and the consumer counts
/// it as ran through its [`RanCounter`]. Its exactly-once duties are those
/// of the table in the module docs; `Drop` backs up an item dropped
/// without being run or discarded (cancelled).
pub(crate) struct CPost {
    run: PostRun,
    data: SendPtr,
    handle: Handle,
}

/// A taken [`CPost`]: plain values only (nothing to drop), so a C callback
/// may be called while it is alive, even in frames a Lua error could skip.
/// A live frame marks its utility as running ([`RanCounter::enter`]) until
/// [`finish`](PostFrame::finish).
#[derive(Clone, Copy)]
pub(crate) struct PostFrame {
    run: PostRun,
    data: *mut c_void,
    handle: Handle,
    /// False when the utility was gone when taken: the item was
    /// discarded and nothing is to be called.
    live: bool,
}

impl CPost {
    pub(crate) fn new(run: PostRun, data: *mut c_void, handle: Handle) -> CPost {
        CPost {
            run,
            data: SendPtr(data),
            handle,
        }
    }

    /// Takes the parts out without running `Drop`.
    fn into_frame(self) -> PostFrame {
        let me = std::mem::ManuallyDrop::new(self);
        PostFrame {
            run: me.run,
            data: me.data.0,
            handle: me.handle,
            live: true,
        }
    }

    /// The item is about to run on the Lua thread: marks its utility as
    /// running, counts it as ran and returns what to call (see
    /// [`PostFrame::run_in`]). An item of a utility gone meanwhile is
    /// discarded here (its frame calls nothing).
    pub(crate) fn take(self, ran: &RanCounter) -> PostFrame {
        let frame = self.into_frame();
        if ran.enter(frame.handle) {
            return frame;
        }
        CPost::new(frame.run, frame.data, frame.handle).discard(Discarded::Unregistered);
        PostFrame {
            live: false,
            ..frame
        }
    }

    /// The boxed form, for the general paths (`dispatch(max, spawn)`,
    /// `poll()` of an item that is not at the front of a fast run).
    pub(crate) fn into_task(self) -> CItem {
        let PostFrame {
            run, data, handle, ..
        } = self.into_frame();
        let callbacks = match run {
            PostRun::Decoder1(decoder) => Callbacks::Deliver1 { decoder, ret: None },
            PostRun::Run2(run, free) => Callbacks::Post2 { run, free },
        };
        CItem::new(callbacks, data, handle, None, None)
    }

    /// The discard path (see [`Task::discard`]).
    pub(crate) fn discard(self, why: Discarded) {
        let mut item = self.into_task();
        item.discard_now(why);
    }
}

impl Drop for CPost {
    fn drop(&mut self) {
        // Dropped without being run or told why: `CItem`'s drop cancels.
        drop(CPost::new(self.run, self.data.0, self.handle).into_task());
    }
}

/// Whether the utility of `h` is closed (its state closed); false once
/// `unreg` released it (its items are then cancelled, not closed).
fn closed(h: Handle) -> bool {
    super::handles::get(h).is_some_and(|u| u.is_closed())
}

/// Where the Lua thread marks and counts the C items it runs: the
/// state's [`Running`](super::running::Running) mark and 2v0 `stats()`'s
/// `ran`, through the record of the utility whose item ran last. Items of
/// one utility usually come in runs, so the record is looked up once per
/// run and each item costs a store of the mark and a plain add on a
/// counter only this thread writes
/// ([`Port::count_ran`](darksidesync_core::Port::count_ran)). Keeping the
/// record after its utility's `unreg` is harmless: it is small, and it
/// says `gone`. Also holds the state's [`PerState`] (finalizers).
#[derive(Default)]
pub(crate) struct RanCounter {
    last: std::cell::RefCell<Option<(Handle, Option<Arc<Util>>)>>,
    shared: Arc<PerState>,
}

impl RanCounter {
    /// An item of the utility `h` is about to run: marks it running and
    /// counts it as ran. False (nothing marked) when `h` was released or
    /// is being unregistered: the item must not run.
    pub(crate) fn enter(&self, h: Handle) -> bool {
        let mut last = self.last.borrow_mut();
        if last.as_ref().map(|(seen, _)| *seen) != Some(h) {
            *last = Some((h, super::handles::get(h)));
        }
        match &*last {
            Some((_, Some(util))) if self.shared.running.enter(util) => {
                util.port.count_ran(1);
                true
            }
            _ => false,
        }
    }

    /// The item's callbacks returned (or raised).
    pub(crate) fn leave(&self) {
        self.shared.running.leave();
    }

    /// The state's C-ABI record.
    pub(crate) fn shared(&self) -> &Arc<PerState> {
        &self.shared
    }

    /// The state's finalizers.
    pub(crate) fn finalizers(&self) -> &super::finalize::Finalizers {
        &self.shared.finalizers
    }
}

impl PostFrame {
    /// Calls the decoder (1v0) or `run` (2v0) on `state`, then the 2v0
    /// `free(data, OK)`; returns how many values it pushed that count
    /// (the callback then its arguments), clamped to what it really
    /// pushed above `base` (the top before the call).
    ///
    /// # Safety
    /// `state` is this item's state, running on its thread, with at least
    /// `LUA_MINSTACK` free slots (what a C function is promised); no Rust
    /// value with a destructor is alive in frames a Lua error raised by
    /// the callback (against its contract) would skip.
    ///
    /// A callback that raises (against its contract) unwinds out of this
    /// call: the caller then calls [`finish`](PostFrame::finish) itself.
    pub(crate) unsafe fn run_in(
        self,
        state: *mut ffi::lua_State,
        base: c_int,
        ran: &RanCounter,
    ) -> c_int {
        if !self.live {
            return 0;
        }
        // SAFETY: per this function's contract.
        let n = unsafe { self.call(state) };
        self.finish(ran);
        // SAFETY: reading the top of a running state.
        let pushed = unsafe { ffi::lua_gettop(state) } - base;
        n.clamp(0, pushed.max(0))
    }

    /// Calls the decoder (1v0) or `run` (2v0) on `state`; may raise.
    ///
    /// # Safety
    /// As [`run_in`](PostFrame::run_in), on a live frame.
    unsafe fn call(&self, state: *mut ffi::lua_State) -> c_int {
        // SAFETY: the utility's callbacks, called as their contracts say
        // (Lua thread, valid state), once: the item was taken.
        unsafe {
            match self.run {
                PostRun::Decoder1(decoder) => decoder(
                    state.cast(),
                    self.data,
                    super::handles::to_utilid(self.handle),
                ),
                PostRun::Run2(run, _) => run(state.cast(), self.data, self.handle),
            }
        }
    }

    /// After the decoder or `run` returned or raised: the 2v0
    /// `free(data, OK)` (`run` was called), and the utility no longer
    /// runs. Once per live frame.
    pub(crate) fn finish(&self, ran: &RanCounter) {
        if !self.live {
            return;
        }
        if let PostRun::Run2(_, Some(free)) = self.run {
            // SAFETY: 2v0 contract: the post owns `data` and frees it
            // exactly once, after run.
            unsafe { free(self.data, OK) };
        }
        ran.leave();
    }

    /// [`run_in`](PostFrame::run_in) inside `lua_pcall`: a decoder or
    /// `run` that raises is finished and its error left on top (`None`),
    /// for `poll()`, which hands it to its caller. Otherwise pushes what
    /// it returned above `base` and returns how many.
    ///
    /// # Safety
    /// As [`run_in`](PostFrame::run_in), with 2 more free slots.
    pub(crate) unsafe fn run_protected(
        self,
        state: *mut ffi::lua_State,
        ran: &RanCounter,
    ) -> Option<c_int> {
        unsafe extern "C-unwind" fn trampoline(state: *mut ffi::lua_State) -> c_int {
            // SAFETY: argument 1 is the light userdata pushed below,
            // pointing to a frame alive for the whole protected call; the
            // callback gets a fresh C frame (LUA_MINSTACK slots).
            unsafe {
                let frame = *ffi::lua_touserdata(state, 1).cast::<PostFrame>();
                ffi::lua_settop(state, 0);
                let n = frame.call(state);
                n.clamp(0, ffi::lua_gettop(state))
            }
        }
        if !self.live {
            return Some(0);
        }
        // SAFETY: per the contract: 2 slots for the function and its
        // argument; the pcall leaves the results or one error value.
        let (raised, pushed) = unsafe {
            let base = ffi::lua_gettop(state);
            ffi::lua_pushcfunction(state, trampoline);
            ffi::lua_pushlightuserdata(state, (&self as *const PostFrame).cast_mut().cast());
            let raised = ffi::lua_pcall(state, 1, ffi::LUA_MULTRET, 0) != 0;
            (raised, ffi::lua_gettop(state) - base)
        };
        self.finish(ran);
        (!raised).then_some(pushed)
    }
}

/// Calls a decoder/run callback in a fresh Lua C frame (mlua's `exec_raw`
/// runs the closure as a protected C function whose stack holds only its
/// arguments, here none) and returns the top `n` values it pushed, `n`
/// being its return value clamped to what it really pushed. Also returns
/// the state's main thread (see [`super::main_thread`]).
fn push_values(
    lua: &Lua,
    call: impl FnOnce(*mut ffi::lua_State) -> c_int,
) -> mlua::Result<(MultiValue, *mut ffi::lua_State)> {
    let main = super::main_thread(lua);
    // SAFETY: the closure receives a valid state of this Lua, on the Lua
    // thread, inside a protected call; it only uses the stack of its own
    // frame, which starts empty, and leaves exactly the values to return.
    // A Lua error raised by the utility's callback (against its contract)
    // unwinds to exec_raw's protected boundary and becomes an `Err`; the
    // closure owns nothing that would need dropping.
    let values = unsafe {
        lua.exec_raw::<MultiValue>((), |state| {
            let n = call(state);
            keep_top(state, n);
        })
    }?;
    Ok((values, main))
}

/// Up to this many answer values are handed to a reply callback on the
/// current frame; more go through a fresh Lua thread (see
/// [`reply_values`]).
const FRAME_VALUES: usize = 200;

/// Values moved to the fresh thread per protected frame: well below the
/// 8000 values (`LUAI_MAXCSTACK`) one C frame may hold on 5.1 and LuaJIT.
const CHUNK_VALUES: usize = 1000;

/// Calls a return/reply callback with `values` as the only values on a
/// fresh stack; returns what it pushed (its return value, clamped).
///
/// A large answer (a reply userdata called with thousands of arguments)
/// would not fit in the frame that already holds them on 5.1 and LuaJIT,
/// whose C frames are limited to 8000 values: such answers are moved in
/// chunks to a new Lua thread of the state, and the callback gets that
/// thread as its `L`.
fn reply_values(
    lua: &Lua,
    values: MultiValue,
    call: impl FnOnce(*mut ffi::lua_State, c_int) -> c_int,
) -> mlua::Result<MultiValue> {
    if values.len() <= FRAME_VALUES {
        // SAFETY: as in `push_values`; here the frame starts with `values`.
        return unsafe {
            lua.exec_raw::<MultiValue>(values, |state| {
                let nargs = ffi::lua_gettop(state);
                let n = call(state, nargs);
                keep_top(state, n);
            })
        };
    }
    // SAFETY: pushes one new thread (cannot raise but on memory errors,
    // which exec_raw's protected frame catches); mlua anchors the result.
    let thread: mlua::Thread = unsafe {
        lua.exec_raw((), |state| {
            ffi::lua_newthread(state);
        })
    }?;
    let values: Vec<mlua::Value> = values.into_iter().collect();
    let mut room = true;
    for chunk in values.chunks(CHUNK_VALUES) {
        let args = std::iter::once(mlua::Value::Thread(thread.clone()))
            .chain(chunk.iter().cloned())
            .collect::<MultiValue>();
        // SAFETY: the frame holds the thread then the chunk; the thread's
        // stack is grown first (checkstack only grows), and xmove moves
        // the chunk from this frame to it, leaving the frame with the
        // thread alone. Nothing here raises.
        unsafe {
            lua.exec_raw::<()>(args, |state| {
                let n = ffi::lua_gettop(state) - 1;
                let co = ffi::lua_tothread(state, 1);
                if ffi::lua_checkstack(co, n + 1) == 0 {
                    room = false;
                    return;
                }
                ffi::lua_xmove(state, co, n);
                ffi::lua_settop(state, 0);
            })?;
        }
        if !room {
            return Err(mlua::Error::runtime(format!(
                "darksidesync: a reply of {} values is too large for this Lua",
                values.len()
            )));
        }
    }
    // SAFETY: the thread is not running and holds exactly the answer; the
    // callback runs with it as its state on the Lua thread, inside this
    // protected frame. Its results (at most what it pushed) move back to
    // this frame, after its one slot for the thread is freed, so the room
    // the results need is checked first.
    unsafe {
        lua.exec_raw::<MultiValue>(thread, |state| {
            let co = ffi::lua_tothread(state, 1);
            ffi::lua_settop(state, 0);
            let nargs = ffi::lua_gettop(co);
            let n = call(co, nargs);
            keep_top(co, n);
            let n = ffi::lua_gettop(co);
            if ffi::lua_checkstack(state, n) != 0 {
                ffi::lua_xmove(co, state, n);
            }
        })
    }
}

/// Leaves only the top `n` values of the current frame (fewer if fewer
/// are there; none when `n < 1`), moving them down in one pass: O(n).
///
/// # Safety
/// `state` is a state of the running Lua on its thread (the running one
/// inside a C frame, or a thread that is not running).
unsafe fn keep_top(state: *mut ffi::lua_State, n: c_int) {
    // SAFETY: per the function contract, the indices are within our frame
    // (1..=top); pushvalue uses the free slot checked for, which replace
    // pops; without one, remove shifts values down in place.
    unsafe {
        let top = ffi::lua_gettop(state);
        let keep = n.clamp(0, top);
        let first = top - keep + 1;
        if first > 1 && ffi::lua_checkstack(state, 1) != 0 {
            for i in 0..keep {
                ffi::lua_pushvalue(state, first + i);
                ffi::lua_replace(state, 1 + i);
            }
        } else {
            // No free slot (the callback used them all): remove the
            // unwanted bottom values in place instead.
            for _ in 1..first {
                ffi::lua_remove(state, 1);
            }
        }
        ffi::lua_settop(state, keep);
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
        let util = super::handles::get(handle).filter(|u| u.shared.running.enter(u));
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
        if let Some(turns) = &self.turns {
            // Claimed: the thread in `deliver` cannot have taken it.
            turns.decoder_turn();
            turns.decoded.store(true, Ordering::Release);
        }
        let result = match self.callbacks {
            // SAFETY: the decoder is the utility's, called as its 1v0
            // contract says: on the Lua thread, with a valid state.
            Callbacks::Deliver1 { decoder, .. } => {
                push_values(lua, |state| unsafe { decoder(state.cast(), data, id) })
            }
            // SAFETY: 2v0 contract: run on the Lua thread with a valid
            // state; a call's `data` is still lent (claimed above).
            Callbacks::Post2 { run, .. } | Callbacks::Call2 { run, .. } => {
                push_values(lua, |state| unsafe { run(state.cast(), data, handle) })
            }
        };
        if let Some(reply) = &self.reply {
            reply.unclaim();
        }
        // The general path: this Lua thread is the consumer.
        util.port.count_ran(1);
        if let Callbacks::Post2 {
            free: Some(free), ..
        } = self.callbacks
        {
            // SAFETY: 2v0 contract: run ran (or raised); `data` is freed
            // exactly once.
            unsafe { free(data, OK) };
        }
        util.shared.running.leave();
        let (mut values, main) = result?;
        let callback = values.pop_front();
        let answer = match (self.callbacks, callback.is_some()) {
            (Callbacks::Deliver1 { ret: Some(ret), .. }, true) => Some(Answer::Return1(ret)),
            (Callbacks::Call2 { reply, .. }, true) => Some(Answer::Reply2(reply)),
            _ => None,
        };
        let Some(callback) = callback else {
            // Nothing to call: the 1v0 return callback is never due, and
            // dropping the reply releases the waiter.
            if let Some(turns) = &self.turns {
                turns.return_turn();
            }
            return Ok(Prepared {
                call: None,
                reply: None,
            });
        };
        let sink = match (answer, self.reply.take()) {
            (Some(answer), Some(reply)) => Some(Box::new(CReply {
                answer,
                data,
                handle,
                reply: Some(reply),
                turns: self.turns.clone(),
                main,
            }) as Box<dyn ReplySink>),
            _ => None,
        };
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

#[derive(Clone, Copy)]
enum Answer {
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
    /// Whether this side calls the 1v0 return callback (once per item).
    fn my_turn(&self) -> bool {
        self.turns.as_ref().map_or(true, |t| t.return_turn())
    }
}

impl ReplySink for CReply {
    fn send(mut self: Box<Self>, lua: &Lua, values: MultiValue) -> mlua::Result<MultiValue> {
        let data = self.data;
        let handle = self.handle;
        let id = super::handles::to_utilid(handle);
        let Some(reply) = self.reply.take() else {
            return Ok(MultiValue::new());
        };
        if !reply.claim() || !self.my_turn() {
            // The call ended (2v0 timeout, unreg, close): its data is gone,
            // or the return callback already ran. Answer nothing.
            return Ok(MultiValue::new());
        }
        let result = match self.answer {
            // SAFETY: 1v0 contract: the return callback runs on the Lua
            // thread with the answer on an otherwise empty stack.
            Answer::Return1(ret) => reply_values(lua, values, |state, _| unsafe {
                ret(state.cast(), data, id, 0)
            }),
            // SAFETY: 2v0 contract, likewise; `data` is lent (claimed).
            Answer::Reply2(Some(f)) => reply_values(lua, values, |state, n| unsafe {
                f(state.cast(), data, handle, n)
            }),
            Answer::Reply2(None) => Ok(MultiValue::new()),
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
            if reply.claim() && self.my_turn() {
                // 1v0 cannot carry the error: the return callback sees garbage.
                let data = self.data;
                let id = super::handles::to_utilid(self.handle);
                // SAFETY: 1v0 contract, on the Lua thread with a valid state.
                let _ = reply_values(lua, MultiValue::new(), |state, _| unsafe {
                    ret(state.cast(), data, id, 1)
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
            if !reply.is_abandoned() && self.my_turn() {
                // Collected uncalled, on the Lua thread: garbage, with the
                // state, as DarkSideSync 1.0 did from its `__gc`.
                // SAFETY: 1v0 contract; `main` is this state's main thread
                // (valid while the state is, and collection runs inside
                // it); called once (`my_turn`).
                unsafe {
                    ret(
                        self.main.cast(),
                        self.data,
                        super::handles::to_utilid(self.handle),
                        1,
                    )
                };
            }
        }
        // `reply` drops next, releasing the waiter.
    }
}
