//! `cargo xtask module (--lua <5.1|5.2|5.3|5.4|jit> | --lua-interpreter PATH)
//! [--out DIR [--lua-dir DIR]]`
//!
//! Builds the loadable Lua module for one Lua version (mlua's `module`
//! feature, which cannot be combined with the workspace's default
//! `vendored` build, hence its own target directory), release-sized
//! (checked under [`MAX_SIZE`], the size is printed), and installs it with
//! the Lua helper files, so that
//! `LUA_CPATH='DIR/?.so;;' LUA_PATH='DIR/?.lua;DIR/?/init.lua;;'` is all a
//! stock interpreter needs. `--lua-interpreter` asks that interpreter
//! which Lua it is, and `--lua-dir` puts the Lua files apart from the
//! module: this is what the rockspec calls with LuaRocks' `$(LUA)`,
//! `$(LIBDIR)` and `$(LUADIR)`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::root;

/// A supported Lua, by the name used on the command line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LuaVersion {
    /// `5.1` ... `jit`.
    pub(crate) name: &'static str,
    /// The crate feature selecting it.
    pub(crate) feature: &'static str,
    /// The Debian interpreter.
    pub(crate) interpreter: &'static str,
}

pub(crate) const VERSIONS: [LuaVersion; 5] = [
    LuaVersion {
        name: "5.1",
        feature: "lua51",
        interpreter: "lua5.1",
    },
    LuaVersion {
        name: "5.2",
        feature: "lua52",
        interpreter: "lua5.2",
    },
    LuaVersion {
        name: "5.3",
        feature: "lua53",
        interpreter: "lua5.3",
    },
    LuaVersion {
        name: "5.4",
        feature: "lua54",
        interpreter: "lua5.4",
    },
    LuaVersion {
        name: "jit",
        feature: "luajit",
        interpreter: "luajit",
    },
];

pub(crate) fn version(name: &str) -> Result<LuaVersion, String> {
    VERSIONS
        .iter()
        .copied()
        .find(|v| v.name == name)
        .ok_or_else(|| format!("unknown Lua version {name:?}; use one of 5.1, 5.2, 5.3, 5.4, jit"))
}

/// The release module must stay under this size: it catches debug info
/// left in `[profile.release]` (10 MB with it). The module is about 2.0 MB
/// (5.4) to 2.1 MB (5.1) since `darksidesync.process` runs tokio for its
/// async face (`process.start`); it was about 1.6 MB before.
pub(crate) const MAX_SIZE: u64 = 3 * 1024 * 1024;

/// Which Lua `interpreter` is (asks it).
pub(crate) fn version_of(interpreter: &str) -> Result<LuaVersion, String> {
    let out = Command::new(interpreter)
        .args(["-e", "io.write(jit and 'jit' or _VERSION:sub(5))"])
        .output()
        .map_err(|e| format!("cannot run {interpreter}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{interpreter} -e failed with {}", out.status));
    }
    version(&String::from_utf8_lossy(&out.stdout))
}

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let (mut lua, mut out, mut lua_dir) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--lua" => lua = Some(version(value()?)?),
            "--lua-interpreter" => lua = Some(version_of(value()?)?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--lua-dir" => lua_dir = Some(PathBuf::from(value()?)),
            other => return Err(format!("module: unexpected argument {other:?}")),
        }
    }
    let lua =
        lua.ok_or("module: --lua <5.1|5.2|5.3|5.4|jit> (or --lua-interpreter PATH) is required")?;
    let so = build(lua, &root().join("target/module").join(lua.name), "release")?;
    let size = fs::metadata(&so)
        .map_err(|e| format!("cannot stat {}: {e}", so.display()))?
        .len();
    println!(
        "darksidesync for Lua {}: {} ({:.2} MB)",
        lua.name,
        so.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    if size >= MAX_SIZE {
        return Err(format!(
            "the release module is {size} bytes, over the {MAX_SIZE}-byte limit (debug info in [profile.release]?)"
        ));
    }
    let Some(out) = out else { return Ok(()) };
    install_into(&so, &out, lua_dir.as_deref().unwrap_or(&out))?;
    println!(
        "installed darksidesync for Lua {} into {}",
        lua.name,
        out.display()
    );
    Ok(())
}

