//! What the scenarios run against, built and installed into one folder per
//! Lua version: the module, the C utility `dssbench.so` (bench/c/dssbench.c,
//! compiled with gcc against `include/darksidesync.h` and that Lua's
//! headers only; LuaJIT's ABI is 5.1's), the Rust library `dssbenchrs.so`
//! (bench/rust, on `darksidesync-binding` only); and, for Lua 5.4, the two
//! many-states programs (the C host bench/c/manystates.c and the Rust
//! example `many_states`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{cargo, run, Result};
use crate::module::{self, LuaVersion};
use crate::root;

const CFLAGS: &[&str] = &[
    "-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread",
];

/// Where the built pieces are.
pub(super) struct Fixtures {
    /// Per Lua version (`5.4`, `jit`, ...): the folder of `darksidesync.so`,
    /// its Lua files, `dssbench.so`, `dssbenchrs.so`.
    libs: Vec<(&'static str, PathBuf)>,
    /// The C many-states host.
    pub(super) c_host: PathBuf,
    /// The Rust many-states example.
    pub(super) rust_host: PathBuf,
}

impl Fixtures {
    /// The folder of `lua`'s module and utilities.
    pub(super) fn lib(&self, lua: LuaVersion) -> Result<&Path> {
        self.libs
            .iter()
            .find(|(name, _)| *name == lua.name)
            .map(|(_, p)| p.as_path())
            .ok_or_else(|| format!("bench: nothing built for Lua {}", lua.name))
    }
}

/// The Lua headers a C utility for `lua` compiles against (LuaJIT: 5.1's,
/// its C API), and the Debian package that has them.
fn headers(lua: LuaVersion) -> (&'static str, &'static str) {
    match lua.name {
        "5.4" => ("/usr/include/lua5.4", "liblua5.4-dev"),
        _ => ("/usr/include/lua5.1", "liblua5.1-0-dev"),
    }
}

/// Builds everything for `lua54` and `others`: the `bench` profile
/// (release code with symbols), or for `quick` the dev-profile module
/// `lua-specs` builds (no second build of mlua in the test run).
pub(super) fn build(lua54: LuaVersion, others: &[LuaVersion], quick: bool) -> Result<Fixtures> {
    let mut libs = Vec::new();
    for &lua in std::iter::once(&lua54).chain(others) {
        libs.push((lua.name, build_lua(lua, quick)?));
    }
    let lib54 = &libs[0].1;
    let c_host = lib54.join("manystates");
    gcc(&[], "bench/c/manystates.c", lua54, &c_host, &["-llua5.4"])?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "darksidesync-lua",
        "--example",
        "many_states",
    ]))?;
    Ok(Fixtures {
        libs,
        c_host,
        rust_host: root().join("target/release/examples/many_states"),
    })
}

/// The module, `dssbench.so` and `dssbenchrs.so` for `lua`, installed into
/// the folder returned.
fn build_lua(lua: LuaVersion, quick: bool) -> Result<PathBuf> {
    let (include, pkg) = headers(lua);
    for (file, pkg) in [
        ("/usr/bin/gcc".to_string(), "gcc"),
        (format!("{include}/lua.h"), pkg),
    ] {
        if !Path::new(&file).exists() {
            return Err(format!("bench needs {pkg} (apt-get install {pkg})"));
        }
    }
    let (target_dir, profile, lib) = if quick {
        let base = root().join("target/lua-modules").join(lua.name);
        (base.join("cargo"), "dev", base.join("bench-lib"))
    } else {
        // The `bench` profile: release code with symbols, for `--perf`
        // (its own target dir: it builds into `release/`, where `cargo
        // xtask module` keeps its stripped build). One target dir for
        // every Lua: each build is copied out before the next one.
        (
            root().join("target/bench-run/cargo"),
            "bench",
            root().join("target/bench-run/lib").join(lua.name),
        )
    };
    let so = module::build_with_benchlib(lua, &target_dir, profile)?;
    module::install(&so, &lib)?;
    // The Rust library, in the module's target dir: same mlua features,
    // so mlua is compiled once for both.
    run(cargo()
        .args([
            "build",
            "--package",
            "dssbench-rs",
            "--lib",
            "--no-default-features",
        ])
        .args(["--features", &format!("module,{}", lua.feature)])
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(&target_dir))?;
    copy(
        &target_dir
            .join(module::profile_dir(profile))
            .join("libdssbenchrs.so"),
        &lib.join("dssbenchrs.so"),
    )?;
    gcc(
        &["-shared", "-fPIC"],
        "bench/c/dssbench.c",
        lua,
        &lib.join("dssbench.so"),
        &[],
    )?;
    Ok(lib)
}

fn gcc(flags: &[&str], src: &str, lua: LuaVersion, out: &Path, libs: &[&str]) -> Result {
    run(Command::new("gcc")
        .args(CFLAGS)
        .args(flags)
        .arg(format!("-I{}", root().join("include").display()))
        .arg(format!("-I{}", headers(lua).0))
        .arg(root().join(src))
        .arg("-o")
        .arg(out)
        .args(libs))
}

/// Copies through a temporary name, so a process that has the old file
/// mapped keeps a valid mapping.
fn copy(from: &Path, to: &Path) -> Result {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    std::fs::rename(&tmp, to).map_err(|e| format!("cannot install {}: {e}", to.display()))
}
