//! Inline posts: the fire-and-forget delivery of a producer that lives
//! outside the glue (a C utility through DSS 1v0 `deliver` or 2v0 `post`,
//! a Rust library through 2v0), carried inside the [`Item`] with no
//! allocation per item.
//!
//! A [`Post`] is plain values: the producer's [`PostOps`] (a static table
//! of functions that know the producer's calling convention), two code
//! words and [`POST_BYTES`] bytes of data the glue never interprets (a C
//! utility's data pointer, or a Rust closure itself), and the owner whose
//! port counts it. The item loop takes one ([`Post::take`]), counts it as
//! ran against its owner's port through the state's [`RanCounter`], and
//! runs it ([`PostFrame::run_raw`]): the producer's code pushes the Lua
//! callback and its arguments, which the loop calls.
//! `poll()` runs the producer's code alone ([`PostFrame::run_collect`])
//! and builds its `args` table around what was pushed.
//!
//! A producer's code that raises (against its contract; a C decoder out of
//! memory) is survived, and its producer is told ([`PostOps::unwound`]) so
//! that it finishes what its `run` would have: the item loop runs a whole
//! run of posts inside one protected call (`post_run.rs`); `poll()` pays
//! one per polled post ([`PostFrame::run_collect`]), since the post must
//! be finished before `poll()` returns (a later call could not tell a
//! producer that raised from one still running that called back in).
//!
//! Exactly once: a post is either run ([`PostOps::run`], which also
//! releases its data) or told why it will not run ([`PostOps::discard`]):
//! refused, discarded by the core, or dropped without either (`why` is
//! `None`; the producer decides what that means).

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

use darksidesync_core::{Discarded, Port};
use mlua::{ffi, Lua};

use crate::item::{Item, Prepared};
use crate::raw;
use crate::state::StateHub;

/// A producer's code, as the producer's [`PostOps`] knows it: a function
/// pointer of its own type, stored as a generic one (transmuted back only
/// by the functions of the `PostOps` that stored it).
pub(crate) type Code = unsafe extern "C" fn();

/// How many bytes of data a post carries inline (8-aligned): a pointer, or
/// a small closure (2v0 `post_inline`, `DSS2_INLINE_MAX`).
pub(crate) const POST_BYTES: usize = 24;

/// What [`PostOps::run`] returns when the producer's code did the item's
/// work itself and pushed nothing: the item counts as run and nothing is
/// called (2v0 `post_inline`'s `DSS2_RAN`).
pub(crate) const RAN: c_int = -1;

/// The parts of a post: what its [`PostOps`] gets.
#[derive(Clone, Copy)]
pub(crate) struct PostParts {
    /// Up to two functions of the producer (a 2v0 post: `run`, `free`).
    pub(crate) code: [Option<Code>; 2],
    /// The producer's data, handed back to its functions only: a pointer
    /// ([`PostParts::with_pointer`]) or bytes copied in.
    pub(crate) bytes: [MaybeUninit<u64>; POST_BYTES / 8],
    /// Who posted: what [`PostOps::port`] looks up (a C utility's handle).
    pub(crate) owner: u64,
}

impl PostParts {
    /// Parts whose data is the pointer `data`.
    pub(crate) fn with_pointer(
        code: [Option<Code>; 2],
        data: *mut c_void,
        owner: u64,
    ) -> PostParts {
        let mut bytes = [MaybeUninit::uninit(); POST_BYTES / 8];
        // SAFETY: the first 8 bytes hold a pointer (at most 8 bytes, and
        // the array is 8-aligned); written as a pointer, so its
        // provenance is kept for `pointer`.
        unsafe { bytes.as_mut_ptr().cast::<*mut c_void>().write(data) };
        PostParts { code, bytes, owner }
    }

    /// The pointer [`with_pointer`](PostParts::with_pointer) stored.
    pub(crate) fn pointer(&self) -> *mut c_void {
        // SAFETY: only called by the ops of parts made by `with_pointer`.
        unsafe { self.bytes.as_ptr().cast::<*mut c_void>().read() }
    }

    /// The data bytes, for a producer's code (valid while `self` is).
    pub(crate) fn bytes_ptr(&mut self) -> *mut c_void {
        self.bytes.as_mut_ptr().cast()
    }
}

