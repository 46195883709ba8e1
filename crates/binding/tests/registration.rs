//! Registering with a state's darksidesync: discovery, loading the module,
//! identity, keep-alive by default, the close notification.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use darksidesync_binding::{Dss, LibId};
use mlua::{Function, Lua, Table};

fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

/// Fails the test process if it is not dropped within `limit`: a `run()`
/// that never returns fails the suite instead of hanging it.
struct Watchdog(mpsc::Sender<()>);

fn watchdog(what: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            eprintln!("{what}: still waiting after {} s", limit.as_secs());
            std::process::exit(101);
        }
    });
    Watchdog(tx)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn the_handle_is_send_sync_clone() {
    assert_send_sync_clone::<Dss>();
}

#[test]
fn registering_where_darksidesync_cannot_be_found_is_a_clear_lua_error() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let e = Dss::register(&lua, &ID, "mylib").unwrap_err().to_string();
    assert!(
        e.contains("mylib: cannot load darksidesync (require \"darksidesync\" failed): module 'darksidesync' not found"),
        "{e}"
    );
}

#[test]
fn registering_loads_darksidesync_through_require() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    // As a stock interpreter would find it on package.cpath.
    let preload: Table = lua
        .globals()
        .get::<Table>("package")
        .unwrap()
        .get("preload")
        .unwrap();
    preload
        .set(
            "darksidesync",
            lua.create_function(|lua, ()| darksidesync::open(lua))
                .unwrap(),
        )
        .unwrap();
    let dss = Dss::register(&lua, &ID, "autoload").unwrap();
    assert!(dss.is_live());
    let loaded: Table = lua
        .load("return package.loaded.darksidesync")
        .eval()
        .unwrap();
    assert!(loaded.contains_key("run").unwrap());
}

#[test]
fn registering_twice_gives_the_same_library() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    darksidesync::open(&lua).unwrap();
    let a = Dss::register(&lua, &ID, "twice").unwrap();
    let b = Dss::register(&lua, &ID, "twice").unwrap();
    assert_eq!(a, b);
    assert!(a.is_live());
    assert_eq!(
        a.stats().unwrap().keep_alive,
        1,
        "one registration, one reference"
    );
}

#[test]
fn a_registered_library_keeps_run_alive_until_it_lets_go() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = darksidesync::open(&lua).unwrap();
    let dss = Dss::register(&lua, &ID, "keeps").unwrap();
    assert_eq!(dss.stats().unwrap().keep_alive, 1);
    let worker = std::thread::spawn({
        let dss = dss.clone();
        move || {
            // run() is already waiting (or about to): nothing is lost.
            std::thread::sleep(std::time::Duration::from_millis(50));
            dss.post(|lua| lua.globals().set("ran", true)).unwrap();
            // Unregistering would drop the queued post; letting go of
            // run() does not.
            dss.unref();
        }
    });
    let dog = watchdog("run() kept alive by the registration", LIMIT);
    m.get::<Function>("run").unwrap().call::<()>(()).unwrap();
    drop(dog);
    worker.join().unwrap();
    assert!(
        lua.globals().get::<bool>("ran").unwrap(),
        "run() returned before the post"
    );
}

#[test]
fn unref_lets_run_return_and_a_hold_keeps_it() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = darksidesync::open(&lua).unwrap();
    let run: Function = m.get("run").unwrap();
    let dss = Dss::register(&lua, &ID, "unref").unwrap();
    assert!(dss.unref());
    assert!(!dss.unref(), "already let go");
    assert_eq!(dss.stats().unwrap().keep_alive, 0);
    let dog = watchdog("run() held by nothing", LIMIT);
    assert_eq!(run.call::<i64>(()).unwrap(), 0, "nothing holds run()");
    drop(dog);

    let hold = dss.hold().unwrap();
    let worker = std::thread::spawn({
        let dss = dss.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            dss.post(|lua| lua.globals().set("ran", true)).unwrap();
            drop(hold);
        }
    });
    let dog = watchdog("run() held by a Hold", LIMIT);
    assert_eq!(run.call::<i64>(()).unwrap(), 1);
    drop(dog);
    worker.join().unwrap();
    assert!(lua.globals().get::<bool>("ran").unwrap());

    dss.reference().unwrap();
    assert_eq!(dss.stats().unwrap().keep_alive, 1);
    dss.reference().unwrap();
    assert_eq!(
        dss.stats().unwrap().keep_alive,
        1,
        "one registration reference"
    );
}

#[test]
fn on_close_runs_once_when_the_state_closes() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    darksidesync::open(&lua).unwrap();
    let dss = Dss::register(&lua, &ID, "closes").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    dss.on_close(move || {
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    drop(lua);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    dss.unregister(); // forgets the closed state's record
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not again");
}

#[test]
fn on_close_runs_once_when_the_library_unregisters() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    darksidesync::open(&lua).unwrap();
    let dss = Dss::register(&lua, &ID, "unregisters").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    dss.on_close(move || {
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert!(dss.unregister());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    drop(lua);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not again at close");
}

#[test]
fn on_finalize_runs_once_on_the_lua_thread_after_unregister_and_the_last_closure() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = darksidesync::open(&lua).unwrap();
    let dss = Dss::register(&lua, &ID, "finalizes").unwrap();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    dss.on_finalize(move |lua| {
        let ran: i64 = lua.map_or(-1, |l| l.globals().get("ran").unwrap_or(-2));
        s.lock().unwrap().push(format!("finalized after {ran}"));
    })
    .unwrap();
    lua.globals().set("ran", 0).unwrap();
    let worker = std::thread::spawn({
        let dss = dss.clone();
        move || {
            for _ in 0..100 {
                dss.post(|lua| {
                    let n: i64 = lua.globals().get("ran")?;
                    lua.globals().set("ran", n + 1)
                })
                .unwrap();
            }
            assert!(dss.unregister());
        }
    });
    worker.join().unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "not before the Lua thread's turn"
    );
    let dispatch: Function = m.get("dispatch").unwrap();
    dispatch.call::<i64>(()).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["finalized after 0"],
        "queued closures were dropped, then it ran"
    );
    dispatch.call::<i64>(()).unwrap();
    drop(lua);
    assert_eq!(seen.lock().unwrap().len(), 1, "once");
}

#[test]
fn on_finalize_runs_at_close_without_lua() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    darksidesync::open(&lua).unwrap();
    let dss = Dss::register(&lua, &ID, "finalizes at close").unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let c = calls.clone();
    dss.on_finalize(move |lua| c.lock().unwrap().push(lua.is_some()))
        .unwrap();
    dss.post(|_| Ok(())).unwrap();
    drop(lua);
    assert_eq!(
        *calls.lock().unwrap(),
        [false],
        "once, at close, without a Lua"
    );
    dss.unregister();
    assert_eq!(calls.lock().unwrap().len(), 1, "not again");
}
