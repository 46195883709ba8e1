//! Example background libraries, compiled into the module and exported as
//! `darksidesync.timer`, `darksidesync.signal` and `darksidesync.process`
//! (extra `luaopen_darksidesync_*` entry points of the same shared object,
//! found by Lua's all-in-one loader; the embedded host preloads them).
//!
//! They live inside the module crate, not in crates of their own, because
//! they hand [`Item`](crate::Item)s (Rust trait objects) to the state's
//! hub: trait objects and mlua app data cannot cross separately compiled
//! Rust libraries, and one shared object per Lua version keeps the
//! install a single file. A library built as its *own* cdylib talks to the
//! module through the C ABI instead (see `include/darksidesync.h`).
//!
//! Each library follows one pattern, worth copying:
//!
//! * per Lua state, an `Rc` of its state in mlua app data (`lib_state`):
//!   the port on the state's hub and the Lua callbacks by id. Callbacks
//!   never leave the Lua thread;
//! * background threads hold the port (plus a keep-alive reference while
//!   something can still arrive) and post items that carry only an id and
//!   plain data; the item looks the callback up when it runs, so a handle
//!   cancelled from Lua never fires afterwards;
//! * handles are userdata whose methods are raw functions wrapped like the
//!   module's own, so bad arguments raise plain string errors.

pub mod process;
pub mod signal;
pub mod timer;

use std::rc::Rc;

use mlua::{Function, Lua, MultiValue, Table, UserDataRef, Value};

use crate::state::StateHub;
use crate::{args, make_table, ApiError, ApiFn};

/// The library state `T` of this Lua state, created by `init` on first use.
pub(crate) fn lib_state<T: 'static>(
    lua: &Lua,
    init: impl FnOnce(&StateHub) -> Result<T, ApiError>,
) -> Result<Rc<T>, ApiError> {
    if let Some(s) = lua.app_data_ref::<Rc<T>>() {
        return Ok(Rc::clone(&s));
    }
    let st = StateHub::get(lua)?;
    let s = Rc::new(init(&st)?);
    lua.set_app_data(Rc::clone(&s));
    Ok(s)
}

/// The library state `T` of this Lua state, if it was created.
pub(crate) fn existing_state<T: 'static>(lua: &Lua) -> Option<Rc<T>> {
    lua.app_data_ref::<Rc<T>>().map(|s| Rc::clone(&s))
}

/// A table of methods for a handle type (its metatable's `__index`).
pub(crate) fn methods(lua: &Lua, fns: &[(&str, ApiFn)]) -> mlua::Result<Table> {
    let st = StateHub::get(lua)?;
    make_table(lua, &st, fns)
}

/// The `self` argument of a method, borrowed as `T`.
pub(crate) fn this<T: 'static>(a: &MultiValue, what: &str) -> Result<UserDataRef<T>, ApiError> {
    if let Some(Value::UserData(ud)) = a.front() {
        if let Ok(r) = ud.borrow::<T>() {
            return Ok(r);
        }
    }
    Err(format!(
        "{what}: expected a handle as self (use the colon syntax), got {}",
        a.front().map_or("no value", args::type_name)
    )
    .into())
}

/// A required function argument.
pub(crate) fn function(v: Option<&Value>, what: &str) -> Result<Function, ApiError> {
    match v {
        Some(Value::Function(f)) => Ok(f.clone()),
        other => Err(format!(
            "{what}: callback must be a function, got {}",
            other.map_or("no value", args::type_name)
        )
        .into()),
    }
}

/// The signals the libraries accept by name, with and without `SIG`.
pub(crate) const SIGNALS: &[(&str, libc::c_int)] = &[
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

/// A signal given as a name (`"TERM"`, `"SIGTERM"`, any case) or number.
pub(crate) fn signal_number(v: &Value, what: &str) -> Result<libc::c_int, ApiError> {
    if let Some(n) = args::integer(v) {
        if SIGNALS.iter().any(|&(_, s)| i64::from(s) == n) {
            return Ok(n as libc::c_int);
        }
        return Err(format!("{what}: unknown signal number {n}").into());
    }
    if let Value::String(s) = v {
        let name = s.to_string_lossy().to_ascii_uppercase();
        let short = name.strip_prefix("SIG").unwrap_or(&name);
        if let Some(&(_, n)) = SIGNALS.iter().find(|&&(nm, _)| nm == short) {
            return Ok(n);
        }
        return Err(format!("{what}: unknown signal name {:?}", s.to_string_lossy()).into());
    }
    Err(format!(
        "{what}: signal must be a name such as \"TERM\" or a number, got {}",
        args::type_name(v)
    )
    .into())
}

/// `"SIGTERM"` for `SIGTERM`.
pub(crate) fn signal_name(sig: libc::c_int) -> String {
    SIGNALS
        .iter()
        .find(|&&(_, s)| s == sig)
        .map_or_else(|| format!("SIG{sig}"), |&(n, _)| format!("SIG{n}"))
}

/// One value, as a multi-value.
pub(crate) fn one(v: Value) -> MultiValue {
    MultiValue::from_iter([v])
}
