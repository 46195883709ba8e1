//! `dssrust`: an example library built as its own cdylib with mlua that
//! uses `darksidesync-binding`. Loaded by a stock interpreter (it loads
//! darksidesync itself):
//!
//! ```lua
//! local dssrust = require "dssrust"
//! dssrust.post(callback, n [, letgo])       -- a thread posts n closures; each calls callback(i) on the Lua thread;
//!                                           -- with letgo, the thread then lets run() return (Dss::unref)
//! local job = dssrust.call(callback, arg [, timeout_seconds])
//!                                           -- a thread calls callback(arg) on the Lua thread and waits
//! job:done() --> boolean
//! job:result() --> "ok", value | "lua", message, traceback | "timed out" | "closed" | "cancelled" | ...
//! dssrust.callhere(callback) --> the outcome of a call made on the Lua thread itself
//! dssrust.reference()                       -- keeps run() waiting again (Dss::reference)
//! dssrust.stats() --> { posted = , ran = , errors = , keep_alive = , ... }
//! ```
//!
//! Callbacks stay in this state's registry (a table keyed by number), so
//! only plain data crosses threads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use darksidesync_binding::{Dss, Error, LibId};
use mlua::{Function, Lua, Table, UserData, UserDataMethods, Value};

static LIB: LibId = LibId::new();

/// This library's per-state data: the handle and the callbacks.
struct State {
    dss: Dss,
}

const CALLBACKS: &str = "dssrust.callbacks";

fn keep_callback(lua: &Lua, f: Function) -> mlua::Result<i64> {
    let t: Table = lua.named_registry_value(CALLBACKS)?;
    let id = t.raw_len() as i64 + 1;
    t.raw_set(id, f)?;
    Ok(id)
}

fn callback(lua: &Lua, id: i64) -> mlua::Result<Function> {
    lua.named_registry_value::<Table>(CALLBACKS)?.raw_get(id)
}

fn handle_of(lua: &Lua) -> mlua::Result<Dss> {
    lua.app_data_ref::<State>()
        .map(|s| s.dss.clone())
        .ok_or_else(|| mlua::Error::runtime("dssrust: not initialised"))
}

/// A call made by a background thread, as Lua userdata.
struct Job(Arc<Mutex<Option<Result<String, Error>>>>);

impl UserData for Job {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("done", |_, this, ()| Ok(this.0.lock().unwrap().is_some()));
        m.add_method("result", |_, this, ()| {
            Ok(match this.0.lock().unwrap().clone() {
                None => (None, None, None),
                Some(Ok(v)) => (Some("ok".to_string()), Some(v), None),
                Some(Err(Error::Lua(e))) => (
                    Some("lua".to_string()),
                    Some(e.message().to_string()),
                    e.traceback().map(str::to_string),
                ),
                Some(Err(e)) => (Some(kind(&e).to_string()), None, None),
            })
        });
    }
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::Closed => "closed",
        Error::Cancelled => "cancelled",
        Error::TimedOut => "timed out",
        Error::Full => "full",
        Error::WouldDeadlock => "would deadlock",
        Error::Lua(_) => "lua",
        Error::Panicked(_) => "panicked",
        Error::Stale => "stale",
        _ => "other",
    }
}

/// Builds the module table (also usable in-process for tests).
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let dss = Dss::register(lua, &LIB, "dssrust")?;
    if lua.named_registry_value::<Value>(CALLBACKS)?.is_nil() {
        lua.set_named_registry_value(CALLBACKS, lua.create_table()?)?;
    }
    lua.set_app_data(State { dss });
    let t = lua.create_table()?;
    t.set(
        "post",
        // `function`: a bad argument raises a plain string naming its
        // position and `post`.
        darksidesync_binding::function(
            lua,
            |lua, (f, n, letgo): (Function, u32, Option<bool>)| {
                let id = keep_callback(lua, f)?;
                let dss = handle_of(lua)?;
                std::thread::spawn(move || {
                    for i in 1..=n {
                        if dss
                            .post(move |lua| callback(lua, id)?.call::<()>(i))
                            .is_err()
                        {
                            break;
                        }
                    }
                    if letgo == Some(true) {
                        dss.unref();
                    }
                });
                Ok(())
            },
        )?,
    )?;
    t.set(
        "call",
        lua.create_function(|lua, (f, arg, timeout): (Function, String, Option<f64>)| {
            let id = keep_callback(lua, f)?;
            let dss = handle_of(lua)?;
            let slot = Arc::new(Mutex::new(None));
            let out = slot.clone();
            let timeout = timeout.map(Duration::from_secs_f64);
            std::thread::spawn(move || {
                let r = dss.call(move |lua| callback(lua, id)?.call::<String>(arg), timeout);
                *out.lock().unwrap() = Some(r);
            });
            Ok(Job(slot))
        })?,
    )?;
    t.set(
        "callhere",
        lua.create_function(|lua, f: Function| {
            let id = keep_callback(lua, f)?;
            let r = handle_of(lua)?.call(move |lua| callback(lua, id)?.call::<String>(()), None);
            Ok(match r {
                Ok(v) => v,
                Err(e) => kind(&e).to_string(),
            })
        })?,
    )?;
    t.set(
        "reference",
        lua.create_function(|lua, ()| handle_of(lua)?.reference().map_err(mlua::Error::external))?,
    )?;
    t.set(
        "stats",
        lua.create_function(|lua, ()| {
            let s = handle_of(lua)?.stats().map_err(mlua::Error::external)?;
            let t = lua.create_table()?;
            t.set("posted", s.posted)?;
            t.set("ran", s.ran)?;
            t.set("cancelled", s.cancelled)?;
            t.set("replies", s.replies)?;
            t.set("errors", s.errors)?;
            t.set("timeouts", s.timeouts)?;
            t.set("keep_alive", s.keep_alive)?;
            Ok(t)
        })?,
    )?;
    Ok(t)
}

#[cfg(feature = "module")]
#[mlua::lua_module(name = "dssrust", skip_memory_check)]
fn module_entry(lua: &Lua) -> mlua::Result<Table> {
    open(lua)
}
