//! The promises test (issue 21, items 6-9): `tests/c/promises.c`, a C
//! utility on the header alone, loaded into a stock interpreter running
//! `tests/c/promises.lua`: every entry point from a finaliser that
//! lua_close runs after darksidesync's, `unreg()` from a worker racing the
//! Lua thread, decoders and runs that raise, the Lua-thread finalizer.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::build::{incs, CFLAGS};
use crate::cmd::{clear_lua_env, root, run, run_watched, Result};

/// Race rounds per API version: before the fix 5.1 showed 46 late calls
/// in 20,000 rounds, ~12 expected in these. Fewer under valgrind (slow).
pub(super) const ROUNDS: &str = "5000";
pub(super) const ROUNDS_VALGRIND: &str = "300";

/// A run takes seconds (minutes under valgrind); a hung one is killed.
const HANG: Duration = Duration::from_secs(900);

/// Builds `promises.so` into `dir` (which holds that Lua's module) with
/// `extra` C flags, against the Lua headers in `lua_include`.
pub(super) fn build(dir: &Path, lua_include: &str, extra: &[&str]) -> Result {
    run(Command::new("gcc")
        .args(CFLAGS)
        .args(extra)
        .args(["-shared", "-fPIC"])
        .args(incs(lua_include))
        .arg(root().join("tests/c/promises.c"))
        .arg("-o")
        .arg(dir.join("promises.so")))
}

/// Runs `cmd` (an interpreter, perhaps under valgrind or with ASan, on
/// promises.lua) and checks that the close probe reported.
pub(super) fn check(mut cmd: Command, dir: &Path, rounds: &str) -> Result {
    cmd.arg(root().join("tests/c/promises.lua"))
        .arg(dir)
        .arg(rounds);
    clear_lua_env(&mut cmd);
    let log = dir.join("promises.stderr");
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    cmd.stderr(file);
    let result = run_watched(&mut cmd, HANG);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    eprint!("{stderr}");
    result?;
    if !stderr.contains("promises: close probe ok") {
        return Err("promises: the close probe did not report (its finaliser never ran?)".into());
    }
    Ok(())
}
