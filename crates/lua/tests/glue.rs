//! The Lua glue tested in-process with a vendored Lua 5.4: what the busted
//! specs cannot observe from inside one interpreter (closing the state).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use darksidesync::{Callback, Data, DataReply, Item, Prepared, StateHub};
use darksidesync_core::{CallError, PostErrorKind};
use mlua::{Lua, Table, Value};

fn lua_with_module() -> (Lua, Table) {
    let lua = Lua::new();
    let module = darksidesync::open(&lua).unwrap();
    lua.globals().set("dss", module.clone()).unwrap();
    (lua, module)
}

/// Counts its drops: the cancel path of an item.
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn closing_the_state_releases_callers_and_drops_items_once() {
    let (lua, _) = lua_with_module();
    let st = StateHub::get(&lua).unwrap();
    let cancelled = Arc::new(AtomicUsize::new(0));
    let port = {
        let cancelled = cancelled.clone();
        st.register("test", move |_| {
            cancelled.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
    };
    drop(st);

    let drops = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let guard = DropCount(drops.clone());
        port.post(Item::from_fn(move |_| {
            drop(guard);
            Ok(Prepared {
                call: None,
                reply: None,
            })
        }))
        .unwrap();
    }
    let caller = {
        let port = port.clone();
        thread::spawn(move || {
            port.call(
                |r| {
                    Item::from_fn(move |_| {
                        Ok(Prepared {
                            call: None,
                            reply: Some(Box::new(DataReply(r))),
                        })
                    })
                },
                None,
            )
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while lua.load("return dss.queuesize()").eval::<i64>().unwrap() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the call never reached the queue"
        );
        thread::sleep(Duration::from_millis(1));
    }
    drop(lua);

    assert_eq!(caller.join().unwrap(), Err(CallError::Closed));
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    assert_eq!(cancelled.load(Ordering::SeqCst), 1);
    let refused = port
        .post(Item::from_fn(|_| {
            Ok(Prepared {
                call: None,
                reply: None,
            })
        }))
        .unwrap_err();
    assert_eq!(refused.kind, PostErrorKind::Closed);
}

#[test]
fn poll_shape_and_dispatch_reply_from_rust_items() {
    let (lua, _) = lua_with_module();
    let st = StateHub::get(&lua).unwrap();
    let port = st.register("test", |_| {}).unwrap();
    drop(st);
    port.post(Item::from_fn(|lua| {
        let cb: Value = lua
            .load("return function(...) return select('#', ...) end")
            .eval()?;
        Ok(Prepared {
            call: Some((
                cb,
                Data::to_multi(&[Data::Nil, Data::Integer(2), Data::Nil], lua)?,
            )),
            reply: None,
        })
    }))
    .unwrap();
    let (count, n): (i64, i64) = lua
        .load("local c, f, a = dss.poll() return c, a.n")
        .eval()
        .unwrap();
    assert_eq!((count, n), (0, 3));

    let caller = thread::spawn(move || {
        port.call(
            |r| {
                Item::from_fn(move |lua| {
                    let cb: Value = lua
                        .load("return function(a) return a * 2, 'ok' end")
                        .eval()?;
                    Ok(Prepared {
                        call: Some((cb, Data::to_multi(&[Data::Integer(21)], lua)?)),
                        reply: Some(Box::new(DataReply(r))),
                    })
                })
            },
            None,
        )
    });
    let ran: i64 = lua
        .load("assert(dss.wait(30)) return dss.dispatch()")
        .eval()
        .unwrap();
    assert_eq!(ran, 1);
    assert_eq!(
        caller.join().unwrap(),
        Ok(vec![Data::Integer(42), Data::String(b"ok".to_vec())])
    );
}

#[test]
fn bad_arguments_raise_plain_string_errors() {
    let (lua, _) = lua_with_module();
    let (ok, err): (bool, Value) = lua.load("return pcall(dss.setport, 70000)").eval().unwrap();
    assert!(!ok);
    let Value::String(s) = err else {
        panic!("error is not a string: {err:?}")
    };
    assert_eq!(
        s.to_str().unwrap(),
        "Invalid UDP port number, use an integer value from 1 to 65535, or 0 to disable UDP notification"
    );
}

#[test]
fn one_hub_per_state() {
    let (a, _) = lua_with_module();
    let (b, _) = lua_with_module();
    let fa: i64 = a.load("return dss.fd()").eval().unwrap();
    let fa2: i64 = a.load("return require and dss.fd()").eval().unwrap();
    let fb: i64 = b.load("return dss.fd()").eval().unwrap();
    assert_eq!(fa, fa2);
    assert_ne!(fa, fb);
    darksidesync::open(&a).unwrap();
    let again: i64 = a.load("return dss.fd()").eval().unwrap();
    assert_eq!(fa, again);
}

/// `Item::call` items (the fast dispatch path) keep the contract of every
/// other item: FIFO with boxed tasks, errors to the handler without losing
/// the next item, every argument type, and the same shape through `poll()`.
#[test]
fn call_items_keep_fifo_errors_and_argument_types() {
    let (lua, _) = lua_with_module();
    let st = StateHub::get(&lua).unwrap();
    let port = st.register("calls", |_| {}).unwrap();
    lua.load("seen, errors = {}, {} dss.seterrorhandler(function(e) errors[#errors + 1] = tostring(e) return e end)")
        .exec()
        .unwrap();
    let record: mlua::Function = lua
        .load("return function(v) if v == 'boom' or v == 13 then error('failed at ' .. tostring(v)) end seen[#seen + 1] = v == nil and 'nil' or v end")
        .eval()
        .unwrap();
    let cb = Callback::new(&lua, record).unwrap();
    let items = [
        Data::Integer(1),
        Data::Integer(13),
        Data::Number(2.5),
        Data::Boolean(true),
        Data::Nil,
        Data::String(b"s".to_vec()),
        Data::String(b"boom".to_vec()),
    ];
    for (i, d) in items.into_iter().enumerate() {
        port.post(Item::call(&cb, d)).unwrap();
        if i == 2 {
            // A boxed task between call items: order is kept across both paths.
            port.post(Item::from_fn(|lua| {
                let f: mlua::Function = lua
                    .load("return function() seen[#seen + 1] = 'task' end")
                    .eval()?;
                Ok(Prepared {
                    call: Some((Value::Function(f), mlua::MultiValue::new())),
                    reply: None,
                })
            }))
            .unwrap();
        }
    }
    let ran: i64 = lua.load("return dss.dispatch()").eval().unwrap();
    assert_eq!(ran, 8);
    let seen: String = lua.load("local t = {} for i, v in ipairs(seen) do t[i] = tostring(v) end return table.concat(t, ',')").eval().unwrap();
    assert_eq!(seen, "1,2.5,task,true,nil,s");
    let errors: String = lua.load("return table.concat(errors, '|')").eval().unwrap();
    assert!(
        errors.contains("failed at 13") && errors.contains("failed at boom"),
        "{errors}"
    );
    // Integers stay integers on Lua 5.4.
    assert!(lua
        .load("return math.type(seen[1]) == 'integer'")
        .eval::<bool>()
        .unwrap());

    // poll() hands the same item out as callback + args.
    port.post(Item::call(&cb, Data::Integer(7))).unwrap();
    let shape: String =
        lua.load("local n, f, args = dss.poll() f(table.unpack(args, 1, args.n)) return n .. ':' .. args.n .. ':' .. tostring(seen[#seen])").eval().unwrap();
    assert_eq!(shape, "0:1:7");
}

/// A callback kept in one state and posted to another is never called
/// there: the other state's error handler hears about it.
#[test]
fn call_items_with_a_callback_of_another_state_are_reported() {
    let (a, _) = lua_with_module();
    let (b, _) = lua_with_module();
    let f: mlua::Function = a
        .load("return function() called = true end")
        .eval()
        .unwrap();
    let foreign = Callback::new(&a, f).unwrap();
    let port_b = StateHub::get(&b).unwrap().register("b", |_| {}).unwrap();
    let g: mlua::Function = b.load("return function(v) last = v end").eval().unwrap();
    let local = Callback::new(&b, g).unwrap();
    b.load("errors = 0 dss.seterrorhandler(function(e) errors = errors + 1 return e end)")
        .exec()
        .unwrap();
    port_b.post(Item::call(&local, Data::Integer(1))).unwrap();
    port_b.post(Item::call(&foreign, Data::Integer(2))).unwrap();
    port_b.post(Item::call(&local, Data::Integer(3))).unwrap();
    assert_eq!(b.load("return dss.dispatch()").eval::<i64>().unwrap(), 3);
    assert_eq!(b.load("return errors").eval::<i64>().unwrap(), 1);
    assert_eq!(b.load("return last").eval::<i64>().unwrap(), 3);
    assert!(b.load("return called == nil").eval::<bool>().unwrap());
}

#[test]
fn run_returns_right_after_the_callback_that_called_stop() {
    // Both dispatch paths: scalar call items (the C API loop) and tasks.
    for tasks in [false, true] {
        let (lua, _) = lua_with_module();
        let st = StateHub::get(&lua).unwrap();
        let port = st.register("test", |_| {}).unwrap();
        let f = lua
            .load("local n = 0; return function() n = n + 1; if n == 3 then dss.stop() end; return n end")
            .eval::<mlua::Function>()
            .unwrap();
        let cb = Callback::new(&lua, f.clone()).unwrap();
        for i in 0..10 {
            let item = if tasks {
                let key = Arc::new(lua.create_registry_value(f.clone()).unwrap());
                Item::from_fn(move |lua| {
                    Ok(Prepared {
                        call: Some((lua.registry_value(&key)?, mlua::MultiValue::new())),
                        reply: None,
                    })
                })
            } else {
                Item::call(&cb, Data::Integer(i))
            };
            port.post(item).unwrap();
        }
        let ran: i64 = lua.load("return dss.run()").eval().unwrap();
        assert_eq!(ran, 3, "tasks: {tasks}");
        let left: i64 = lua.load("return dss.queuesize()").eval().unwrap();
        assert_eq!(left, 7, "tasks: {tasks}");
    }
}

#[test]
fn dispatch_does_not_count_a_call_it_skipped() {
    // A task that finds its caller gone (timed out) has nothing to call,
    // as a 2v0 call whose caller timed out does.
    let (lua, _) = lua_with_module();
    let st = StateHub::get(&lua).unwrap();
    let port = st.register("test", |_| {}).unwrap();
    drop(st);
    let ran_callbacks = Arc::new(AtomicUsize::new(0));
    let counted = ran_callbacks.clone();
    let f = lua
        .create_function(move |_, ()| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    let key = Arc::new(lua.create_registry_value(f).unwrap());
    let post_one = |port: &darksidesync_core::Port<Item>| {
        let key = key.clone();
        port.post(Item::from_fn(move |lua| {
            Ok(Prepared {
                call: Some((lua.registry_value(&key)?, mlua::MultiValue::new())),
                reply: None,
            })
        }))
        .unwrap();
    };
    post_one(&port);
    let caller = port.clone();
    let result = thread::spawn(move || {
        caller.call(
            |r: darksidesync_core::Reply<Vec<Data>>| {
                Item::from_fn(move |lua| {
                    let call = if r.is_abandoned() {
                        None
                    } else {
                        let cb: Value = lua.load("return function() end").eval()?;
                        Some((cb, mlua::MultiValue::new()))
                    };
                    Ok(Prepared {
                        call,
                        reply: Some(Box::new(DataReply(r))),
                    })
                })
            },
            Some(Duration::from_millis(1)),
        )
    })
    .join()
    .unwrap();
    assert_eq!(result, Err(CallError::TimedOut));
    post_one(&port);
    let ran: i64 = lua.load("return dss.dispatch()").eval().unwrap();
    assert_eq!(ran, 2);
    assert_eq!(ran_callbacks.load(Ordering::SeqCst), 2);
    let left: i64 = lua.load("return dss.queuesize()").eval().unwrap();
    assert_eq!(left, 0);
}
