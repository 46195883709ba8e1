//! Posted closures on both of their paths: small ones travel inside the
//! item (2v0 `post_inline`), larger ones boxed (2v0 `post`). Either way a
//! closure runs at most once, is dropped exactly once (run, cancelled or
//! refused), and its error or panic reaches the state's error handler.

use std::sync::Arc;

use darksidesync_binding::{Dss, Error, LibId};
use mlua::{Function, Lua, Table, Value};

fn open(lua: &Lua) -> Table {
    darksidesync::open(lua).unwrap()
}

fn call<R: mlua::FromLuaMulti>(m: &Table, name: &str, args: impl mlua::IntoLuaMulti) -> R {
    m.get::<Function>(name).unwrap().call(args).unwrap()
}

/// Posts from another thread (a post from the Lua thread itself would be
/// the same, but producers are threads).
fn post_from_thread(
    dss: &Dss,
    f: impl FnOnce(&Lua) -> mlua::Result<()> + Send + 'static,
) -> Result<(), Error> {
    let dss = dss.clone();
    std::thread::spawn(move || dss.post(f)).join().unwrap()
}

/// A closure capturing `witness` and `pad` (its size decides its path),
/// adding `pad[0]` to the global `total` when it runs.
fn adder<const N: usize>(
    witness: Arc<()>,
    pad: [u64; N],
) -> impl FnOnce(&Lua) -> mlua::Result<()> + Send + 'static {
    move |lua| {
        let _w = witness;
        let total: i64 = lua.globals().get::<Option<i64>>("total")?.unwrap_or(0);
        lua.globals().set("total", total + pad[0] as i64)
    }
}

fn run_drop_cancel<const N: usize>(id: &'static LibId) {
    let lua = Lua::new();
    let m = open(&lua);
    let dss = Dss::register(&lua, id, "closures").unwrap();
    let witness = Arc::new(());
    let mut pad = [0u64; N];
    pad[0] = 5;
    post_from_thread(&dss, adder(witness.clone(), pad)).unwrap();
    post_from_thread(&dss, adder(witness.clone(), pad)).unwrap();
    assert_eq!(Arc::strong_count(&witness), 3, "queued, not run");
    assert_eq!(call::<i64>(&m, "dispatch", ()), 2, "both ran and count");
    assert_eq!(
        lua.globals().get::<i64>("total").unwrap(),
        10,
        "each ran once"
    );
    assert_eq!(Arc::strong_count(&witness), 1, "each dropped after running");

    // Taken by poll(): runs there, and poll() has nothing to hand out.
    post_from_thread(&dss, adder(witness.clone(), pad)).unwrap();
    let first: Value = m
        .get::<Function>("poll")
        .unwrap()
        .call::<mlua::MultiValue>(())
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(first, Value::Integer(0), "poll: no items left");
    assert_eq!(
        lua.globals().get::<i64>("total").unwrap(),
        15,
        "ran in poll()"
    );
    assert_eq!(
        Arc::strong_count(&witness),
        1,
        "dropped after running in poll()"
    );

    // Cancelled: dropped unrun.
    post_from_thread(&dss, adder(witness.clone(), pad)).unwrap();
    assert_eq!(Arc::strong_count(&witness), 2);
    assert!(dss.unregister());
    assert_eq!(Arc::strong_count(&witness), 1, "dropped when cancelled");
    assert_eq!(call::<i64>(&m, "dispatch", ()), 0, "nothing left to run");
    assert_eq!(lua.globals().get::<i64>("total").unwrap(), 15, "never ran");
}

#[test]
fn a_small_closure_travels_inline_runs_once_and_drops_once() {
    static ID: LibId = LibId::new();
    // Arc + one u64: 16 bytes, inside the item.
    run_drop_cancel::<1>(&ID);
}

#[test]
fn a_large_closure_travels_boxed_runs_once_and_drops_once() {
    static ID: LibId = LibId::new();
    // Arc + eight u64s: 72 bytes, over DSS2_INLINE_MAX.
    run_drop_cancel::<8>(&ID);
}

#[test]
fn a_refused_closure_is_dropped_unrun() {
    for big in [false, true] {
        static ID: LibId = LibId::new();
        let lua = Lua::new();
        let m = open(&lua);
        call::<()>(&m, "setcapacity", 1);
        let dss = Dss::register(&lua, &ID, "refused").unwrap();
        let witness = Arc::new(());
        let (first, second) = {
            let (dss, w1, w2) = (dss.clone(), witness.clone(), witness.clone());
            std::thread::spawn(move || {
                let a = if big {
                    dss.try_post(adder(w1, [1u64; 8]))
                } else {
                    dss.try_post(adder(w1, [1u64; 1]))
                };
                let b = if big {
                    dss.try_post(adder(w2, [1u64; 8]))
                } else {
                    dss.try_post(adder(w2, [1u64; 1]))
                };
                (a, b)
            })
            .join()
            .unwrap()
        };
        assert_eq!(first, Ok(()));
        assert_eq!(second, Err(Error::Full), "big: {big}");
        assert_eq!(
            Arc::strong_count(&witness),
            2,
            "the refused one dropped (big: {big})"
        );
        assert_eq!(call::<i64>(&m, "dispatch", ()), 1);
        assert_eq!(Arc::strong_count(&witness), 1);
        dss.unregister();
    }
}