/// Builds the module into `target_dir` with `profile` ("release" or
/// "dev") and returns the path of the shared object.
pub(crate) fn build(lua: LuaVersion, target_dir: &Path, profile: &str) -> Result<PathBuf, String> {
    build_package(lua, target_dir, profile, "darksidesync-lua", "darksidesync")
}

/// The module plus `darksidesync.benchlib`, the fixture that measures the
/// internal path: the `publish = false` crate `bench/benchlib`, a cdylib
/// holding the whole module and the fixture (on the module's public `Item`
/// API). Only `cargo xtask bench` installs this build, as
/// `darksidesync.so`; it is never shipped.
pub(crate) fn build_with_benchlib(
    lua: LuaVersion,
    target_dir: &Path,
    profile: &str,
) -> Result<PathBuf, String> {
    build_package(
        lua,
        target_dir,
        profile,
        "darksidesync-benchlib",
        "dssbenchlib",
    )
}

/// Builds the cdylib `lib` of `package` for `lua` (mlua's `module`
/// feature plus the version's) and returns the path of the shared object.
pub(crate) fn build_package(
    lua: LuaVersion,
    target_dir: &Path,
    profile: &str,
    package: &str,
    lib: &str,
) -> Result<PathBuf, String> {
    build_features(lua, target_dir, profile, package, lib, &[])
}

fn build_features(
    lua: LuaVersion,
    target_dir: &Path,
    profile: &str,
    package: &str,
    lib: &str,
    extra: &[&str],
) -> Result<PathBuf, String> {
    let mut features = format!("module,{}", lua.feature);
    for f in extra {
        features.push(',');
        features.push_str(f);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args([
            "build",
            "--package",
            package,
            "--lib",
            "--no-default-features",
        ])
        .args(["--features", &features])
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building {package} for Lua {} failed", lua.name));
    }
    let so = target_dir.join(profile_dir(profile)).join(format!(
        "{}{lib}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    if !so.is_file() {
        return Err(format!("expected {} after the build", so.display()));
    }
    Ok(so)
}

/// Builds the test-only `darksidesync.testlib` (crates/testlib, on the
/// public binding) and installs it as `out/darksidesync/testlib.so`, where
/// `require "darksidesync.testlib"` finds it. Never part of `main`'s
/// production install.
pub(crate) fn install_testlib(
    lua: LuaVersion,
    target_dir: &Path,
    out: &Path,
) -> Result<(), String> {
    let so = build_package(
        lua,
        target_dir,
        "dev",
        "darksidesync-testlib",
        "darksidesync_testlib",
    )?;
    let dir = out.join("darksidesync");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(".testlib.so.tmp");
    fs::copy(&so, &tmp).map_err(|e| format!("cannot copy {}: {e}", so.display()))?;
    fs::rename(&tmp, dir.join("testlib.so")).map_err(|e| format!("cannot install testlib.so: {e}"))
}

/// The folder of `target_dir` a cargo profile builds into (cargo's
/// built-in `test` and `bench` profiles share `debug` and `release`).
pub(crate) fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// Copies the module to `out/darksidesync.so` and the Lua files of `lua/`
/// (keeping their relative paths) into `out`.
pub(crate) fn install(so: &Path, out: &Path) -> Result<(), String> {
    install_into(so, out, out)
}

/// Copies the module to `out/darksidesync.so` and the Lua files into
/// `lua_dir`.
pub(crate) fn install_into(so: &Path, out: &Path, lua_dir: &Path) -> Result<(), String> {
    fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    fs::create_dir_all(lua_dir).map_err(|e| format!("cannot create {}: {e}", lua_dir.display()))?;
    // Copy to a temporary name and rename, so a running interpreter that
    // has the old file mapped keeps a valid mapping.
    let dest = out.join("darksidesync.so");
    let tmp = out.join(".darksidesync.so.tmp");
    fs::copy(so, &tmp).map_err(|e| format!("cannot copy {}: {e}", so.display()))?;
    fs::rename(&tmp, &dest).map_err(|e| format!("cannot install {}: {e}", dest.display()))?;
    copy_lua_tree(&root().join("lua"), lua_dir)
}

fn copy_lua_tree(from: &Path, to: &Path) -> Result<(), String> {
    let entries = fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            fs::create_dir_all(&dest)
                .map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
            copy_lua_tree(&path, &dest)?;
        } else if path.extension().is_some_and(|e| e == "lua") {
            fs::copy(&path, &dest).map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
        }
    }
    Ok(())
}
