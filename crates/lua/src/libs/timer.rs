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
//! # The timer thread
//!
//! A min-heap of deadlines under one mutex, with a condvar the thread sleeps
//! on until the earliest deadline (or a new, earlier timer). Due timers are
//! collected under the lock and posted after it is released: the thread
//! never holds its lock while calling into a hub. A tick refused because
//! the state's queue is full is retried shortly; one whose state closed
//! ends its timer. Closing a state removes its timers through the port's
//! cancel notification.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use darksidesync_core::{KeepAlive, Port, PostErrorKind};
use mlua::{AnyUserData, Function, Lua, MultiValue, Table, UserData, UserDataFields, Value};

use super::{function, lib_state, methods, one, this};
use crate::item::{Item, Prepared};
use crate::state::StateHub;
use crate::{args, make_table, ApiError, ApiResult};

/// How long a tick refused by a full queue waits before the next attempt.
const RETRY: Duration = Duration::from_millis(5);

// ----- the process-wide timer thread -------------------------------------

/// A scheduled timer, owned by the timer thread's table.
struct Entry {
    /// The state that owns it (see [`TimerState::owner`]).
    owner: u64,
    port: Port<Item>,
    /// Held while the timer is live; dropped after the last tick is queued.
    _keep: KeepAlive<Item>,
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

/// Removes every timer of a state (its hub closed).
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
    port: Port<Item>,
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
                    let (port, in_flight) = (e.port.clone(), e.in_flight.clone());
                    t.heap.push(Reverse((next, id)));
                    due.push(Due {
                        id,
                        port,
                        in_flight,
                        last: None,
                    });
                }
                None => {
                    let e = t.entries.remove(&id).expect("just found");
                    due.push(Due {
                        id,
                        port: e.port.clone(),
                        in_flight: e.in_flight.clone(),
                        last: Some(e),
                    });
                }
            }
        }
        if !due.is_empty() {
            drop(t);
            let retry = fire(due);
            t = lock();
            for e in retry {
                t.heap.push(Reverse((e.1.deadline, e.0)));
                t.entries.insert(e.0, e.1);
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
        let item = Item::from_fn(move |lua| {
            in_flight.store(false, Ordering::Release);
            prepare_tick(lua, id)
        });
        match d.port.try_post(item) {
            Ok(_) => {}
            Err(e) => {
                d.in_flight.store(false, Ordering::Release);
                match (e.kind, d.last) {
                    (PostErrorKind::Full, Some(mut entry)) => {
                        entry.deadline = Instant::now() + RETRY;
                        retry.push((id, entry));
                    }
                    (PostErrorKind::Full, None) => {} // a repeating tick is skipped
                    (_, _) => {
                        // The state is gone: the timer ends with it.
                        unschedule(id);
                    }
                }
            }
        }
    }
    retry
}

// ----- the Lua side -------------------------------------------------------

/// Per state: the port and the callbacks of live timers.
struct TimerState {
    /// A process-unique id of this state's timer library.
    owner: u64,
    port: Port<Item>,
    live: std::cell::RefCell<HashMap<u64, (Function, AnyUserData)>>,
}

fn state(lua: &Lua) -> Result<std::rc::Rc<TimerState>, ApiError> {
    lib_state(lua, |st: &StateHub| {
        let owner = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let port = st
            .hub
            .register("darksidesync.timer", move |_| unschedule_owner(owner))
            .map_err(|e| format!("timer: cannot register: {e}"))?;
        Ok(TimerState {
            owner,
            port,
            live: Default::default(),
        })
    })
}

/// A tick reached the Lua thread: the callback, if the timer is still live.
fn prepare_tick(lua: &Lua, id: u64) -> mlua::Result<Prepared> {
    let Some(ts) = super::existing_state::<TimerState>(lua) else {
        return Ok(Prepared {
            call: None,
            reply: None,
        });
    };
    let repeating = lock().entries.get(&id).is_some_and(|e| e.every.is_some());
    let found = if repeating {
        ts.live.borrow().get(&id).cloned()
    } else {
        ts.live.borrow_mut().remove(&id)
    };
    Ok(Prepared {
        call: found.map(|(f, handle)| {
            (
                Value::Function(f),
                MultiValue::from_iter([Value::UserData(handle)]),
            )
        }),
        reply: None,
    })
}

