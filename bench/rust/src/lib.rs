//! `dssbenchrs`: the Rust library the benchmarks drive, built as its own
//! cdylib on the public `darksidesync-binding` crate only, as any binding
//! author's library is. Loaded by a stock interpreter after darksidesync:
//!
//! ```lua
//! local dss = require "darksidesync"
//! local b = require "dssbenchrs"
//! local job = b.post(cb, producers, per)  -- each thread posts `per` closures; closure k calls cb(k)
//! local job = b.call(cb, calls, gap_us)   -- one thread: `calls` blocking calls of cb(k), `gap_us` apart
//! -- the same through Dss::post_callback / Dss::call_callback: the closure
//! -- only prepares cb and k, darksidesync calls cb itself
//! local job = b.post_callback(cb, producers, per)
//! local job = b.call_callback(cb, calls, gap_us)
//! -- through a LuaCallback: the threads post only the integer k
//! local job = b.post_values(cb, producers, per)
//! -- the same with four scalars: cb(k, k / 2, true, "tick")
//! local job = b.post_scalars(cb, producers, per)
//! -- the same with a table: cb({ k = k, name = "tick", path = "/tmp/k" })
//! local job = b.post_table(cb, producers, per)
//! -- the same table made by a post_callback's closure with mlua (the way
//! -- before ArgTable)
//! local job = b.post_callback_table(cb, producers, per)
//! job:wait() --> true     job:done() --> boolean
//! job:result() --> { sent =, failed =, bad_replies =, p50_us =, p99_us =, max_us = }
//! ```
//!
//! The threads of one job send the distinct values 1..total so the Lua side
//! can check that each arrived exactly once; a call's reply must be
//! `k + 1` or it counts in `bad_replies`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use darksidesync_binding::{ArgTable, Dss, Error, LibId, LuaCallback};
use mlua::{Function, Lua, MultiValue, RegistryKey, Table, UserData, UserDataMethods, Value};

static LIB: LibId = LibId::new();

/// This library's handle in one state.
struct Handle(Dss);

/// What a job's threads report.
#[derive(Default)]
struct Counts {
    finished: AtomicUsize,
    sent: AtomicU64,
    failed: AtomicU64,
    bad_replies: AtomicU64,
    /// Round trips of the calls, in nanoseconds.
    latencies: Mutex<Vec<u64>>,
}

struct Job {
    threads: Vec<JoinHandle<()>>,
    producers: usize,
    counts: Arc<Counts>,
}

