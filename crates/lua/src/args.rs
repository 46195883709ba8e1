//! Argument checking, one helper per kind of argument (luv style). Each
//! returns `Err(message)`; the caller raises it as a plain Lua error.

use std::time::Duration;

use mlua::Value;

/// An integral number, from a Lua integer or an integral float (Lua 5.1,
/// 5.2 and LuaJIT have only floats).
pub(crate) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(i) => Some(*i),
        Value::Number(n) if n.is_finite() && n.fract() == 0.0 && n.abs() < 9.2e18 => {
            Some(*n as i64)
        }
        _ => None,
    }
}

/// A number of either representation.
pub(crate) fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// A Lua type name for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) | Value::Number(_) => "number",
        other => other.type_name(),
    }
}

/// An optional timeout: `nil` is `None` (no limit); a non-negative number
/// of `unit_per_sec` units per second otherwise. `zero_is_forever` gives
/// LuaVortex's "absent or 0 waits indefinitely". Values too large for a
/// `Duration` are no limit.
pub(crate) fn timeout(
    value: &Value,
    what: &str,
    unit: &str,
    unit_per_sec: f64,
    zero_is_forever: bool,
) -> Result<Option<Duration>, String> {
    if value.is_nil() {
        return Ok(None);
    }
    let Some(n) = number(value) else {
        return Err(format!(
            "darksidesync.{what}: timeout must be a number of {unit} or nil, got {}",
            type_name(value)
        ));
    };
    if n.is_nan() || n < 0.0 {
        return Err(format!(
            "darksidesync.{what}: timeout must be a non-negative number of {unit}, got {}",
            short_number(n)
        ));
    }
    if n == 0.0 && zero_is_forever {
        return Ok(None);
    }
    Ok(Duration::try_from_secs_f64(n / unit_per_sec).ok())
}

/// An optional non-negative count; `nil` gives `default`.
pub(crate) fn count(value: &Value, what: &str, default: usize) -> Result<usize, String> {
    if value.is_nil() {
        return Ok(default);
    }
    match integer(value) {
        Some(n) if n >= 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => Err(format!(
            "darksidesync.{what}: expected a non-negative integer or nil, got {}",
            describe(value)
        )),
    }
}

/// A value for messages: numbers shown (short, see [`short_number`]),
/// other types named.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => short_number(*n),
        other => type_name(other).to_string(),
    }
}

/// A float for messages, as short as Lua's `%.14g` would print it:
/// `2.5`, `1e+308`, `1e-300`, `inf`, `nan` (never hundreds of digits).
pub(crate) fn short_number(n: f64) -> String {
    if n.is_nan() {
        return "nan".to_string();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let a = n.abs();
    if a == 0.0 || (1e-4..1e15).contains(&a) {
        return n.to_string();
    }
    // Scientific notation with the shortest exact mantissa, written as C's
    // `%g` writes the exponent.
    let text = format!("{n:e}");
    match text.split_once('e') {
        Some((mantissa, exp)) if exp.starts_with('-') => format!("{mantissa}e-{}", &exp[1..]),
        Some((mantissa, exp)) => format!("{mantissa}e+{exp}"),
        None => text,
    }
}
