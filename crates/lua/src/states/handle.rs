//! [`Peer`]: the userdata of a state's handle on another state — a child
//! (what `spawn` returns) or its parent (`states.parent`) — and its methods.

use std::sync::Arc;
use std::time::Duration;

use darksidesync_core::{CallError, PostErrorKind};
use mlua::{AnyUserData, Lua, MultiValue, Table, UserData, UserDataFields, Value};

use super::child::Child;
use super::deadlock;
use super::node::{self, Node};
use super::portable::Portable;
use crate::state::StateHub;
use crate::{ApiError, ApiFn, ApiResult};

/// A handle on another state.
pub(crate) struct Peer {
    /// The state holding the handle.
    pub(crate) me: u64,
    /// The other state.
    pub(crate) peer: u64,
    pub(crate) port: darksidesync_core::Port<crate::item::Item>,
    /// Set on a parent's handle on its child.
    pub(crate) child: Option<Arc<Child>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Nobody can send to the child through this handle any more.
        if let Some(c) = &self.child {
            c.release_link();
        }
    }
}

impl UserData for Peer {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", methods);
        fields.add_meta_field("__name", "darksidesync.states.handle");
    }
}

fn methods(lua: &Lua) -> mlua::Result<Table> {
    let st = StateHub::get(lua)?;
    let fns: &[(&str, ApiFn)] = &[
        ("post", post),
        ("call", call),
        ("calltimeout", calltimeout),
        ("onmessage", onmessage),
        ("onexit", onexit),
        ("join", join),
        ("close", close),
        ("id", id),
    ];
    crate::make_table(lua, &st, fns)
}

fn this(a: &mut MultiValue, method: &str) -> Result<AnyUserData, ApiError> {
    match a.pop_front() {
        Some(Value::UserData(ud)) if ud.is::<Peer>() => Ok(ud),
        _ => Err(format!(
            "darksidesync.states: {method}: expected a state handle as self (use the colon syntax)"
        )
        .into()),
    }
}

fn closed_or(kind: PostErrorKind) -> &'static str {
    match kind {
        PostErrorKind::Closed | PostErrorKind::Unregistered => "closed",
        other => other.as_str(),
    }
}

fn failure(lua: &Lua, reason: &str) -> ApiResult {
    Ok(MultiValue::from_iter([
        Value::Nil,
        Value::String(lua.create_string(reason)?),
    ]))
}

/// `h:post(...)` → true, or nil and "closed" / "would deadlock".
fn post(lua: &Lua, _st: &StateHub, mut a: MultiValue) -> ApiResult {
    let ud = this(&mut a, "post")?;
    let p = ud.borrow::<Peer>()?;
    let values = Portable::from_multi(&a, "darksidesync.states: post")?;
    let item = node::message(p.me, values, None);
    let item = match p.port.try_post(item) {
        Ok(_) => return Ok(MultiValue::from_iter([Value::Boolean(true)])),
        Err(e) if e.kind == PostErrorKind::Full => e.item,
        Err(e) => return failure(lua, closed_or(e.kind)),
    };
    // The queue is full: wait for room, unless the other state waits for
    // this one (it would never drain).
    match deadlock::post_when_room(p.me, p.peer, &p.port, item) {
        Ok(()) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
        Err(kind) => failure(lua, closed_or(kind)),
    }
}

/// `h:call(...)` → the other side's handler's return values; raises on
/// failure.
fn call(lua: &Lua, _st: &StateHub, mut a: MultiValue) -> ApiResult {
    let ud = this(&mut a, "call")?;
    let p = ud.borrow::<Peer>()?;
    call_with(lua, &p, a, None, "call")
}

/// `h:calltimeout(seconds, ...)`: `h:call(...)` that raises "timeout" when
/// no answer came within `seconds`.
fn calltimeout(lua: &Lua, _st: &StateHub, mut a: MultiValue) -> ApiResult {
    let ud = this(&mut a, "calltimeout")?;
    let p = ud.borrow::<Peer>()?;
    let timeout = seconds(a.pop_front(), "calltimeout", false)?;
    call_with(lua, &p, a, timeout, "calltimeout")
}

fn call_with(
    lua: &Lua,
    p: &Peer,
    a: MultiValue,
    timeout: Option<Duration>,
    what: &str,
) -> ApiResult {
    let values = Portable::from_multi(&a, &format!("darksidesync.states: {what}"))?;
    let Some(waiting) = deadlock::wait_for(p.me, p.peer) else {
        return Err(format!("darksidesync.states: {what}: would deadlock").into());
    };
    let (me, key) = (p.me, waiting.key());
    match p.port.call(
        |reply| node::message(me, values, Some((reply, key))),
        timeout,
    ) {
        Ok(results) => Ok(Portable::to_multi(&results, lua)?),
        Err(e) => {
            let reason = match e {
                CallError::TimedOut => "timeout".to_string(),
                CallError::Closed | CallError::Unregistered => "closed".to_string(),
                // The other state is alive: its handler dropped the reply.
                CallError::Cancelled => "cancelled".to_string(),
                other => other.to_string(),
            };
            Err(format!("darksidesync.states: {what}: {reason}").into())
        }
    }
}

