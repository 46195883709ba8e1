//! Deliveries whose Lua callback darksidesync calls itself: the closure
//! only *prepares* a Lua function and its arguments on the Lua thread, so
//! the delivery behaves exactly like the module's own: `dispatch()` calls
//! it under the state's error handler (which sees the error value as
//! raised), `poll()` returns it to its Lua caller (with the reply
//! userdata first for a call), and a call's answer is the callback's
//! results (or the reply userdata's arguments).
//!
//! Values cross between mlua and the raw stack through one registry slot
//! (`MAILBOX`), filled and emptied within one callback on the Lua thread.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::error::{panic_text, Error, LuaError};
use crate::ffi::Handle;
use crate::raw::{self, lua_State, push_raise, Plain, StackGuard};

/// The registry slot values pass through (this crate's copy only).
const MAILBOX: &str = "darksidesync-binding.mailbox";
/// [`MAILBOX`] for the C API.
const MAILBOX_C: &std::ffi::CStr = c"darksidesync-binding.mailbox";

/// Prepares a delivery: the Lua function and its arguments.
pub type Prepared = (Function, MultiValue);

/// What `call_callback()` lends to the Lua thread.
pub(crate) struct CallbackSlot<P, A, R> {
    pub(crate) prepare: Option<P>,
    pub(crate) answer: Option<A>,
    pub(crate) result: Option<Result<R, Error>>,
}

/// Pushes `f, args...` onto `l`; returns how many, or the error text.
///
/// The function goes through the mailbox; arguments that are plain values
/// (nil, booleans, numbers, strings: the usual case) are pushed directly,
/// and only when another kind is among them do they all go through a
/// table in the mailbox.
///
/// # Safety
/// `l` is the running state, on the Lua thread; `lua` is its mlua handle.
unsafe fn push_prepared(
    lua: &Lua,
    l: *mut lua_State,
    (f, args): Prepared,
) -> Result<c_int, String> {
    let n = args.len();
    let count = c_int::try_from(n + 1).map_err(|_| "too many arguments".to_string())?;
    // The usual case: the module runs the item on the thread mlua knows as
    // the current one (dispatch() is an mlua function), so mlua pushes the
    // values onto `l` itself, references and all, with no mailbox.
    // `exec_raw_lua` is mlua's (hidden) door to its raw pushes.
    let fv = Value::Function(f);
    let pushed = lua.exec_raw_lua(|mlua_raw| {
        if mlua_raw.state() != l {
            return None;
        }
        // SAFETY: `l` is running on this thread (the caller's contract);
        // room for the values (two slots each, mlua's push contract) is
        // checked first; pushing a function, a reference or a plain value
        // raises only on memory exhaustion.
        unsafe {
            if !raw::reserve(l, 2 * count + 1) {
                return Some(Err("Lua stack overflow".to_string()));
            }
            let base = raw::top(l);
            for v in std::iter::once(&fv).chain(&args) {
                if let Err(e) = mlua_raw.push_value(v) {
                    raw::set_top(l, base);
                    return Some(Err(LuaError::from_mlua(&e).to_string()));
                }
            }
        }
        Some(Ok(count))
    });
    if let Some(pushed) = pushed {
        return pushed;
    }
    let Value::Function(f) = fv else {
        unreachable!("made from a function above")
    };
    let plain = args.iter().all(|v| {
        matches!(
            v,
            Value::Nil
                | Value::Boolean(_)
                | Value::Integer(_)
                | Value::Number(_)
                | Value::String(_)
        )
    });
    if plain {
        lua.set_named_registry_value(MAILBOX, f)
            .map_err(|e| LuaError::from_mlua(&e).to_string())?;
        // SAFETY: per the contract; room for the values is checked first.
        // The mailbox holds the function; pushing plain values raises
        // only on memory exhaustion.
        unsafe {
            if !raw::reserve(l, count + 1) {
                return Err("Lua stack overflow".into());
            }
            raw::take_registry_field(l, MAILBOX_C);
            for v in &args {
                push_plain(l, v);
            }
        }
        return Ok(count);
    }
    lua.create_sequence_from(std::iter::once(Value::Function(f)).chain(args))
        .and_then(|t| lua.set_named_registry_value(MAILBOX, t))
        .map_err(|e| LuaError::from_mlua(&e).to_string())?;
    // SAFETY: per the contract; room for the table and its values is
    // checked first. The mailbox holds a table with count values (nil
    // arguments included: create_sequence_from sets every index, and
    // rawgeti of a missing index pushes nil all the same).
    unsafe {
        if !raw::reserve(l, count + 1) {
            return Err("Lua stack overflow".into());
        }
        raw::take_registry_sequence(l, MAILBOX_C, count);
    }
    Ok(count)
}

