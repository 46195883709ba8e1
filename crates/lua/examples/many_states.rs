//! Many Lua states fed by one background library: `states` threads each run
//! their own Lua 5.4 state (vendored) with darksidesync opened through
//! [`darksidesync::open`] and a port registered through
//! [`StateHub::register`]; one producer thread posts `items` integers
//! round-robin across the states. Each state waits and dispatches in Lua.
//!
//! ```sh
//! cargo run --release -p darksidesync-lua --example many_states -- <states> <items>
//! ```
//!
//! Prints `RESULT states=.. items=.. secs=.. items_per_s=..` (the format
//! `cargo xtask bench` parses).
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use darksidesync::{Callback, Data, Item, StateHub};
use mlua::{Function, Lua};

const LOOP: &str = r#"
local dss, expected, count = ...
local wait, dispatch = dss.wait, dss.dispatch
while count() < expected do
  wait()
  dispatch()
end
return count()
"#;

fn main() -> mlua::Result<()> {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let states = args.next().unwrap_or(8).max(1);
    let items = args.next().unwrap_or(4_000_000);
    let per_state = items / states;
    let total = per_state * states;

    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = (0..states)
        .map(|_| mpsc::channel::<()>())
        .unzip::<_, _, Vec<_>, Vec<_>>();
    let consumers: Vec<_> = go_rx
        .into_iter()
        .map(|go| {
            let ready = ready_tx.clone();
            thread::spawn(move || -> Result<u64, String> {
                let run = || -> mlua::Result<u64> {
                    let lua = Lua::new();
                    let dss = darksidesync::open(&lua)?;
                    let port = StateHub::get(&lua)?
                        .register("many_states", |_| {})
                        .map_err(|e| mlua::Error::runtime(e.to_string()))?;
                    let (callback, count): (Function, Function) = lua
                        .load(
                            "local n = 0 return function(i) n = n + 1 end, function() return n end",
                        )
                        .eval()?;
                    let key = Callback::new(&lua, callback)?;
                    ready.send((port, key)).expect("main is waiting");
                    go.recv().expect("main says go");
                    lua.load(LOOP)
                        .set_name("=many_states")
                        .call::<u64>((dss, per_state, count))
                };
                run().map_err(|e| e.to_string())
            })
        })
        .collect();
    drop(ready_tx);
    let targets: Vec<_> = ready_rx.iter().take(states as usize).collect();

    let start = Instant::now();
    go_tx
        .iter()
        .for_each(|g| g.send(()).expect("consumer is waiting"));
    let producer = thread::spawn(move || {
        for i in 0..total {
            let (port, callback) = &targets[(i % states) as usize];
            let item = Item::call(callback, Data::Integer(i as i64));
            if port.post(item).is_err() {
                panic!("post refused");
            }
        }
    });
    let mut got = 0;
    for c in consumers {
        got += c
            .join()
            .expect("consumer thread")
            .map_err(mlua::Error::runtime)?;
    }
    let secs = start.elapsed().as_secs_f64();
    producer.join().expect("producer thread");
    assert_eq!(got, total);
    println!(
        "RESULT states={states} items={total} secs={secs} items_per_s={}",
        total as f64 / secs
    );
    Ok(())
}
