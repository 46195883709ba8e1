//! `darksidesync.testlib`: a small background library for the specs. It
//! does real cross-thread traffic from threads it spawns, through
//! `darksidesync-binding` only (the C ABI's DSS API 2v0, the path any
//! third-party library takes), and records what each producer or caller
//! observed. Test-only: built as its own `darksidesync/testlib.so` by
//! `cargo xtask lua-specs`, never part of the production module.
//!
//! ```lua
//! local testlib = require "darksidesync.testlib"
//! -- 3 threads each post 100 items; callback(producer, seq, ticket)
//! local job = testlib.post(callback, 100, 3 [, "try"])
//! -- a thread makes one blocking call with these arguments
//! local call = testlib.call(callback, { timeout = 5 }, 1, nil, "x")
//! call:done()          --> boolean
//! call:wait([seconds]) --> boolean (blocks this thread; only when nothing needs dispatching)
//! call:result()        --> "replied", {n = ..., ...} | "error", text | "cancelled" | "closed" | "timed out" | "full" | ...
//! job:result()         --> { posted = n, refused = n, errors = { "full", ... } }
//! testlib.callhere(callback, ...) --> status of a blocking call made on the Lua thread itself
//! -- a thread posts to a LuaCallback of `callback`: (nil, "\255\0", 2^40),
//! -- then { name = "e", path = "/\254", list = { 1, 2.5, true } }
//! testlib.post_values(callback)
//! testlib.reset()      --> unregisters the library (cancels its queued items)
//! ```
//!
//! Every producer or caller thread holds a keep-alive reference while it
//! runs, so `darksidesync.run()` keeps going until they are finished.
//!
//! Post jobs number their items with a global *ticket*, taken under the
//! same lock as the post itself, so the order tickets are posted in is the
//! queue order, and FIFO across producers can be asserted exactly.

use std::cell::RefCell;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use darksidesync_binding::{function, ArgTable, Dss, Error, LibId, Prepared};
use mlua::{
    Function, IntoLuaMulti, Lua, MultiValue, RegistryKey, Table, UserData, UserDataMethods, Value,
};

static LIB: LibId = LibId::new();

/// A Lua scalar that can cross threads (tables and functions travel as
/// nil: the specs pass only scalars).
#[derive(Clone, Debug)]
enum Scalar {
    Nil,
    Boolean(bool),
    Integer(i64),
    Number(f64),
    String(Vec<u8>),
}

impl Scalar {
    fn from_lua(v: &Value) -> Scalar {
        match v {
            Value::Boolean(b) => Scalar::Boolean(*b),
            Value::Integer(i) => Scalar::Integer(*i),
            Value::Number(n) => Scalar::Number(*n),
            Value::String(s) => Scalar::String(s.as_bytes().to_vec()),
            _ => Scalar::Nil,
        }
    }

    fn to_lua(&self, lua: &Lua) -> mlua::Result<Value> {
        Ok(match self {
            Scalar::Nil => Value::Nil,
            Scalar::Boolean(b) => Value::Boolean(*b),
            Scalar::Integer(i) => Value::Integer(*i),
            Scalar::Number(n) => Value::Number(*n),
            Scalar::String(s) => Value::String(lua.create_string(s)?),
        })
    }

    fn to_multi(values: &[Scalar], lua: &Lua) -> mlua::Result<MultiValue> {
        values.iter().map(|v| v.to_lua(lua)).collect()
    }
}

/// This state's registration; `reset()` ends it, the next use registers
/// again.
#[derive(Default)]
struct Registration(RefCell<Option<Dss>>);

fn dss(lua: &Lua) -> mlua::Result<Dss> {
    let live = lua
        .app_data_ref::<Registration>()
        .and_then(|r| r.0.borrow().clone())
        .filter(Dss::is_live);
    if let Some(d) = live {
        return Ok(d);
    }
    // No app data borrow may be held here: registering sets the binding's.
    let d = Dss::register(lua, &LIB, "darksidesync.testlib")?;
    // The producer and caller threads hold run() while they work.
    d.unref();
    match lua.app_data_ref::<Registration>() {
        Some(r) => *r.0.borrow_mut() = Some(d.clone()),
        None => {
            lua.set_app_data(Registration(RefCell::new(Some(d.clone()))));
        }
    }
    Ok(d)
}

