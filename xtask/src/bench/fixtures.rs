//! What the scenarios run against, built and installed into one folder:
//! the module, the C utility `dssbench.so` (bench/c/dssbench.c, compiled
//! with gcc against `include/darksidesync.h` and the Lua 5.4 headers only),
//! the Rust library `dssbenchrs.so` (bench/rust, on `darksidesync-binding`
//! only), and the two many-states programs (the C host bench/c/manystates.c
//! and the Rust example `many_states`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{cargo, run, Result};
use crate::module::{self, LuaVersion};
use crate::root;

const LUA_INCLUDE: &str = "/usr/include/lua5.4";
const CFLAGS: &[&str] = &[
    "-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread",
];

/// Where the built pieces are.
pub(super) struct Fixtures {
    /// `darksidesync.so`, its Lua files, `dssbench.so`, `dssbenchrs.so`.
    pub(super) lib: PathBuf,
    /// The C many-states host.
    pub(super) c_host: PathBuf,
    /// The Rust many-states example.
    pub(super) rust_host: PathBuf,
}

/// Builds everything: the `bench` profile (release code with symbols), or
/// for `quick` the dev-profile module `lua-specs` builds (no second build
/// in the test run).
pub(super) fn build(lua: LuaVersion, quick: bool) -> Result<Fixtures> {
    for (file, pkg) in [
        ("/usr/bin/gcc", "gcc"),
        ("/usr/include/lua5.4/lua.h", "liblua5.4-dev"),
    ] {
        if !Path::new(file).exists() {
            return Err(format!("bench needs {pkg} (apt-get install {pkg})"));
        }
    }
    let (target_dir, profile, lib) = if quick {
        let base = root().join("target/lua-modules/5.4");
        (base.join("cargo"), "dev", base.join("bench-lib"))
    } else {
        // The `bench` profile: release code with symbols, for `--perf`
        // (its own target dir: it builds into `release/`, where `cargo
        // xtask module` keeps its stripped build).
        (
            root().join("target/bench-run/cargo"),
            "bench",
            root().join("target/bench-run/lib"),
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
        &lib.join("dssbench.so"),
        &[],
    )?;
    let c_host = lib.join("manystates");
    gcc(&[], "bench/c/manystates.c", &c_host, &["-llua5.4"])?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "darksidesync-lua",
        "--example",
        "many_states",
    ]))?;
    Ok(Fixtures {
        lib,
        c_host,
        rust_host: root().join("target/release/examples/many_states"),
    })
}

fn gcc(flags: &[&str], src: &str, out: &Path, libs: &[&str]) -> Result {
    run(Command::new("gcc")
        .args(CFLAGS)
        .args(flags)
        .arg(format!("-I{}", root().join("include").display()))
        .arg(format!("-I{LUA_INCLUDE}"))
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
