//! Async functions and detached tasks in one state (Lua 5.4, in-process):
//! results, suspension and resumption, keep-alive, coalesced wakes,
//! errors and panics, cancellation, teardown.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use darksidesync_binding::{Dss, LibId};
use mlua::{Function, Lua, Table};

/// A one-shot value completed from any thread: the leaf future of these
/// tests (no reactor needed).
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<(Option<i64>, Option<Waker>)>>);

impl Gate {
    fn open(&self, v: i64) {
        let w = {
            let mut g = self.0.lock().unwrap();
            g.0 = Some(v);
            g.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
    /// Opens from a thread after `ms`.
    fn open_later(&self, v: i64, ms: u64) {
        let g = self.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            g.open(v)
        });
    }
    fn waker(&self) -> Option<Waker> {
        self.0.lock().unwrap().1.clone()
    }
    /// Waits (bounded) until a poll stored its waker.
    fn wait_polled(&self) -> Waker {
        for _ in 0..5000 {
            if let Some(w) = self.waker() {
                return w;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the future was never polled");
    }
}

impl Future for Gate {
    type Output = i64;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<i64> {
        let mut g = self.0.lock().unwrap();
        match g.0 {
            Some(v) => Poll::Ready(v),
            None => {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Counts live futures: one per value alive.
#[derive(Clone, Default)]
struct Witness(Arc<AtomicUsize>);

struct Alive(Arc<AtomicUsize>);

impl Witness {
    fn alive(&self) -> Alive {
        self.0.fetch_add(1, Ordering::SeqCst);
        Alive(self.0.clone())
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A state with darksidesync (as `package.loaded.darksidesync` and the
/// global `dss`) and a registered library.
fn state(id: &'static LibId) -> (Lua, Dss) {
    let lua = Lua::new();
    let m = darksidesync::open(&lua).unwrap();
    let loaded: Table = lua
        .globals()
        .get::<Table>("package")
        .unwrap()
        .get("loaded")
        .unwrap();
    loaded.set("darksidesync", &m).unwrap();
    lua.globals().set("dss", m).unwrap();
    let dss = Dss::register(&lua, id, "futures").unwrap();
    (lua, dss)
}

/// `gated(v)`: waits for the gate, returns gate value + v.
fn gated(lua: &Lua, dss: &Dss, gate: &Gate) -> Function {
    let gate = gate.clone();
    dss.create_async_function(lua, move |_, v: i64| {
        let gate = gate.clone();
        async move { Ok(gate.await + v) }
    })
    .unwrap()
}

/// `pending()`: never completes; `w` counts its futures alive.
fn pending(lua: &Lua, dss: &Dss, w: &Witness) -> Function {
    let w = w.clone();
    dss.create_async_function(lua, move |_, ()| {
        let alive = w.alive();
        async move {
            let _alive = alive;
            std::future::pending::<()>().await;
            Ok(())
        }
    })
    .unwrap()
}

fn exec(lua: &Lua, code: &str) {
    lua.load(code).exec().unwrap()
}

#[test]
fn a_ready_future_returns_at_once_without_a_post() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let add = dss
        .create_async_function(
            &lua,
            |_, (a, b): (i64, i64)| async move { Ok((a + b, "sum")) },
        )
        .unwrap();
    lua.globals().set("add", add).unwrap();
    exec(&lua, "a, b = add(2, 3)");
    assert_eq!(lua.globals().get::<i64>("a").unwrap(), 5);
    assert_eq!(lua.globals().get::<String>("b").unwrap(), "sum");
    assert_eq!(dss.stats().unwrap().posted, 0);
}

#[test]
fn bad_arguments_are_a_lua_error() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let add = dss
        .create_async_function(&lua, |_, (a, b): (i64, i64)| async move { Ok(a + b) })
        .unwrap();
    let e = add.call::<i64>(("x", 1)).unwrap_err().to_string();
    assert!(e.contains("bad argument #1"), "{e}");
}

#[test]
fn on_the_main_thread_the_call_runs_the_loop_until_the_result_is_in() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let gate = Gate::default();
    lua.globals().set("f", gated(&lua, &dss, &gate)).unwrap();
    gate.open_later(40, 20);
    exec(&lua, "r = f(2)");
    assert_eq!(lua.globals().get::<i64>("r").unwrap(), 42);
}

#[test]
fn a_plain_coroutine_is_suspended_and_resumed_by_darksidesync() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    dss.unref();
    let gate = Gate::default();
    lua.globals().set("f", gated(&lua, &dss, &gate)).unwrap();
    exec(
        &lua,
        "order = {}
         coroutine.wrap(function() local v = f(1); order[#order + 1] = v end)()
         order[#order + 1] = 'after wrap'",
    );
    gate.open_later(9, 20);
    // The pending future keeps run() alive although the library unref'd.
    exec(&lua, "ran = dss.run()");
    let order: Vec<mlua::Value> = lua
        .globals()
        .get::<Table>("order")
        .unwrap()
        .sequence_values()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(order.len(), 2);
    assert_eq!(order[0].to_string().unwrap(), "after wrap");
    assert_eq!(order[1].as_i64(), Some(10));
    assert_eq!(
        dss.stats().unwrap().keep_alive,
        0,
        "the task's hold is gone"
    );
}

#[test]
fn wakes_coalesce_into_one_post_while_a_poll_is_queued() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let gate = Gate::default();
    lua.globals().set("f", gated(&lua, &dss, &gate)).unwrap();
    exec(&lua, "coroutine.wrap(function() r = f(0) end)()");
    let w = gate.wait_polled();
    std::thread::spawn(move || {
        for _ in 0..1000 {
            w.wake_by_ref();
        }
    })
    .join()
    .unwrap();
    assert_eq!(dss.stats().unwrap().posted, 1, "1000 wakes, one post");
    exec(&lua, "dss.dispatch()");
    assert!(
        lua.globals().get::<Option<i64>>("r").unwrap().is_none(),
        "still pending"
    );
    gate.open(5);
    assert_eq!(dss.stats().unwrap().posted, 2);
    exec(&lua, "dss.dispatch()");
    assert_eq!(lua.globals().get::<i64>("r").unwrap(), 5);
}

#[test]
fn a_callback_of_dispatch_spawn_resumes_through_its_handler() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let gate = Gate::default();
    lua.globals().set("f", gated(&lua, &dss, &gate)).unwrap();
    exec(&lua, "cb = function(x) local v = f(x); done = v * 2 end");
    let poster = dss.clone();
    std::thread::spawn(move || {
        poster
            .post_callback(|lua| {
                Ok((
                    lua.globals().get("cb")?,
                    mlua::MultiValue::from_iter([mlua::Value::Integer(1)]),
                ))
            })
            .unwrap()
    })
    .join()
    .unwrap();
    exec(
        &lua,
        "dss.dispatch(nil, function(h) coroutine.wrap(h)() end)",
    );
    assert!(lua.globals().get::<Option<i64>>("done").unwrap().is_none());
    gate.open(20);
    exec(&lua, "assert(dss.wait(10)); dss.dispatch()");
    assert_eq!(lua.globals().get::<i64>("done").unwrap(), 42);
}

#[test]
fn errors_and_panics_reach_the_caller_with_a_traceback() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let gate = Gate::default();
    let g = gate.clone();
    let fail = dss
        .create_async_function(&lua, move |lua, how: String| {
            let g = g.clone();
            async move {
                g.await;
                match how.as_str() {
                    "rust" => Err(mlua::Error::runtime("rust says no")),
                    "lua" => lua.load("error('lua says no')").exec(),
                    _ => panic!("a panicking future"),
                }
            }
        })
        .unwrap();
    lua.globals().set("fail", fail).unwrap();
    dss.unref();
    gate.open(0);
    exec(
        &lua,
        "errs = {}
         for _, how in ipairs({'rust', 'lua', 'panic'}) do
           coroutine.wrap(function() errs[how] = select(2, pcall(fail, how)) end)()
         end
         dss.run()",
    );
    let errs: Table = lua.globals().get("errs").unwrap();
    let rust: String = errs.get("rust").unwrap();
    assert!(rust.starts_with("rust says no\nstack traceback:"), "{rust}");
    let l: String = errs.get("lua").unwrap();
    assert!(
        l.contains("lua says no") && l.contains("stack traceback:"),
        "{l}"
    );
    let p: String = errs.get("panic").unwrap();
    assert!(
        p.starts_with("panic in a future: a panicking future"),
        "{p}"
    );
}

#[test]
fn coroutine_close_drops_the_future_at_once() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let w = Witness::default();
    let f = pending(&lua, &dss, &w);
    lua.globals().set("f", f).unwrap();
    exec(
        &lua,
        "co = coroutine.create(f); assert(coroutine.resume(co))",
    );
    assert_eq!(w.count(), 1);
    assert_eq!(
        dss.stats().unwrap().keep_alive,
        2,
        "the registration's and the task's"
    );
    exec(&lua, "assert(coroutine.close(co))");
    assert_eq!(w.count(), 0, "dropped by the close");
    assert_eq!(dss.stats().unwrap().keep_alive, 1);
}

#[test]
fn a_coroutine_parked_by_a_scheduler_and_dropped_drops_its_future_when_collected() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let w = Witness::default();
    let f = pending(&lua, &dss, &w);
    lua.globals().set("f", f).unwrap();
    // A scheduler's parker: it holds the coroutine (here: nobody does).
    exec(
        &lua,
        "package.loaded['darksidesync.async'] = { parkers = { { park = function(settled)
           while not settled() do coroutine.yield('parked') end
           return true
         end } } }
         local co = coroutine.create(f)
         assert(select(2, coroutine.resume(co)) == 'parked')
         co = nil",
    );
    assert_eq!(w.count(), 1);
    exec(&lua, "collectgarbage(); collectgarbage()");
    assert_eq!(w.count(), 0, "collected with its coroutine");
}

