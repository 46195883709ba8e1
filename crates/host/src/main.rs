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
//! | `paths.rs` | `package.path`/`cpath` and `LUA_INIT` as Debian's `lua5.4` reads them |
//! | `warnings.rs` | `warn()` and `-W` as in `lua5.4` |
//! | `build.rs` | exports the Lua C API, so C modules (`luv`, `lfs`, ...) load |
//! | `errors.lua` | messages and tracebacks as `lua5.4` prints them; fatal callback errors |
//! | `states.rs` | `darksidesync.host`: a Lua layer (`host.lua`) over `darksidesync.states` |

mod cli;
mod interrupt;
mod paths;
mod runtime;
mod states;
mod warnings;

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
  -E             ignore the environment variables below
  -v, -V, --version  show the versions (then run SCRIPT or -e if given)
  SCRIPT may be left out when -e is given.
  -h, --help     show this help and exit
  --             end of options; -  end of options, run standard input

C modules load as in lua5.4 (the host exports the Lua C API); package.path
and package.cpath are Debian's lua5.4's, changed by LUA_PATH_5_4 or
LUA_PATH, LUA_CPATH_5_4 or LUA_CPATH (\";;\" stands for the default).
LUA_INIT_5_4 or LUA_INIT runs first (\"@file\" runs a file).

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
    if cl.ignore_env {
        paths::ignore_environment();
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
        // As lua5.4 prints a syntax error: the message alone.
        Err(Failure::Syntax(m)) => {
            eprintln!("darksidesync-host: {m}");
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
            source: as_loadfile_reads(source),
            chunkname: "=stdin".into(),
            arg0: "-".into(),
            args,
        });
    }
    let path = std::path::PathBuf::from(&script);
    let source =
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Script {
        source: as_loadfile_reads(source),
        chunkname: format!("@{}", path.display()),
        arg0: path.display().to_string(),
        args,
    })
}

/// The text of a script file as `luaL_loadfile` (so `lua5.4`) reads it:
/// without a UTF-8 byte-order mark, and with a first line starting with `#`
/// (`#!/usr/bin/env lua`) left out, its newline kept so line numbers hold.
fn as_loadfile_reads(mut source: Vec<u8>) -> Vec<u8> {
    if source.starts_with(b"\xEF\xBB\xBF") {
        source.drain(..3);
    }
    if source.first() == Some(&b'#') {
        let end = source
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(source.len());
        source.drain(..end);
    }
    source
}

fn lua_version() -> String {
    let lua = mlua::Lua::new();
    lua.globals()
        .get::<String>("_VERSION")
        .unwrap_or_else(|_| "Lua".into())
}

#[cfg(test)]
mod tests {
    use super::as_loadfile_reads;

    #[test]
    fn a_first_line_comment_and_a_bom_are_skipped_as_lua_does() {
        let read = |s: &[u8]| as_loadfile_reads(s.to_vec());
        assert_eq!(read(b"#!/usr/bin/lua\nprint(1)\n"), b"\nprint(1)\n");
        assert_eq!(read(b"\xEF\xBB\xBF#x\nprint(1)"), b"\nprint(1)");
        assert_eq!(read(b"#only"), b"");
        assert_eq!(read(b"print(1) -- #\n"), b"print(1) -- #\n");
    }
}
