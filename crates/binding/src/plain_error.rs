//! Lua functions for a library's API that raise **plain string errors**,
//! as a C library's `luaL_error` does: `pcall` gets the message itself,
//! not mlua's error userdata, so scripts can compare and print it.

use mlua::{FromLuaMulti, Function, IntoLuaMulti, Lua, MultiValue, Value};

use crate::error::LuaError;

/// Turns `(true, ...)` into `...` and `(false, message)` into
/// `error(message, 0)`: no position, like `luaL_error` in a C function.
const UNWRAP: &str = r#"
local f = ...
local function unwrap(ok, ...)
  if ok then return ... end
  error((...), 0)
end
return function(...) return unwrap(f(...)) end
"#;

/// A Lua function running `f` whose errors reach Lua as plain strings:
/// `Err(mlua::Error::runtime("timer.after: seconds must be a number"))`
/// is raised as exactly that text. Arguments that do not convert to `A`
/// raise mlua's conversion message the same way.
pub fn function<A, R, F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    A: FromLuaMulti,
    R: IntoLuaMulti,
    F: Fn(&Lua, A) -> mlua::Result<R> + 'static,
{
    let inner = lua.create_function(move |lua, args: MultiValue| {
        let result = A::from_lua_multi(args, lua)
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
        .call(inner)
}
