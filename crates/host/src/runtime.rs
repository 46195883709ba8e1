//! One Lua state of the host: created with darksidesync and the example
//! libraries preloaded, runs a script, then dispatches until nothing can
//! arrive any more (`darksidesync.run()` semantics).
//!
//! The root state runs on the main thread; states started with
//! `darksidesync.states` (or `host.spawn`, a layer over it, see
//! `states.rs`) get the same preloads on threads of their own.

use std::cell::RefCell;

use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::cli::Action;
use crate::interrupt;
use crate::states;
use crate::{paths, warnings};
use darksidesync::states::Portable;

/// A script to run in a state.
pub struct Script {
    /// The chunk's text.
    pub source: Vec<u8>,
    /// Its chunk name: `@path` for a file, `=name` otherwise.
    pub chunkname: String,
    /// `arg[0]`.
    pub arg0: String,
    /// `arg[1..]` and the chunk's `...`.
    pub args: Vec<Portable>,
}

/// How a state's run ended badly.
#[derive(Debug)]
pub enum Failure {
    /// The script does not compile, or (`LUA_INIT=@file`) cannot be read:
    /// a message without traceback.
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

/// The host's error handling in Lua (messages and tracebacks as `lua5.4`
/// prints them, fatal callback errors): `errors.lua`.
const PRELUDE: &str = include_str!("errors.lua");

/// A new state with everything preloaded.
pub fn new_state() -> mlua::Result<Lua> {
    // SAFETY: `unsafe_new` only adds the `debug` library to what `Lua::new`
    // loads. Scripts get the same standard library as the stock `lua`
    // interpreter (tracebacks need it); misuse of `debug` can corrupt only
    // this script's own state, exactly as in the stock interpreter.
    let lua = unsafe { Lua::unsafe_new() };
    // Spawned states copy their parent's paths (darksidesync.states).
    paths::set(&lua)?;
    prepare(&lua)?;
    // States started with darksidesync.states get the same set-up.
    darksidesync::states::set_initializer(prepare);
    install_error_handling(&lua)?;
    Ok(lua)
}

/// The host's error handling (`errors.lua`), in the root state and in each
/// state `host.spawn` starts.
pub fn install_error_handling(lua: &Lua) -> mlua::Result<()> {
    lua.set_app_data(CallbackError::default());
    let record = lua.create_function(|lua, text: String| {
        if let Some(slot) = lua.app_data_ref::<CallbackError>() {
            slot.0.borrow_mut().get_or_insert(text);
        }
        Ok(())
    })?;
    let dss: Table = lua.load("return require 'darksidesync'").eval()?;
    // The text of an mlua error object (an error raised from Rust), or nil.
    let error_text = lua.create_function(|_, v: Value| {
        Ok(match v {
            Value::Error(e) => Some(e.to_string()),
            _ => None,
        })
    })?;
    // Ctrl-C records its message through the same slot (interrupt.rs).
    lua.set_named_registry_value(interrupt::RECORD, &record)?;
    let protect: Function = lua
        .load(PRELUDE)
        .set_name("=darksidesync-host")
        .call((dss, record, error_text))?;
    lua.set_named_registry_value("darksidesync-host.protect", protect)?;
    Ok(())
}

/// What every state of the host gets: `lua5.4`'s warnings and the
/// host's preloads.
fn prepare(lua: &Lua) -> mlua::Result<()> {
    warnings::install(lua)?;
    preload(lua)
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

/// What the command line asks the root state to do around its script.
#[derive(Default)]
pub struct Invocation {
    /// `-e`, `-l`, `-W`, in order, before the script.
    pub actions: Vec<Action>,
    /// `arg[-n]`..`arg[-1]`: the arguments before the script.
    pub before: Vec<String>,
}

/// Runs `script` in `lua`, then `darksidesync.run()`. `Ok` when the script
/// and every callback ended without an uncaught error.
pub fn run(lua: &Lua, script: &Script) -> Result<(), Failure> {
    run_invocation(lua, &Invocation::default(), Some(script))
}

/// Sets `arg`, runs `LUA_INIT`, the command line's actions, then `script`
/// (if any), then `darksidesync.run()`, in the order `lua5.4` does: an
/// action runs before the script is even compiled.
pub fn run_invocation(
    lua: &Lua,
    invocation: &Invocation,
    script: Option<&Script>,
) -> Result<(), Failure> {
    let runtime = |e: mlua::Error| Failure::Runtime(e.to_string());
    set_arg(lua, &invocation.before, script).map_err(runtime)?;
    let protect: Function = lua
        .named_registry_value("darksidesync-host.protect")
        .map_err(runtime)?;
    if let Some((name, init)) = paths::init() {
        let f = match init.strip_prefix('@') {
            // lua5.4's dofile: loadfile's own messages ("cannot open x").
            Some(file) => {
                let loadfile: Function = lua.globals().get("loadfile").map_err(runtime)?;
                match loadfile.call::<(Option<Function>, Option<String>)>(file) {
                    Ok((Some(f), _)) => f,
                    Ok((None, m)) => return Err(Failure::Syntax(m.unwrap_or_default())),
                    Err(e) => return Err(runtime(e)),
                }
            }
            None => lua
                .load(init.as_str())
                .set_name(name)
                .into_function()
                .map_err(|e| Failure::Syntax(syntax_message(&e)))?,
        };
        protected(&protect, MultiValue::from_iter([Value::Function(f)]))?;
    }
    for action in &invocation.actions {
        let f = match action {
            Action::Exec(source) => lua
                .load(source.as_str())
                .set_name("=(command line)")
                .into_function()
                .map_err(|e| Failure::Syntax(syntax_message(&e)))?,
            // `require` itself is called, as lua5.4 does: its error has no
            // chunk position and the traceback no command-line frame.
            Action::Require { global, module } => {
                let require: Function = lua.globals().get("require").map_err(runtime)?;
                let args = MultiValue::from_iter([
                    Value::Function(require),
                    Value::String(lua.create_string(module).map_err(runtime)?),
                ]);
                match protect.call::<(Option<String>, Value)>(args) {
                    Ok((None, value)) => {
                        lua.globals().set(global.as_str(), value).map_err(runtime)?
                    }
                    Ok((Some(text), _)) => return Err(Failure::Runtime(text)),
                    Err(e) => return Err(runtime(e)),
                }
                continue;
            }
            Action::Warnings => lua
                .load("warn('@on')")
                .set_name("=(command line)")
                .into_function()
                .map_err(runtime)?,
        };
        protected(&protect, MultiValue::from_iter([Value::Function(f)]))?;
    }
    if let Some(script) = script {
        let chunk = lua
            .load(&script.source[..])
            .set_name(&script.chunkname)
            .into_function()
            .map_err(|e| Failure::Syntax(syntax_message(&e)))?;
        let args = Portable::to_multi(&script.args, lua).map_err(runtime)?;
        let mut call_args = MultiValue::from_iter([Value::Function(chunk)]);
        call_args.extend(args);
        protected(&protect, call_args)?;
    }
    if let Some(e) = callback_error(lua) {
        return Err(Failure::Runtime(e));
    }
    states::after_main_chunk(lua);
    let run: Function = lua
        .load("return require('darksidesync').run")
        .eval()
        .map_err(runtime)?;
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

/// The stock interpreter's `arg` table: `arg[0]` is the script, its
/// arguments follow, and what came before it on the command line (the
/// program name first) has the negative indices. Without a script the
/// program name is `arg[0]` and the options are `arg[1]`...
fn set_arg(lua: &Lua, before: &[String], script: Option<&Script>) -> mlua::Result<()> {
    let arg = lua.create_table()?;
    // No script: the program name is arg[0] and the options follow it.
    let n = if script.is_some() {
        before.len() as i64
    } else {
        0
    };
    for (i, a) in before.iter().enumerate() {
        arg.raw_set(i as i64 - n, a.as_str())?;
    }
    if let Some(script) = script {
        arg.raw_set(0, script.arg0.as_str())?;
        for (i, a) in script.args.iter().enumerate() {
            arg.raw_set(i + 1, a.to_lua(lua)?)?;
        }
    }
    lua.globals().set("arg", arg)
}
