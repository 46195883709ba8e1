//! `darksidesync.timer`: one-shot and repeating timers, all served by one
//! background thread per process; callbacks run on the Lua thread.
//!
//! ```lua
//! local timer = require "darksidesync.timer"
//! local t = timer.after(0.5, function(t) print("once") end)
//! local r = timer.every(1, function(r) print("tick") end [, first])
//! r:cancel()      --> true when it was active; the callback never runs again
//! r:active()      --> boolean
//! timer.now()     --> monotonic seconds (a float)
//! ```
//!
//! A live timer holds a keep-alive reference, so `darksidesync.run()` waits
//! for it; a one-shot timer releases it once its tick is queued, a
//! repeating one when cancelled. Ticks of a repeating timer never pile up:
//! while one is queued and not yet run, the next is skipped.
//!
//! Built only on `darksidesync-binding`, the way a binding author writes a
//! library (see `doc/libs.md`): [`open`] registers with the state's
//! darksidesync, lets go of `run()` while idle ([`Dss::unref`]) and takes a
//! [`Hold`] per live timer; the close notification removes the state's
//! timers; callbacks stay on the Lua thread, in this state's app data,
//! and ticks carry only a timer id. A tick is a
//! [`post_callback`](Dss::try_post_callback): on the Lua thread it only
//! looks the callback up, and darksidesync calls it like its own
//! deliveries, so under the coroutine adapters (cqueues, Copas) the
//! callback runs in a coroutine of its own and may yield on their I/O.
//!
//! # The timer thread
//!
//! A min-heap of deadlines under one mutex, with a condvar the thread sleeps
//! on until the earliest deadline (or a new, earlier timer). Due timers are
//! collected under the lock and posted after it is released: the thread
//! never holds its lock while posting. A tick refused because the state's
//! queue is full is retried shortly; one whose state closed ends its timer.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use darksidesync_binding::{function, Dss, Error, Hold, LibId, Prepared};
use mlua::{AnyUserData, Function, Lua, MultiValue, Table, UserData, UserDataFields, Value};

/// How long a tick refused by a full queue waits before the next attempt.
const RETRY: Duration = Duration::from_millis(5);

static LIB: LibId = LibId::new();

// ----- the process-wide timer thread -------------------------------------

/// A scheduled timer, owned by the timer thread's table.
struct Entry {
    /// The state that owns it (see [`TimerState::owner`]).
    owner: u64,
    dss: Dss,
    /// Held while the timer is live; dropped after the last tick is queued.
    _keep: Hold,
    deadline: Instant,
    /// `Some` for a repeating timer.
    every: Option<Duration>,
    /// True while a tick is queued and not yet run (repeating timers).
    in_flight: Arc<AtomicBool>,
}

#[derive(Default)]
struct Timers {
    /// Deadlines with timer ids; an id whose entry is gone or whose
    /// deadline moved is stale and skipped.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    entries: HashMap<u64, Entry>,
    thread_started: bool,
}

struct Scheduler {
    table: Mutex<Timers>,
    cv: Condvar,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn scheduler() -> &'static Scheduler {
    static S: OnceLock<Scheduler> = OnceLock::new();
    S.get_or_init(|| Scheduler {
        table: Mutex::new(Timers::default()),
        cv: Condvar::new(),
    })
}

fn lock() -> std::sync::MutexGuard<'static, Timers> {
    // A panic cannot leave the table half-updated in a way that matters
    // (each update is one insert or remove), so poisoning is ignored.
    scheduler().table.lock().unwrap_or_else(|p| p.into_inner())
}

fn schedule(id: u64, entry: Entry) -> Result<(), String> {
    let mut t = lock();
    if !t.thread_started {
        std::thread::Builder::new()
            .name("darksidesync-timer".into())
            .spawn(timer_thread)
            .map_err(|e| format!("timer: cannot start the timer thread: {e}"))?;
        t.thread_started = true;
    }
    let first = t.heap.peek().map(|Reverse((d, _))| *d);
    t.heap.push(Reverse((entry.deadline, id)));
    let wake = first.map_or(true, |d| entry.deadline < d);
    t.entries.insert(id, entry);
    drop(t);
    if wake {
        scheduler().cv.notify_one();
    }
    Ok(())
}

/// Removes a timer; its keep-alive is released. True when it was there.
fn unschedule(id: u64) -> bool {
    let removed = lock().entries.remove(&id);
    removed.is_some()
}

/// Removes every timer of a state (it closed).
fn unschedule_owner(owner: u64) {
    let gone: Vec<Entry> = {
        let mut t = lock();
        let ids: Vec<u64> = t
            .entries
            .iter()
            .filter(|(_, e)| e.owner == owner)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| t.entries.remove(&id))
            .collect()
    };
    drop(gone); // keep-alives released outside the lock
}