/// How the posts of one kind of producer run: a static table.
pub(crate) struct PostOps {
    /// Runs the post on the Lua thread of `st`, once, in a fresh frame of
    /// `state`: pushes the Lua callback then its arguments and returns how
    /// many values that is (0: nothing to call; [`RAN`]: it did the work
    /// itself), then releases the post's data. The producer's code may
    /// raise a Lua error (against its contract): the glue calls `run` only
    /// inside a protected call, and then calls [`unwound`](PostOps::unwound).
    /// Nothing with a destructor may be alive across the producer's code.
    pub(crate) run:
        unsafe fn(state: *mut ffi::lua_State, st: &StateHub, post: &mut PostParts) -> c_int,
    /// `run` raised: does what it would have done after the producer's
    /// code (releases the data, clears its marks).
    pub(crate) unwound: fn(st: &StateHub, post: &mut PostParts),
    /// The post will not run (refused, discarded, or dropped: `None`), on
    /// whatever thread gave it up; runs at most once.
    pub(crate) discard: fn(post: &mut PostParts, why: Option<Discarded>),
    /// The port of `owner`, which counts the posts that ran; `None` once
    /// the owner is gone.
    pub(crate) port: fn(owner: u64) -> Option<Port<Item>>,
}

/// A fire-and-forget delivery carried inline in an [`Item`]. It names its
/// owner and holds no reference to it, so a post writes nothing on a
/// shared cache line; `Drop` backs up a post dropped without being run or
/// discarded.
pub(crate) struct Post {
    ops: &'static PostOps,
    parts: PostParts,
}

// SAFETY: `data` belongs to the producer, whose contract lets its
// functions receive it on any thread (the glue never dereferences it);
// `code` are plain function pointers and `ops` a static table.
unsafe impl Send for Post {}

/// A taken [`Post`]: plain values only (nothing to drop), so the
/// producer's code may run while it is alive, even in frames a Lua error
/// could skip.
#[derive(Clone, Copy)]
pub(crate) struct PostFrame {
    ops: &'static PostOps,
    parts: PostParts,
}

impl Post {
    /// A post of `parts` that runs as `ops` says.
    pub(crate) fn new(ops: &'static PostOps, parts: PostParts) -> Post {
        Post { ops, parts }
    }

    /// Takes the parts out without running `Drop`.
    fn into_frame(self) -> PostFrame {
        let me = std::mem::ManuallyDrop::new(self);
        PostFrame {
            ops: me.ops,
            parts: me.parts,
        }
    }

    /// The post is about to run on the Lua thread: counts it as ran and
    /// returns what to run ([`PostFrame::run_raw`]).
    pub(crate) fn take(self, ran: &RanCounter) -> PostFrame {
        let frame = self.into_frame();
        ran.count(&frame);
        frame
    }

    /// The discard path (see [`Task::discard`](crate::Task::discard)).
    pub(crate) fn discard(self, why: Discarded) {
        let mut frame = self.into_frame();
        (frame.ops.discard)(&mut frame.parts, Some(why));
    }

    /// The general path (`dispatch(max, spawn)`, a `poll()` that cannot
    /// take the fast path): runs the producer's code in a fresh frame and
    /// collects the callback and arguments it pushed (see
    /// [`PostFrame::run_collect`]). A post whose code did the work itself
    /// ([`RAN`]) has nothing to call.
    pub(crate) fn prepare(self, lua: &Lua, st: &StateHub) -> mlua::Result<Prepared> {
        let frame = self.into_frame();
        let mut ran = false;
        // SAFETY: run_collect's contract: the fresh frame has LUA_MINSTACK
        // free slots; it raises nothing; the closure owns nothing to drop.
        let values = unsafe {
            raw::call_pushing(lua, |state| {
                ran = true;
                match frame.run_collect(state, st) {
                    Ran::Call(n) => n,
                    Ran::Done | Ran::Nothing => 0,
                }
            })
        };
        if !ran {
            // The frame could not be made (no memory): not run, so told.
            let mut parts = frame.parts;
            (frame.ops.discard)(&mut parts, None);
        } else if let Some(port) = (frame.ops.port)(frame.parts.owner) {
            // The general path: this Lua thread is the consumer.
            port.count_ran(1);
        }
        let mut values = values?;
        let call = values.pop_front().map(|callback| (callback, values));
        Ok(Prepared { call, reply: None })
    }
}

impl Drop for Post {
    fn drop(&mut self) {
        // Dropped without being run or told why.
        (self.ops.discard)(&mut self.parts, None);
    }
}

/// What running a post left ([`PostFrame::run_raw`], [`PostFrame::run_collect`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ran {
    /// The callback and its arguments, this many values on top.
    Call(c_int),
    /// The producer's code did the work itself: counts as run.
    Done,
    /// Nothing to call: skipped, not counted.
    Nothing,
}

