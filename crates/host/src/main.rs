//! `darksidesync-host`: an embedded Lua 5.4 with darksidesync and its
//! example libraries preloaded. Runs a script, then keeps dispatching
//! until nothing can arrive any more or the script calls
//! `darksidesync.stop()`. See `doc/host.md`.
//!
//! | file | what |
//! | --- | --- |
//! | `main.rs` | usage, versions and exit status |
//! | `cli.rs` | the command line, read as `lua5.4` reads it |
//! | `interrupt.rs` | Ctrl-C raises "interrupted!" as in `lua5.4` |
//! | `runtime.rs` | one state: preloads, run the command line and script, then `run()` |
//! | `errors.lua` | messages and tracebacks as `lua5.4` prints them; fatal callback errors |
//! | `states.rs` | `darksidesync.host`: a Lua layer (`host.lua`) over `darksidesync.states` |

mod cli;
mod interrupt;
mod runtime;
mod states;

use std::ffi::OsString;
use std::io::Read;
use std::process::ExitCode;

use darksidesync::states::Portable;
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
The command line and `arg` are those of the stock lua5.4: arg[0] is
SCRIPT, ARGS are arg[1].. and the chunk's `...`, what precedes SCRIPT has
negative indices (arg[-1] ...).

An error in a callback ends the program like an error in the script (no
later callback runs), unless the script installs its own
darksidesync.seterrorhandler. Ctrl-C raises \"interrupted!\" in the
running code, unless the script subscribes to SIGINT itself.

options (as lua5.4's, run in order before SCRIPT):
  -e STAT        run the Lua statement STAT
  -l MOD         MOD = require \"MOD\"
  -l G=MOD       G = require \"MOD\"
  -W             turn warnings on
  -v, -V, --version  show the versions (then run SCRIPT or -e if given)
  SCRIPT may be left out when -e is given.
  -h, --help     show this help and exit
  --             end of options; -  end of options, run standard input

exit status:
  0  the script and its callbacks finished (or os.exit's status)
  1  a usage error (no script, an unreadable script, an unknown option),
     a syntax error, or an uncaught error in the script, a callback or a
     child state without an onexit handler, or Ctrl-C (message and
     traceback on stderr), as lua5.4
";

/// The one-line usage error, and where to look.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("darksidesync-host: {message}; try darksidesync-host --help");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cl = match cli::parse(std::env::args_os().collect()) {
        Ok(cl) => cl,
        Err(cli::Stop::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(cli::Stop::Usage(m)) => return usage_error(&m),
    };
    if cl.version {
        println!(
            "darksidesync-host {} ({}, {})",
            env!("CARGO_PKG_VERSION"),
            darksidesync::VERSION,
            lua_version()
        );
        if cl.script.is_none() && cl.actions.is_empty() {
            return ExitCode::SUCCESS;
        }
    }
    if cl.script.is_none() && cl.actions.is_empty() {
        return usage_error("no script given");
    }
    let script = match cl.script.map(|s| load(s, cl.args)).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("darksidesync-host: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lua = match runtime::new_state().and_then(|lua| {
        interrupt::install(&lua)?;
        Ok(lua)
    }) {
        Ok(lua) => lua,
        Err(e) => {
            eprintln!("darksidesync-host: cannot set up Lua: {e}");
            return ExitCode::FAILURE;
        }
    };
    let invocation = runtime::Invocation {
        actions: cl.actions,
        before: cl.before,
    };
    match runtime::run_invocation(&lua, &invocation, script.as_ref()) {
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
        .map(|a| Portable::String(a.to_string_lossy().into_owned().into_bytes()))
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