/// A tick to post, collected under the lock.
struct Due {
    id: u64,
    dss: Dss,
    in_flight: Arc<AtomicBool>,
    /// The entry of a one-shot timer, taken out of the table: dropped (its
    /// keep-alive released) only after its tick is queued.
    last: Option<Entry>,
}

fn timer_thread() {
    let s = scheduler();
    let mut t = lock();
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(&Reverse((deadline, id))) = t.heap.peek() {
            if deadline > now {
                break;
            }
            t.heap.pop();
            let Some(e) = t.entries.get_mut(&id) else {
                continue;
            };
            if e.deadline != deadline {
                continue; // stale heap record
            }
            match e.every {
                Some(every) => {
                    let mut next = deadline + every;
                    if next <= now {
                        next = now + every; // fell behind: skip missed ticks
                    }
                    e.deadline = next;
                    let (dss, in_flight) = (e.dss.clone(), e.in_flight.clone());
                    t.heap.push(Reverse((next, id)));
                    due.push(Due {
                        id,
                        dss,
                        in_flight,
                        last: None,
                    });
                }
                None => {
                    if let Some(e) = t.entries.remove(&id) {
                        due.push(Due {
                            id,
                            dss: e.dss.clone(),
                            in_flight: e.in_flight.clone(),
                            last: Some(e),
                        });
                    }
                }
            }
        }
        if !due.is_empty() {
            drop(t);
            let retry = fire(due);
            t = lock();
            for (id, e) in retry {
                t.heap.push(Reverse((e.deadline, id)));
                t.entries.insert(id, e);
            }
            continue;
        }
        t = match t.heap.peek() {
            None => s.cv.wait(t).unwrap_or_else(|p| p.into_inner()),
            Some(Reverse((d, _))) => {
                let wait = d.saturating_duration_since(now);
                s.cv.wait_timeout(t, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
    }
}

/// Posts the ticks; returns the one-shot entries to retry (queue full).
fn fire(due: Vec<Due>) -> Vec<(u64, Entry)> {
    let mut retry = Vec::new();
    for d in due {
        if d.last.is_none() && d.in_flight.swap(true, Ordering::AcqRel) {
            continue; // the previous tick has not run yet: coalesce
        }
        let in_flight = d.in_flight.clone();
        let id = d.id;
        let posted = d.dss.try_post_callback(move |lua| {
            in_flight.store(false, Ordering::Release);
            tick(lua, id)
        });
        if let Err(e) = posted {
            d.in_flight.store(false, Ordering::Release);
            match (e, d.last) {
                (Error::Full, Some(mut entry)) => {
                    entry.deadline = Instant::now() + RETRY;
                    retry.push((id, entry));
                }
                (Error::Full, None) => {} // a repeating tick is skipped
                _ => {
                    // The state is gone: the timer ends with it.
                    unschedule(id);
                }
            }
        }
    }
    retry
}

// ----- the Lua side -------------------------------------------------------

/// Per state: the handle and the callbacks of live timers.
struct TimerState {
    /// A process-unique id of this state's timer library.
    owner: u64,
    dss: Dss,
    live: RefCell<HashMap<u64, (Function, AnyUserData)>>,
}

fn existing_state(lua: &Lua) -> Option<Rc<TimerState>> {
    lua.app_data_ref::<Rc<TimerState>>().map(|s| Rc::clone(&s))
}

/// A tick reached the Lua thread: the callback to call and its argument,
/// or one that does nothing when the timer is no longer live.
/// darksidesync calls it; its error goes to the state's error handler.
fn tick(lua: &Lua, id: u64) -> mlua::Result<Prepared> {
    let Some(ts) = existing_state(lua) else {
        return nothing(lua);
    };
    let repeating = lock().entries.get(&id).is_some_and(|e| e.every.is_some());
    let found = if repeating {
        ts.live.borrow().get(&id).cloned()
    } else {
        ts.live.borrow_mut().remove(&id)
    };
    match found {
        Some((f, handle)) => Ok((f, MultiValue::from_iter([Value::UserData(handle)]))),
        None => nothing(lua),
    }
}

/// A delivery with nothing to do (counted by `dispatch()` like the tick it
/// stands for).
fn nothing(lua: &Lua) -> mlua::Result<Prepared> {
    Ok((lua.create_function(|_, ()| Ok(()))?, MultiValue::new()))
}

/// A timer handle.
struct Timer {
    id: u64,
}

impl UserData for Timer {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            let t = lua.create_table()?;
            t.set("cancel", function(lua, cancel)?)?;
            t.set("active", function(lua, active)?)?;
            Ok(t)
        });
        fields.add_meta_field("__name", "darksidesync.timer");
    }
}

/// The Lua type name, with integers and floats both "number".
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) | Value::Number(_) => "number",
        Value::Nil => "nil",
        other => other.type_name(),
    }
}

fn fail<T>(message: String) -> mlua::Result<T> {
    Err(mlua::Error::runtime(message))
}