#[test]
fn closing_a_state_with_1000_pending_futures_drops_them_all_and_later_wakes_do_nothing() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let w = Witness::default();
    let wakers = Arc::new(Mutex::new(Vec::<Waker>::new()));
    let (w2, k2) = (w.clone(), wakers.clone());
    let f = dss
        .create_async_function(&lua, move |lua, ()| {
            let alive = w2.alive();
            let wakers = k2.clone();
            // A Lua value, not the `Lua`: an owned state stays open while
            // a `Lua` is held (a stock interpreter's lua_close does not wait).
            let table = lua.create_table();
            async move {
                let _alive = alive;
                let _holds_lua_value = table?;
                std::future::poll_fn(|cx| {
                    wakers.lock().unwrap().push(cx.waker().clone());
                    Poll::<()>::Pending
                })
                .await;
                Ok(())
            }
        })
        .unwrap();
    lua.globals().set("f", f).unwrap();
    exec(&lua, "for i = 1, 1000 do coroutine.wrap(f)() end");
    assert_eq!(w.count(), 1000);
    drop(lua);
    assert_eq!(w.count(), 0, "every future dropped by lua_close");
    assert!(!dss.is_live());
    let wakers = std::mem::take(&mut *wakers.lock().unwrap());
    assert_eq!(wakers.len(), 1000);
    std::thread::spawn(move || wakers.into_iter().for_each(Waker::wake))
        .join()
        .unwrap();
}

