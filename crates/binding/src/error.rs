//! How a post or call did not succeed: [`Error`], and [`LuaError`] for a
//! closure (or the Lua code it called) that failed.

use std::any::Any;
use std::ffi::{c_int, CStr};
use std::fmt;

use crate::ffi::{self, Api};

/// How a post or call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The Lua state has closed (or closed before the closure ran).
    Closed,
    /// The closure was dropped unrun while the state stayed open: the
    /// handle was unregistered.
    Cancelled,
    /// No answer within the call's timeout. The closure will not run any
    /// more once this is returned.
    TimedOut,
    /// The queue was full and the caller chose not to wait.
    Full,
    /// A blocking operation was attempted on the Lua thread itself, which
    /// would wait for itself forever.
    WouldDeadlock,
    /// The closure returned an error (or Lua code it called raised one):
    /// its message and, when Lua gave one, the traceback, apart.
    Lua(LuaError),
    /// The closure panicked on the Lua thread (the panic was caught there).
    Panicked(String),
    /// The handle was unregistered.
    Stale,
    /// Another darksidesync result code, with its description.
    Other(i32, String),
    /// A value that cannot be posted to Lua (see
    /// [`Arg`](crate::Arg)), refused at the sender: why.
    Unsupported(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("the Lua state has closed"),
            Error::Cancelled => f.write_str("cancelled"),
            Error::TimedOut => f.write_str("timed out"),
            Error::Full => f.write_str("the queue is full"),
            Error::WouldDeadlock => f.write_str("would deadlock: blocking call on the Lua thread"),
            Error::Lua(e) => write!(f, "Lua error: {}", e.message()),
            Error::Panicked(m) => write!(f, "the closure panicked: {m}"),
            Error::Stale => f.write_str("the handle was unregistered"),
            Error::Other(code, m) => write!(f, "darksidesync error {code}: {m}"),
            Error::Unsupported(m) => write!(f, "cannot post this value to Lua: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// The error of a closure that failed on the Lua thread: the message as
/// Lua code raised it (`"mb.lua:10: filter failed"`) and the traceback
/// mlua attached, kept apart so neither has to be parsed out of the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuaError {
    message: String,
    traceback: Option<String>,
}

/// Where Lua's `luaL_traceback` text starts inside a message.
const TRACEBACK: &str = "stack traceback:";

impl LuaError {
    /// Splits an mlua error into message and traceback: a callback error's
    /// own traceback, or the one Lua appended to a runtime error's text.
    pub fn from_mlua(e: &mlua::Error) -> LuaError {
        match e {
            mlua::Error::CallbackError { traceback, cause } => {
                let inner = LuaError::from_mlua(cause);
                LuaError {
                    message: inner.message,
                    traceback: inner.traceback.or_else(|| Some(traceback.clone())),
                }
            }
            mlua::Error::RuntimeError(text) => LuaError::from_text(text),
            mlua::Error::WithContext { context, cause } => {
                let inner = LuaError::from_mlua(cause);
                LuaError {
                    message: format!("{context}: {}", inner.message),
                    traceback: inner.traceback,
                }
            }
            other => LuaError::from_text(&other.to_string()),
        }
    }

    /// Splits `"message\nstack traceback:\n..."`.
    pub(crate) fn from_text(text: &str) -> LuaError {
        match text.find(TRACEBACK) {
            Some(at) => LuaError {
                message: text[..at].trim_end().to_string(),
                traceback: Some(text[at..].to_string()),
            },
            None => LuaError {
                message: text.to_string(),
                traceback: None,
            },
        }
    }

    /// The error message, without the traceback.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The Lua traceback (`"stack traceback:\n\t..."`), when there is one.
    pub fn traceback(&self) -> Option<&str> {
        self.traceback.as_deref()
    }
}

impl fmt::Display for LuaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(t) = &self.traceback {
            write!(f, "\n{t}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LuaError {}

/// The module's description of a result code.
pub(crate) fn strerror(api: &Api, code: c_int) -> String {
    // SAFETY: strerror returns a static NUL-terminated string, never NULL
    // (header contract); checked anyway.
    unsafe {
        let p = (api.strerror)(code);
        if p.is_null() {
            return format!("code {code}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The [`Error`] for a 2v0 result code other than OK and EHANDLER.
pub(crate) fn error_of(api: &Api, code: c_int) -> Error {
    match code {
        ffi::ECLOSED | ffi::ENOTSTARTED => Error::Closed,
        ffi::ECANCELLED => Error::Cancelled,
        ffi::ETIMEDOUT => Error::TimedOut,
        ffi::EFULL => Error::Full,
        ffi::EWOULDDEADLOCK => Error::WouldDeadlock,
        ffi::ESTALE => Error::Stale,
        other => Error::Other(other, strerror(api, other)),
    }
}

/// The text of a caught panic.
pub(crate) fn panic_text(p: Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_string()
    }
}
