//! [`Data`]: a Lua value that can cross threads.
//!
//! Lua values belong to their state and must never be touched off its
//! thread. Producers that build arguments on their own threads, and callers
//! that receive replies there, use `Data` instead; it is converted to and
//! from Lua values on the Lua thread only.

use mlua::{IntoLua, Lua, MultiValue, Value};

/// A plain, thread-safe copy of a Lua scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// `nil`.
    Nil,
    /// A boolean.
    Boolean(bool),
    /// An integer (a float with an integral value on Lua 5.1/5.2/LuaJIT).
    Integer(i64),
    /// A float.
    Number(f64),
    /// A string, as bytes (Lua strings need not be UTF-8).
    String(Vec<u8>),
}

impl Data {
    /// Copies a Lua value. Tables, functions, userdata and threads cannot
    /// leave their state: they become the string `"<typename>"`.
    pub fn from_lua(value: &Value) -> Data {
        match value {
            Value::Nil => Data::Nil,
            Value::Boolean(b) => Data::Boolean(*b),
            Value::Integer(i) => Data::Integer(*i),
            Value::Number(n) => Data::Number(*n),
            Value::String(s) => Data::String(s.as_bytes().to_vec()),
            other => Data::String(format!("<{}>", other.type_name()).into_bytes()),
        }
    }

    /// Copies every value of a multi-value.
    pub fn from_multi(values: &MultiValue) -> Vec<Data> {
        values.iter().map(Data::from_lua).collect()
    }

    /// Builds the Lua value on the Lua thread.
    pub fn to_lua(&self, lua: &Lua) -> mlua::Result<Value> {
        Ok(match self {
            Data::Nil => Value::Nil,
            Data::Boolean(b) => Value::Boolean(*b),
            Data::Integer(i) => (*i).into_lua(lua)?,
            Data::Number(n) => Value::Number(*n),
            Data::String(s) => Value::String(lua.create_string(s)?),
        })
    }

    /// Builds a multi-value on the Lua thread.
    pub fn to_multi(values: &[Data], lua: &Lua) -> mlua::Result<MultiValue> {
        values.iter().map(|d| d.to_lua(lua)).collect()
    }
}
