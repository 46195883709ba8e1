//! `darksidesync.benchlib`: the background library the benchmarks
//! (`bench/`, `cargo xtask bench`) drive. Its threads post or call as fast
//! as they can, through the state's hub, the way a real binding would.
//!
//! ```lua
//! local bl = require "darksidesync.benchlib"
//! -- `producers` threads each post `n` items carrying one integer
//! local job = bl.post(callback, n, producers)
//! -- one thread makes `n` blocking calls one after another, sleeping
//! -- `gap_us` microseconds between them; the reply is the callback's result
//! local job = bl.call(callback, n [, gap_us])
//! job:done() --> boolean      job:wait([seconds]) --> boolean
//! job:result() --> { posted = n, calls = n, failed = n, p50_us = x, p99_us = x, max_us = x }
//! bl.now()      --> monotonic seconds (float)
//! bl.rss()      --> resident bytes now;  bl.peak_rss() --> peak resident bytes (VmHWM)
//! ```
//!
//! Every thread holds a keep-alive reference while it runs.
//!
//! It lives outside the published crate, on darksidesync-lua's public
//! [`Item`] API, and is built into a copy of the module for the benches
//! only (`cargo xtask bench`): one shared object, so that its items reach
//! the very hub the module's `dispatch()` drains.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use darksidesync::{Callback, Data, DataReply, Item, Prepared, ReplySink, StateHub, Task};
use darksidesync_core::Port;
use mlua::{Lua, MultiValue, RegistryKey, Table, UserData, UserDataMethods, Value};

type ApiResult = mlua::Result<MultiValue>;

/// A count argument: a non-negative integer (or an integral float), or
/// `default` for nil.
fn count(v: Option<&Value>, what: &str, default: usize) -> mlua::Result<usize> {
    match v {
        None | Some(Value::Nil) => Ok(default),
        Some(Value::Integer(i)) if *i >= 0 => Ok(*i as usize),
        Some(Value::Number(n)) if *n >= 0.0 && n.fract() == 0.0 => Ok(*n as usize),
        Some(other) => Err(mlua::Error::runtime(format!(
            "{what}: expected a count, got {}",
            other.type_name()
        ))),
    }
}

/// The state's bench port, registered on first use.
struct BenchPort(Port<Item>);

fn port(lua: &Lua, st: &StateHub) -> mlua::Result<Port<Item>> {
    if let Some(p) = lua.app_data_ref::<BenchPort>() {
        return Ok(p.0.clone());
    }
    let p = st
        .register("darksidesync.benchlib", |_| {})
        .map_err(|e| mlua::Error::runtime(format!("benchlib: cannot register: {e}")))?;
    lua.set_app_data(BenchPort(p.clone()));
    Ok(p)
}

/// One integer for a Lua callback, expecting a reply. (Posts use
/// [`Item::call`], which needs no task.)
struct IntTask {
    callback: Arc<RegistryKey>,
    value: i64,
    reply: Option<DataReply>,
}

impl Task for IntTask {
    fn prepare(self: Box<Self>, lua: &Lua) -> mlua::Result<Prepared> {
        let callback: Value = lua.registry_value(&self.callback)?;
        Ok(Prepared {
            call: Some((
                callback,
                MultiValue::from_iter([Value::Integer(self.value)]),
            )),
            reply: self.reply.map(|r| Box::new(r) as Box<dyn ReplySink>),
        })
    }
}

/// What the job's threads report.
#[derive(Default)]
struct Report {
    finished: usize,
    posted: u64,
    calls: u64,
    failed: u64,
    /// Round trips of the calls, in nanoseconds.
    latencies: Vec<u64>,
}

#[derive(Default)]
struct Shared {
    report: Mutex<Report>,
    cv: Condvar,
}

struct Job {
    shared: Arc<Shared>,
    threads: usize,
}

impl Job {
    fn done(&self) -> bool {
        self.shared.report.lock().unwrap().finished >= self.threads
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
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("done", |_, this, ()| Ok(this.done()));
        methods.add_method("wait", |_, this, secs: Option<f64>| {
            Ok(wait_until(
                &this.shared.report,
                &this.shared.cv,
                secs,
                |r| r.finished >= this.threads,
            ))
        });
        methods.add_method("result", |lua, this, ()| {
            let mut r = this.shared.report.lock().unwrap();
            let t = lua.create_table()?;
            t.set("done", r.finished >= this.threads)?;
            t.set("posted", r.posted)?;
            t.set("calls", r.calls)?;
            t.set("failed", r.failed)?;
            r.latencies.sort_unstable();
            t.set("p50_us", percentile(&r.latencies, 0.50))?;
            t.set("p99_us", percentile(&r.latencies, 0.99))?;
            t.set("max_us", percentile(&r.latencies, 1.0))?;
            Ok(t)
        });
    }
}

fn finish(shared: &Shared, f: impl FnOnce(&mut Report)) {
    let mut r = shared.report.lock().unwrap();
    f(&mut r);
    r.finished += 1;
    drop(r);
    shared.cv.notify_all();
}

fn callback_key(lua: &Lua, v: Option<&Value>, what: &str) -> mlua::Result<Arc<RegistryKey>> {
    match v {
        Some(f @ Value::Function(_)) => Ok(Arc::new(lua.create_registry_value(f.clone())?)),
        other => Err(mlua::Error::runtime(format!(
            "benchlib.{what}: callback must be a function, got {}",
            other.map_or("no value", Value::type_name)
        ))),
    }
}

