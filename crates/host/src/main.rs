//! `darksidesync-host SCRIPT [ARGS...]`: runs a Lua 5.4 script.
//!
//! Exit status: 0 on success, 1 when the script fails to compile or raises
//! an uncaught error (message and traceback on stderr), 2 for a usage error
//! such as a missing script.

use std::process::ExitCode;

use mlua::{Lua, Table};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(script) = args.next() else {
        eprintln!("usage: darksidesync-host SCRIPT [ARGS...]");
        return ExitCode::from(2);
    };
    let script = std::path::PathBuf::from(script);
    let source = match std::fs::read(&script) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("darksidesync-host: cannot read {}: {e}", script.display());
            return ExitCode::from(2);
        }
    };
    let lua = Lua::new();
    if let Err(e) = set_arg(&lua, &script, args) {
        eprintln!("darksidesync-host: {e}");
        return ExitCode::FAILURE;
    }
    let chunk = lua.load(source).set_name(format!("@{}", script.display()));
    match chunk.exec() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("darksidesync-host: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The stock interpreter's `arg` table: `arg[0]` is the script.
fn set_arg(lua: &Lua, script: &std::path::Path, rest: impl Iterator<Item = std::ffi::OsString>) -> mlua::Result<()> {
    let arg: Table = lua.create_table()?;
    arg.raw_set(0, script.to_string_lossy().as_ref())?;
    for (i, a) in rest.enumerate() {
        arg.raw_set(i + 1, a.to_string_lossy().as_ref())?;
    }
    lua.globals().set("arg", arg)
}
