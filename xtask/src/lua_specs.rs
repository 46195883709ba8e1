//! `cargo xtask lua-specs`
//!
//! Builds the module for every supported Lua into
//! `target/lua-modules/<ver>` (its own cargo target directory under
//! `target/lua-modules/<ver>/cargo`, the installed files under
//! `target/lua-modules/<ver>/lib`) and runs the busted specs of
//! `tests/lua/` under each Debian interpreter, with `LUA_PATH`/`LUA_CPATH`
//! pointing at our files first and the system modules after (`;;`).
//!
//! Fails when any interpreter, busted or an event-loop library (luv,
//! cqueues, LuaSocket, Copas) is missing: nothing is skipped.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::cmd::clear_lua_env;
use crate::module::{self, LuaVersion, VERSIONS};
use crate::root;

const BUSTED: &str = "/usr/bin/busted";
const LOOP_LIBS: &str = "require'luv' require'cqueues' require'socket' require'copas'";

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let only: Vec<LuaVersion> = match args {
        [] => VERSIONS.to_vec(),
        [flag, v] if flag == "--lua" => v
            .split(',')
            .map(module::version)
            .collect::<Result<_, _>>()?,
        _ => return Err("usage: cargo xtask lua-specs [--lua <5.1|5.2|5.3|5.4|jit>[,...]]".into()),
    };
    if !Path::new(BUSTED).is_file() {
        return Err(format!("{BUSTED} is missing (Debian package lua-busted)"));
    }
    let mut summary = Vec::new();
    let mut failed = false;
    for &lua in &only {
        let (ok, line) = match run_one(lua) {
            Ok(line) => (true, line),
            Err(e) => (false, e),
        };
        failed |= !ok;
        summary.push(format!(
            "{:<8} {} {}",
            lua.interpreter,
            if ok { "PASS" } else { "FAIL" },
            line
        ));
    }
    if only.iter().any(|l| l.name == "5.1") && only.iter().any(|l| l.name == "jit") {
        let (ok, line) = match wrong_build_refused() {
            Ok(()) => (
                true,
                "each refuses the other's build in one line".to_string(),
            ),
            Err(e) => (false, e),
        };
        failed |= !ok;
        summary.push(format!(
            "5.1/jit  {} {line}",
            if ok { "PASS" } else { "FAIL" }
        ));
    }
    println!("\n== lua-specs summary ==");
    for line in &summary {
        println!("{line}");
    }
    if failed {
        Err("some Lua specs failed".into())
    } else {
        Ok(())
    }
}

/// Debian's lua-copas ships its pure-Lua files for Lua 5.1 and 5.2 only
/// (and lua-coxpcall none for 5.4). When the interpreter cannot require
/// them, copy the distribution's files from the 5.2 (or 5.1) tree into
/// `compat`, which is on `LUA_PATH`. A library that cannot be found at all
/// still fails the run.
fn provide_pure_lua_modules(
    lua: LuaVersion,
    compat: &Path,
    env: &dyn Fn(&mut Command),
) -> Result<(), String> {
    for name in ["coxpcall", "copas"] {
        let mut probe = Command::new(lua.interpreter);
        probe
            .args(["-e", &format!("require'{name}'")])
            .stderr(std::process::Stdio::null());
        env(&mut probe);
        match probe.status() {
            Err(e) => return Err(format!("interpreter {} is missing: {e}", lua.interpreter)),
            Ok(s) if s.success() => continue,
            Ok(_) => {}
        }
        let Some(src) = ["5.2", "5.1"]
            .iter()
            .map(|v| {
                Path::new("/usr/share/lua")
                    .join(v)
                    .join(format!("{name}.lua"))
            })
            .find(|p| p.is_file())
        else {
            return Err(format!(
                "{name} is missing for {} and in /usr/share/lua/5.2 and 5.1",
                lua.interpreter
            ));
        };
        fs::create_dir_all(compat)
            .map_err(|e| format!("cannot create {}: {e}", compat.display()))?;
        fs::copy(&src, compat.join(format!("{name}.lua")))
            .map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
        println!(
            "note: {} uses {} (the Debian package has no files for this Lua)",
            lua.interpreter,
            src.display()
        );
    }
    Ok(())
}