#[test]
fn a_failing_or_panicking_small_closure_reaches_the_error_handler() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    let seen: Function = lua
        .load("function(e) seen = (seen or '') .. tostring(e) .. '|' end")
        .eval()
        .unwrap();
    call::<Value>(&m, "seterrorhandler", seen);
    let dss = Dss::register(&lua, &ID, "failing").unwrap();
    post_from_thread(&dss, |_| Err(mlua::Error::runtime("no luck"))).unwrap();
    post_from_thread(&dss, |_| panic!("boom")).unwrap();
    assert_eq!(call::<i64>(&m, "dispatch", ()), 2, "both count as run");
    let seen: String = lua.globals().get("seen").unwrap();
    assert!(seen.contains("no luck"), "{seen}");
    assert!(seen.contains("panic in a posted closure: boom"), "{seen}");
}

#[test]
fn a_small_post_callback_is_handed_out_by_poll_and_called_by_dispatch() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    let dss = Dss::register(&lua, &ID, "callbacks").unwrap();
    lua.load("function add(x, s) total = (total or 0) + x; last = s end")
        .exec()
        .unwrap();
    let post = |x: i64| {
        let dss = dss.clone();
        std::thread::spawn(move || {
            dss.post_callback(move |lua| {
                Ok((
                    lua.globals().get::<Function>("add")?,
                    (x, "s").into_lua_multi(lua)?,
                ))
            })
        })
        .join()
        .unwrap()
        .unwrap()
    };
    post(2);
    post(3);
    assert_eq!(call::<i64>(&m, "dispatch", ()), 2);
    assert_eq!(lua.globals().get::<i64>("total").unwrap(), 5);
    post(4);
    let (left, f, args): (i64, Function, Table) = call(&m, "poll", ());
    assert_eq!(left, 0);
    assert_eq!(args.get::<i64>("n").unwrap(), 2);
    f.call::<()>((args.get::<i64>(1).unwrap(), args.get::<String>(2).unwrap()))
        .unwrap();
    assert_eq!(lua.globals().get::<i64>("total").unwrap(), 9);
    // poll() from a coroutine: poll() is a plain C function, so the frame
    // it runs the item on is not the thread mlua knows as current, and the
    // values take the other way (a registry mailbox).
    post(8);
    let n: i64 = lua
        .load(
            "local poll = ...
             return coroutine.wrap(function()
                 local left, f, args = poll()
                 f(args[1], args[2])
                 return args.n
             end)()",
        )
        .call(m.get::<Function>("poll").unwrap())
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(lua.globals().get::<i64>("total").unwrap(), 17);
    assert_eq!(lua.globals().get::<String>("last").unwrap(), "s");
    // dispatch() from a coroutine.
    post(16);
    let n: i64 = lua
        .load("return coroutine.wrap(function(d) return d() end)(...)")
        .call(m.get::<Function>("dispatch").unwrap())
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(lua.globals().get::<i64>("total").unwrap(), 33);
}

use mlua::IntoLuaMulti;

/// Counts the allocations made on the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a thread-local
// cell (no allocation, no lock).
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, forwarded.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

#[test]
fn posting_a_small_closure_allocates_nothing_a_large_one_a_box() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    let dss = Dss::register(&lua, &ID, "allocations").unwrap();
    let witness = Arc::new(());
    // Allocations of 100 posts, counted after 10 that set up what a new
    // producer thread sets up once.
    let count = |big: bool| {
        let (dss, witness) = (dss.clone(), witness.clone());
        std::thread::spawn(move || {
            let post = |_| {
                if big {
                    dss.post(adder(witness.clone(), [1u64; 8])).unwrap();
                } else {
                    dss.post(adder(witness.clone(), [1u64; 1])).unwrap();
                }
            };
            (0..10).for_each(post);
            let before = ALLOCATIONS.with(|c| c.get());
            (0..100).for_each(post);
            ALLOCATIONS.with(|c| c.get()) - before
        })
        .join()
        .unwrap()
    };
    count(false);
    call::<i64>(&m, "dispatch", ());
    // The queue's own buffer may grow a few times (doubling) for any kind
    // of item; what is checked is that no post allocates for itself.
    let small = count(false);
    assert!(
        small < 10,
        "small closures: no allocation per post ({small})"
    );
    call::<i64>(&m, "dispatch", ());
    assert!(count(true) >= 100, "large closures: one box per post");
    assert_eq!(call::<i64>(&m, "dispatch", ()), 110);
    assert_eq!(Arc::strong_count(&witness), 1);
}
