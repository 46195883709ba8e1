//! `cargo xtask capi` and `cargo xtask capi-sanitize`: the C-ABI tests.
//!
//! * The header `include/darksidesync.h` must compile on its own with
//!   `gcc -std=c99 -Wall -Wextra -Werror -pedantic`, before and after
//!   `lua.h`, and as C++.
//! * For Lua 5.4 and 5.1 (the 1v0 drop-in check on the original's Lua):
//!   the module is built (`target/lua-modules/<ver>`, shared with
//!   `lua-specs`), the C utility `tests/c/dssutil.c` is compiled against
//!   that version's headers into `target/capi/<ver>/dssutil.so`, and
//!   `tests/c/capi.lua` runs under the stock interpreter.
//! * `tests/c/twostates.c`, a C host linking liblua5.4, runs two Lua states
//!   in one process and closes one under load.
//!
//! `capi-sanitize` runs the same programs under valgrind (memcheck; any
//! error or definitely lost block fails) and the C host and utility again
//! built with AddressSanitizer (leak detection on).
//!
//! Nothing is skipped: a missing compiler, header, library or interpreter
//! fails the command with what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{root, run, Result};
use crate::module::{self, LuaVersion};

const CFLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Werror", "-pthread", "-g"];

struct Target {
    lua: LuaVersion,
    include: &'static str,
}

fn targets() -> Result<Vec<Target>> {
    Ok(vec![
        Target { lua: module::version("5.4")?, include: "/usr/include/lua5.4" },
        Target { lua: module::version("5.1")?, include: "/usr/include/lua5.1" },
    ])
}

const VALGRIND: &[&str] = &[
    "valgrind",
    "--quiet",
    "--error-exitcode=99",
    "--leak-check=full",
    "--show-leak-kinds=definite",
    "--errors-for-leak-kinds=definite",
    "--track-origins=yes",
];

pub fn main(sanitize: bool) -> Result {
    require_tools(sanitize)?;
    header()?;
    let mut dirs = Vec::new();
    let targets = targets()?;
    for t in &targets {
        let dir = prepare(t, "", &[])?;
        let mut cmd = Command::new(t.lua.interpreter);
        cmd.arg(root().join("tests/c/capi.lua")).arg(&dir);
        clean_env(&mut cmd);
        run_expect_cancel(&mut cmd)?;
        if sanitize {
            let mut cmd = Command::new(VALGRIND[0]);
            cmd.args(&VALGRIND[1..]).arg(t.lua.interpreter).arg(root().join("tests/c/capi.lua")).arg(&dir);
            clean_env(&mut cmd);
            run_expect_cancel(&mut cmd)?;
        }
        dirs.push(dir);
    }
    let dir54 = &dirs[0];
    let host = compile_host(dir54, "", &[])?;
    run(Command::new(&host).arg(dir54))?;
    if sanitize {
        let mut cmd = Command::new(VALGRIND[0]);
        cmd.args(&VALGRIND[1..]).arg(&host).arg(dir54);
        run(&mut cmd)?;
        // AddressSanitizer: the host and the utility instrumented; the Rust
        // module is not, but its heap traffic goes through ASan's allocator.
        let asan = ["-fsanitize=address", "-fno-omit-frame-pointer"];
        let dir = prepare(&targets[0], "-asan", &asan)?;
        let host = compile_host(&dir, "-asan", &asan)?;
        run(Command::new(&host).arg(&dir).env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=98"))?;
    }
    eprintln!("xtask capi: all C-ABI tests passed{}", if sanitize { " (valgrind and ASan clean)" } else { "" });
    Ok(())
}

/// Runs the interpreter on capi.lua: it must succeed, and its lua_close
/// must have called the utility's cancel callbacks (after Lua released
/// dssutil.so's handle, which DarkSideSync 1.0 crashed on).
fn run_expect_cancel(cmd: &mut Command) -> Result {
    cmd.current_dir(root());
    eprintln!("+ {cmd:?}");
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    if !out.status.success() {
        return Err(format!("{cmd:?} failed with {}", out.status));
    }
    for line in ["dssutil: 1v0 cancel of context 0", "dssutil: 2v0 cancel of context 0"] {
        if !stderr.contains(line) {
            return Err(format!("lua_close did not cancel the utility: no {line:?} on stderr"));
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
        Err(format!("C-ABI tests need: {} (apt-get install {})", missing.join(", "), missing.join(" ")))
    }
}

/// The header alone, both include orders, and as C++.
fn header() -> Result {
    let dir = root().join("target/capi");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let body = "static int dec(lua_State *L, void *d, void *u) { (void)L; (void)d; (void)u; return 0; }\n\
                int main(void) { DSS_decoder_1v0_t f = dec; dss_api_2v0_t a; a.size = sizeof a; (void)f;\n\
                return DSS2_HAS(&a, strerror) ? 0 : 1; }\n";
    for (name, first, second) in [("h_after.c", "lua.h", "darksidesync.h"), ("h_before.c", "darksidesync.h", "lua.h")] {
        let src = dir.join(name);
        std::fs::write(&src, format!("#include \"{first}\"\n#include \"{second}\"\n{body}")).map_err(|e| e.to_string())?;
        run(Command::new("gcc").args(CFLAGS).arg("-pedantic").args(incs("/usr/include/lua5.4")).arg("-c").arg(&src).arg("-o").arg(src.with_extension("o")))?;
    }
    let src = dir.join("h_before.c");
    run(Command::new("g++").args(["-x", "c++", "-Wall", "-Wextra", "-Werror"]).args(incs("/usr/include/lua5.4")).arg("-c").arg(&src).arg("-o").arg(dir.join("h_cxx.o")))
}

fn incs(lua_include: &str) -> Vec<String> {
    vec![format!("-I{}", root().join("include").display()), format!("-I{lua_include}")]
}

fn clean_env(cmd: &mut Command) {
    for v in ["LUA_PATH", "LUA_CPATH", "LUA_PATH_5_2", "LUA_CPATH_5_2", "LUA_PATH_5_3", "LUA_CPATH_5_3", "LUA_PATH_5_4", "LUA_CPATH_5_4", "LUA_INIT"] {
        cmd.env_remove(v);
    }
}

/// Builds and installs the module and the utility for one Lua into
/// `target/capi/<ver><suffix>/`.
fn prepare(t: &Target, suffix: &str, extra: &[&str]) -> Result<PathBuf> {
    let so = module::build(t.lua, &root().join("target/lua-modules").join(t.lua.name).join("cargo"), "dev")?;
    let dir = root().join("target/capi").join(format!("{}{suffix}", t.lua.name));
    module::install(&so, &dir)?;
    run(Command::new("gcc")
        .args(CFLAGS)
        .args(extra)
        .args(["-shared", "-fPIC"])
        .args(incs(t.include))
        .arg(root().join("tests/c/dssutil.c"))
        .arg("-o")
        .arg(dir.join("dssutil.so")))?;
    Ok(dir)
}

fn compile_host(dir: &Path, suffix: &str, extra: &[&str]) -> Result<PathBuf> {
    let exe = dir.join(format!("twostates{suffix}"));
    run(Command::new("gcc")
        .args(CFLAGS)
        .args(extra)
        .args(incs("/usr/include/lua5.4"))
        .arg(root().join("tests/c/twostates.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-llua5.4"))?;
    Ok(exe)
}
