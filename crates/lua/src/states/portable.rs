//! [`Portable`]: a Lua value copied as plain data, so that it can move to a
//! Lua state on another thread.
//!
//! Like `darksidesync::Data`, but tables are copied too (deeply, keys and
//! values), because messages between states are usually records. A value
//! that cannot leave its state (a function, userdata, a coroutine) or a
//! table that contains itself is an error naming what was found, raised at
//! the sender; nothing is silently replaced.

use std::ffi::c_void;

use mlua::{IntoLua, Lua, MultiValue, Value};

/// Nesting deeper than this is refused (the copy recurses).
pub const MAX_DEPTH: usize = 100;

/// The Lua type name of a value, as `type()` says it.
pub fn lua_type(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) | Value::Number(_) => "number",
        other => other.type_name(),
    }
}

/// A plain copy of a Lua value.
#[derive(Debug, Clone, PartialEq)]
pub enum Portable {
    /// `nil`.
    Nil,
    /// A boolean.
    Boolean(bool),
    /// An integer (Lua 5.3 and later).
    Integer(i64),
    /// A float.
    Number(f64),
    /// A string, as bytes.
    String(Vec<u8>),
    /// A table, as its key/value pairs.
    Table(Vec<(Portable, Portable)>),
}

impl Portable {
    /// Copies a Lua value; `what` names the operation for error messages.
    pub fn from_lua(value: &Value, what: &str) -> Result<Portable, String> {
        Portable::copy(value, what, &mut Vec::new())
    }

    /// `open` holds the tables being copied, outermost first: meeting one
    /// of them again is a cycle. A table reached twice along different
    /// paths is simply copied twice.
    fn copy(value: &Value, what: &str, open: &mut Vec<*const c_void>) -> Result<Portable, String> {
        Ok(match value {
            Value::Nil => Portable::Nil,
            Value::Boolean(b) => Portable::Boolean(*b),
            Value::Integer(i) => Portable::Integer(*i),
            Value::Number(n) => Portable::Number(*n),
            Value::String(s) => Portable::String(s.as_bytes().to_vec()),
            Value::Table(t) => {
                let id = t.to_pointer();
                if open.contains(&id) {
                    return Err(format!(
                        "{what}: cannot copy a table that contains itself (a cycle)"
                    ));
                }
                if open.len() >= MAX_DEPTH {
                    return Err(format!(
                        "{what}: cannot copy tables nested deeper than {MAX_DEPTH} levels"
                    ));
                }
                open.push(id);
                let mut pairs = Vec::new();
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair.map_err(|e| format!("{what}: {e}"))?;
                    pairs.push((Portable::copy(&k, what, open)?, Portable::copy(&v, what, open)?));
                }
                open.pop();
                Portable::Table(pairs)
            }
            other => {
                return Err(format!(
                    "{what}: cannot copy a {} to another Lua state (only nil, booleans, numbers, strings and tables of them)",
                    lua_type(other)
                ))
            }
        })
    }

    /// Copies every value of a multi-value.
    pub fn from_multi(values: &MultiValue, what: &str) -> Result<Vec<Portable>, String> {
        values.iter().map(|v| Portable::from_lua(v, what)).collect()
    }

    /// Builds the Lua value (on the receiving state's thread).
    pub fn to_lua(&self, lua: &Lua) -> mlua::Result<Value> {
        Ok(match self {
            Portable::Nil => Value::Nil,
            Portable::Boolean(b) => Value::Boolean(*b),
            Portable::Integer(i) => (*i).into_lua(lua)?,
            Portable::Number(n) => Value::Number(*n),
            Portable::String(s) => Value::String(lua.create_string(s)?),
            Portable::Table(pairs) => {
                let t = lua.create_table_with_capacity(0, pairs.len())?;
                for (k, v) in pairs {
                    t.raw_set(k.to_lua(lua)?, v.to_lua(lua)?)?;
                }
                Value::Table(t)
            }
        })
    }

    /// Builds a multi-value.
    pub fn to_multi(values: &[Portable], lua: &Lua) -> mlua::Result<MultiValue> {
        values.iter().map(|m| m.to_lua(lua)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_nested_tables_and_scalars() {
        let lua = Lua::new();
        let v: Value = lua
            .load(r#"return { 1, "two", x = { y = true }, [3.5] = false }"#)
            .eval()
            .unwrap();
        let m = Portable::from_lua(&v, "test").unwrap();
        let other = Lua::new();
        other.globals().set("v", m.to_lua(&other).unwrap()).unwrap();
        let ok: bool = other
            .load(r#"return v[1] == 1 and v[2] == "two" and v.x.y == true and v[3.5] == false"#)
            .eval()
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn refuses_functions_with_a_clear_message() {
        let lua = Lua::new();
        let v: Value = lua.load("return { f = print }").eval().unwrap();
        let e = Portable::from_lua(&v, "send").unwrap_err();
        assert!(
            e.starts_with("send: cannot copy a function to another Lua state"),
            "{e}"
        );
    }

    #[test]
    fn refuses_cycles_but_copies_shared_tables() {
        let lua = Lua::new();
        let v: Value = lua
            .load("local t = {} t.t = { t } return t")
            .eval()
            .unwrap();
        let e = Portable::from_lua(&v, "send").unwrap_err();
        assert!(e.contains("contains itself"), "{e}");
        let v: Value = lua
            .load("local s = {1} return { a = s, b = s }")
            .eval()
            .unwrap();
        assert!(Portable::from_lua(&v, "send").is_ok());
    }
}
