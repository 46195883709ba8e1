//! Posts and calls: closed states, timeouts, a full queue, unregistering,
//! and how a failing closure's error comes back.

use std::sync::Arc;
use std::time::Duration;

use darksidesync_binding::{Dss, Error, LibId};
use mlua::{Function, Lua, Table};

fn open(lua: &Lua) -> Table {
    darksidesync::open(lua).unwrap()
}

#[test]
fn a_closed_state_gives_closed_and_drops_queued_closures() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    open(&lua);
    let dss = Dss::register(&lua, &ID, "closing").unwrap();
    let dropped = Arc::new(());
    let witness = dropped.clone();
    std::thread::spawn({
        let dss = dss.clone();
        move || {
            dss.post(move |_| {
                let _w = witness;
                Ok(())
            })
        }
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(Arc::strong_count(&dropped), 2, "queued, not run");
    drop(lua);
    assert_eq!(Arc::strong_count(&dropped), 1, "dropped with the state");
    assert!(!dss.is_live());
    let r = std::thread::spawn(move || (dss.post(|_| Ok(())), dss.call(|_| Ok(1), None)))
        .join()
        .unwrap();
    assert_eq!(r.0, Err(Error::Closed));
    assert_eq!(r.1, Err(Error::Closed));
}

#[test]
fn a_call_times_out_when_nobody_dispatches() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    open(&lua);
    let dss = Dss::register(&lua, &ID, "timeout").unwrap();
    let r = std::thread::spawn(move || dss.call(|_| Ok(1), Some(Duration::from_millis(20))))
        .join()
        .unwrap();
    assert_eq!(r, Err(Error::TimedOut));
}

#[test]
fn a_full_queue_refuses_try_post_and_try_call() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    m.get::<Function>("setcapacity")
        .unwrap()
        .call::<()>(1)
        .unwrap();
    let dss = Dss::register(&lua, &ID, "full").unwrap();
    let r = std::thread::spawn(move || {
        dss.try_post(|_| Ok(())).unwrap();
        (dss.try_post(|_| Ok(())), dss.try_call(|_| Ok(()), None))
    })
    .join()
    .unwrap();
    assert_eq!(r.0, Err(Error::Full));
    assert_eq!(r.1, Err(Error::Full));
}

#[test]
fn unregister_cancels_and_makes_the_handle_stale() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    open(&lua);
    let dss = Dss::register(&lua, &ID, "unreg").unwrap();
    assert!(dss.unregister());
    assert!(!dss.unregister());
    let r = std::thread::spawn(move || dss.post(|_| Ok(())))
        .join()
        .unwrap();
    assert_eq!(r, Err(Error::Stale));
}

/// Dispatches on this thread until the worker is done; returns its result.
fn dispatch_until_done<T: Send + 'static>(m: &Table, worker: std::thread::JoinHandle<T>) -> T {
    let wait: Function = m.get("wait").unwrap();
    let dispatch: Function = m.get("dispatch").unwrap();
    while !worker.is_finished() {
        if wait.call::<bool>(0.01).unwrap() {
            dispatch.call::<()>(()).unwrap();
        }
    }
    worker.join().unwrap()
}

#[test]
fn a_failing_call_gives_the_message_and_the_traceback_apart() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    lua.load("function filter() error('filter failed') end")
        .set_name("@mb.lua")
        .exec()
        .unwrap();
    let dss = Dss::register(&lua, &ID, "errors").unwrap();
    let worker = std::thread::spawn({
        let dss = dss.clone();
        move || {
            dss.call(
                |lua| lua.globals().get::<Function>("filter")?.call::<()>(()),
                None,
            )
        }
    });
    let err = dispatch_until_done(&m, worker).unwrap_err();
    let Error::Lua(e) = err else {
        panic!("expected a Lua error, got {err:?}")
    };
    assert_eq!(e.message(), "mb.lua:1: filter failed");
    let tb = e.traceback().expect("a traceback");
    assert!(tb.starts_with("stack traceback:"), "{tb}");
    assert!(!e.message().contains("stack traceback"));
}