/// A timeout argument: a non-negative number of seconds, or nil for none
/// (`optional`) — a huge value also means none.
fn seconds(v: Option<Value>, what: &str, optional: bool) -> Result<Option<Duration>, ApiError> {
    let n = match v {
        None | Some(Value::Nil) if optional => return Ok(None),
        Some(Value::Integer(i)) => i as f64,
        Some(Value::Number(n)) => n,
        other => {
            let got = other.as_ref().map_or("no value", super::portable::lua_type);
            return Err(format!(
                "darksidesync.states: {what}: expected a number of seconds, got {got}"
            )
            .into());
        }
    };
    if n.is_nan() || n < 0.0 {
        return Err(format!(
            "darksidesync.states: {what}: the timeout must be a non-negative number of seconds"
        )
        .into());
    }
    Ok(Duration::try_from_secs_f64(n).ok())
}

/// `h:onmessage(fn)`: the handler of what the other state posts and calls
/// (its return values answer a call); nil removes it.
fn onmessage(lua: &Lua, _st: &StateHub, mut a: MultiValue) -> ApiResult {
    let ud = this(&mut a, "onmessage")?;
    let p = ud.borrow::<Peer>()?;
    let node = Node::get(lua)?;
    match a.pop_front() {
        None | Some(Value::Nil) => {
            node.handlers.borrow_mut().remove(&p.peer);
        }
        Some(Value::Function(f)) => {
            node.handlers.borrow_mut().insert(p.peer, f);
        }
        Some(other) => {
            return Err(format!(
                "darksidesync.states: onmessage: expected a function or nil, got {}",
                super::portable::lua_type(&other)
            )
            .into())
        }
    }
    Ok(MultiValue::new())
}

/// `h:onexit(fn)`: called in this state once the child ended, with `true`
/// and its results or `false` and its error; nil removes it.
fn onexit(lua: &Lua, _st: &StateHub, mut a: MultiValue) -> ApiResult {
    let ud = this(&mut a, "onexit")?;
    let p = ud.borrow::<Peer>()?;
    child_of(&p, "onexit")?;
    let node = Node::get(lua)?;
    match a.pop_front() {
        None | Some(Value::Nil) => {
            node.exit_handlers.borrow_mut().remove(&p.peer);
        }
        Some(Value::Function(f)) => {
            node.exit_handlers.borrow_mut().insert(p.peer, f);
        }
        Some(other) => {
            return Err(format!(
                "darksidesync.states: onexit: expected a function or nil, got {}",
                super::portable::lua_type(&other)
            )
            .into())
        }
    }
    Ok(MultiValue::new())
}

fn child_of<'a>(p: &'a Peer, what: &str) -> Result<&'a Arc<Child>, ApiError> {
    p.child.as_ref().ok_or_else(|| {
        ApiError::from(format!(
            "darksidesync.states: {what}: only a handle returned by spawn can be used for this"
        ))
    })
}

/// `h:join([seconds])` → the chunk's return values; or nil and the error
/// with its traceback; or nil and "timeout" / "would deadlock".
fn join(lua: &Lua, _st: &StateHub, mut a: MultiValue) -> ApiResult {
    let ud = this(&mut a, "join")?;
    let p = ud.borrow::<Peer>()?;
    let child = child_of(&p, "join")?;
    let timeout = seconds(a.pop_front(), "join", true)?;
    // A zero timeout only looks: it cannot deadlock.
    let _waiting = match timeout {
        Some(t) if t.is_zero() => None,
        _ => match deadlock::wait_for(p.me, p.peer) {
            Some(w) => Some(w),
            None => return failure(lua, "would deadlock"),
        },
    };
    match child.join(timeout) {
        Some(Ok(values)) => Ok(Portable::to_multi(&values, lua)?),
        Some(Err(e)) => failure(lua, &e),
        None => failure(lua, "timeout"),
    }
}

/// `h:close()` → true when the parent's hold on the child was still there:
/// the child's `darksidesync.run()` no longer waits for the parent.
fn close(_lua: &Lua, _st: &StateHub, mut a: MultiValue) -> ApiResult {
    let ud = this(&mut a, "close")?;
    let p = ud.borrow::<Peer>()?;
    let child = child_of(&p, "close")?;
    Ok(MultiValue::from_iter([Value::Boolean(
        child.release_link(),
    )]))
}

/// `h:id()` → the other state's id.
fn id(_lua: &Lua, _st: &StateHub, mut a: MultiValue) -> ApiResult {
    let ud = this(&mut a, "id")?;
    let p = ud.borrow::<Peer>()?;
    Ok(MultiValue::from_iter([Value::Integer(p.peer as i64)]))
}
