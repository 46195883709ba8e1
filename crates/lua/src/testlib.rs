//! `darksidesync.testlib`: a small background library for the specs. It
//! does real cross-thread traffic through the state's hub, from threads it
//! spawns, and records what each producer or caller observed.
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
//! testlib.reset()      --> unregisters the test port (cancels its queued items)
//! ```
//!
//! Every producer or caller thread holds a keep-alive reference while it
//! runs, so `darksidesync.run()` keeps going until they are finished.
//!
//! Post jobs number their items with a global *ticket*, taken under the
//! same lock as the post itself, so the order tickets are posted in is the
//! queue order, and FIFO across producers can be asserted exactly.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use darksidesync_core::{CallError, Port, Reply};
use mlua::{Lua, MultiValue, RegistryKey, Table, UserData, UserDataMethods, Value};

use crate::args;
use crate::data::Data;
use crate::item::{DataReply, Item, Prepared, Task};
use crate::state::StateHub;
use crate::{make_table, ApiResult};

/// The state's test port, registered lazily; `reset()` unregisters it.
struct TestPort(std::cell::RefCell<Option<Port<Item>>>);

fn port(lua: &Lua, st: &StateHub) -> Result<Port<Item>, String> {
    if lua.app_data_ref::<TestPort>().is_none() {
        lua.set_app_data(TestPort(Default::default()));
    }
    let tp = lua.app_data_ref::<TestPort>().expect("just set");
    let mut slot = tp.0.borrow_mut();
    if let Some(p) = slot.as_ref().filter(|p| p.is_live()) {
        return Ok(p.clone());
    }
    let p = st
        .hub
        .register("darksidesync.testlib", |_| {})
        .map_err(|e| format!("testlib: cannot register: {e}"))?;
    *slot = Some(p.clone());
    Ok(p)
}

/// An item of the test library: a Lua callback (kept in the registry) and
/// plain arguments, with a reply for blocking calls.
struct TestTask {
    callback: Arc<RegistryKey>,
    args: Vec<Data>,
    reply: Option<Reply<Vec<Data>>>,
}

impl Task for TestTask {
    fn prepare(self: Box<Self>, lua: &Lua) -> mlua::Result<Prepared> {
        let callback: Value = lua.registry_value(&self.callback)?;
        let args = Data::to_multi(&self.args, lua)?;
        Ok(Prepared {
            call: Some((callback, args)),
            reply: self
                .reply
                .map(|r| Box::new(DataReply(r)) as Box<dyn crate::item::ReplySink>),
        })
    }
}

enum Outcome {
    Posted {
        posted: u64,
        refused: u64,
        errors: Vec<String>,
    },
    Called(Result<Vec<Data>, CallError>),
}

#[derive(Default)]
struct JobShared {
    outcome: Mutex<Vec<Outcome>>,
    finished: Mutex<usize>,
    cv: Condvar,
}

