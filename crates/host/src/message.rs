//! [`Msg`]: a Lua value copied as plain data, so it can travel between Lua
//! states on different threads.
//!
//! Like `darksidesync::Data`, but tables are copied too (deeply, keys and
//! values), because messages between states are usually records. Values
//! that cannot leave their state (functions, userdata, coroutines) are an
//! error naming what was found, never a silent substitute.

use mlua::{IntoLua, Lua, MultiValue, Value};

/// Nesting deeper than this is refused (it is almost surely a cycle).
pub const MAX_DEPTH: usize = 64;

/// The Lua type name of a value, as `type()` says it.
pub fn lua_type(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) | Value::Number(_) => "number",
        other => other.type_name(),
    }
}

/// A plain copy of a Lua value.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// `nil`.
    Nil,
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Integer(i64),
    /// A float.
    Number(f64),
    /// A string, as bytes.
    String(Vec<u8>),
    /// A table, as its key/value pairs.
    Table(Vec<(Msg, Msg)>),
}

impl Msg {
    /// Copies a Lua value; `what` names the operation for error messages.
    pub fn from_lua(value: &Value, what: &str) -> Result<Msg, String> {
        Msg::copy(value, what, 0)
    }

    fn copy(value: &Value, what: &str, depth: usize) -> Result<Msg, String> {
        Ok(match value {
            Value::Nil => Msg::Nil,
            Value::Boolean(b) => Msg::Boolean(*b),
            Value::Integer(i) => Msg::Integer(*i),
            Value::Number(n) => Msg::Number(*n),
            Value::String(s) => Msg::String(s.as_bytes().to_vec()),
            Value::Table(t) => {
                if depth >= MAX_DEPTH {
                    return Err(format!("{what}: tables nested deeper than {MAX_DEPTH} levels (is there a cycle?)"));
                }
                let mut pairs = Vec::new();
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair.map_err(|e| format!("{what}: {e}"))?;
                    pairs.push((Msg::copy(&k, what, depth + 1)?, Msg::copy(&v, what, depth + 1)?));
                }
                Msg::Table(pairs)
            }
            other => {
                return Err(format!(
                    "{what}: cannot copy a {} to another Lua state (only nil, booleans, numbers, strings and tables of them)",
                    other.type_name()
                ))
            }
        })
    }

    /// Copies every value of a multi-value.
    pub fn from_multi(values: &MultiValue, what: &str) -> Result<Vec<Msg>, String> {
        values.iter().map(|v| Msg::from_lua(v, what)).collect()
    }

    /// Builds the Lua value (on the receiving state's thread).
    pub fn to_lua(&self, lua: &Lua) -> mlua::Result<Value> {
        Ok(match self {
            Msg::Nil => Value::Nil,
            Msg::Boolean(b) => Value::Boolean(*b),
            Msg::Integer(i) => (*i).into_lua(lua)?,
            Msg::Number(n) => Value::Number(*n),
            Msg::String(s) => Value::String(lua.create_string(s)?),
            Msg::Table(pairs) => {
                let t = lua.create_table_with_capacity(0, pairs.len())?;
                for (k, v) in pairs {
                    t.raw_set(k.to_lua(lua)?, v.to_lua(lua)?)?;
                }
                Value::Table(t)
            }
        })
    }

    /// Builds a multi-value.
    pub fn to_multi(values: &[Msg], lua: &Lua) -> mlua::Result<MultiValue> {
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
        let m = Msg::from_lua(&v, "test").unwrap();
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
        let e = Msg::from_lua(&v, "send").unwrap_err();
        assert!(
            e.starts_with("send: cannot copy a function to another Lua state"),
            "{e}"
        );
    }

    #[test]
    fn refuses_cycles() {
        let lua = Lua::new();
        let v: Value = lua.load("local t = {} t.t = t return t").eval().unwrap();
        let e = Msg::from_lua(&v, "send").unwrap_err();
        assert!(e.contains("is there a cycle?"), "{e}");
    }
}