impl PostFrame {
    /// Runs the post on the current frame (see [`PostOps::run`]) and says
    /// what it left on top. Its producer's code may raise: the caller then
    /// calls [`unwound`](PostFrame::unwound) with the same frame.
    ///
    /// # Safety
    /// `state` is `st`'s state, running on its thread inside a protected
    /// call, with LUA_MINSTACK free slots above `base` (the top now); no
    /// Rust value with a destructor is alive in the frames up to that
    /// protected call.
    pub(crate) unsafe fn run_raw(
        &mut self,
        state: *mut ffi::lua_State,
        st: &StateHub,
        base: c_int,
    ) -> Ran {
        // SAFETY: per the contract; the post was taken, so it runs once.
        let n = unsafe { (self.ops.run)(state, st, &mut self.parts) };
        // SAFETY: reading the top of a running state.
        ran_of(n, unsafe { raw::top(state) } - base)
    }

    /// [`run_raw`](PostFrame::run_raw) raised: lets the producer finish.
    pub(crate) fn unwound(&mut self, st: &StateHub) {
        (self.ops.unwound)(st, &mut self.parts);
    }

    /// Runs the post in a protected call and leaves the callback and its
    /// arguments on top: [`Ran::Call`]`(n)`, `n` values. When the
    /// producer's code raised, it is [`unwound`](PostOps::unwound) and the
    /// values are a callback that raises the same error and that error
    /// (`Ran::Call(2)`). Cannot raise.
    ///
    /// # Safety
    /// `state` is `st`'s state, running on its thread, with LUA_MINSTACK
    /// free slots.
    pub(crate) unsafe fn run_collect(self, state: *mut ffi::lua_State, st: &StateHub) -> Ran {
        let mut parts = self.parts;
        let mut code = None;
        let mut body = |state: *mut ffi::lua_State| {
            // SAFETY: a fresh frame (pcall_body), inside its protected call.
            let n = unsafe { (self.ops.run)(state, st, &mut parts) };
            // SAFETY: reading the top of the running frame.
            let ran = ran_of(n, unsafe { raw::top(state) });
            code = Some(ran);
            match ran {
                Ran::Call(n) => n,
                Ran::Done | Ran::Nothing => 0,
            }
        };
        // SAFETY: per the contract (2 slots for the call); the results
        // (or the error) replace them.
        let ok = unsafe { raw::pcall_body(state, &[], ffi::LUA_MULTRET, 0, &mut body) };
        if ok {
            return code.unwrap_or(Ran::Nothing);
        }
        if code.is_none() {
            (self.ops.unwound)(st, &mut parts);
        }
        // SAFETY: the error is on top, and a slot is free (the call's two
        // were replaced by one value).
        unsafe { raw::push_raiser_below_top(state) };
        Ran::Call(2)
    }
}

/// What a producer's `run` returning `n` with `pushed` values on its fresh
/// frame means.
fn ran_of(n: c_int, pushed: c_int) -> Ran {
    match n.clamp(0, pushed.max(0)) {
        0 if n == RAN => Ran::Done,
        0 => Ran::Nothing,
        n => Ran::Call(n),
    }
}

/// Where the Lua thread counts the posts it runs (2v0 `stats()`'s `ran`):
/// the port of the owner whose post ran last. Posts of one owner usually
/// come in runs, so the port is looked up once per run and each post
/// costs a plain add on a counter only this thread writes
/// ([`Port::count_ran`]). Keeping the port after its owner went is
/// harmless: unregistered, it counts nothing anybody reads.
#[derive(Default)]
pub(crate) struct RanCounter {
    last: RefCell<Option<Last>>,
}

struct Last {
    ops: *const PostOps,
    owner: u64,
    port: Option<Port<Item>>,
}

impl RanCounter {
    /// Counts `post` as ran (nothing when its owner is gone: its counters
    /// went with it).
    pub(crate) fn count(&self, post: &PostFrame) {
        let mut last = self.last.borrow_mut();
        let ops: *const PostOps = post.ops;
        let owner = post.parts.owner;
        if !last
            .as_ref()
            .is_some_and(|l| l.owner == owner && std::ptr::eq(l.ops, ops))
        {
            *last = Some(Last {
                ops,
                owner,
                port: (post.ops.port)(owner),
            });
        }
        if let Some(Last {
            port: Some(port), ..
        }) = &*last
        {
            port.count_ran(1);
        }
    }
}