impl Job {
    fn join(&mut self) {
        for t in self.threads.drain(..) {
            // A panicking producer shows up as missing items, which the
            // scenario checks.
            let _ = t.join();
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

impl UserData for Job {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method_mut("wait", |_, this, ()| {
            this.join();
            Ok(true)
        });
        m.add_method("done", |_, this, ()| {
            Ok(this.counts.finished.load(Ordering::Acquire) >= this.producers)
        });
        m.add_method_mut("result", |lua, this, ()| {
            this.join();
            let c = &this.counts;
            let t = lua.create_table()?;
            t.set("sent", c.sent.load(Ordering::Relaxed))?;
            t.set("failed", c.failed.load(Ordering::Relaxed))?;
            t.set("bad_replies", c.bad_replies.load(Ordering::Relaxed))?;
            let mut lat = c.latencies.lock().unwrap_or_else(|e| e.into_inner());
            if !lat.is_empty() {
                lat.sort_unstable();
                t.set("p50_us", percentile(&lat, 0.50))?;
                t.set("p99_us", percentile(&lat, 0.99))?;
                t.set("max_us", percentile(&lat, 1.0))?;
            }
            Ok(t)
        });
    }
}

fn handle(lua: &Lua) -> mlua::Result<Dss> {
    lua.app_data_ref::<Handle>()
        .map(|h| h.0.clone())
        .ok_or_else(|| mlua::Error::runtime("dssbenchrs: not initialised"))
}

/// How a job's items reach Lua.
#[derive(Clone, Copy)]
enum Via {
    /// `Dss::post` / `Dss::call`: the closure calls the callback.
    Closure,
    /// `Dss::post_callback` / `Dss::call_callback`: the closure prepares
    /// the callback and its argument; darksidesync calls it.
    Callback,
    /// `LuaCallback::post`: the thread posts the integer alone.
    Values,
    /// `LuaCallback::post` of four scalars: `(k, k / 2, true, "tick")`.
    Scalars,
    /// `LuaCallback::post` of an [`ArgTable`] with three named fields.
    Table,
    /// `Dss::post_callback` whose closure makes the same table with mlua.
    CallbackTable,
}

/// The callback of `key` and the integer, for darksidesync to call.
fn prepared(lua: &Lua, key: &RegistryKey, v: i64) -> mlua::Result<(Function, MultiValue)> {
    Ok((
        lua.registry_value::<Function>(key)?,
        MultiValue::from_iter([Value::Integer(v)]),
    ))
}

/// What a producer thread posts through.
enum Target {
    Key(Arc<RegistryKey>),
    Kept(LuaCallback),
}

fn post_one(dss: &Dss, via: Via, target: &Target, v: i64) -> Result<(), Error> {
    match (via, target) {
        (Via::Scalars, Target::Kept(cb)) => cb.post((v, v as f64 / 2.0, true, "tick")),
        (Via::Table, Target::Kept(cb)) => cb.post(
            ArgTable::new()
                .field("k", v)
                .field("name", "tick")
                .field("path", &b"/tmp/k"[..]),
        ),
        (_, Target::Kept(cb)) => cb.post(v),
        (Via::Closure, Target::Key(key)) => {
            let key = key.clone();
            dss.post(move |lua| lua.registry_value::<Function>(&key)?.call(v))
        }
        (Via::CallbackTable, Target::Key(key)) => {
            let key = key.clone();
            dss.post_callback(move |lua| {
                let t = lua.create_table_with_capacity(0, 3)?;
                t.raw_set("k", v)?;
                t.raw_set("name", "tick")?;
                t.raw_set("path", lua.create_string(b"/tmp/k")?)?;
                Ok((
                    lua.registry_value::<Function>(&key)?,
                    MultiValue::from_iter([Value::Table(t)]),
                ))
            })
        }
        (_, Target::Key(key)) => {
            let key = key.clone();
            dss.post_callback(move |lua| prepared(lua, &key, v))
        }
    }
}

fn call_one(dss: &Dss, via: Via, key: &RegistryKey, v: i64) -> Result<i64, Error> {
    match via {
        Via::Closure => dss.call(
            |lua| lua.registry_value::<Function>(key)?.call::<i64>(v),
            None,
        ),
        _ => dss.call_callback(
            |lua| prepared(lua, key, v),
            |_, answer: MultiValue| match answer.front() {
                Some(Value::Integer(i)) => Ok(*i),
                _ => Ok(i64::MIN),
            },
            None,
            false,
        ),
    }
}

fn post(lua: &Lua, via: Via, (cb, producers, per): (Function, usize, u64)) -> mlua::Result<Job> {
    if !(1..=16).contains(&producers) {
        return Err(mlua::Error::runtime("dssbenchrs.post: 1..16 producers"));
    }
    let dss = handle(lua)?;
    let target = Arc::new(match via {
        Via::Values | Via::Scalars | Via::Table => Target::Kept(dss.callback(lua, cb)?),
        _ => Target::Key(Arc::new(lua.create_registry_value(cb)?)),
    });
    let counts = Arc::new(Counts::default());
    let threads = (0..producers as u64)
        .map(|p| {
            let (dss, target, counts) = (dss.clone(), target.clone(), counts.clone());
            thread::spawn(move || {
                let (mut sent, mut failed) = (0, 0);
                for v in p * per + 1..=(p + 1) * per {
                    if post_one(&dss, via, &target, v as i64).is_ok() {
                        sent += 1;
                    } else {
                        failed += 1;
                        break;
                    }
                }
                counts.sent.fetch_add(sent, Ordering::Relaxed);
                counts.failed.fetch_add(failed, Ordering::Relaxed);
                counts.finished.fetch_add(1, Ordering::Release);
            })
        })
        .collect();
    Ok(Job {
        threads,
        producers,
        counts,
    })
}

fn call(lua: &Lua, via: Via, (cb, calls, gap_us): (Function, u64, u64)) -> mlua::Result<Job> {
    let key = Arc::new(lua.create_registry_value(cb)?);
    let dss = handle(lua)?;
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let thread = thread::spawn(move || {
        let mut lat = Vec::with_capacity(calls as usize);
        let (mut sent, mut failed, mut bad) = (0, 0, 0);
        for v in 1..=calls as i64 {
            thread::sleep(Duration::from_micros(gap_us));
            let t0 = Instant::now();
            let r = call_one(&dss, via, &key, v);
            lat.push(t0.elapsed().as_nanos() as u64);
            match r {
                Ok(answer) => {
                    sent += 1;
                    if answer != v + 1 {
                        bad += 1;
                    }
                }
                Err(_) => {
                    failed += 1;
                    break;
                }
            }
        }
        *c.latencies.lock().unwrap_or_else(|e| e.into_inner()) = lat;
        c.sent.fetch_add(sent, Ordering::Relaxed);
        c.failed.fetch_add(failed, Ordering::Relaxed);
        c.bad_replies.fetch_add(bad, Ordering::Relaxed);
        c.finished.fetch_add(1, Ordering::Release);
    });
    Ok(Job {
        threads: vec![thread],
        producers: 1,
        counts,
    })
}

/// Builds the module table.
fn open(lua: &Lua) -> mlua::Result<Table> {
    let dss = Dss::register(lua, &LIB, "dssbenchrs")?;
    lua.set_app_data(Handle(dss));
    let t = lua.create_table()?;
    t.set(
        "post",
        lua.create_function(|lua, a| post(lua, Via::Closure, a))?,
    )?;
    t.set(
        "call",
        lua.create_function(|lua, a| call(lua, Via::Closure, a))?,
    )?;
    t.set(
        "post_callback",
        lua.create_function(|lua, a| post(lua, Via::Callback, a))?,
    )?;
    t.set(
        "post_values",
        lua.create_function(|lua, a| post(lua, Via::Values, a))?,
    )?;
    t.set(
        "post_scalars",
        lua.create_function(|lua, a| post(lua, Via::Scalars, a))?,
    )?;
    t.set(
        "post_table",
        lua.create_function(|lua, a| post(lua, Via::Table, a))?,
    )?;
    t.set(
        "post_callback_table",
        lua.create_function(|lua, a| post(lua, Via::CallbackTable, a))?,
    )?;
    t.set(
        "call_callback",
        lua.create_function(|lua, a| call(lua, Via::Callback, a))?,
    )?;
    Ok(t)
}

#[cfg(feature = "module")]
#[mlua::lua_module(name = "dssbenchrs", skip_memory_check)]
fn module_entry(lua: &Lua) -> mlua::Result<Table> {
    open(lua)
}

/// Without `module` (a plain workspace build) nothing calls `open`.
#[cfg(not(feature = "module"))]
pub fn luaopen(lua: &Lua) -> mlua::Result<Table> {
    open(lua)
}
