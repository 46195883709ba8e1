//! Building what the C-ABI tests run: the module and the C utility per
//! Lua, and the two-state C host.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Target;
use crate::cmd::{root, run, Result};
use crate::module;

pub(super) const CFLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Werror", "-pthread", "-g"];

pub(super) fn incs(lua_include: &str) -> Vec<String> {
    vec![
        format!("-I{}", root().join("include").display()),
        format!("-I{lua_include}"),
    ]
}

/// Builds and installs the module and the utility for one Lua into
/// `target/capi/<ver><suffix>/`.
pub(super) fn prepare(t: &Target, suffix: &str, extra: &[&str]) -> Result<PathBuf> {
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

pub(super) fn compile_host(dir: &Path, suffix: &str, extra: &[&str]) -> Result<PathBuf> {
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
