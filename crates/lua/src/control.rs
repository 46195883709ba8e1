//! Settings and counters: `setport`/`getport` (DSS UDP notification),
//! `setcapacity`/`capacity`, `stats`, `timing`/`waits`.

use darksidesync_core::Waits;
use mlua::{Lua, MultiValue, Value};

use crate::args;
use crate::state::StateHub;
use crate::ApiResult;

/// The largest capacity `setcapacity` accepts.
pub const MAX_CAPACITY: usize = 1 << 24;

/// DarkSideSync 1.0's exact message.
pub(crate) const BAD_PORT: &str =
    "Invalid UDP port number, use an integer value from 1 to 65535, or 0 to disable UDP notification";

fn one(v: Value) -> MultiValue {
    MultiValue::from_iter([v])
}

/// `setport(port)` → 1. Every wake-up then sends one datagram to
/// `127.0.0.1:port`; 0 disables.
pub(crate) fn setport(_lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    let port = match a.front().and_then(args::integer) {
        Some(p) if (0..=65535).contains(&p) => p as u16,
        _ => return Err(BAD_PORT.to_string().into()),
    };
    st.hub
        .set_udp_port(Some(port))
        .map_err(|e| format!("darksidesync.setport: cannot create the UDP socket: {e}"))?;
    Ok(one(Value::Integer(1)))
}

/// `getport()` → the UDP port, or 0 when disabled.
pub(crate) fn getport(_lua: &Lua, st: &StateHub, _a: MultiValue) -> ApiResult {
    Ok(one(Value::Integer(st.hub.udp_port().map_or(0, i64::from))))
}

/// `setcapacity(n)` → the previous capacity.
pub(crate) fn setcapacity(_lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    let v = a.front().unwrap_or(&Value::Nil);
    let n = match args::integer(v) {
        Some(n) if n >= 1 && n as u64 <= MAX_CAPACITY as u64 => n as usize,
        _ => {
            return Err(format!(
                "darksidesync.setcapacity: capacity must be an integer from 1 to {MAX_CAPACITY}, got {}",
                args::describe(v)
            )
            .into())
        }
    };
    let old = st.hub.capacity();
    st.hub.set_capacity(n);
    Ok(one(Value::Integer(old as i64)))
}

/// `capacity()` → the queue's bound.
pub(crate) fn capacity(_lua: &Lua, st: &StateHub, _a: MultiValue) -> ApiResult {
    Ok(one(Value::Integer(st.hub.capacity() as i64)))
}

/// `stats()` → a table of counters.
///
/// The hub's snapshot is taken under its lock and keeps `posted ==
/// delivered + cancelled + depth`, where its `delivered` counts items
/// drained into the local batch. Lua's view moves the batch's items (only
/// this thread changes the batch, so its length is exact here) from
/// `delivered` to `depth`, and the items purged from the batch after an
/// unregister from `delivered` to `cancelled`: `delivered` counts items
/// handed to Lua, `depth` every item waiting, and the identity still
/// holds in every snapshot.
pub(crate) fn stats(lua: &Lua, st: &StateHub, _a: MultiValue) -> ApiResult {
    let in_batch = st.batch_len();
    let s = st.hub.stats();
    let purged = st.purged.get();
    let t = lua.create_table_with_capacity(0, 12)?;
    t.raw_set("posted", s.posted)?;
    t.raw_set(
        "delivered",
        s.delivered.saturating_sub(in_batch as u64 + purged),
    )?;
    t.raw_set("refused", s.refused)?;
    // Deprecated alias of `refused`, for one release (see CHANGELOG).
    t.raw_set("dropped", s.refused)?;
    t.raw_set("cancelled", s.cancelled + purged)?;
    t.raw_set("replies", s.replies)?;
    t.raw_set("peak_depth", s.peak_depth)?;
    t.raw_set("wakeups", s.wakeups)?;
    t.raw_set("depth", s.depth + in_batch)?;
    t.raw_set("capacity", s.capacity)?;
    t.raw_set("keep_alive", s.keep_alive)?;
    t.raw_set("ports", s.ports)?;
    Ok(one(Value::Table(t)))
}

/// `timing([on])` → whether timing was on. With a boolean turns timing of
/// queue waits on (fresh histograms) or off; without one only tells.
pub(crate) fn timing(_lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    let was = match a.front() {
        None | Some(Value::Nil) => st.hub.timing(),
        Some(Value::Boolean(on)) => st.hub.set_timing(*on),
        Some(other) => {
            return Err(format!(
                "darksidesync.timing: expected a boolean or nil, got {}",
                args::type_name(other)
            )
            .into())
        }
    };
    Ok(one(Value::Boolean(was)))
}

/// `waits([library])` → `{ count, p50, p99, max, total }` (seconds) of the
/// state's items, or of those of the libraries registered under the name
/// `library`; nil while timing is off or when no such library is
/// registered.
pub(crate) fn waits(lua: &Lua, st: &StateHub, a: MultiValue) -> ApiResult {
    let found = match a.front() {
        None | Some(Value::Nil) => st.hub.waits(),
        Some(Value::String(name)) => st.hub.named_waits(&name.to_string_lossy()),
        Some(other) => {
            return Err(format!(
                "darksidesync.waits: library must be a string (its registered name) or nil, got {}",
                args::type_name(other)
            )
            .into())
        }
    };
    let Some(w) = found else {
        return Ok(one(Value::Nil));
    };
    Ok(one(Value::Table(waits_table(lua, &w)?)))
}

fn waits_table(lua: &Lua, w: &Waits) -> mlua::Result<mlua::Table> {
    let t = lua.create_table_with_capacity(0, 5)?;
    t.raw_set("count", w.count)?;
    t.raw_set("p50", w.p50.as_secs_f64())?;
    t.raw_set("p99", w.p99.as_secs_f64())?;
    t.raw_set("max", w.max.as_secs_f64())?;
    t.raw_set("total", w.total.as_secs_f64())?;
    Ok(t)
}
