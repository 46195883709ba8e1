//! `darksidesync-host`: an embedded Lua 5.4 with darksidesync and its
//! example libraries preloaded. Runs a script, then keeps dispatching
//! until nothing can arrive any more or the script calls
//! `darksidesync.stop()`. See `doc/host.md`.
//!
//! | file | what |
//! | --- | --- |
//! | `main.rs` | the command line and exit status |
//! | `runtime.rs` | one state: preloads, error handling, run a script then `run()` |
//! | `states.rs` | `darksidesync.host`: a Lua layer over `darksidesync.states` |
//! | `message.rs` | [`message::Msg`], Lua values copied between states |

mod message;
mod runtime;
mod states;

use std::ffi::OsString;
use std::io::Read;
use std::process::ExitCode;

use message::Msg;
use runtime::{Failure, Script};

const USAGE: &str = "\
usage: darksidesync-host [OPTIONS] SCRIPT [ARGS...]

Runs the Lua 5.4 script SCRIPT (\"-\" reads it from standard input) with
these modules preloaded:
  darksidesync          the module itself (poll, dispatch, run, stop, ...)
  darksidesync.timer    one-shot and repeating timers
  darksidesync.signal   POSIX signals to Lua callbacks
  darksidesync.process  child processes, line by line
  darksidesync.states   more Lua states on their own threads, with messages
  darksidesync.host     the same with the host's conventions (see doc/host.md)
then dispatches callbacks until nothing can arrive any more (no live timer,
process, keep-alive signal handler, child state or other keep-alive
reference, and an empty queue) or the script calls darksidesync.stop().
ARGS are in the global table `arg` (arg[0] is SCRIPT) and in `...`.

An error in a callback ends the program like an error in the script,
unless the script installs its own darksidesync.seterrorhandler.

options:
  -h, --help     show this help and exit
  -V, --version  show the versions and exit
  --             end of options

exit status:
  0  the script and its callbacks finished
  1  a syntax error, or an uncaught error in the script, a callback or a
     child state without an onexit handler (message and traceback on stderr)
  2  a usage error: no script, an unreadable script, an unknown option
";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    // Options come before the script; each one ends the command line.
    if let Some(a) = args.peek() {
        match a.to_str() {
            Some("-h") | Some("--help") => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("-V") | Some("--version") => {
                println!(
                    "darksidesync-host {} ({}, {})",
                    env!("CARGO_PKG_VERSION"),
                    darksidesync::VERSION,
                    lua_version()
                );
                return ExitCode::SUCCESS;
            }
            Some("--") => {
                args.next();
            }
            Some(s) if s.starts_with('-') && s != "-" => {
                eprintln!("darksidesync-host: unknown option {s}\n\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => {}
        }
    }
    let Some(script) = args.next() else {
        eprintln!("darksidesync-host: no script given\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let script = match load(script, args.collect()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("darksidesync-host: {e}");
            return ExitCode::from(2);
        }
    };
    let lua = match runtime::new_state() {
        Ok(lua) => lua,
        Err(e) => {
            eprintln!("darksidesync-host: cannot set up Lua: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime::run(&lua, &script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Syntax(m)) => {
            eprintln!("darksidesync-host: syntax error: {m}");
            ExitCode::FAILURE
        }
        Err(Failure::Runtime(m)) => {
            eprintln!("darksidesync-host: {m}");
            ExitCode::FAILURE
        }
    }
}

fn load(script: OsString, rest: Vec<OsString>) -> Result<Script, String> {
    let args = rest
        .iter()
        .map(|a| Msg::String(a.to_string_lossy().into_owned().into_bytes()))
        .collect();
    if script == "-" {
        let mut source = Vec::new();
        std::io::stdin()
            .read_to_end(&mut source)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(Script {
            source,
            chunkname: "=stdin".into(),
            arg0: "-".into(),
            args,
        });
    }
    let path = std::path::PathBuf::from(&script);
    let source =
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Script {
        source,
        chunkname: format!("@{}", path.display()),
        arg0: path.display().to_string(),
        args,
    })
}

fn lua_version() -> String {
    let lua = mlua::Lua::new();
    lua.globals()
        .get::<String>("_VERSION")
        .unwrap_or_else(|_| "Lua".into())
}
