//! `cargo xtask capi` and `cargo xtask capi-sanitize`: the C-ABI tests.
//!
//! * The header `include/darksidesync.h` must compile on its own with
//!   `gcc -std=c99 -Wall -Wextra -Werror -pedantic`, before and after
//!   `lua.h`, and as C++.
//! * For Lua 5.4, 5.1 (the 1v0 drop-in check on the original's Lua) and
//!   LuaJIT (utility built against the 5.1 headers, as LuaJIT's ABI is):
//!   the module is built (`target/lua-modules/<ver>`, shared with
//!   `lua-specs`), the C utility `examples/c/dssutil.c` is compiled against
//!   that version's headers into `target/capi/<ver>/dssutil.so`, and
//!   `tests/c/capi.lua` runs under the stock interpreter.
//! * `tests/c/twostates.c`, a C host linking liblua5.4, runs two Lua states
//!   in one process and closes one under load.
//! * `tests/c/luaexit.c`: deliveries from a SIGTERM handler into a Lua
//!   thread spinning in `poll()`/`dispatch()` (see `signal.rs`).
//! * `tests/c/promises.c`, per Lua: the entry points at close, `unreg()`
//!   racing the Lua thread, raising callbacks, finalizers (`promises.rs`).
//!
//! `capi-sanitize` runs the same programs under valgrind (memcheck; any
//! error or definitely lost block fails) and the C host and utility again
//! built with AddressSanitizer (leak detection on).
//!
//! Nothing is skipped: a missing compiler, header, library or interpreter
//! fails the command with what to install.

mod build;
mod header;
mod promises;
mod sanitize;
mod signal;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::cmd::{clear_lua_env, root, run_watched, Result};
use crate::module::{self, LuaVersion};
use build::{compile_host, prepare};
use sanitize::{asan_runtime, VALGRIND};

/// How long one C-ABI test program may run before it counts as hung.
/// Generous (valgrind is slow); not a performance bound.
const WATCHDOG: Duration = Duration::from_secs(900);

fn watched(cmd: &mut Command) -> Result {
    run_watched(cmd, WATCHDOG)
}

struct Target {
    lua: LuaVersion,
    /// Headers the utility is compiled against (LuaJIT has the 5.1 ABI).
    include: &'static str,
    /// Whether memcheck gives meaningful results (not for LuaJIT, whose
    /// allocator and JIT confuse it).
    valgrind: bool,
}

fn targets() -> Result<Vec<Target>> {
    Ok(vec![
        Target {
            lua: module::version("5.4")?,
            include: "/usr/include/lua5.4",
            valgrind: true,
        },
        Target {
            lua: module::version("5.1")?,
            include: "/usr/include/lua5.1",
            valgrind: true,
        },
        Target {
            lua: module::version("jit")?,
            include: "/usr/include/lua5.1",
            valgrind: false,
        },
    ])
}

