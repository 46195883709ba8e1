//! Registering with a state's darksidesync: discovery, loading the module,
//! identity, keep-alive by default, the close notification.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use darksidesync_binding::{Dss, LibId};
use mlua::{Function, Lua, Table};

fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

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
    m.get::<Function>("run").unwrap().call::<()>(()).unwrap();
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
    assert_eq!(run.call::<i64>(()).unwrap(), 0, "nothing holds run()");

    let hold = dss.hold().unwrap();
    let worker = std::thread::spawn({
        let dss = dss.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            dss.post(|lua| lua.globals().set("ran", true)).unwrap();
            drop(hold);
        }
    });
    assert_eq!(run.call::<i64>(()).unwrap(), 1);
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
