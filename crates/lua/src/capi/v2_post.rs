//! 2v0's fire-and-forget posts: `post` and `post_inline` (see
//! `dss_api_2v0_t` in include/darksidesync.h), and the queueing they
//! share; each runs its body under [`super::guard`].

use std::ffi::{c_int, c_long, c_void};
use std::time::Duration;

use darksidesync_core::{Discarded, PostError, PostErrorKind, Posted};
use darksidesync_sys::v2::{FreeFn, Handle, RunFn, EINTERNAL, EINVAL, INLINE_MAX, OK};

use super::guard;
use super::v2::{lookup_with_run, post_code};
use crate::item::Item;

/// `post`: see `dss2_post_fn`. Any thread.
///
/// # Safety
/// The callbacks, if given, have the header's signatures; `data` is only
/// handed back to them.
pub(super) unsafe extern "C" fn post(
    h: Handle,
    run: Option<RunFn>,
    free: Option<FreeFn>,
    data: *mut c_void,
    timeout_ms: c_long,
) -> c_int {
    // A panic (a bug) returns EINTERNAL without calling `free`: leaking
    // `data` is the safe side of not knowing whether it was queued.
    guard(EINTERNAL, || {
        let code = post_inner(h, run, free, data, timeout_ms);
        if code != OK {
            if let Some(free) = free {
                // SAFETY: the 2v0 contract: post owns `data` and calls its
                // free callback exactly once; a refused item was not
                // queued (its Drop skipped `free`), so this is that once.
                unsafe { free(data, code) };
            }
        }
        code
    })
}

fn post_inner(
    h: Handle,
    run: Option<RunFn>,
    free: Option<FreeFn>,
    data: *mut c_void,
    timeout_ms: c_long,
) -> c_int {
    queue_post(h, run, timeout_ms, |run, handle| {
        super::post::post2(run, free, data, handle)
    })
}

/// `post_inline`: see `dss2_post_inline_fn`. Any thread.
///
/// # Safety
/// The callbacks, if given, have the header's signatures; `bytes` is NULL
/// with `len` 0, or readable for `len` bytes.
pub(super) unsafe extern "C" fn post_inline(
    h: Handle,
    run: Option<RunFn>,
    free: Option<FreeFn>,
    bytes: *const c_void,
    len: usize,
    timeout_ms: c_long,
) -> c_int {
    guard(EINTERNAL, || {
        if len > INLINE_MAX || (bytes.is_null() && len > 0) {
            // Nothing taken: the caller keeps its bytes (header).
            return EINVAL;
        }
        let mut copy = [std::mem::MaybeUninit::<u64>::uninit(); INLINE_MAX / 8];
        // SAFETY: `len` readable bytes (contract) into a local array of at
        // least `len` bytes; the two cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.cast::<u8>(), copy.as_mut_ptr().cast::<u8>(), len)
        };
        let code = queue_post(h, run, timeout_ms, |run, handle| {
            super::post::post2_inline(run, free, copy, handle)
        });
        if code != OK {
            if let Some(free) = free {
                // SAFETY: as in `post`: a refused item was not queued (its
                // discard skipped `free`); the bytes are this call's copy.
                unsafe { free(copy.as_mut_ptr().cast(), code) };
            }
        }
        code
    })
}

/// Looks `h` up and queues the post `make` builds, as `timeout_ms` says;
/// the code of the outcome (a refused item is discarded as such).
fn queue_post(
    h: Handle,
    run: Option<RunFn>,
    timeout_ms: c_long,
    make: impl FnOnce(RunFn, Handle) -> Item,
) -> c_int {
    let (util, run) = match lookup_with_run(h, run) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let item = make(run, util.handle);
    if timeout_ms == 0 {
        // Never waits, not even for the hub's lock (signal handlers).
        let result = util.port.post_nowait(item);
        return posted(result);
    }
    // A post that may wait for room does not wait under the borrow
    // (`unreg` waits for borrows to end). Usually there is room: it is
    // queued here, under the borrow. Otherwise it waits through its own
    // clone of the port (references on the hub's records, taken only
    // then).
    let item = match util.port.post_if_room(item) {
        Err(e) if e.kind == PostErrorKind::Full => e.item,
        result => return posted(result),
    };
    let port = util.port.clone();
    drop(util);
    let result = if timeout_ms < 0 {
        port.post(item)
    } else {
        port.post_timeout(item, Duration::from_millis(timeout_ms as u64))
    };
    posted(result)
}

/// The code of a post's outcome; a refused item is discarded as such.
fn posted(result: Result<Posted, PostError<Item>>) -> c_int {
    match result {
        Ok(_) => OK,
        Err(e) => {
            // Refused: `post` frees `data` itself, with the code.
            e.item.discard(Discarded::Refused(e.kind));
            post_code(e.kind)
        }
    }
}