/// The Lua function and arguments of one delivery.
fn prepared(lua: &Lua, callback: &RegistryKey, args: &[Scalar]) -> mlua::Result<Prepared> {
    let f: Function = lua.registry_value(callback)?;
    Ok((f, Scalar::to_multi(args, lua)?))
}

/// The names the specs know outcomes by.
fn outcome_name(e: &Error) -> String {
    match e {
        Error::Closed => "closed".into(),
        Error::Cancelled => "cancelled".into(),
        Error::TimedOut => "timed out".into(),
        Error::Full => "full".into(),
        Error::WouldDeadlock => "would deadlock".into(),
        Error::Stale => "unregistered".into(),
        other => other.to_string(),
    }
}

enum Outcome {
    Posted {
        posted: u64,
        refused: u64,
        errors: Vec<String>,
    },
    Called(Result<Vec<Scalar>, Error>),
}

#[derive(Default)]
struct JobShared {
    outcome: Mutex<Vec<Outcome>>,
    finished: Mutex<usize>,
    cv: Condvar,
}

/// Waits on `cv` until `done` holds for the value under `m`, or `secs`
/// seconds pass (`nil`, or a span too large to represent, waits without
/// limit; negative or NaN counts as 0). False on timeout.
fn wait_until<T>(m: &Mutex<T>, cv: &Condvar, secs: Option<f64>, done: impl Fn(&T) -> bool) -> bool {
    let deadline = secs
        .and_then(|s| Instant::now().checked_add(Duration::try_from_secs_f64(s.max(0.0)).ok()?));
    let mut guard = m.lock().unwrap_or_else(|p| p.into_inner());
    while !done(&guard) {
        guard = match deadline {
            None => cv.wait(guard).unwrap_or_else(|p| p.into_inner()),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return false;
                }
                cv.wait_timeout(guard, d - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
    }
    true
}

/// A running or finished job, as Lua userdata.
struct Job {
    shared: Arc<JobShared>,
    threads: usize,
}

impl Job {
    fn done(&self) -> bool {
        *self
            .shared
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            >= self.threads
    }
}

impl UserData for Job {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("done", |_, this, ()| Ok(this.done()));
        methods.add_method("wait", |_, this, secs: Option<f64>| {
            Ok(wait_until(
                &this.shared.finished,
                &this.shared.cv,
                secs,
                |f| *f >= this.threads,
            ))
        });
        methods.add_method("result", |lua, this, ()| {
            if !this.done() {
                return Ok(MultiValue::new());
            }
            let outcomes = this
                .shared
                .outcome
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut out = MultiValue::new();
            let (mut posted, mut refused, mut errors) = (0, 0, Vec::new());
            let mut is_post = false;
            for o in outcomes.iter() {
                match o {
                    Outcome::Posted {
                        posted: p,
                        refused: r,
                        errors: e,
                    } => {
                        is_post = true;
                        posted += p;
                        refused += r;
                        errors.extend(e.iter().cloned());
                    }
                    Outcome::Called(result) => out = call_result(lua, result)?,
                }
            }
            if is_post {
                let t = lua.create_table()?;
                t.set("posted", posted)?;
                t.set("refused", refused)?;
                t.set("errors", lua.create_sequence_from(errors)?)?;
                out = MultiValue::from_iter([Value::Table(t)]);
            }
            Ok(out)
        });
    }
}

fn call_result(lua: &Lua, result: &Result<Vec<Scalar>, Error>) -> mlua::Result<MultiValue> {
    match result {
        Ok(values) => {
            let t = lua.create_table()?;
            for (i, v) in values.iter().enumerate() {
                t.raw_set(i + 1, v.to_lua(lua)?)?;
            }
            t.raw_set("n", values.len())?;
            ("replied", t).into_lua_multi(lua)
        }
        Err(Error::Lua(e)) => ("error", e.to_string()).into_lua_multi(lua),
        Err(Error::Panicked(p)) => ("error", p.clone()).into_lua_multi(lua),
        Err(other) => outcome_name(other).into_lua_multi(lua),
    }
}

