//! One Lua state of the host: created with darksidesync and the example
//! libraries preloaded, runs a script, then dispatches until nothing can
//! arrive any more (`darksidesync.run()` semantics).
//!
//! The root state runs on the main thread; states started with
//! `darksidesync.states` (or `host.spawn`, a layer over it, see
//! `states.rs`) get the same preloads on threads of their own.

use std::cell::RefCell;

use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::message::Msg;
use crate::states;

/// A script to run in a state.
pub struct Script {
    /// The chunk's text.
    pub source: Vec<u8>,
    /// Its chunk name: `@path` for a file, `=name` otherwise.
    pub chunkname: String,
    /// `arg[0]`.
    pub arg0: String,
    /// `arg[1..]` and the chunk's `...`.
    pub args: Vec<Msg>,
}

/// How a state's run ended badly.
#[derive(Debug)]
pub enum Failure {
    /// The script does not compile.
    Syntax(String),
    /// An error escaped: from the main chunk, or from a callback while the
    /// host's error handler was installed. Message and traceback.
    Runtime(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Syntax(m) => write!(f, "syntax error: {m}"),
            Failure::Runtime(m) => f.write_str(m),
        }
    }
}

/// The first uncaught callback error of a state (app data).
#[derive(Default)]
struct CallbackError(RefCell<Option<String>>);

const PRELUDE: &str = r#"
local dss, record = ...
local traceback, tostring = debug.traceback, tostring
-- Callback errors are fatal, as in most event-loop hosts: record the first
-- one with its traceback and stop run(). A script may install its own
-- handler with darksidesync.seterrorhandler (nil restores the module's
-- default, which only prints).
dss.seterrorhandler(function(err)
  record(traceback("error in callback: " .. tostring(err), 2))
  dss.stop()
  return err
end)
-- Runs f(...) and returns nil, or the error text with its traceback.
return function(f, ...)
  local ok, err = xpcall(f, function(e)
    if type(e) ~= "string" then e = tostring(e) end
    return traceback(e, 2)
  end, ...)
  if not ok then return err end
end
"#;

/// A new state with everything preloaded.
pub fn new_state() -> mlua::Result<Lua> {
    // SAFETY: `unsafe_new` only adds the `debug` library to what `Lua::new`
    // loads. Scripts get the same standard library as the stock `lua`
    // interpreter (tracebacks need it); misuse of `debug` can corrupt only
    // this script's own state, exactly as in the stock interpreter.
    let lua = unsafe { Lua::unsafe_new() };
    preload(&lua)?;
    // States started with darksidesync.states get the same preloads.
    darksidesync::states::set_initializer(preload);
    lua.set_app_data(CallbackError::default());
    let record = lua.create_function(|lua, text: String| {
        if let Some(slot) = lua.app_data_ref::<CallbackError>() {
            slot.0.borrow_mut().get_or_insert(text);
        }
        Ok(())
    })?;
    let dss: Table = lua.load("return require 'darksidesync'").eval()?;
    let protect: Function = lua
        .load(PRELUDE)
        .set_name("=darksidesync-host")
        .call((dss, record))?;
    lua.set_named_registry_value("darksidesync-host.protect", protect)?;
    Ok(lua)
}

/// The host's `package.preload` entries.
fn preload(lua: &Lua) -> mlua::Result<()> {
    let preload: Table = lua.globals().get::<Table>("package")?.get("preload")?;
    preload.set(
        "darksidesync",
        lua.create_function(|lua, ()| darksidesync::open(lua))?,
    )?;
    preload.set(
        "darksidesync.timer",
        lua.create_function(|lua, ()| darksidesync::libs::timer::open(lua))?,
    )?;
    preload.set(
        "darksidesync.signal",
        lua.create_function(|lua, ()| darksidesync::libs::signal::open(lua))?,
    )?;
    preload.set(
        "darksidesync.process",
        lua.create_function(|lua, ()| darksidesync::libs::process::open(lua))?,
    )?;
    preload.set(
        "darksidesync.states",
        lua.create_function(|lua, ()| darksidesync::states::open(lua))?,
    )?;
    preload.set(
        "darksidesync.host",
        lua.create_function(|lua, ()| states::open(lua))?,
    )?;
    Ok(())
}

fn callback_error(lua: &Lua) -> Option<String> {
    lua.app_data_ref::<CallbackError>()
        .and_then(|e| e.0.borrow_mut().take())
}

/// Runs `script` in `lua`, then `darksidesync.run()`. `Ok` when the script
/// and every callback ended without an uncaught error.
pub fn run(lua: &Lua, script: &Script) -> Result<(), Failure> {
    let chunk = lua
        .load(&script.source[..])
        .set_name(&script.chunkname)
        .into_function()
        .map_err(|e| Failure::Syntax(syntax_message(&e)))?;
    set_arg(lua, script).map_err(|e| Failure::Runtime(e.to_string()))?;
    let protect: Function = lua
        .named_registry_value("darksidesync-host.protect")
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let args = Msg::to_multi(&script.args, lua).map_err(|e| Failure::Runtime(e.to_string()))?;
    let mut call_args = MultiValue::from_iter([Value::Function(chunk)]);
    call_args.extend(args);
    protected(&protect, call_args)?;
    if let Some(e) = callback_error(lua) {
        return Err(Failure::Runtime(e));
    }
    let run: Function = lua
        .load("return require('darksidesync').run")
        .eval()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    protected(&protect, MultiValue::from_iter([Value::Function(run)]))?;
    match callback_error(lua) {
        Some(e) => Err(Failure::Runtime(e)),
        None => Ok(()),
    }
}

fn protected(protect: &Function, args: MultiValue) -> Result<(), Failure> {
    match protect.call::<Option<String>>(args) {
        Ok(None) => Ok(()),
        Ok(Some(text)) => Err(Failure::Runtime(text)),
        Err(e) => Err(Failure::Runtime(e.to_string())),
    }
}

/// mlua's syntax error text without its "syntax error: " prefix.
fn syntax_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The stock interpreter's `arg` table: `arg[0]` is the script.
fn set_arg(lua: &Lua, script: &Script) -> mlua::Result<()> {
    let arg = lua.create_table()?;
    arg.raw_set(0, script.arg0.as_str())?;
    for (i, a) in script.args.iter().enumerate() {
        arg.raw_set(i + 1, a.to_lua(lua)?)?;
    }
    lua.globals().set("arg", arg)
}