pub fn main(sanitize: bool) -> Result {
    require_tools(sanitize)?;
    header::check()?;
    let mut dirs = Vec::new();
    let targets = targets()?;
    for t in &targets {
        let dir = prepare(t, "", &[])?;
        let mut cmd = Command::new(t.lua.interpreter);
        cmd.arg(root().join("tests/c/capi.lua")).arg(&dir);
        clear_lua_env(&mut cmd);
        run_expect_cancel(&mut cmd)?;
        promises::build(&dir, t.include, &[])?;
        promises::check(Command::new(t.lua.interpreter), &dir, promises::ROUNDS)?;
        wakeups(t, &dir)?;
        if sanitize && t.valgrind {
            let mut cmd = Command::new(VALGRIND[0]);
            cmd.args(&VALGRIND[1..])
                .arg(t.lua.interpreter)
                .arg(root().join("tests/c/capi.lua"))
                .arg(&dir);
            clear_lua_env(&mut cmd);
            run_expect_cancel(&mut cmd)?;
            let mut cmd = Command::new(VALGRIND[0]);
            cmd.args(&VALGRIND[1..]).arg(t.lua.interpreter);
            promises::check(cmd, &dir, promises::ROUNDS_VALGRIND)?;
        }
        dirs.push(dir);
    }
    let dir54 = &dirs[0];
    let host = compile_host(dir54, "", &[])?;
    watched(Command::new(&host).arg(dir54))?;
    signal::main(dir54)?;
    if sanitize {
        let mut cmd = Command::new(VALGRIND[0]);
        cmd.args(&VALGRIND[1..]).arg(&host).arg(dir54);
        watched(&mut cmd)?;
        // AddressSanitizer: the host and the utility instrumented; the Rust
        // module is not, but its heap traffic goes through ASan's allocator.
        let asan = ["-fsanitize=address", "-fno-omit-frame-pointer"];
        let dir = prepare(&targets[0], "-asan", &asan)?;
        let host = compile_host(&dir, "-asan", &asan)?;
        let asan_options = "detect_leaks=1:abort_on_error=0:exitcode=98";
        watched(
            Command::new(&host)
                .arg(&dir)
                .env("ASAN_OPTIONS", asan_options),
        )?;
        // The stock interpreter with the ASan runtime preloaded.
        let libasan = asan_runtime()?;
        let mut cmd = Command::new("lua5.4");
        cmd.arg(root().join("tests/c/capi.lua"))
            .arg(&dir)
            .env("LD_PRELOAD", libasan)
            .env("ASAN_OPTIONS", asan_options);
        clear_lua_env(&mut cmd);
        run_expect_cancel(&mut cmd)?;
        promises::build(&dir, "/usr/include/lua5.4", &asan)?;
        let mut cmd = Command::new("lua5.4");
        cmd.env("LD_PRELOAD", asan_runtime()?)
            .env("ASAN_OPTIONS", asan_options);
        promises::check(cmd, &dir, promises::ROUNDS_VALGRIND)?;
    }
    eprintln!(
        "xtask capi: all C-ABI tests passed{}",
        if sanitize {
            " (valgrind and ASan clean)"
        } else {
            ""
        }
    );
    Ok(())
}

/// `tests/c/wakeups.lua`: each of its cases in a fresh process (a fresh
/// state, so the first deliveries take the side ring), under the watchdog.
fn wakeups(t: &Target, dir: &Path) -> Result {
    let script = root().join("tests/c/wakeups.lua");
    let mut list = Command::new(t.lua.interpreter);
    list.arg(&script).arg(dir);
    clear_lua_env(&mut list);
    let names = crate::cmd::output(&mut list)?;
    let names: Vec<&str> = names.split_whitespace().collect();
    if names.is_empty() {
        return Err(format!("{}: wakeups.lua listed no case", t.lua.interpreter));
    }
    for name in names {
        let mut cmd = Command::new(t.lua.interpreter);
        cmd.arg(&script).arg(dir).arg(name);
        clear_lua_env(&mut cmd);
        watched(&mut cmd)?;
    }
    Ok(())
}

/// Runs the interpreter on capi.lua: it must succeed, and its lua_close
/// must have called the utility's cancel callbacks (after Lua released
/// dssutil.so's handle, which DarkSideSync 1.0 crashed on).
fn run_expect_cancel(cmd: &mut Command) -> Result {
    let dir = root().join("target/capi");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let log = dir.join("last-run.stderr");
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    cmd.stderr(file);
    let result = watched(cmd);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    eprint!("{stderr}");
    result?;
    for line in [
        "dssutil: 1v0 cancel of context 0",
        "dssutil: 2v0 cancel of context 0",
    ] {
        if !stderr.contains(line) {
            return Err(format!(
                "lua_close did not cancel the utility: no {line:?} on stderr"
            ));
        }
    }
    Ok(())
}

fn require_tools(sanitize: bool) -> Result {
    let mut missing = Vec::new();
    for (file, pkg) in [
        ("/usr/bin/gcc", "gcc"),
        ("/usr/bin/g++", "g++"),
        ("/usr/include/lua5.4/lua.h", "liblua5.4-dev"),
        ("/usr/include/lua5.1/lua.h", "liblua5.1-0-dev"),
        ("/usr/bin/lua5.4", "lua5.4"),
        ("/usr/bin/lua5.1", "lua5.1"),
        ("/usr/bin/luajit", "luajit"),
    ] {
        if !Path::new(file).exists() {
            missing.push(pkg);
        }
    }
    if sanitize && !Path::new("/usr/bin/valgrind").exists() {
        missing.push("valgrind");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "C-ABI tests need: {} (apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        ))
    }
}