/// Waits on `cv` until `done` holds for the value under `m`, or `secs`
/// seconds pass (`nil`, or a span too large to represent, waits without
/// limit; negative or NaN counts as 0). False on timeout. The `h:wait([secs])`
/// of the test and bench libraries.
pub(crate) fn wait_until<T>(
    m: &Mutex<T>,
    cv: &Condvar,
    secs: Option<f64>,
    done: impl Fn(&T) -> bool,
) -> bool {
    let deadline = secs
        .and_then(|s| Instant::now().checked_add(Duration::try_from_secs_f64(s.max(0.0)).ok()?));
    let mut guard = m.lock().unwrap();
    while !done(&guard) {
        guard = match deadline {
            None => cv.wait(guard).unwrap(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return false;
                }
                cv.wait_timeout(guard, d - now).unwrap().0
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
        *self.shared.finished.lock().unwrap() >= self.threads
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
            let outcomes = this.shared.outcome.lock().unwrap();
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

fn call_result(lua: &Lua, result: &Result<Vec<Data>, CallError>) -> mlua::Result<MultiValue> {
    Ok(match result {
        Ok(values) => {
            let t = lua.create_table()?;
            for (i, v) in values.iter().enumerate() {
                t.raw_set(i + 1, v.to_lua(lua)?)?;
            }
            t.raw_set("n", values.len())?;
            MultiValue::from_iter([
                Value::String(lua.create_string("replied")?),
                Value::Table(t),
            ])
        }
        Err(CallError::Handler(text)) => MultiValue::from_iter([
            Value::String(lua.create_string("error")?),
            Value::String(lua.create_string(text)?),
        ]),
        Err(other) => MultiValue::from_iter([Value::String(lua.create_string(other.to_string())?)]),
    })
}

fn finish(shared: &JobShared, outcome: Outcome) {
    shared.outcome.lock().unwrap().push(outcome);
    *shared.finished.lock().unwrap() += 1;
    shared.cv.notify_all();
}

fn callback_key(
    lua: &Lua,
    v: Option<&Value>,
    what: &str,
) -> Result<Arc<RegistryKey>, crate::ApiError> {
    match v {
        Some(f @ Value::Function(_)) => Ok(Arc::new(lua.create_registry_value(f.clone())?)),
        other => Err(format!(
            "testlib.{what}: callback must be a function, got {}",
            other.map_or("no value", args::type_name)
        )
        .into()),
    }
}

/// `post(callback, n, producers [, "try"])` → job.
fn post(lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    let callback = callback_key(lua, a.front(), "post")?;
    let n = args::count(a.get(1).unwrap_or(&Value::Nil), "testlib.post", 1)? as u64;
    let producers = args::count(a.get(2).unwrap_or(&Value::Nil), "testlib.post", 1)?.max(1);
    let try_mode = matches!(a.get(3), Some(Value::String(s)) if s.as_bytes().as_ref() == b"try");
    let port = port(lua, st)?;
    let shared = Arc::new(JobShared::default());
    let ticket = Arc::new(Mutex::new(0u64));
    for producer in 1..=producers {
        let keep = port
            .keep_alive()
            .map_err(|e| format!("testlib.post: {e}"))?;
        let (port, shared, ticket, callback) = (
            port.clone(),
            shared.clone(),
            ticket.clone(),
            callback.clone(),
        );
        thread::spawn(move || {
            let _keep = keep;
            let (mut posted, mut refused, mut errors) = (0, 0, Vec::new());
            for seq in 1..=n {
                // Ticket and post under one lock: ticket order is queue order.
                let mut t = ticket.lock().unwrap();
                let item = Item::new(TestTask {
                    callback: callback.clone(),
                    args: vec![
                        Data::Integer(producer as i64),
                        Data::Integer(seq as i64),
                        Data::Integer(*t as i64 + 1),
                    ],
                    reply: None,
                });
                let r = if try_mode {
                    port.try_post(item)
                } else {
                    port.post(item)
                };
                match r {
                    Ok(_) => {
                        *t += 1;
                        posted += 1;
                    }
                    Err(e) => {
                        refused += 1;
                        errors.push(e.kind.to_string());
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
    let job = lua.create_userdata(Job {
        shared,
        threads: producers,
    })?;
    Ok(MultiValue::from_iter([Value::UserData(job)]))
}

/// `call(callback, opts, ...)` → job; `opts` = nil or `{timeout = s, try = bool}`.
fn call(lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    let callback = callback_key(lua, a.front(), "call")?;
    let (timeout, try_call) = match a.get(1) {
        Some(Value::Table(t)) => options(t)?,
        None | Some(Value::Nil) => (None, false),
        Some(other) => {
            return Err(format!(
                "testlib.call: options must be a table or nil, got {}",
                args::type_name(other)
            )
            .into())
        }
    };
    let values: Vec<Data> = a.iter().skip(2).map(Data::from_lua).collect();
    let port = port(lua, st)?;
    let keep = port
        .keep_alive()
        .map_err(|e| format!("testlib.call: {e}"))?;
    let shared = Arc::new(JobShared::default());
    let job_shared = shared.clone();
    thread::spawn(move || {
        let _keep = keep;
        let make = |reply| {
            Item::new(TestTask {
                callback,
                args: values,
                reply: Some(reply),
            })
        };
        let result = if try_call {
            port.try_call(make, timeout)
        } else {
            port.call(make, timeout)
        };
        finish(&job_shared, Outcome::Called(result));
    });
    let job = lua.create_userdata(Job { shared, threads: 1 })?;
    Ok(MultiValue::from_iter([Value::UserData(job)]))
}

fn options(t: &Table) -> Result<(Option<Duration>, bool), crate::ApiError> {
    let timeout: Value = t.get("timeout")?;
    let timeout = args::timeout(&timeout, "testlib.call", "seconds", 1.0, false)?;
    let try_call: Option<bool> = t.get("try")?;
    Ok((timeout, try_call.unwrap_or(false)))
}

/// `callhere(callback, ...)` → the status of a blocking call made on the
/// Lua thread itself (always "would deadlock").
fn callhere(lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    let callback = callback_key(lua, a.front(), "callhere")?;
    let values: Vec<Data> = a.iter().skip(1).map(Data::from_lua).collect();
    let port = port(lua, st)?;
    let result = port.call(
        |reply| {
            Item::new(TestTask {
                callback,
                args: values,
                reply: Some(reply),
            })
        },
        None,
    );
    Ok(call_result(lua, &result)?)
}

/// `reset()` → true when a test port was unregistered.
fn reset(lua: &Lua, _st: &StateHub, _a: MultiValue) -> ApiResult {
    let port = lua
        .app_data_ref::<TestPort>()
        .and_then(|tp| tp.0.borrow_mut().take());
    let was = port.is_some_and(|p| p.unregister());
    Ok(MultiValue::from_iter([Value::Boolean(was)]))
}

/// Builds the `darksidesync.testlib` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let st = StateHub::get(lua)?;
    make_table(
        lua,
        &st,
        &[
            ("post", post),
            ("call", call),
            ("callhere", callhere),
            ("reset", reset),
        ],
    )
}
