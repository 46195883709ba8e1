//! Ctrl-C (SIGINT) in the root state, as the stock `lua5.4` treats it: the
//! running Lua code fails with "interrupted!" and the program exits with
//! status 1.
//!
//! Two paths, because the root state is either running Lua or blocked in
//! `run()` waiting for work:
//! * a flag set by the signal (through `signal-hook`, which coexists with
//!   `darksidesync.signal`'s own handler), read by an instruction-count hook
//!   that raises the error inside busy Lua code;
//! * a `darksidesync.signal` subscription (not keep-alive) whose callback
//!   records "interrupted!" as the program's failure and raises it, which
//!   wakes a waiting `run()` and ends it like any callback error.
//!
//! A script that subscribes to SIGINT itself takes Ctrl-C over: the host's
//! subscription is cancelled on the script's first `signal.on("INT", ...)`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mlua::{Function, HookTriggers, Lua, VmState};

/// Instructions between two looks at the flag: a busy loop notices Ctrl-C
/// well within a millisecond, at a negligible cost per instruction.
const CHECK_EVERY: u32 = 100_000;

/// The message, as `lua5.4` prints it.
pub const MESSAGE: &str = "interrupted!";

const PRELUDE: &str = r#"
local record, release, MESSAGE = ...
local signal = require "darksidesync.signal"
local on, cancel = signal.on, nil
local function default() record(MESSAGE); error(MESSAGE, 0) end
local sub = on("INT", default)
local names = { INT = true, SIGINT = true, [2] = true }
-- The script's own Ctrl-C handler replaces the host's.
signal.on = function(sig, ...)
  local key = type(sig) == "string" and sig:upper() or sig
  if sub and names[key] then sub:cancel(); sub = nil; release() end
  return on(sig, ...)
end
"#;

/// Registry name of the host's `record(text)` (runtime.rs): the first
/// failure recorded is what the program reports.
pub const RECORD: &str = "darksidesync-host.record";

/// Installs both paths in `lua`, the root state (child states are ended
/// with the process).
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let record: Function = lua.named_registry_value(RECORD)?;
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())
        .map_err(|e| mlua::Error::runtime(format!("cannot handle SIGINT: {e}")))?;
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(CHECK_EVERY),
        move |_, _| {
            if flag.swap(false, Ordering::Relaxed) {
                Err(mlua::Error::runtime(MESSAGE))
            } else {
                Ok(VmState::Continue)
            }
        },
    )?;
    let release = lua.create_function(|lua, ()| {
        lua.remove_hook();
        Ok(())
    })?;
    lua.load(PRELUDE)
        .set_name("=darksidesync-host")
        .call::<()>((record, release, MESSAGE))
}