fn finish(shared: &JobShared, outcome: Outcome) {
    shared
        .outcome
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(outcome);
    *shared.finished.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    shared.cv.notify_all();
}

fn fail<T>(message: String) -> mlua::Result<T> {
    Err(mlua::Error::runtime(message))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) | Value::Number(_) => "number",
        Value::Nil => "nil",
        other => other.type_name(),
    }
}

fn callback_key(lua: &Lua, v: Option<&Value>, what: &str) -> mlua::Result<Arc<RegistryKey>> {
    match v {
        Some(f @ Value::Function(_)) => Ok(Arc::new(lua.create_registry_value(f.clone())?)),
        other => fail(format!(
            "testlib.{what}: callback must be a function, got {}",
            other.map_or("no value", type_name)
        )),
    }
}

/// An optional non-negative count; `nil` gives `default`.
fn count(v: Option<&Value>, what: &str, default: usize) -> mlua::Result<usize> {
    match v {
        None | Some(Value::Nil) => Ok(default),
        Some(Value::Integer(n)) if *n >= 0 => Ok(usize::try_from(*n).unwrap_or(usize::MAX)),
        Some(Value::Number(n)) if *n >= 0.0 && n.fract() == 0.0 => Ok(*n as usize),
        Some(other) => fail(format!(
            "testlib.{what}: expected a non-negative integer or nil, got {}",
            type_name(other)
        )),
    }
}

/// `post(callback, n, producers [, "try"])` → job.
fn post(lua: &Lua, a: MultiValue) -> mlua::Result<Value> {
    let callback = callback_key(lua, a.front(), "post")?;
    let n = count(a.get(1), "post", 1)? as u64;
    let producers = count(a.get(2), "post", 1)?.max(1);
    let try_mode = matches!(a.get(3), Some(Value::String(s)) if s.as_bytes().as_ref() == b"try");
    let dss = dss(lua)?;
    let shared = Arc::new(JobShared::default());
    let ticket = Arc::new(Mutex::new(0u64));
    for producer in 1..=producers {
        let keep = dss
            .hold()
            .map_err(|e| mlua::Error::runtime(format!("testlib.post: {e}")))?;
        let (dss, shared, ticket, callback) = (
            dss.clone(),
            shared.clone(),
            ticket.clone(),
            callback.clone(),
        );
        thread::spawn(move || {
            let _keep = keep;
            let (mut posted, mut refused, mut errors) = (0, 0, Vec::new());
            for seq in 1..=n {
                // Ticket and post under one lock: ticket order is queue order.
                let mut t = ticket.lock().unwrap_or_else(|p| p.into_inner());
                let callback = callback.clone();
                let args = [
                    Scalar::Integer(producer as i64),
                    Scalar::Integer(seq as i64),
                    Scalar::Integer(*t as i64 + 1),
                ];
                let prepare = move |lua: &Lua| prepared(lua, &callback, &args);
                let r = if try_mode {
                    dss.try_post_callback(prepare)
                } else {
                    dss.post_callback(prepare)
                };
                match r {
                    Ok(()) => {
                        *t += 1;
                        posted += 1;
                    }
                    Err(e) => {
                        refused += 1;
                        errors.push(outcome_name(&e));
                    }
                }
                drop(t);
                thread::yield_now();
            }
            finish(
                &shared,
                Outcome::Posted {
                    posted,
                    refused,
                    errors,
                },
            );
        });
    }
    Ok(Value::UserData(lua.create_userdata(Job {
        shared,
        threads: producers,
    })?))
}

/// The callback's answer, as scalars.
fn scalars(_lua: &Lua, values: MultiValue) -> mlua::Result<Vec<Scalar>> {
    Ok(values.iter().map(Scalar::from_lua).collect())
}

