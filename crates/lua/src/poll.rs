//! `poll()` and `queuesize()`: the DarkSideSync 1.0 way of taking work.

use mlua::{IntoLua, Lua, MultiValue, Value};

use crate::reply::ReplyHandle;
use crate::state::StateHub;
use crate::Ret;

/// `poll()` → `-1` when empty; else `count` (nothing to call) or
/// `count, callback, args`, where `count` is the number of items left and
/// `args` is an array with `args.n` set. For a blocking delivery `args[1]`
/// is the reply userdata and the callback's arguments follow it.
pub(crate) fn poll(lua: &Lua, st: &StateHub, _args: MultiValue) -> Ret {
    let Some(item) = st.next_item() else {
        return Ok(MultiValue::from_iter([Value::Integer(-1)]));
    };
    // Prepare before counting, so items a decoder posted are counted too.
    let prepared = item.prepare(lua);
    let left = Value::Integer(st.pending() as i64);
    let prepared = prepared?;
    let Some((callback, values)) = prepared.call else {
        // Dropping an unused sink releases its waiter.
        return Ok(MultiValue::from_iter([left]));
    };
    let extra = usize::from(prepared.reply.is_some());
    let args = lua.create_table_with_capacity(values.len() + extra, 1)?;
    if let Some(sink) = prepared.reply {
        args.raw_set(1, lua.create_userdata(ReplyHandle::new(sink))?)?;
    }
    let n = values.len() + extra;
    for (i, v) in values.into_iter().enumerate() {
        if !v.is_nil() {
            args.raw_set(i + 1 + extra, v)?;
        }
    }
    args.raw_set("n", n)?;
    Ok(MultiValue::from_iter([left, callback, args.into_lua(lua)?]))
}

/// `queuesize()` → the number of items waiting.
pub(crate) fn queuesize(_lua: &Lua, st: &StateHub, _args: MultiValue) -> Ret {
    Ok(MultiValue::from_iter([Value::Integer(st.pending() as i64)]))
}
