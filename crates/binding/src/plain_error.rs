//! Lua functions for a library's API that raise **plain string errors**,
//! as a C library's `luaL_error` does: `pcall` gets the message itself,
//! not mlua's error userdata, so scripts can compare and print it.
//!
//! They are also safe to call from a finaliser at `lua_close`: mlua's
//! per-state data (created when the library was loaded) may be gone by
//! then, and calling into it would crash. A sentinel created after it is
//! finalised before it (Lua finalises newest first) and marks the state
//! as closing; the functions then raise `"darksidesync: state is
//! closing"`, like the module's own.

use mlua::{FromLuaMulti, Function, IntoLuaMulti, Lua, MultiValue, Table, Value};

use crate::error::LuaError;

/// Turns `(true, ...)` into `...` and `(false, message)` into
/// `error(message, 0)`: no position, like `luaL_error` in a C function.
const UNWRAP: &str = r#"
local f, guard = ...
local function unwrap(ok, ...)
  if ok then return ... end
  error((...), 0)
end
return function(...)
  if guard.closing then error("darksidesync: state is closing", 0) end
  return unwrap(f(...))
end
"#;

/// The per-state guard table: `closing` turns true when its sentinel is
/// finalised at `lua_close`.
const GUARD: &str = r#"
local guard = {}
local function closing() guard.closing = true end
if newproxy then -- 5.1, LuaJIT
  guard.sentinel = newproxy(true)
  getmetatable(guard.sentinel).__gc = closing
else
  guard.sentinel = setmetatable({}, { __gc = closing })
end
return guard
"#;

/// Where this copy of the crate keeps the guard table.
const GUARD_KEY: &str = "darksidesync-binding.closing";

fn guard(lua: &Lua) -> mlua::Result<Table> {
    if let Value::Table(t) = lua.named_registry_value::<Value>(GUARD_KEY)? {
        return Ok(t);
    }
    let t: Table = lua.load(GUARD).set_name("=darksidesync-binding").call(())?;
    lua.set_named_registry_value(GUARD_KEY, &t)?;
    Ok(t)
}

/// A Lua function running `f` whose errors reach Lua as plain strings:
/// `Err(mlua::Error::runtime("timer.after: seconds must be a number"))`
/// is raised as exactly that text. An argument that does not convert to
/// `A` raises mlua's conversion message with its position and the name the
/// function was called by, counted as `luaL_argerror` counts them (from
/// after `self` for a method call):
/// `"bad argument #2 to 'watch': error converting Lua nil to function"`.
pub fn function<A, R, F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    A: FromLuaMulti,
    R: IntoLuaMulti,
    F: Fn(&Lua, A) -> mlua::Result<R> + 'static,
{
    let inner = lua.create_function(move |lua, args: MultiValue| {
        let result = A::from_lua_args(args, 1, None, lua)
            .map_err(|e| named_bad_argument(lua, e))
            .and_then(|a| f(lua, a))
            .and_then(|r| r.into_lua_multi(lua));
        Ok(match result {
            Ok(mut values) => {
                values.push_front(Value::Boolean(true));
                values
            }
            Err(e) => {
                let text = LuaError::from_mlua(&e).message().to_string();
                MultiValue::from_iter([
                    Value::Boolean(false),
                    Value::String(lua.create_string(text)?),
                ])
            }
        })
    })?;
    lua.load(UNWRAP)
        .set_name("=darksidesync-binding")
        .call((inner, guard(lua)?))
}

/// A bad argument's text as `luaL_argerror` words it, with the name this
/// call was made by (the Lua wrapper's frame, one level up) and, for a
/// method call, the position counted from after `self`.
fn named_bad_argument(lua: &Lua, e: mlua::Error) -> mlua::Error {
    let mlua::Error::BadArgument { pos, cause, .. } = &e else {
        return e;
    };
    let (name, method) = lua
        .inspect_stack(1, |d| {
            let n = d.names();
            (
                n.name.map(|s| s.into_owned()),
                n.name_what == Some("method"),
            )
        })
        .unwrap_or((None, false));
    let name = name.unwrap_or_else(|| "?".to_string());
    let cause = LuaError::from_mlua(cause).message().to_string();
    let text = match (method, *pos) {
        (true, 1) => format!("calling '{name}' on bad self: {cause}"),
        (true, pos) => format!("bad argument #{} to '{name}': {cause}", pos - 1),
        (false, pos) => format!("bad argument #{pos} to '{name}': {cause}"),
    };
    mlua::Error::runtime(text)
}
