//! The C utilities' fire-and-forget deliveries as inline posts of the glue
//! (`crate::post`): 1v0 `deliver` without a return callback and 2v0
//! `post` and `post_inline`. Each is a static [`PostOps`] that knows the
//! version's calling convention; the item loop and `poll()` run them like
//! any inline post.
//!
//! | post | ran on the Lua thread | discarded (close, unreg) or dropped | refused by deliver/post |
//! |---|---|---|---|
//! | 1v0 | `decoder(L, ..)` | `decoder(NULL, ..)` | nothing (the caller keeps `pData`) |
//! | 2v0 | `run(L, ..)` then `free(data, OK)` | `free(data, ECANCELLED/ECLOSED)` | nothing here: `post` calls `free(data, code)` |
//! | 2v0 inline | `run(L, p, ..)` then `free(p, OK)` | `free(p, ECANCELLED/ECLOSED)` | nothing here: `post_inline` calls `free(p, code)` |
//!
//! An inline post's `p` points to the copy of its bytes in the item being
//! run or discarded (valid during the call). Only its `run` may answer
//! `DSS2_RAN` (did the work itself); a 1v0 or 2v0 `post` returning a
//! negative count has nothing to call, as before.

use std::ffi::{c_int, c_void};

use darksidesync_core::{Discarded, Port};
use darksidesync_sys::v1::DecoderFn;
use darksidesync_sys::v2::{FreeFn, RunFn, ECANCELLED, ECLOSED, INLINE_MAX, OK, RAN};
use mlua::ffi;

use super::handles::{self, Handle};
use crate::item::Item;
use crate::post::{self, Code, Post, PostOps, PostParts, POST_BYTES};
use crate::state::StateHub;

/// A 1v0 `deliver` without a return callback: `code[0]` is the decoder.
static DELIVER1: PostOps = PostOps {
    run: run_deliver1,
    unwound: unwound_deliver1,
    discard: discard_deliver1,
    port: port_of,
};

/// A 2v0 `post`: `code` is `run`, then `free` (or none).
static POST2: PostOps = PostOps {
    run: run_post2,
    unwound: unwound_post2,
    discard: discard_post2,
    port: port_of,
};

/// A 2v0 `post_inline`: `code` as [`POST2`], the data being bytes.
static POST2_INLINE: PostOps = PostOps {
    run: run_post2_inline,
    unwound: unwound_post2_inline,
    discard: discard_post2_inline,
    port: port_of,
};

// The header's DSS2_INLINE_MAX is what an item carries, and DSS2_RAN what
// the glue reads as "ran".
const _: () = assert!(INLINE_MAX == POST_BYTES && RAN == post::RAN);

/// The item of a fire-and-forget 1v0 `deliver`.
pub(crate) fn deliver1(decoder: DecoderFn, data: *mut c_void, handle: Handle) -> Item {
    // SAFETY (of the transmutes back): `code[0]` holds a DecoderFn, which
    // only DELIVER1's functions read, as a DecoderFn.
    let code = [
        Some(unsafe { std::mem::transmute::<DecoderFn, Code>(decoder) }),
        None,
    ];
    Item::post(Post::new(
        &DELIVER1,
        PostParts::with_pointer(code, data, handle),
    ))
}

/// The code words of a 2v0 post: `run`, then `free`.
fn code2(run: RunFn, free: Option<FreeFn>) -> [Option<Code>; 2] {
    // SAFETY: function pointers of one size; only POST2's and
    // POST2_INLINE's functions read them back, as the types stored here.
    unsafe {
        [
            Some(std::mem::transmute::<RunFn, Code>(run)),
            free.map(|f| std::mem::transmute::<FreeFn, Code>(f)),
        ]
    }
}

/// The item of a 2v0 `post`.
pub(crate) fn post2(run: RunFn, free: Option<FreeFn>, data: *mut c_void, handle: Handle) -> Item {
    Item::post(Post::new(
        &POST2,
        PostParts::with_pointer(code2(run, free), data, handle),
    ))
}

/// The item of a 2v0 `post_inline` whose bytes are `bytes` (copied).
pub(crate) fn post2_inline(
    run: RunFn,
    free: Option<FreeFn>,
    bytes: [std::mem::MaybeUninit<u64>; POST_BYTES / 8],
    handle: Handle,
) -> Item {
    Item::post(Post::new(
        &POST2_INLINE,
        PostParts {
            code: code2(run, free),
            bytes,
            owner: handle,
        },
    ))
}

fn decoder(post: &PostParts) -> Option<DecoderFn> {
    // SAFETY: DELIVER1's `code[0]` is the DecoderFn `deliver1` stored.
    post.code[0].map(|c| unsafe { std::mem::transmute::<Code, DecoderFn>(c) })
}

fn run_fn(post: &PostParts) -> Option<RunFn> {
    // SAFETY: POST2's `code[0]` is the RunFn `post2` stored.
    post.code[0].map(|c| unsafe { std::mem::transmute::<Code, RunFn>(c) })
}

fn free2(post: &PostParts) -> Option<FreeFn> {
    // SAFETY: POST2's `code[1]` is the FreeFn `post2` stored, if any.
    post.code[1].map(|c| unsafe { std::mem::transmute::<Code, FreeFn>(c) })
}