/// Pushes a plain value (see [`push_prepared`]); anything else as nil.
///
/// # Safety
/// `l` is the running state, on the Lua thread, with room for one value.
unsafe fn push_plain(l: *mut lua_State, v: &Value) {
    // SAFETY: per the contract; Lua copies a string's bytes.
    unsafe {
        match v {
            Value::Boolean(b) => raw::push_boolean(l, *b),
            // mlua::Integer is the C API's lua_Integer: i32 on a 32-bit
            // Lua 5.1 build, i64 elsewhere.
            #[allow(clippy::unnecessary_cast)]
            Value::Integer(i) => raw::push_integer(l, *i as i64),
            Value::Number(x) => raw::push_number(l, *x),
            Value::String(s) => raw::push_bytes(l, &s.as_bytes()),
            _ => raw::push_nil(l),
        }
    }
}

/// The `n` values on top of `l`, popped, as mlua values.
///
/// # Safety
/// `l` is the running state, on the Lua thread, with `n` values on top.
unsafe fn take_values(lua: &Lua, l: *mut lua_State, n: c_int) -> mlua::Result<MultiValue> {
    // SAFETY: per the contract, the top n values are ours to read and pop.
    if let Some(values) = unsafe { take_plain(lua, l, n) } {
        return values;
    }
    // SAFETY: per the contract; two slots checked for first. The values
    // move into a fresh table (t[k] = v_k, popping from the top), which
    // goes to the mailbox.
    unsafe {
        if !raw::reserve(l, 2) {
            return Err(mlua::Error::runtime("Lua stack overflow"));
        }
        raw::set_registry_sequence(l, MAILBOX_C, n);
    }
    let t: Table = lua.named_registry_value(MAILBOX)?;
    lua.unset_named_registry_value(MAILBOX)?;
    (1..=n as i64).map(|i| t.raw_get::<Value>(i)).collect()
}

/// [`take_values`] without the mailbox when the values are all plain
/// (nil, booleans, numbers, strings: the usual answer), converted as mlua
/// converts them; `None` (nothing popped) otherwise.
///
/// # Safety
/// As for [`take_values`].
unsafe fn take_plain(lua: &Lua, l: *mut lua_State, n: c_int) -> Option<mlua::Result<MultiValue>> {
    // SAFETY: per the contract, indices first..=top are the n values;
    // reading them raises nothing (`plain_value`), and the guard pops
    // them only after their bytes were copied into mlua strings.
    unsafe {
        let top = raw::top(l);
        let first = top - n + 1;
        if !(first..=top).all(|i| raw::plain_value(l, i).is_some()) {
            return None;
        }
        let _pop = StackGuard::popping(l, n);
        let mut values = Vec::with_capacity(n as usize);
        for i in first..=top {
            let v = match raw::plain_value(l, i) {
                Some(Plain::Boolean(b)) => Value::Boolean(b),
                Some(Plain::Integer(i)) => Value::Integer(i as mlua::Integer),
                Some(Plain::Number(x)) => Value::Number(x),
                Some(Plain::Bytes(bytes)) => match lua.create_string(bytes) {
                    Ok(s) => Value::String(s),
                    Err(e) => return Some(Err(e)),
                },
                Some(Plain::Nil) | None => Value::Nil,
            };
            values.push(v);
        }
        Some(Ok(MultiValue::from_iter(values)))
    }
}

/// `run` of an inline `post_callback`: moves the prepare closure out of
/// the item's bytes, then prepares and pushes the callback.
pub(crate) unsafe extern "C-unwind" fn run_post_callback_inline<P>(
    l: *mut lua_State,
    data: *mut c_void,
    _h: Handle,
) -> c_int
where
    P: FnOnce(&Lua) -> mlua::Result<Prepared> + Send + 'static,
{
    // SAFETY: `data` points to the item's copy of the P that post_inline
    // was given; run is called once, and the free_inline::<P> after it
    // (outcome OK) does not drop it again.
    let prepare = unsafe { std::ptr::read(data as *const P) };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `l` is a valid state on its own thread (2v0 contract).
        let lua = unsafe { Lua::get_or_init_from_ptr(l) };
        match prepare(lua) {
            // SAFETY: as above, inside run on the Lua thread.
            Ok(prepared) => unsafe { push_prepared(lua, l, prepared) },
            Err(e) => Err(LuaError::from_mlua(&e).to_string()),
        }
    }));
    match outcome {
        Ok(Ok(n)) => n,
        // SAFETY: on the Lua thread, inside run.
        Ok(Err(message)) => unsafe { push_raise(l, &message) },
        Err(_) => 0,
    }
}

