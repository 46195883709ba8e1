//! Signals by name (`"TERM"`, `"SIGTERM"`, any case) or number.

use mlua::Value;

/// The signals accepted by name, without `SIG`.
pub const SIGNALS: &[(&str, libc::c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("WINCH", libc::SIGWINCH),
];

/// The Lua type name, with integers and floats both "number".
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) | Value::Number(_) => "number",
        Value::Nil => "nil",
        other => other.type_name(),
    }
}

/// A signal given as a name or number; `what` prefixes the error.
pub fn number(v: &Value, what: &str) -> Result<libc::c_int, String> {
    let n = match v {
        Value::Integer(i) => Some(*i),
        Value::Number(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 => {
            Some(*f as i64)
        }
        _ => None,
    };
    if let Some(n) = n {
        if SIGNALS.iter().any(|&(_, s)| i64::from(s) == n) {
            return Ok(n as libc::c_int);
        }
        return Err(format!("{what}: unknown signal number {n}"));
    }
    if let Value::String(s) = v {
        let name = s.to_string_lossy().to_ascii_uppercase();
        let short = name.strip_prefix("SIG").unwrap_or(&name);
        if let Some(&(_, n)) = SIGNALS.iter().find(|&&(nm, _)| nm == short) {
            return Ok(n);
        }
        return Err(format!(
            "{what}: unknown signal name {:?}",
            s.to_string_lossy()
        ));
    }
    Err(format!(
        "{what}: signal must be a name such as \"TERM\" or a number, got {}",
        type_name(v)
    ))
}

/// `"SIGTERM"` for `SIGTERM`.
pub fn name(sig: libc::c_int) -> String {
    SIGNALS
        .iter()
        .find(|&&(_, s)| s == sig)
        .map_or_else(|| format!("SIG{sig}"), |&(n, _)| format!("SIG{n}"))
}
