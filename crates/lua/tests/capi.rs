//! The C ABI in-process (vendored Lua 5.4): the registry table's shape, and
//! a 2v0 handle that outlives its state. The full C-ABI suite (a C utility
//! under stock interpreters, a two-state C host, sanitizers) is
//! `cargo xtask capi` / `cargo xtask capi-sanitize`.

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use darksidesync_sys::v2::Handle;
use darksidesync_sys::{v1, v2};
use mlua::{ffi, LightUserData, Lua, Table};

fn apis(lua: &Lua) -> (&'static v1::Api, &'static v2::Api) {
    let t: Table = lua
        .named_registry_value(darksidesync_sys::REGISTRY_NAME)
        .unwrap();
    assert_eq!(
        t.get::<String>(darksidesync_sys::VERSION_KEY).unwrap(),
        darksidesync_sys::VERSION
    );
    let p1: LightUserData = t.get(v1::API_KEY).unwrap();
    let p2: LightUserData = t.get(v2::API_KEY).unwrap();
    // SAFETY: the module publishes pointers to process-lifetime statics
    // with these layouts (include/darksidesync.h).
    unsafe { (&*(p1.0 as *const v1::Api), &*(p2.0 as *const v2::Api)) }
}

static RAN: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);
static FREED_CLOSED: AtomicUsize = AtomicUsize::new(0);
static LIBID: u8 = 0;

unsafe extern "C-unwind" fn run(
    state: *mut ffi::lua_State,
    _data: *mut c_void,
    _h: Handle,
) -> c_int {
    RAN.fetch_add(1, Ordering::SeqCst);
    // SAFETY: called on the Lua thread with a valid state (2v0 contract).
    unsafe {
        ffi::lua_getglobal(state, c"seen".as_ptr());
    }
    1
}

unsafe extern "C" fn free(data: *mut c_void, outcome: c_int) {
    FREED.fetch_add(1, Ordering::SeqCst);
    if outcome == -3 {
        FREED_CLOSED.fetch_add(1, Ordering::SeqCst);
    }
    // SAFETY: `data` is the Box we leaked for this post.
    drop(unsafe { Box::from_raw(data.cast::<u32>()) });
}

#[test]
fn registry_table_has_both_versions() {
    let lua = Lua::new();
    darksidesync::open(&lua).unwrap();
    let (a1, a2) = apis(&lua);
    // SAFETY: static NUL-terminated strings.
    unsafe {
        assert_eq!(CStr::from_ptr(a1.version).to_str().unwrap(), "DSS API 1v0");
        assert_eq!(CStr::from_ptr(a2.version).to_str().unwrap(), "DSS API 2v0");
        assert_eq!(
            (a1.deliver)(std::ptr::null_mut(), None, None, std::ptr::null_mut()),
            v1::ERR_INVALID_UTILID
        );
        assert_eq!((a1.unreg)(0x1234 as *mut c_void), -101);
    }
    assert!(a2.size >= std::mem::size_of::<v2::Api>());
}

#[test]
fn a_2v0_handle_outlives_its_state() {
    let lua = Lua::new();
    let dss = darksidesync::open(&lua).unwrap();
    lua.load("count = 0; seen = function() count = count + 1 end")
        .exec()
        .unwrap();
    let (_, api) = apis(&lua);
    let mut h: Handle = 0;
    // SAFETY: reg is called on the Lua thread with the state's pointer,
    // inside exec_raw's protected frame.
    let rc: c_int = unsafe {
        let mut rc = 0;
        lua.exec_raw::<()>((), |state| {
            rc = (api.reg)(
                state,
                &LIBID as *const u8 as *const c_void,
                c"test".as_ptr(),
                None,
                std::ptr::null_mut(),
                &mut h,
            );
        })
        .unwrap();
        rc
    };
    assert_eq!(rc, 0);
    assert_ne!(h, 0);

    let post = move |n: u32| {
        let data = Box::into_raw(Box::new(n)).cast::<c_void>();
        // SAFETY: `run`/`free` have the header's signatures; `data` is ours to give.
        unsafe { (api.post)(h, Some(run), Some(free), data, -1) }
    };
    let from_thread = std::thread::spawn(move || (0..10).map(post).collect::<Vec<_>>())
        .join()
        .unwrap();
    assert!(from_thread.iter().all(|&rc| rc == 0));
    let ran: i64 = dss
        .get::<mlua::Function>("dispatch")
        .unwrap()
        .call(())
        .unwrap();
    assert_eq!(ran, 10);
    assert_eq!(lua.globals().get::<i64>("count").unwrap(), 10);
    assert_eq!(RAN.load(Ordering::SeqCst), 10);
    assert_eq!(FREED.load(Ordering::SeqCst), 10);

    // Queue some, then close the state: each is freed once, as closed.
    assert!((0..3).map(post).all(|rc| rc == 0));
    // SAFETY: plain call, any thread.
    assert_eq!(unsafe { (api.status)(h) }, 0);
    drop(dss);
    drop(lua);
    assert_eq!(FREED_CLOSED.load(Ordering::SeqCst), 3);
    // SAFETY: as above; the handle is only looked up.
    assert_eq!(unsafe { (api.status)(h) }, -3, "ECLOSED after lua_close");
    assert_eq!(post(99), -3, "post after close: ECLOSED, and data freed");
    assert_eq!(FREED.load(Ordering::SeqCst), 14);
    // SAFETY: as above.
    unsafe {
        assert_eq!((api.unreg)(h), 0, "unreg releases the closed handle");
        assert_eq!((api.status)(h), -2, "then it is stale");
        assert_eq!((api.unreg)(h), -2);
    }
}