#[test]
fn failed_closures_count_in_stats_errors() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    let dss = Dss::register(&lua, &ID, "counted").unwrap();
    let worker = std::thread::spawn({
        let dss = dss.clone();
        move || {
            let ok = dss.call(|_| Ok(1), None);
            let failed = dss.call(|_| Err::<(), _>(mlua::Error::runtime("no")), None);
            let panicked = dss.call(|_| -> mlua::Result<()> { panic!("oops") }, None);
            (ok, failed, panicked)
        }
    });
    let (ok, failed, panicked) = dispatch_until_done(&m, worker);
    assert_eq!(ok, Ok(1));
    assert!(
        matches!(failed, Err(Error::Lua(ref e)) if e.message() == "no"),
        "{failed:?}"
    );
    assert_eq!(panicked, Err(Error::Panicked("oops".into())));
    let s = dss.stats().unwrap();
    assert_eq!((s.replies, s.errors), (1, 2), "{s:?}");
}

#[test]
fn a_prepared_callback_is_called_by_darksidesync_and_answers_the_call() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    lua.load("function add(a, b) return a + b, 'sum' end function bad() error({ code = 7 }) end")
        .exec()
        .unwrap();
    // The error handler sees the error value as raised (a table here).
    lua.load("seen = nil").exec().unwrap();
    m.get::<Function>("seterrorhandler")
        .unwrap()
        .call::<()>(
            lua.load("function(e) seen = e.code end")
                .eval::<Function>()
                .unwrap(),
        )
        .unwrap();
    let dss = Dss::register(&lua, &ID, "prepared").unwrap();
    let worker = std::thread::spawn({
        let dss = dss.clone();
        move || {
            dss.post_callback(|lua| Ok((lua.globals().get("bad")?, mlua::MultiValue::new())))
                .unwrap();
            dss.call_callback(
                |lua| {
                    let args = mlua::IntoLuaMulti::into_lua_multi((2, 3), lua)?;
                    Ok((lua.globals().get("add")?, args))
                },
                |_, values| {
                    let v: Vec<String> = values
                        .iter()
                        .map(|v| v.to_string().unwrap_or_default())
                        .collect();
                    Ok(v)
                },
                None,
                false,
            )
        }
    });
    let answer = dispatch_until_done(&m, worker).unwrap();
    assert_eq!(answer, vec!["5".to_string(), "sum".to_string()]);
    assert_eq!(lua.globals().get::<i64>("seen").unwrap(), 7);
}

#[test]
fn stats_count_each_librarys_posts_runs_refusals_and_cancellations() {
    static A: LibId = LibId::new();
    static B: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    m.get::<Function>("setcapacity")
        .unwrap()
        .call::<()>(3)
        .unwrap();
    let a = Dss::register(&lua, &A, "a").unwrap();
    let b = Dss::register(&lua, &B, "b").unwrap();
    let refused = std::thread::spawn({
        let (a, b) = (a.clone(), b.clone());
        move || {
            a.try_post(|_| Ok(())).unwrap();
            a.try_post(|_| Ok(())).unwrap();
            b.try_post(|_| Ok(())).unwrap();
            a.try_post(|_| Ok(()))
        }
    })
    .join()
    .unwrap();
    assert_eq!(refused, Err(Error::Full));
    m.get::<Function>("dispatch")
        .unwrap()
        .call::<()>(())
        .unwrap();
    std::thread::spawn({
        let a = a.clone();
        move || {
            a.post(|_| Ok(())).unwrap();
            a.post(|_| Ok(())).unwrap();
        }
    })
    .join()
    .unwrap();
    let s = a.stats().unwrap();
    assert_eq!(
        (s.posted, s.ran, s.cancelled, s.refused),
        (4, 2, 0, 1),
        "{s:?}"
    );
    let queued = 2;
    assert_eq!(s.posted, s.ran + s.cancelled + queued);
    let s = b.stats().unwrap();
    assert_eq!((s.posted, s.ran, s.refused), (1, 1, 0), "{s:?}");
    drop(lua);
    let s = a.stats().unwrap();
    assert_eq!((s.posted, s.ran, s.cancelled), (4, 2, 2), "{s:?}");
    assert_eq!(s.posted, s.ran + s.cancelled, "nothing queued once closed");
}
