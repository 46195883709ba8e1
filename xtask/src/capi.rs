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
//!
//! `capi-sanitize` runs the same programs under valgrind (memcheck; any
//! error or definitely lost block fails) and the C host and utility again
//! built with AddressSanitizer (leak detection on).
//!
//! Nothing is skipped: a missing compiler, header, library or interpreter
//! fails the command with what to install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cmd::{root, run, Result};
use crate::module::{self, LuaVersion};

const CFLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Werror", "-pthread", "-g"];

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
        if sanitize && t.valgrind {
            let mut cmd = Command::new(VALGRIND[0]);
            cmd.args(&VALGRIND[1..])
                .arg(t.lua.interpreter)
                .arg(root().join("tests/c/capi.lua"))
                .arg(&dir);
            clean_env(&mut cmd);
            run_expect_cancel(&mut cmd)?;
        }
        dirs.push(dir);
    }
    let dir54 = &dirs[0];
    let host = compile_host(dir54, "", &[])?;
    watched(Command::new(&host).arg(dir54))?;
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
        clean_env(&mut cmd);
        run_expect_cancel(&mut cmd)?;
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

/// How long one C-ABI test program may run before it counts as hung.
/// Generous (valgrind is slow); not a performance bound.
const WATCHDOG: Duration = Duration::from_secs(900);

/// Runs `cmd` from the workspace root; fails on a non-zero exit, and
/// kills it and fails when it outlives the watchdog (a hang).
fn watched(cmd: &mut Command) -> Result {
    cmd.current_dir(root());
    eprintln!("+ {cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("{cmd:?} failed with {status}"))
            };
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{cmd:?} hung: killed after {} s",
                WATCHDOG.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The AddressSanitizer runtime, to preload into a stock interpreter.
fn asan_runtime() -> Result<String> {
    let out = Command::new("gcc")
        .arg("-print-file-name=libasan.so")
        .output()
        .map_err(|e| e.to_string())?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let real = std::fs::canonicalize(&path).map_err(|_| {
        format!(
            "libasan not found (gcc -print-file-name=libasan.so gave {path:?}); install libasan"
        )
    })?;
    Ok(real.display().to_string())
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

/// The header alone, both include orders, and as C++.
fn header() -> Result {
    let dir = root().join("target/capi");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let body = "static int dec(lua_State *L, void *d, void *u) { (void)L; (void)d; (void)u; return 0; }\n\
                int main(void) { DSS_decoder_1v0_t f = dec; dss_api_2v0_t a; a.size = sizeof a; (void)f;\n\
                return DSS2_HAS(&a, strerror) ? 0 : 1; }\n";
    for (name, first, second) in [
        ("h_after.c", "lua.h", "darksidesync.h"),
        ("h_before.c", "darksidesync.h", "lua.h"),
    ] {
        let src = dir.join(name);
        std::fs::write(
            &src,
            format!("#include \"{first}\"\n#include \"{second}\"\n{body}"),
        )
        .map_err(|e| e.to_string())?;
        run(Command::new("gcc")
            .args(CFLAGS)
            .arg("-pedantic")
            .args(incs("/usr/include/lua5.4"))
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(src.with_extension("o")))?;
    }
    let src = dir.join("h_before.c");
    run(Command::new("g++")
        .args(["-x", "c++", "-Wall", "-Wextra", "-Werror"])
        .args(incs("/usr/include/lua5.4"))
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(dir.join("h_cxx.o")))
}

fn incs(lua_include: &str) -> Vec<String> {
    vec![
        format!("-I{}", root().join("include").display()),
        format!("-I{lua_include}"),
    ]
}

fn clean_env(cmd: &mut Command) {
    for v in [
        "LUA_PATH",
        "LUA_CPATH",
        "LUA_PATH_5_2",
        "LUA_CPATH_5_2",
        "LUA_PATH_5_3",
        "LUA_CPATH_5_3",
        "LUA_PATH_5_4",
        "LUA_CPATH_5_4",
        "LUA_INIT",
    ] {
        cmd.env_remove(v);
    }
}

/// Builds and installs the module and the utility for one Lua into
/// `target/capi/<ver><suffix>/`.
fn prepare(t: &Target, suffix: &str, extra: &[&str]) -> Result<PathBuf> {
    let so = module::build(
        t.lua,
        &root()
            .join("target/lua-modules")
            .join(t.lua.name)
            .join("cargo"),
        "dev",
    )?;
    let dir = root()
        .join("target/capi")
        .join(format!("{}{suffix}", t.lua.name));
    module::install(&so, &dir)?;
    run(Command::new("gcc")
        .args(CFLAGS)
        .args(extra)
        .args(["-shared", "-fPIC"])
        .args(incs(t.include))
        .arg(root().join("examples/c/dssutil.c"))
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
