//! A run of inline posts inside one protected call: how the item loop
//! survives a producer's code that raises (against its contract: a C
//! decoder out of memory in `lua_pushstring`, a `luaL_error`) without
//! paying a `lua_pcall` per item for it.
//!
//! Consecutive posts are the common case (a C utility's stream of
//! deliveries), so the item loop hands the first one to [`run_posts`],
//! which calls [`raw::pcall_body`] once; the body runs that post and every
//! post that follows it in the batch, each callback in its own `lua_pcall`
//! (as any item's), until the front is not a post, `max` items ran,
//! `stop()` was called or the error handler changed.
//!
//! # When a producer raises
//!
//! The error unwinds the body (a `longjmp`, or LuaJIT's unwinder) back to
//! the one protected call. Nothing the body holds while a producer's code
//! runs needs dropping (invariant of [`Run`]: plain values and
//! references, the batch's borrow ended), and what must be undone is
//! recorded outside the body, in the [`Run`]: the post that was running
//! (told through [`PostFrame::unwound`], so a C utility's running mark is
//! cleared and its data freed) and the callback depth. The error then
//! goes to the error handler and the item counts as run, as a callback's
//! error does; the item loop goes on with the next item.

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::ffi;

use crate::item_loop::take_post;
use crate::post::{PostFrame, Ran};
use crate::raw;
use crate::state::StateHub;

/// The state of a run, kept outside the protected call so that it
/// survives a producer's error.
///
/// Invariant: every field is a plain value or a shared reference (nothing
/// with a destructor), so the body may be unwound at any point where it
/// calls a producer.
struct Run<'a> {
    st: &'a StateHub,
    /// The post taken to run next, until its producer's code returned:
    /// after an error, the post whose code raised.
    current: Option<PostFrame>,
    /// Items that ran (the item loop's count) and where to stop.
    ran: usize,
    max: usize,
    /// The error handler's version when the run started.
    handler_set: u64,
}

/// Runs `first` (a post taken from the batch and counted as ran) and the
/// posts that follow it, in one protected call on the item loop's frame,
/// whose error handler is at `handler`. Adds the items that ran to `ran`.
/// Pushes nothing, cannot raise.
///
/// # Safety
/// `state` is `st`'s state, running on its thread inside the item loop's
/// protected frame, with 3 free slots; `handler` an absolute index; the
/// batch is not borrowed.
pub(crate) unsafe fn run_posts(
    state: *mut ffi::lua_State,
    st: &StateHub,
    first: PostFrame,
    handler: c_int,
    ran: &mut usize,
    max: usize,
) {
    let mut run = Run {
        st,
        current: Some(first),
        ran: *ran,
        max,
        handler_set: st.handler_set.get(),
    };
    loop {
        let mut body = |state: *mut ffi::lua_State| {
            // SAFETY: a fresh, empty frame whose upvalue 2 is the handler,
            // inside pcall_body's protected call.
            unsafe { body(state, &mut run) };
            0
        };
        // SAFETY: per the contract (3 slots: the function, its light
        // userdata and the handler); `body` holds only references.
        if unsafe { raw::pcall_body(state, &[handler], 0, 0, &mut body) } {
            break;
        }
        // A producer's code raised (the body itself raises nothing else):
        // the producer finishes, and its error goes to the handler while
        // the item still counts as a running callback (as a callback's
        // error does).
        let raised = run.current.take();
        if let Some(mut post) = raised {
            post.unwound(st);
        }
        // SAFETY: the error is on top and the handler at `handler`.
        unsafe { raw::call_handler_with_top(state, handler) };
        if raised.is_some() {
            st.in_callback.set(st.in_callback.get() - 1);
            run.ran += 1;
        }
        if !run.go_on() {
            break;
        }
        run.take_next();
    }
    *ran = run.ran;
}

/// The body of the protected call: runs `run.current` and the posts after
/// it.
///
/// # Safety
/// As [`run_posts`]; `state`'s frame is empty, the handler its upvalue 2.
unsafe fn body(state: *mut ffi::lua_State, run: &mut Run<'_>) {
    let handler = raw::upvalue(2);
    let st = run.st;
    while let Some(post) = &mut run.current {
        st.in_callback.set(st.in_callback.get() + 1);
        // SAFETY: the frame is empty with LUA_MINSTACK free slots (what
        // a C function gets, and DarkSideSync 1.0's decoders got); nothing
        // in this frame needs dropping (Run's invariant).
        let left = unsafe { post.run_raw(state, st, 0) };
        run.current = None;
        match left {
            Ran::Call(n) => {
                // SAFETY: the callback and its arguments are the top `n`
                // values; pcall catches the callback's errors.
                unsafe { raw::pcall_top_with(state, n, handler) };
                run.ran += 1;
            }
            Ran::Done => run.ran += 1,
            Ran::Nothing => {}
        }
        // SAFETY: what the producer pushed beyond what it returned goes:
        // the next producer gets an empty frame too.
        unsafe { raw::set_top(state, 0) };
        st.in_callback.set(st.in_callback.get() - 1);
        if !run.go_on() {
            break;
        }
        run.take_next();
    }
}

impl Run<'_> {
    /// Whether the item loop's reasons to stop all say go on.
    fn go_on(&self) -> bool {
        self.ran < self.max
            && !self.st.stop_requested.get()
            && self.st.handler_set.get() == self.handler_set
    }

    /// Takes the next item into `current` when it is a post (purging
    /// first, as the item loop does): counted as ran. A panic (a bug) ends
    /// the run here, before any producer's code, and the item loop
    /// carries on.
    fn take_next(&mut self) {
        let st = self.st;
        let current = &mut self.current;
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let Ok(mut batch) = st.batch.try_borrow_mut() else {
                return;
            };
            st.purge_stale(&mut batch);
            *current = take_post(&mut batch, &st.ran);
        }));
    }
}
