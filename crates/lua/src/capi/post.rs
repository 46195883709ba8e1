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

/// A 1v0 `deliver` without a return callback: `code[0]` is the decoder.
static DELIVER1: PostOps = PostOps {
    run: run_deliver1,
    discard: discard_deliver1,
    port: port_of,
};

/// A 2v0 `post`: `code` is `run`, then `free` (or none).
static POST2: PostOps = PostOps {
    run: run_post2,
    discard: discard_post2,
    port: port_of,
};

/// A 2v0 `post_inline`: `code` as [`POST2`], the data being bytes.
static POST2_INLINE: PostOps = PostOps {
    run: run_post2_inline,
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

fn run2(post: &PostParts) -> Option<RunFn> {
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
unsafe fn run_deliver1(state: *mut ffi::lua_State, post: &mut PostParts) -> c_int {
    // SAFETY: as run_guarded's contract.
    unsafe { run_guarded(state, post, Kind::Deliver1) }
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
unsafe fn run_post2(state: *mut ffi::lua_State, post: &mut PostParts) -> c_int {
    // SAFETY: as run_guarded's contract.
    unsafe { run_guarded(state, post, Kind::Post2) }
}

/// # Safety
/// As [`PostOps::run`].
unsafe fn run_post2_inline(state: *mut ffi::lua_State, post: &mut PostParts) -> c_int {
    // SAFETY: as run_guarded's contract.
    unsafe { run_guarded(state, post, Kind::Post2Inline) }
}

/// Which post a [`run_guarded`] runs.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Deliver1,
    Post2,
    Post2Inline,
}

impl Kind {
    /// What the post's callbacks take.
    fn data(self, post: &mut PostParts) -> *mut c_void {
        match self {
            Kind::Deliver1 | Kind::Post2 => post.pointer(),
            Kind::Post2Inline => post.bytes_ptr(),
        }
    }

    fn discard(self, post: &mut PostParts, why: Discarded) {
        match self {
            Kind::Deliver1 => discard_deliver1(post, Some(why)),
            Kind::Post2 => discard_post2(post, Some(why)),
            Kind::Post2Inline => discard_post2_inline(post, Some(why)),
        }
    }
}

/// What the protected call of [`run_guarded`] gets.
struct Guarded<'a> {
    post: &'a mut PostParts,
    kind: Kind,
    /// What the decoder or `run` returned.
    n: c_int,
}

/// Runs a C post: marks its utility running (see `running.rs`: an item of
/// a utility being unregistered is discarded instead), calls its decoder
/// or `run` inside `lua_pcall`, then the 2v0 `free(data, OK)`, then
/// unmarks. A decoder or `run` that raises (against its contract) is
/// survived: its error comes back as the callback `raise(err)`, so the
/// item loop hands it to the error handler and `poll()`'s caller gets a
/// callback that raises it.
///
/// # Safety
/// As [`PostOps::run`], with 2 more free slots.
unsafe fn run_guarded(state: *mut ffi::lua_State, post: &mut PostParts, kind: Kind) -> c_int {
    unsafe extern "C-unwind" fn trampoline(state: *mut ffi::lua_State) -> c_int {
        // SAFETY: argument 1 is the light userdata pushed below, pointing
        // to a `Guarded` alive for the whole protected call; the callback
        // gets a fresh C frame (LUA_MINSTACK slots) and no Rust value with
        // a destructor is alive here.
        unsafe {
            let g = &mut *ffi::lua_touserdata(state, 1).cast::<Guarded>();
            ffi::lua_settop(state, 0);
            let data = g.kind.data(g.post);
            g.n = match g.kind {
                Kind::Deliver1 => match decoder(g.post) {
                    Some(decoder) => decoder(state.cast(), data, handles::to_utilid(g.post.owner)),
                    None => 0,
                },
                Kind::Post2 | Kind::Post2Inline => match run2(g.post) {
                    Some(run) => run(state.cast(), data, g.post.owner),
                    None => 0,
                },
            };
            g.n.clamp(0, ffi::lua_gettop(state))
        }
    }
    let Some(util) = handles::get(post.owner) else {
        kind.discard(post, Discarded::Unregistered);
        return 0;
    };
    let running = &util.shared.running;
    if !running.enter(util.handle, &util.gone) {
        kind.discard(post, Discarded::Unregistered);
        return 0;
    }
    let mut g = Guarded { post, kind, n: 0 };
    // SAFETY: per the contract: 2 slots for the function and its
    // argument; the pcall leaves the results or one error value.
    let (raised, pushed) = unsafe {
        let base = ffi::lua_gettop(state);
        ffi::lua_pushcfunction(state, trampoline);
        ffi::lua_pushlightuserdata(state, (&mut g as *mut Guarded).cast());
        let raised = ffi::lua_pcall(state, 1, ffi::LUA_MULTRET, 0) != 0;
        (raised, ffi::lua_gettop(state) - base)
    };
    let (post, n) = (g.post, g.n);
    if kind != Kind::Deliver1 {
        if let Some(free) = free2(post) {
            let data = kind.data(post);
            // SAFETY: 2v0 contract: run was called (or raised); `data` is
            // freed exactly once (the post was taken).
            unsafe { free(data, OK) };
        }
    }
    running.leave();
    if raised {
        // SAFETY: the error value is on top; one slot is free (the pcall
        // popped two values and pushed one).
        unsafe {
            ffi::lua_pushcfunction(state, raise_arg);
            ffi::lua_insert(state, -2);
        }
        return 2;
    }
    if n == crate::post::RAN && pushed == 0 {
        return n;
    }
    pushed
}

/// The callback of a post whose decoder or `run` raised: raises its
/// argument (the error), so the error reaches the error handler.
unsafe extern "C-unwind" fn raise_arg(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with the error as argument 1; no Rust value
    // with a destructor is alive here.
    unsafe {
        ffi::lua_settop(state, 1);
        ffi::lua_error(state)
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