/// A timer handle.
struct Timer {
    id: u64,
}

impl UserData for Timer {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            methods(lua, &[("cancel", cancel), ("active", active)])
        });
        fields.add_meta_field("__name", "darksidesync.timer");
    }
}

fn seconds(v: Option<&Value>, what: &str, allow_zero: bool) -> Result<Duration, ApiError> {
    let v = v.unwrap_or(&Value::Nil);
    let n = args::number(v).ok_or_else(|| {
        format!(
            "timer.{what}: seconds must be a number, got {}",
            args::type_name(v)
        )
    })?;
    if n.is_nan() || n < 0.0 || (!allow_zero && n == 0.0) {
        let bound = if allow_zero {
            "non-negative"
        } else {
            "positive"
        };
        return Err(format!("timer.{what}: seconds must be a {bound} number, got {n}").into());
    }
    Duration::try_from_secs_f64(n)
        .map_err(|_| format!("timer.{what}: {n} seconds is too long").into())
}

fn start(lua: &Lua, first: Duration, every: Option<Duration>, callback: Function) -> ApiResult {
    let ts = state(lua)?;
    let keep = ts
        .port
        .keep_alive()
        .map_err(|e| format!("timer: the state is closing: {e}"))?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let handle = lua.create_userdata(Timer { id })?;
    let deadline = Instant::now()
        .checked_add(first)
        .ok_or_else(|| "timer: deadline too far away".to_string())?;
    ts.live.borrow_mut().insert(id, (callback, handle.clone()));
    let entry = Entry {
        owner: ts.owner,
        port: ts.port.clone(),
        _keep: keep,
        deadline,
        every,
        in_flight: Default::default(),
    };
    if let Err(e) = schedule(id, entry) {
        ts.live.borrow_mut().remove(&id);
        return Err(e.into());
    }
    Ok(one(Value::UserData(handle)))
}

/// `after(seconds, fn)` → timer.
fn after(lua: &Lua, _st: &StateHub, a: MultiValue) -> ApiResult {
    let delay = seconds(a.front(), "after", true)?;
    let callback = function(a.get(1), "timer.after")?;
    start(lua, delay, None, callback)
}

/// `every(seconds, fn [, first])` → timer.
fn every(lua: &Lua, _st: &StateHub, a: MultiValue) -> ApiResult {
    let period = seconds(a.front(), "every", false)?;
    let callback = function(a.get(1), "timer.every")?;
    let first = match a.get(2) {
        None | Some(Value::Nil) => period,
        v => seconds(v, "every (first)", true)?,
    };
    start(lua, first, Some(period), callback)
}

/// `t:cancel()` → true when the timer was active.
fn cancel(lua: &Lua, _st: &StateHub, a: MultiValue) -> ApiResult {
    let id = this::<Timer>(&a, "timer:cancel")?.id;
    let was = super::existing_state::<TimerState>(lua)
        .is_some_and(|ts| ts.live.borrow_mut().remove(&id).is_some());
    unschedule(id);
    Ok(one(Value::Boolean(was)))
}

/// `t:active()` → boolean.
fn active(lua: &Lua, _st: &StateHub, a: MultiValue) -> ApiResult {
    let id = this::<Timer>(&a, "timer:active")?.id;
    let live = super::existing_state::<TimerState>(lua)
        .is_some_and(|ts| ts.live.borrow().contains_key(&id));
    Ok(one(Value::Boolean(live)))
}

/// `now()` → seconds on a monotonic clock.
fn now(_lua: &Lua, _st: &StateHub, _a: MultiValue) -> ApiResult {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    Ok(one(Value::Number(epoch.elapsed().as_secs_f64())))
}

/// Builds the `darksidesync.timer` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let st = StateHub::get(lua)?;
    make_table(
        lua,
        &st,
        &[("after", after), ("every", every), ("now", now)],
    )
}
