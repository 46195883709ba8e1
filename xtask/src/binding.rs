//! `cargo xtask binding`
//!
//! The Rust binding-author API end to end: builds the module and the
//! example cdylib `dssrust` (crates/binding/example, a Rust library
//! compiled separately that uses `darksidesync-binding`) for Lua 5.4 and
//! 5.1, installs both side by side, and runs `tests/binding/*_spec.lua`
//! with busted under the stock interpreter.

use std::process::Command;

use crate::module::{self, LuaVersion};
use crate::root;

const BUSTED: &str = "/usr/bin/busted";

pub(crate) fn main() -> Result<(), String> {
    for v in ["5.4", "5.1"] {
        run_one(module::version(v)?)?;
    }
    Ok(())
}

fn run_one(lua: LuaVersion) -> Result<(), String> {
    let base = root().join("target/binding").join(lua.name);
    let lib = base.join("lib");
    // The module from the same build directory the Lua specs use.
    let so = module::build(
        lua,
        &root()
            .join("target/lua-modules")
            .join(lua.name)
            .join("cargo"),
        "dev",
    )?;
    module::install(&so, &lib)?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = base.join("cargo");
    let status = Command::new(cargo)
        .current_dir(root())
        .args([
            "build",
            "--package",
            "darksidesync-binding-example",
            "--lib",
            "--no-default-features",
        ])
        .args(["--features", &format!("module,{}", lua.feature)])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building dssrust for Lua {} failed", lua.name));
    }
    let built = target.join("debug").join(format!(
        "{}dssrust{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::copy(&built, lib.join("dssrust.so"))
        .map_err(|e| format!("cannot copy {}: {e}", built.display()))?;

    println!("== binding specs, {} ==", lua.interpreter);
    let lua_path = format!("{0}/?.lua;{0}/?/init.lua;;", lib.display());
    let lua_cpath = format!("{}/?.so;;", lib.display());
    let mut busted = Command::new(lua.interpreter);
    busted
        .current_dir(root())
        .arg(BUSTED)
        .args(["--output=plainTerminal", "--pattern=_spec"])
        .arg(root().join("tests/binding"))
        .env("LUA_PATH", &lua_path)
        .env("LUA_CPATH", &lua_cpath)
        .env("DSS_LUA", lua.interpreter);
    for v in [
        "LUA_PATH_5_2",
        "LUA_CPATH_5_2",
        "LUA_PATH_5_3",
        "LUA_CPATH_5_3",
        "LUA_PATH_5_4",
        "LUA_CPATH_5_4",
        "LUA_INIT",
    ] {
        busted.env_remove(v);
    }
    let status = busted
        .status()
        .map_err(|e| format!("cannot run busted under {}: {e}", lua.interpreter))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("binding specs failed under {}", lua.interpreter))
    }
}