/// Registers a 2v0 utility `libid` in `lua` (on its thread).
fn register(lua: &Lua, api: &v2::Api, libid: &'static u8) -> Handle {
    let mut h: Handle = 0;
    // SAFETY: reg is called on the Lua thread with the state's pointer,
    // inside exec_raw's protected frame; `h` outlives the call.
    let rc = unsafe {
        let mut rc = 0;
        lua.exec_raw::<()>((), |state| {
            rc = (api.reg)(
                state,
                libid as *const u8 as *const c_void,
                c"test".as_ptr(),
                None,
                std::ptr::null_mut(),
                &mut h,
            );
        })
        .unwrap();
        rc
    };
    assert_eq!(rc, v2::OK);
    h
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Issue 10.13: a closed state's descriptors (eventfd, UDP socket) and
/// buffers go at close, even while a utility keeps its handle forever.
/// Failed on a1a31e2 (600 descriptors left after 300 cycles).
#[test]
fn closed_states_release_their_descriptors_while_utilities_hold_handles() {
    static LIBID: u8 = 0;
    let before = open_descriptors();
    let mut handles = Vec::new();
    for _ in 0..300 {
        let lua = Lua::new();
        let dss = darksidesync::open(&lua).unwrap();
        let _: i64 = dss.get::<mlua::Function>("fd").unwrap().call(()).unwrap();
        dss.get::<mlua::Function>("setport")
            .unwrap()
            .call::<()>(47_531)
            .unwrap();
        let (_, api) = apis(&lua);
        handles.push((api, register(&lua, api, &LIBID)));
        drop(dss);
        drop(lua);
    }
    let after = open_descriptors();
    // Other tests of this binary run meanwhile: allow them a few.
    assert!(
        after < before + 20,
        "{} descriptors more after 300 closed states",
        after.saturating_sub(before)
    );
    for (api, h) in handles {
        // SAFETY: plain calls, any thread; the handles are only looked up.
        unsafe {
            assert_eq!((api.status)(h), v2::ECLOSED, "still a closed handle");
            assert_eq!((api.unreg)(h), v2::OK);
        }
    }
}

/// Issue 10.15: calls and posts refused with ECLOSED count as refused.
/// Failed on a1a31e2 (refused stayed 0).
#[test]
fn refusals_of_a_closed_state_count_as_refused() {
    static LIBID: u8 = 0;
    let lua = Lua::new();
    let dss = darksidesync::open(&lua).unwrap();
    let (_, api) = apis(&lua);
    let h = register(&lua, api, &LIBID);
    drop(dss);
    drop(lua);
    let stats = || {
        let mut s = v2::Stats {
            size: std::mem::size_of::<v2::Stats>(),
            ..Default::default()
        };
        // SAFETY: `s` is a dss2_stats_t with its size set.
        assert_eq!(unsafe { (api.stats)(h, &mut s) }, v2::OK);
        s
    };
    let before = stats().refused;
    // SAFETY: `run` has the header's signature; no data is lent or owned.
    unsafe {
        assert_eq!(
            (api.post)(h, Some(run), None, std::ptr::null_mut(), 0),
            v2::ECLOSED
        );
        assert_eq!(
            (api.call)(
                h,
                Some(run),
                None,
                std::ptr::null_mut(),
                -1,
                0,
                std::ptr::null_mut(),
                0
            ),
            v2::ECLOSED
        );
    }
    assert_eq!(stats().refused - before, 2);
    // SAFETY: as above.
    assert_eq!(unsafe { (api.unreg)(h) }, v2::OK);
}

/// A Lua state moved to another thread (legal in Lua; mlua's `Lua` is not
/// `Send`, so the test moves it by hand and never uses it from two threads
/// at once).
struct Moved(Lua);
// SAFETY: the state is used by one thread at a time: created and set up on
// the spawning thread, then only used by the thread it moved to.
unsafe impl Send for Moved {}

/// Issue 10.5: a state created on one thread and driven from another: a
/// blocking call made on the new Lua thread returns EWOULDDEADLOCK once the
/// utility looked its handle up there (getid), instead of waiting for
/// itself. Failed on a1a31e2 (ETIMEDOUT after the 2 s bound; without a
/// bound it hung).
#[test]
fn a_state_driven_from_another_thread_refuses_blocking_calls_there() {
    static LIBID: u8 = 0;
    let lua = Lua::new();
    darksidesync::open(&lua).unwrap();
    let (_, api) = apis(&lua);
    let h = register(&lua, api, &LIBID);
    let moved = Moved(lua);
    let rc = std::thread::spawn(move || {
        let moved = moved;
        let lua = &moved.0;
        let mut found: Handle = 0;
        // SAFETY: getid on the (new) Lua thread with the state's pointer.
        unsafe {
            lua.exec_raw::<()>((), |state| {
                assert_eq!(
                    (api.getid)(state, &LIBID as *const u8 as *const c_void, &mut found),
                    v2::OK
                );
            })
            .unwrap();
        }
        assert_eq!(found, h);
        // SAFETY: `run` has the header's signature; nothing is lent.
        unsafe {
            (api.call)(
                h,
                Some(run),
                None,
                std::ptr::null_mut(),
                2000,
                0,
                std::ptr::null_mut(),
                0,
            )
        }
    })
    .join()
    .unwrap();
    assert_eq!(rc, v2::EWOULDDEADLOCK);
}

static RACE_RAN: AtomicUsize = AtomicUsize::new(0);
static RACE_FREED_OK: AtomicUsize = AtomicUsize::new(0);
static RACE_FREED_CANCELLED: AtomicUsize = AtomicUsize::new(0);
static RACE_FREED_REFUSED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C-unwind" fn race_run(
    _state: *mut ffi::lua_State,
    _data: *mut c_void,
    _h: Handle,
) -> c_int {
    RACE_RAN.fetch_add(1, Ordering::SeqCst);
    0
}

