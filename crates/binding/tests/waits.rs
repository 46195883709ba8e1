//! How long closures waited in the queue: `Dss::waits` and
//! `Dss::state_waits`, through the module's 2v0 `waits()`.

use std::time::Duration;

use darksidesync_binding::{Dss, Error, LibId};
use mlua::{Function, Lua, Table};

/// Closures are held back at least this long before they run.
const HELD: Duration = Duration::from_millis(30);

fn dispatch(t: &Table) -> i64 {
    t.get::<Function>("dispatch").unwrap().call(()).unwrap()
}

#[test]
fn waits_are_none_while_timing_is_off_and_measured_while_on() {
    static ID: LibId = LibId::new();
    static QUIET: LibId = LibId::new();
    let lua = Lua::new();
    let t = darksidesync::open(&lua).unwrap();
    let dss = Dss::register(&lua, &ID, "waiter").unwrap();
    let quiet = Dss::register(&lua, &QUIET, "quiet").unwrap();
    assert_eq!(dss.waits(), Ok(None));
    assert_eq!(dss.state_waits(), Ok(None));

    let timing: Function = t.get("timing").unwrap();
    assert!(!timing.call::<bool>(true).unwrap());
    assert_eq!(dss.waits().unwrap().map(|w| w.count), Some(0));
    std::thread::spawn({
        let dss = dss.clone();
        move || {
            for _ in 0..3 {
                dss.post(|_| Ok(())).unwrap();
            }
        }
    })
    .join()
    .unwrap();
    std::thread::sleep(HELD);
    assert_eq!(dispatch(&t), 3);
    let w = dss.waits().unwrap().expect("timing is on");
    assert_eq!(w.count, 3);
    assert!(w.p50 >= HELD && w.max >= w.p99 && w.p99 >= w.p50, "{w:?}");
    assert_eq!(dss.state_waits().unwrap().map(|w| w.count), Some(3));
    // Another library of the state: its own items only (none).
    assert_eq!(quiet.waits().unwrap().map(|w| w.count), Some(0));
    assert_eq!(quiet.state_waits().unwrap().map(|w| w.count), Some(3));

    assert!(timing.call::<bool>(false).unwrap());
    assert_eq!(dss.waits(), Ok(None));
    assert!(dss.unregister());
    assert_eq!(dss.waits(), Err(Error::Stale));
}