#[test]
fn spawn_local_runs_a_detached_future_and_its_error_goes_to_the_error_handler() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    dss.unref();
    let gate = Gate::default();
    let g = gate.clone();
    dss.spawn_local(&lua, async move {
        let v = g.await;
        Err(mlua::Error::runtime(format!("detached failed with {v}")))
    })
    .unwrap();
    let l2 = lua.clone();
    dss.spawn_local(&lua, async move { l2.globals().set("second", "ran") })
        .unwrap();
    gate.open_later(7, 20);
    exec(
        &lua,
        "dss.seterrorhandler(function(e) caught = tostring(e) end)
         dss.run()",
    );
    assert_eq!(lua.globals().get::<String>("second").unwrap(), "ran");
    let caught: String = lua.globals().get("caught").unwrap();
    assert!(caught.contains("detached failed with 7"), "{caught}");
}

#[test]
fn an_unregistered_library_cancels_a_main_thread_wait() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let gate = Gate::default();
    lua.globals().set("f", gated(&lua, &dss, &gate)).unwrap();
    let d2 = dss.clone();
    let g2 = gate.clone();
    std::thread::spawn(move || {
        g2.wait_polled();
        d2.unregister();
    });
    let e = lua.load("f(1)").exec().unwrap_err().to_string();
    assert!(e.contains("cancelled"), "{e}");
}

#[test]
fn inside_a_callback_outside_a_coroutine_the_call_is_a_clear_error() {
    static ID: LibId = LibId::new();
    let (lua, dss) = state(&ID);
    let gate = Gate::default();
    lua.globals().set("f", gated(&lua, &dss, &gate)).unwrap();
    let poster = dss.clone();
    std::thread::spawn(move || {
        poster
            .post(|lua| {
                let r = lua.load("return pcall(f, 1)").eval::<(bool, String)>()?;
                lua.globals().set("inside", r.1)
            })
            .unwrap()
    })
    .join()
    .unwrap();
    exec(&lua, "dss.dispatch()");
    let e: String = lua.globals().get("inside").unwrap();
    assert!(e.contains("cannot wait for an async function here"), "{e}");
}
