//! The monomorphised `extern "C"` functions that carry a closure through
//! the C ABI: compiled into the binding author's library, called back by
//! the module on the Lua thread (`run`) or wherever an item ends (`free`).

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::Lua;

use crate::error::{panic_text, Error, LuaError};
use crate::ffi::{self as dss, Handle};
use crate::raw::{lua_State, push_nothing, push_raise};

/// Whether a `V` travels inside the item (2v0 `post_inline`): at most
/// `DSS2_INLINE_MAX` bytes, aligned to at most 8 (what the copy is).
pub(crate) const fn fits_inline<V>() -> bool {
    std::mem::size_of::<V>() <= dss::INLINE_MAX && std::mem::align_of::<V>() <= 8
}

/// `run` of an inline post: moves the closure out of the item's bytes and
/// runs it with `&Lua`. Pushes nothing when it succeeded (`DSS2_RAN`: the
/// item counts as run, nothing more is called), or a callback that raises
/// its message when it failed, so that the message reaches the state's
/// error handler.
pub(crate) unsafe extern "C-unwind" fn run_inline<F>(
    l: *mut lua_State,
    data: *mut c_void,
    _h: Handle,
) -> c_int
where
    F: FnOnce(&Lua) -> mlua::Result<()> + Send + 'static,
{
    // SAFETY: `data` points to the item's copy of the F that post_inline
    // was given (8-aligned, fits_inline); run is called once, and the
    // free_inline::<F> that follows it (outcome OK) does not drop it again.
    let f = unsafe { std::ptr::read(data as *const F) };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `l` is a valid state on its own thread (2v0 contract: run
        // never gets NULL); the Lua it gives outlives this call.
        let lua = unsafe { Lua::get_or_init_from_ptr(l) };
        match catch_unwind(AssertUnwindSafe(|| f(lua))) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(LuaError::from_mlua(&e).to_string()),
            Err(p) => Some(format!("panic in a posted closure: {}", panic_text(p))),
        }
    }));
    match outcome {
        Ok(None) => dss::RAN,
        // SAFETY: on the Lua thread, inside run.
        Ok(Some(message)) => unsafe { push_raise(l, &message) },
        Err(_) => dss::RAN,
    }
}

/// `free` of an inline post: drops the closure when it never ran (after
/// `run`, the outcome is OK and `run` moved it out).
pub(crate) unsafe extern "C" fn free_inline<V>(data: *mut c_void, outcome: c_int) {
    if outcome == dss::OK {
        return;
    }
    // SAFETY: called exactly once per post with the item's copy of the V
    // post_inline was given, which nothing moved out (it did not run). A
    // panicking Drop of its captures must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
        std::ptr::drop_in_place(data as *mut V)
    }));
}

/// What `call()` lends to the Lua thread.
pub(crate) struct CallSlot<F, R> {
    pub(crate) f: Option<F>,
    pub(crate) result: Option<Result<R, Error>>,
}

/// `run` of a post: runs the closure with `&Lua`.
pub(crate) unsafe extern "C-unwind" fn run_post<F>(
    l: *mut lua_State,
    data: *mut c_void,
    _h: Handle,
) -> c_int
where
    F: FnOnce(&Lua) -> mlua::Result<()> + Send + 'static,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the Box<Option<F>> made by Dss::post::<F>; the
        // module owns it until free_post, and run is called at most once,
        // on the Lua thread, before free.
        let slot = unsafe { &mut *(data as *mut Option<F>) };
        let f = slot.take()?;
        // SAFETY: `l` is a valid state on its own thread (2v0 contract: run
        // never gets NULL); the Lua it gives outlives this call.
        let lua = unsafe { Lua::get_or_init_from_ptr(l) };
        match catch_unwind(AssertUnwindSafe(|| f(lua))) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(LuaError::from_mlua(&e).to_string()),
            Err(p) => Some(format!("panic in a posted closure: {}", panic_text(p))),
        }
    }));
    match outcome {
        // Pushing nothing would read as "nothing to call" (a skipped item,
        // not counted by dispatch()/run()); the closure did run.
        // SAFETY: on the Lua thread, inside run (see above).
        Ok(None) => unsafe { push_nothing(l) },
        // SAFETY: as above.
        Ok(Some(message)) => unsafe { push_raise(l, &message) },
        Err(_) => 0,
    }
}

/// `free` of a post: drops the box (and the closure if it never ran).
pub(crate) unsafe extern "C" fn free_post<F: Send + 'static>(data: *mut c_void, _outcome: c_int) {
    // SAFETY: called exactly once per post with the Box<Option<F>> made by
    // the post (header contract). A panicking Drop of the closure's
    // captures must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        drop(unsafe { Box::from_raw(data as *mut Option<F>) })
    }));
}

/// `run` of a call: runs the closure and keeps its result in the lent
/// slot; pushes a callback with no effect when it succeeded, or one that
/// raises its message when it failed, so the module answers the call as
/// failed and counts it in `Stats::errors`.
pub(crate) unsafe extern "C-unwind" fn run_call<F, R>(
    l: *mut lua_State,
    data: *mut c_void,
    _h: Handle,
) -> c_int
where
    F: FnOnce(&Lua) -> mlua::Result<R> + Send,
    R: Send,
{
    let ran = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the caller's CallSlot<F, R>, lent while the
        // caller is blocked in call(); the module claims it before calling
        // run and the caller cannot return meanwhile.
        let slot = unsafe { &mut *(data as *mut CallSlot<F, R>) };
        let f = slot.f.take()?;
        // SAFETY: as in run_post.
        let lua = unsafe { Lua::get_or_init_from_ptr(l) };
        let (result, failure) = match catch_unwind(AssertUnwindSafe(|| f(lua))) {
            Ok(Ok(r)) => (Ok(r), None),
            Ok(Err(e)) => {
                let e = LuaError::from_mlua(&e);
                let text = e.message().to_string();
                (Err(Error::Lua(e)), Some(text))
            }
            Err(p) => {
                let text = panic_text(p);
                (Err(Error::Panicked(text.clone())), Some(text))
            }
        };
        slot.result = Some(result);
        Some(failure)
    }));
    match ran {
        // SAFETY: on the Lua thread, inside run.
        Ok(Some(None)) => unsafe { push_nothing(l) },
        // SAFETY: on the Lua thread, inside run.
        Ok(Some(Some(message))) => unsafe { push_raise(l, &message) },
        _ => 0,
    }
}