fn seconds(v: Option<&Value>, what: &str, allow_zero: bool) -> mlua::Result<Duration> {
    let v = v.unwrap_or(&Value::Nil);
    let n = match v {
        Value::Integer(i) => *i as f64,
        Value::Number(n) => *n,
        other => {
            return fail(format!(
                "timer.{what}: seconds must be a number, got {}",
                type_name(other)
            ))
        }
    };
    if n.is_nan() || n < 0.0 || (!allow_zero && n == 0.0) {
        let bound = if allow_zero {
            "non-negative"
        } else {
            "positive"
        };
        return fail(format!(
            "timer.{what}: seconds must be a {bound} number, got {n}"
        ));
    }
    Duration::try_from_secs_f64(n)
        .or_else(|_| fail(format!("timer.{what}: {n} seconds is too long")))
}

fn callback(v: Option<&Value>, what: &str) -> mlua::Result<Function> {
    match v {
        Some(Value::Function(f)) => Ok(f.clone()),
        other => fail(format!(
            "{what}: callback must be a function, got {}",
            other.map_or("no value", type_name)
        )),
    }
}

fn start(
    lua: &Lua,
    first: Duration,
    every: Option<Duration>,
    f: Function,
) -> mlua::Result<AnyUserData> {
    let Some(ts) = existing_state(lua) else {
        return fail("timer: not opened in this Lua state".into());
    };
    let keep = match ts.dss.hold() {
        Ok(k) => k,
        Err(e) => return fail(format!("timer: the state is closing: {e}")),
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let handle = lua.create_userdata(Timer { id })?;
    let Some(deadline) = Instant::now().checked_add(first) else {
        return fail("timer: deadline too far away".into());
    };
    ts.live.borrow_mut().insert(id, (f, handle.clone()));
    let entry = Entry {
        owner: ts.owner,
        dss: ts.dss.clone(),
        _keep: keep,
        deadline,
        every,
        in_flight: Default::default(),
    };
    if let Err(e) = schedule(id, entry) {
        ts.live.borrow_mut().remove(&id);
        return fail(e);
    }
    Ok(handle)
}

/// `after(seconds, fn)` → timer.
fn after(lua: &Lua, a: MultiValue) -> mlua::Result<AnyUserData> {
    let delay = seconds(a.front(), "after", true)?;
    let f = callback(a.get(1), "timer.after")?;
    start(lua, delay, None, f)
}

/// `every(seconds, fn [, first])` → timer.
fn every(lua: &Lua, a: MultiValue) -> mlua::Result<AnyUserData> {
    let period = seconds(a.front(), "every", false)?;
    let f = callback(a.get(1), "timer.every")?;
    let first = match a.get(2) {
        None | Some(Value::Nil) => period,
        v => seconds(v, "every (first)", true)?,
    };
    start(lua, first, Some(period), f)
}

/// The timer a method was called on (colon syntax).
fn this(a: &MultiValue, what: &str) -> mlua::Result<u64> {
    if let Some(Value::UserData(ud)) = a.front() {
        if let Ok(t) = ud.borrow::<Timer>() {
            return Ok(t.id);
        }
    }
    fail(format!(
        "{what}: expected a handle as self (use the colon syntax), got {}",
        a.front().map_or("no value", type_name)
    ))
}

/// `t:cancel()` → true when the timer was active.
fn cancel(lua: &Lua, a: MultiValue) -> mlua::Result<bool> {
    let id = this(&a, "timer:cancel")?;
    let was = existing_state(lua).is_some_and(|ts| ts.live.borrow_mut().remove(&id).is_some());
    unschedule(id);
    Ok(was)
}

/// `t:active()` → boolean.
fn active(lua: &Lua, a: MultiValue) -> mlua::Result<bool> {
    let id = this(&a, "timer:active")?;
    Ok(existing_state(lua).is_some_and(|ts| ts.live.borrow().contains_key(&id)))
}

/// `now()` → seconds on a monotonic clock.
fn now(_lua: &Lua, (): ()) -> mlua::Result<f64> {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    Ok(epoch.elapsed().as_secs_f64())
}

/// Builds the `darksidesync.timer` table: registers with the state's
/// darksidesync (loading it if need be) on first use in that state.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    if existing_state(lua).is_none() {
        let dss = Dss::register(lua, &LIB, "darksidesync.timer")?;
        // Idle, the library does not keep run() waiting: each live timer
        // holds it.
        dss.unref();
        let owner = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        dss.on_close(move || unschedule_owner(owner));
        lua.set_app_data(Rc::new(TimerState {
            owner,
            dss,
            live: RefCell::default(),
        }));
    }
    let t = lua.create_table()?;
    t.set("after", function(lua, after)?)?;
    t.set("every", function(lua, every)?)?;
    t.set("now", function(lua, now)?)?;
    Ok(t)
}
