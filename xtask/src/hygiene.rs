//! The gate that runs first in `cargo xtask test` (`cargo xtask hygiene`):
//! formatting, clippy, rustdoc without warnings (the workspace, then each
//! published crate alone as docs.rs builds it), then the drift check
//! (`drift.rs`).

use crate::cmd::{cargo, output, run, Result};
use crate::{module, root};

pub fn main() -> Result {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The loadable module's cfg paths that the workspace build (vendored
    // 5.4) does not compile, in the module's own target directories.
    for name in ["5.1", "jit"] {
        let lua = module::version(name)?;
        run(cargo()
            .args([
                "clippy",
                "-p",
                "darksidesync-lua",
                "--lib",
                "--no-default-features",
            ])
            .args(["--features", &format!("module,{}", lua.feature)])
            .arg("--target-dir")
            .arg(module_target(lua))
            .args(["--", "-D", "warnings"]))?;
    }
    rustdoc()?;
    crate::drift::main()
}

/// The module's dev build directory, shared with `lua-specs` and `capi`.
pub fn module_target(lua: module::LuaVersion) -> std::path::PathBuf {
    root()
        .join("target/lua-modules")
        .join(lua.name)
        .join("cargo")
}

/// The workspace's published packages (no `publish = false`), as
/// `cargo metadata` describes them.
fn published_packages() -> Result<Vec<serde_json::Value>> {
    let json = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
    let mut meta: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("cargo metadata: {e}"))?;
    let packages = meta["packages"]
        .as_array_mut()
        .ok_or("cargo metadata: no packages")?;
    Ok(std::mem::take(packages)
        .into_iter()
        .filter(|p| p["publish"].as_array().is_none_or(|a| !a.is_empty()))
        .collect())
}

/// The names of the workspace's crates that are published.
pub fn published_crates() -> Result<Vec<String>> {
    Ok(published_packages()?
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect())
}

/// rustdoc of every published crate, warnings as errors: all of them in
/// one run (`cargo doc --workspace --no-deps`, as the README says), then
/// each alone with the features its `[package.metadata.docs.rs]` names, as
/// docs.rs builds it (`cargo doc -p darksidesync-binding` alone has no Lua
/// version to give mlua-sys otherwise). In their own target directory, so
/// the feature sets do not evict the workspace build.
fn rustdoc() -> Result {
    run(cargo()
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    for (name, features) in docs_rs_features()? {
        let features = features.ok_or(format!(
            "{name}: a published crate needs [package.metadata.docs.rs] features (say [] for none)"
        ))?;
        let mut cmd = cargo();
        cmd.args(["doc", "--no-deps", "-p", &name])
            .arg("--target-dir")
            .arg(root().join("target/docs-rs"));
        if !features.is_empty() {
            cmd.args(["--features", &features.join(",")]);
        }
        run(cmd.env("RUSTDOCFLAGS", "-D warnings"))?;
    }
    Ok(())
}

/// Each published crate with its `[package.metadata.docs.rs]` features
/// (`None` when it names none).
fn docs_rs_features() -> Result<Vec<(String, Option<Vec<String>>)>> {
    Ok(published_packages()?
        .iter()
        .filter_map(|p| {
            let name = p["name"].as_str()?.to_string();
            let features = p["metadata"]["docs"]["rs"]["features"].as_array().map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            });
            Some((name, features))
        })
        .collect())
}