fn port_of(owner: u64) -> Option<Port<Item>> {
    handles::get(owner).map(|u| u.port.clone())
}

/// Whether the utility of `h` is closed (its state closed); false once
/// `unreg` released it (its items are then cancelled, not closed).
pub(crate) fn closed(h: Handle) -> bool {
    handles::get(h).is_some_and(|u| u.is_closed())
}

/// # Safety
/// As [`PostOps::run`].
unsafe fn run_deliver1(state: *mut ffi::lua_State, st: &StateHub, post: &mut PostParts) -> c_int {
    if !st.producers.running.enter_live(post.owner) {
        discard_deliver1(post, Some(Discarded::Unregistered));
        return 0;
    }
    let n = match decoder(post) {
        // SAFETY: the 1v0 contract: the decoder gets the state, on its
        // thread, with a fresh frame (PostOps::run's contract).
        Some(decoder) => unsafe {
            decoder(state.cast(), post.pointer(), handles::to_utilid(post.owner))
        },
        None => 0,
    };
    st.producers.running.leave();
    n.max(0) // only an inline post's run may answer DSS2_RAN
}

fn unwound_deliver1(st: &StateHub, _post: &mut PostParts) {
    st.producers.running.leave();
}

fn discard_deliver1(post: &mut PostParts, why: Option<Discarded>) {
    if let Some(Discarded::Refused(_)) = why {
        return; // the caller keeps `data`
    }
    if let Some(decoder) = decoder(post) {
        // SAFETY: 1v0 contract: a cancelled item gets its decoder with a
        // NULL state, exactly once (a post is run or discarded once).
        unsafe {
            decoder(
                std::ptr::null_mut(),
                post.pointer(),
                handles::to_utilid(post.owner),
            )
        };
    }
}

/// # Safety
/// As [`PostOps::run`].
unsafe fn run_post2(state: *mut ffi::lua_State, st: &StateHub, post: &mut PostParts) -> c_int {
    let data = post.pointer();
    // SAFETY: as run2's contract.
    unsafe { run2(state, st, post, data) }.max(0) // DSS2_RAN: inline only
}

/// # Safety
/// As [`PostOps::run`].
unsafe fn run_post2_inline(
    state: *mut ffi::lua_State,
    st: &StateHub,
    post: &mut PostParts,
) -> c_int {
    let data = post.bytes_ptr();
    // SAFETY: as run2's contract.
    unsafe { run2(state, st, post, data) }
}

/// A 2v0 post's `run(L, data, h)` then `free(data, DSS2_OK)`, marked as
/// running (see `running.rs`: an item of a utility being unregistered is
/// discarded instead). A `run` that raises, against its contract, is
/// finished by [`unwound_post2`].
///
/// # Safety
/// As [`PostOps::run`]; `data` is what the post's callbacks take.
unsafe fn run2(
    state: *mut ffi::lua_State,
    st: &StateHub,
    post: &mut PostParts,
    data: *mut c_void,
) -> c_int {
    if !st.producers.running.enter_live(post.owner) {
        free_unrun(post, data, Some(Discarded::Unregistered));
        return 0;
    }
    let n = match run_fn(post) {
        // SAFETY: the 2v0 contract: `run` gets the state, on its thread,
        // with a fresh frame (PostOps::run's contract).
        Some(run) => unsafe { run(state.cast(), data, post.owner) },
        None => 0,
    };
    free_ran(post, data);
    st.producers.running.leave();
    n
}

/// `run` raised: its `free(data, DSS2_OK)`, then the mark cleared.
fn unwound_post2(st: &StateHub, post: &mut PostParts) {
    let data = post.pointer();
    free_ran(post, data);
    st.producers.running.leave();
}

/// As [`unwound_post2`], the data being the post's bytes.
fn unwound_post2_inline(st: &StateHub, post: &mut PostParts) {
    let data = post.bytes_ptr();
    free_ran(post, data);
    st.producers.running.leave();
}

/// `free(data, DSS2_OK)` of a post whose `run` was called (or raised).
fn free_ran(post: &PostParts, data: *mut c_void) {
    if let Some(free) = free2(post) {
        // SAFETY: 2v0 contract: run was called; `data` is freed exactly
        // once (the post was taken).
        unsafe { free(data, OK) };
    }
}

fn discard_post2(post: &mut PostParts, why: Option<Discarded>) {
    let data = post.pointer();
    free_unrun(post, data, why);
}

fn discard_post2_inline(post: &mut PostParts, why: Option<Discarded>) {
    let data = post.bytes_ptr();
    free_unrun(post, data, why);
}

/// `free(data, ECANCELLED or ECLOSED)` of a post that will not run.
fn free_unrun(post: &PostParts, data: *mut c_void, why: Option<Discarded>) {
    if let Some(Discarded::Refused(_)) = why {
        return; // `post` frees `data` itself, with its code
    }
    let Some(free) = free2(post) else {
        return;
    };
    let outcome = if why == Some(Discarded::Closed) || closed(post.owner) {
        ECLOSED
    } else {
        ECANCELLED
    };
    // SAFETY: 2v0 contract: the post owns `data` and frees it exactly once
    // (a post is run or discarded once).
    unsafe { free(data, outcome) };
}