fn new_job(lua: &Lua, shared: Arc<Shared>, threads: usize) -> ApiResult {
    let job = lua.create_userdata(Job { shared, threads })?;
    Ok(MultiValue::from_iter([Value::UserData(job)]))
}

/// `post(callback, n, producers)` → job.
fn post(lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    let callback = match a.front() {
        Some(Value::Function(f)) => Callback::new(lua, f.clone())?,
        other => {
            return Err(mlua::Error::runtime(format!(
                "benchlib.post: callback must be a function, got {}",
                other.map_or("no value", Value::type_name)
            )))
        }
    };
    let n = count(a.get(1), "benchlib.post", 1)? as u64;
    let producers = count(a.get(2), "benchlib.post", 1)?.max(1);
    let port = port(lua, st)?;
    let shared = Arc::new(Shared::default());
    for _ in 0..producers {
        let keep = port
            .keep_alive()
            .map_err(|e| mlua::Error::runtime(format!("benchlib.post: {e}")))?;
        let (port, shared, callback) = (port.clone(), shared.clone(), callback.clone());
        thread::spawn(move || {
            let _keep = keep;
            let mut posted = 0;
            for i in 0..n {
                let item = Item::call(&callback, Data::Integer(i as i64));
                if port.post(item).is_err() {
                    break;
                }
                posted += 1;
            }
            finish(&shared, |r| r.posted += posted);
        });
    }
    new_job(lua, shared, producers)
}

/// `call(callback, n [, gap_us])` → job.
fn call(lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    let callback = callback_key(lua, a.front(), "call")?;
    let n = count(a.get(1), "benchlib.call", 1)? as u64;
    let gap = count(a.get(2), "benchlib.call", 0)? as u64;
    let port = port(lua, st)?;
    let keep = port
        .keep_alive()
        .map_err(|e| mlua::Error::runtime(format!("benchlib.call: {e}")))?;
    let shared = Arc::new(Shared::default());
    let job_shared = shared.clone();
    thread::spawn(move || {
        let _keep = keep;
        let mut latencies = Vec::with_capacity(n as usize);
        let mut failed = 0;
        for i in 0..n {
            if gap > 0 {
                thread::sleep(Duration::from_micros(gap));
            }
            let start = Instant::now();
            let make = |reply| {
                Item::new(IntTask {
                    callback: callback.clone(),
                    value: i as i64,
                    reply: Some(DataReply(reply)),
                })
            };
            match port.call(make, None) {
                Ok(values) if values.first() == Some(&Data::Integer(i as i64 + 1)) => {
                    latencies.push(start.elapsed().as_nanos() as u64)
                }
                _ => failed += 1,
            }
        }
        finish(&job_shared, |r| {
            r.calls += latencies.len() as u64;
            r.failed += failed;
            r.latencies.extend(latencies);
        });
    });
    new_job(lua, shared, 1)
}

fn one(v: Value) -> MultiValue {
    MultiValue::from_iter([v])
}

/// `now()` → monotonic seconds.
fn now(_lua: &Lua, _st: &StateHub, _a: MultiValue) -> ApiResult {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    Ok(one(Value::Number(
        EPOCH.get_or_init(Instant::now).elapsed().as_secs_f64(),
    )))
}

/// Reads a `kB` line of `/proc/self/status`, in bytes.
fn status_kb(key: &str) -> Option<i64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: i64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// `rss()` → resident bytes now (nil where /proc is missing).
fn rss(_lua: &Lua, _st: &StateHub, _a: MultiValue) -> ApiResult {
    Ok(one(status_kb("VmRSS:").map_or(Value::Nil, Value::Integer)))
}

/// `peak_rss()` → peak resident bytes of the process (nil where /proc is missing).
fn peak_rss(_lua: &Lua, _st: &StateHub, _a: MultiValue) -> ApiResult {
    Ok(one(status_kb("VmHWM:").map_or(Value::Nil, Value::Integer)))
}

/// A bench function before wrapping: gets the state's hub and its
/// arguments.
type BenchFn = fn(&Lua, &StateHub, MultiValue) -> ApiResult;

/// Builds the `darksidesync.benchlib` table (creating the state's hub if
/// the module has not been opened in it yet).
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    StateHub::get(lua)?;
    let t = lua.create_table()?;
    let fns: [(&str, BenchFn); 5] = [
        ("post", post),
        ("call", call),
        ("now", now),
        ("rss", rss),
        ("peak_rss", peak_rss),
    ];
    for (name, f) in fns {
        let func = lua.create_function(move |lua, args: MultiValue| {
            let st = StateHub::get(lua)?;
            f(lua, &st, args)
        })?;
        t.raw_set(name, func)?;
    }
    Ok(t)
}

/// `require "darksidesync.benchlib"`, found in this shared object (the
/// module's copy for the benches) by Lua's all-in-one loader.
#[cfg(feature = "module")]
#[mlua::lua_module(name = "darksidesync_benchlib", skip_memory_check)]
fn luaopen_benchlib(lua: &Lua) -> mlua::Result<Table> {
    open(lua)
}

/// Waits on `cv` until `done` holds for the value under `m`, or `secs`
/// seconds pass (`nil`, or a span too large to represent, waits without
/// limit; negative or NaN counts as 0). False on timeout. `h:wait([secs])`.
fn wait_until<T>(m: &Mutex<T>, cv: &Condvar, secs: Option<f64>, done: impl Fn(&T) -> bool) -> bool {
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