/// `call(callback, opts, ...)` → job; `opts` = nil or `{timeout = s, try = bool}`.
fn call(lua: &Lua, a: MultiValue) -> mlua::Result<Value> {
    let callback = callback_key(lua, a.front(), "call")?;
    let (timeout, try_call) = match a.get(1) {
        Some(Value::Table(t)) => options(t)?,
        None | Some(Value::Nil) => (None, false),
        Some(other) => {
            return fail(format!(
                "testlib.call: options must be a table or nil, got {}",
                type_name(other)
            ))
        }
    };
    let values: Vec<Scalar> = a.iter().skip(2).map(Scalar::from_lua).collect();
    let dss = dss(lua)?;
    let keep = dss
        .hold()
        .map_err(|e| mlua::Error::runtime(format!("testlib.call: {e}")))?;
    let shared = Arc::new(JobShared::default());
    let job_shared = shared.clone();
    thread::spawn(move || {
        let _keep = keep;
        let result = dss.call_callback(
            |lua| prepared(lua, &callback, &values),
            scalars,
            timeout,
            try_call,
        );
        finish(&job_shared, Outcome::Called(result));
    });
    Ok(Value::UserData(
        lua.create_userdata(Job { shared, threads: 1 })?,
    ))
}

fn options(t: &Table) -> mlua::Result<(Option<Duration>, bool)> {
    let timeout = match t.get::<Value>("timeout")? {
        Value::Nil => None,
        v @ (Value::Integer(_) | Value::Number(_)) => {
            let n = match v {
                Value::Integer(i) => i as f64,
                Value::Number(n) => n,
                _ => 0.0,
            };
            if n.is_nan() || n < 0.0 {
                return fail(format!(
                    "testlib.call: timeout must be a non-negative number of seconds, got {n}"
                ));
            }
            Duration::try_from_secs_f64(n).ok()
        }
        other => {
            return fail(format!(
                "testlib.call: timeout must be a number of seconds or nil, got {}",
                type_name(&other)
            ))
        }
    };
    let try_call: Option<bool> = t.get("try")?;
    Ok((timeout, try_call.unwrap_or(false)))
}

/// `callhere(callback, ...)` → the status of a blocking call made on the
/// Lua thread itself (always "would deadlock").
fn callhere(lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let callback = callback_key(lua, a.front(), "callhere")?;
    let values: Vec<Scalar> = a.iter().skip(1).map(Scalar::from_lua).collect();
    let result = dss(lua)?.call_callback(
        |lua| prepared(lua, &callback, &values),
        scalars,
        None,
        false,
    );
    call_result(lua, &result)
}

/// `post_values(callback)`: a thread posts the values of the module docs
/// to a `LuaCallback` of `callback` (nil, bytes that are not UTF-8, a
/// table), so the specs see them on every interpreter.
fn post_values(lua: &Lua, f: Function) -> mlua::Result<()> {
    let cb = dss(lua)?
        .callback(lua, f)
        .map_err(|e| mlua::Error::runtime(format!("testlib.post_values: {e}")))?;
    thread::spawn(move || {
        let _ = cb.post((None::<i64>, &b"\xff\0"[..], 1i64 << 40));
        let _ = cb.post(
            ArgTable::new()
                .field("name", "e")
                .field("path", b"/\xfe".to_vec())
                .field("list", ArgTable::new().item(1i64).item(2.5f64).item(true)),
        );
    });
    Ok(())
}

/// `reset()` → true when the library was registered and is no longer.
fn reset(lua: &Lua, (): ()) -> mlua::Result<bool> {
    let d = lua
        .app_data_ref::<Registration>()
        .and_then(|r| r.0.borrow_mut().take());
    Ok(d.is_some_and(|d| d.unregister()))
}

/// Builds the `darksidesync.testlib` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("post", function(lua, post)?)?;
    t.set("call", function(lua, call)?)?;
    t.set("callhere", function(lua, callhere)?)?;
    t.set("reset", function(lua, reset)?)?;
    t.set("post_values", function(lua, post_values)?)?;
    Ok(t)
}

#[cfg(feature = "module")]
#[mlua::lua_module(name = "darksidesync_testlib", skip_memory_check)]
fn luaopen_testlib(lua: &Lua) -> mlua::Result<Table> {
    open(lua)
}