/// `run` of `post_callback`: prepares and pushes the callback.
pub(crate) unsafe extern "C-unwind" fn run_post_callback<P>(
    l: *mut lua_State,
    data: *mut c_void,
    _h: Handle,
) -> c_int
where
    P: FnOnce(&Lua) -> mlua::Result<Prepared> + Send + 'static,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the Box<Option<P>> made by post_callback::<P>;
        // the module owns it until free, and run is called at most once,
        // on the Lua thread, before free.
        let slot = unsafe { &mut *(data as *mut Option<P>) };
        let prepare = slot.take()?;
        // SAFETY: `l` is a valid state on its own thread (2v0 contract).
        let lua = unsafe { Lua::get_or_init_from_ptr(l) };
        Some(match prepare(lua) {
            // SAFETY: as above, inside run on the Lua thread.
            Ok(prepared) => unsafe { push_prepared(lua, l, prepared) },
            Err(e) => Err(LuaError::from_mlua(&e).to_string()),
        })
    }));
    match outcome {
        Ok(Some(Ok(n))) => n,
        // SAFETY: on the Lua thread, inside run.
        Ok(Some(Err(message))) => unsafe { push_raise(l, &message) },
        _ => 0,
    }
}

/// `run` of `call_callback`: prepares and pushes the callback.
pub(crate) unsafe extern "C-unwind" fn run_call_callback<P, A, R>(
    l: *mut lua_State,
    data: *mut c_void,
    _h: Handle,
) -> c_int
where
    P: FnOnce(&Lua) -> mlua::Result<Prepared> + Send,
    A: FnOnce(&Lua, MultiValue) -> mlua::Result<R> + Send,
    R: Send,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the caller's CallbackSlot, lent while the
        // caller is blocked in call() (header: "data is borrowed").
        let slot = unsafe { &mut *(data as *mut CallbackSlot<P, A, R>) };
        let prepare = slot.prepare.take()?;
        // SAFETY: as in run_post_callback.
        let lua = unsafe { Lua::get_or_init_from_ptr(l) };
        Some(match prepare(lua) {
            // SAFETY: as above.
            Ok(prepared) => unsafe { push_prepared(lua, l, prepared) },
            Err(e) => {
                let e = LuaError::from_mlua(&e);
                let text = e.message().to_string();
                slot.result = Some(Err(Error::Lua(e)));
                Err(text)
            }
        })
    }));
    match outcome {
        Ok(Some(Ok(n))) => n,
        // SAFETY: on the Lua thread, inside run.
        Ok(Some(Err(message))) => unsafe { push_raise(l, &message) },
        _ => 0,
    }
}

/// `reply` of `call_callback`: hands the answer to the `answer` closure.
pub(crate) unsafe extern "C-unwind" fn reply_callback<P, A, R>(
    l: *mut lua_State,
    data: *mut c_void,
    _h: Handle,
    nresults: c_int,
) -> c_int
where
    P: FnOnce(&Lua) -> mlua::Result<Prepared> + Send,
    A: FnOnce(&Lua, MultiValue) -> mlua::Result<R> + Send,
    R: Send,
{
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as in run_call_callback; reply comes after run, while
        // the caller is still blocked.
        let slot = unsafe { &mut *(data as *mut CallbackSlot<P, A, R>) };
        let Some(answer) = slot.answer.take() else {
            return;
        };
        // SAFETY: as in run_post_callback; the answer is on the stack.
        let lua = unsafe { Lua::get_or_init_from_ptr(l) };
        // SAFETY: `nresults` values on an otherwise empty stack (contract).
        let values = unsafe { take_values(lua, l, nresults) };
        slot.result = Some(
            match catch_unwind(AssertUnwindSafe(|| values.and_then(|v| answer(lua, v)))) {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(e)) => Err(Error::Lua(LuaError::from_mlua(&e))),
                Err(p) => Err(Error::Panicked(panic_text(p))),
            },
        );
    }));
    0
}