unsafe extern "C" fn race_free(_data: *mut c_void, outcome: c_int) {
    match outcome {
        v2::OK => &RACE_FREED_OK,
        v2::ECANCELLED => &RACE_FREED_CANCELLED,
        _ => &RACE_FREED_REFUSED,
    }
    .fetch_add(1, Ordering::SeqCst);
}

/// No-wait posts (what a signal handler may make, header "Async-signal-
/// safe") racing `unreg()` and the Lua thread's `dispatch()`: every post
/// is accepted or refused with a code, and its `free` runs exactly once:
/// after `run` (OK), when `unreg` cancels it, or inside the refused post.
/// Once a post saw ESTALE, nothing of the utility runs any more.
#[test]
fn nowait_posts_racing_unreg_end_exactly_once() {
    static LIBID: u8 = 0;
    for _ in 0..30 {
        let (ran0, ok0, cancelled0, refused0) = (
            RACE_RAN.load(Ordering::SeqCst),
            RACE_FREED_OK.load(Ordering::SeqCst),
            RACE_FREED_CANCELLED.load(Ordering::SeqCst),
            RACE_FREED_REFUSED.load(Ordering::SeqCst),
        );
        let lua = Lua::new();
        let dss = darksidesync::open(&lua).unwrap();
        let (_, api) = apis(&lua);
        let h = register(&lua, api, &LIBID);
        let posted = std::sync::Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let posted = posted.clone();
                std::thread::spawn(move || {
                    let (mut accepted, mut refused) = (0usize, 0usize);
                    loop {
                        posted.fetch_add(1, Ordering::Relaxed);
                        // SAFETY: `race_run`/`race_free` have the header's
                        // signatures; no data is lent or owned.
                        let rc = unsafe {
                            (api.post)(h, Some(race_run), Some(race_free), std::ptr::null_mut(), 0)
                        };
                        match rc {
                            v2::OK => accepted += 1,
                            v2::ESTALE => return (accepted, refused + 1),
                            v2::EFULL => refused += 1,
                            other => panic!("post: unexpected code {other}"),
                        }
                    }
                })
            })
            .collect();
        let dispatch: mlua::Function = dss.get("dispatch").unwrap();
        // Unregister while posts are being made and run.
        while posted.load(Ordering::Relaxed) < 2000 {
            dispatch.call::<i64>(()).unwrap();
        }
        // SAFETY: unreg may be called from any thread, the Lua one too.
        assert_eq!(unsafe { (api.unreg)(h) }, v2::OK);
        let (accepted, refused) = producers
            .into_iter()
            .map(|p| p.join().unwrap())
            .fold((0, 0), |(a, r), (pa, pr)| (a + pa, r + pr));
        let ran_by_unreg = RACE_RAN.load(Ordering::SeqCst) - ran0;
        assert_eq!(
            dispatch.call::<i64>(()).unwrap(),
            0,
            "nothing runs after unreg"
        );
        let ran = RACE_RAN.load(Ordering::SeqCst) - ran0;
        assert_eq!(ran, ran_by_unreg);
        let ok = RACE_FREED_OK.load(Ordering::SeqCst) - ok0;
        let cancelled = RACE_FREED_CANCELLED.load(Ordering::SeqCst) - cancelled0;
        let freed_refused = RACE_FREED_REFUSED.load(Ordering::SeqCst) - refused0;
        assert_eq!(ok, ran, "free(OK) once per run");
        assert_eq!(
            ran + cancelled,
            accepted,
            "each accepted post ran or was cancelled"
        );
        assert_eq!(freed_refused, refused, "free once per refused post");
        drop(dss);
        drop(lua);
    }
}