/// LuaRocks installs LuaJIT's and Lua 5.1's builds into the same
/// `lib/lua/5.1`: each interpreter, given only the other's build (as
/// installed by [`run_one`]), must refuse it with one line naming both and
/// the command that builds the right one, for the module and a library
/// linked into it.
fn wrong_build_refused() -> Result<(), String> {
    let dir = |v: &str| root().join("target/lua-modules").join(v).join("lib");
    let cases = [
        ("lua5.1", dir("jit"), "this build is for LuaJIT but Lua 5.1 loaded it; build one for Lua 5.1 (cargo xtask module --lua 5.1 --out DIR, or luarocks --lua-version 5.1 make rockspecs/darksidesync-scm-1.rockspec)"),
        ("luajit", dir("5.1"), "this build is for Lua 5.1 but LuaJIT loaded it; build one for LuaJIT (cargo xtask module --lua jit --out DIR, or luarocks --lua-version 5.1 --tree TREE make rockspecs/darksidesync-scm-1.rockspec LUA=/usr/bin/luajit)"),
    ];
    for (interpreter, lib, says) in cases {
        for module in ["darksidesync", "darksidesync.timer"] {
            let mut cmd = Command::new(interpreter);
            clear_lua_env(&mut cmd);
            let out = cmd
                .args(["-e", &format!("require '{module}'")])
                .env("LUA_CPATH", format!("{}/?.so", lib.display()))
                .env("LUA_PATH", format!("{}/?.lua", lib.display()))
                .output()
                .map_err(|e| format!("cannot run {interpreter}: {e}"))?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr.lines().next().unwrap_or_default();
            let want =
                format!("{interpreter}: darksidesync: {says} and keep the two in separate folders");
            if out.status.success() || first != want {
                return Err(format!(
                    "{interpreter} given the other build, require '{module}': {}, said:\n{stderr}\nwanted first line:\n{want}",
                    out.status
                ));
            }
            println!("{interpreter}, the other build, require '{module}': {first}");
        }
    }
    Ok(())
}

/// Builds, installs and runs the specs for one Lua; returns busted's
/// summary line.
fn run_one(lua: LuaVersion) -> Result<String, String> {
    let base = root().join("target/lua-modules").join(lua.name);
    let lib = base.join("lib");
    let so = module::build(lua, &base.join("cargo"), "dev")?;
    module::install(&so, &lib)?;
    module::install_testlib(lua, &base.join("cargo"), &lib)?;

    let specs = root().join("tests/lua");
    let compat = base.join("compat");
    let lua_path = format!(
        "{0}/?.lua;{0}/?/init.lua;{1}/?.lua;{2}/?.lua;;",
        lib.display(),
        specs.display(),
        compat.display()
    );
    let lua_cpath = format!("{}/?.so;;", lib.display());
    let env = |cmd: &mut Command| {
        // Interpreter-specific variables would override ours.
        clear_lua_env(cmd);
        cmd.env("LUA_PATH", &lua_path).env("LUA_CPATH", &lua_cpath);
    };

    provide_pure_lua_modules(lua, &compat, &env)?;

    let mut check = Command::new(lua.interpreter);
    check.args(["-e", LOOP_LIBS]);
    env(&mut check);
    match check.status() {
        Err(e) => return Err(format!("interpreter {} is missing: {e}", lua.interpreter)),
        Ok(s) if !s.success() => {
            return Err(format!(
                "{} cannot load the loop libraries (luv, cqueues, socket, copas)",
                lua.interpreter
            ))
        }
        Ok(_) => {}
    }

    println!("== {} ({}) ==", lua.interpreter, lib.display());
    let mut busted = Command::new(lua.interpreter);
    busted
        .current_dir(root())
        .arg(BUSTED)
        .args([
            "--output=plainTerminal",
            "--pattern=_spec",
            "--no-auto-insulate",
        ])
        .arg(&specs);
    env(&mut busted);
    let out = busted
        .output()
        .map_err(|e| format!("cannot run busted: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains("success"))
        .unwrap_or("(no busted summary)")
        .trim()
        .to_string();
    if out.status.success() {
        Ok(line)
    } else {
        Err(line)
    }
}
