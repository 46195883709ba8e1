//! Waiting for work: `fd()`, `wait([seconds])` and LuaVortex's trio
//! `event_fd()`, `wait_events([usec])`, `yield([usec])` (microseconds).
//!
//! The descriptor is the hub's: readable exactly while items are queued in
//! the hub, cleared by the drain that empties it, so a flush loop such as
//! `while wait(0) do dispatch() end` never spins on a stale wake-up.

use std::time::{Duration, Instant};

use mlua::{Lua, MultiValue, Value};

use crate::args;
use crate::dispatch::dispatch_n;
use crate::state::StateHub;
use crate::ApiResult;

const MICROS: f64 = 1_000_000.0;

fn one(v: Value) -> MultiValue {
    MultiValue::from_iter([v])
}

/// `fd()` / `event_fd()` → the descriptor (an integer).
pub(crate) fn fd(_lua: &Lua, st: &StateHub, _a: MultiValue) -> ApiResult {
    let fd = st
        .hub
        .fd()
        .map_err(|e| format!("darksidesync.fd: cannot create the descriptor: {e}"))?;
    Ok(one(Value::Integer(fd.into())))
}

/// Blocks until work is pending (true), the timeout passes or the state
/// closes (false). The hub's wait also returns early when the last
/// keep-alive reference goes away (that is for `run()`); here that is not a
/// reason to stop waiting.
pub(crate) fn wait_for(st: &StateHub, timeout: Option<Duration>) -> bool {
    if !st.batch.borrow().is_empty() {
        return true;
    }
    // One look under the hub's lock first: under load that is all a wait
    // costs (the consumer's lock acquisitions are what producers contend
    // with). Before sleeping, give the CPU away once: a producer that
    // shares this core (many states, or more threads than cores) then
    // fills the queue further, and one wake-up covers more items. Costs
    // one syscall when nothing else is runnable.
    if st.hub.wait(Some(Duration::ZERO)) {
        return true;
    }
    if timeout.map_or(true, |t| !t.is_zero()) {
        std::thread::yield_now();
    }
    // `None` inside `Some` is a deadline too far away to represent.
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    loop {
        let left = match deadline {
            None | Some(None) => None,
            Some(Some(d)) => Some(d.saturating_duration_since(Instant::now())),
        };
        if st.hub.wait(left) {
            return true;
        }
        if st.hub.is_closed() || left.is_some_and(|l| l.is_zero()) {
            return false;
        }
        if let Some(Some(d)) = deadline {
            if Instant::now() >= d {
                return false;
            }
        }
    }
}

/// `wait([seconds])` → boolean. `nil` waits without a limit.
pub(crate) fn wait(_lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    st.forbid_in_callback("wait")?;
    let timeout = args::timeout(
        a.front().unwrap_or(&Value::Nil),
        "wait",
        "seconds",
        1.0,
        false,
    )?;
    Ok(one(Value::Boolean(wait_for(st, timeout))))
}

/// `wait_events([usec])` → boolean. Absent or 0 waits without a limit.
pub(crate) fn wait_events(_lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    st.forbid_in_callback("wait_events")?;
    let timeout = args::timeout(
        a.front().unwrap_or(&Value::Nil),
        "wait_events",
        "microseconds",
        MICROS,
        true,
    )?;
    Ok(one(Value::Boolean(wait_for(st, timeout))))
}

/// `yield([usec])` → number of items run. Waits up to `usec` for work and
/// runs what is pending; absent or 0 waits until at least one item ran.
pub(crate) fn yield_(lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    st.forbid_in_callback("yield")?;
    let timeout = args::timeout(
        a.front().unwrap_or(&Value::Nil),
        "yield",
        "microseconds",
        MICROS,
        true,
    )?;
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    loop {
        let left = match deadline {
            None => None,
            Some(None) => None, // too far away to represent: no limit
            Some(Some(d)) => Some(d.saturating_duration_since(Instant::now())),
        };
        if !wait_for(st, left) {
            return Ok(one(Value::Integer(0)));
        }
        let ran = dispatch_n(lua, st, None)?;
        // `ran` is 0 when another path took the work first or every item
        // was skipped: wait again, for an item that runs.
        if ran > 0 || left.is_some_and(|l| l.is_zero()) {
            return Ok(one(Value::Integer(ran as i64)));
        }
    }
}
