//! `cargo xtask binding`
//!
//! The Rust binding-author API end to end: builds the module and the
//! example cdylib `dssrust` (examples/rust, a Rust library
//! compiled separately that uses `darksidesync-binding`) for Lua 5.4 and
//! 5.1, installs both side by side, and runs `tests/binding/*_spec.lua`
//! with busted under the stock interpreter. Then does what a new user
//! does: pastes the binding's rustdoc front page (`Cargo.toml`, `lib.rs`,
//! the Lua script) into a fresh crate outside the workspace, builds it
//! and runs the script with stock `lua5.4` next to darksidesync.so. The
//! specs (but those tagged `#stock`) and the script also run inside the
//! embedded host, which loads such a library as `lua5.4` does.

use std::path::Path;
use std::process::Command;

use crate::cmd::clear_lua_env;
use crate::module::{self, LuaVersion};
use crate::root;

const BUSTED: &str = "/usr/bin/busted";

pub(crate) fn main() -> Result<(), String> {
    for v in ["5.4", "5.1"] {
        run_one(module::version(v)?)?;
    }
    front_page_example(&root().join("target/binding/5.4/lib"))
}

/// The fenced blocks of the binding's crate docs, in order, as
/// (info string, text).
fn doc_blocks(lib_rs: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in lib_rs.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        match (&mut open, doc.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.to_string(), String::new())),
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some((_, text)), _) => {
                text.push_str(doc);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

fn front_page_example(lib: &Path) -> Result<(), String> {
    println!("== the binding's front-page example as a fresh crate, lua5.4 ==");
    let binding = root().join("crates/binding");
    let docs = std::fs::read_to_string(binding.join("src/lib.rs"))
        .map_err(|e| format!("cannot read the binding's lib.rs: {e}"))?;
    let blocks = doc_blocks(&docs);
    let first = |info: &str| {
        blocks
            .iter()
            .find(|(i, _)| i == info)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| format!("the binding's front page has no ```{info} block"))
    };
    let (manifest, code, script) = (first("toml")?, first("rust,ignore")?, first("lua")?);
    let published = "darksidesync-binding = \"0.1\"";
    if !manifest.contains(published) {
        return Err(format!("the front page's Cargo.toml lacks `{published}`"));
    }
    let manifest = manifest.replace(
        published,
        &format!(
            "darksidesync-binding = {{ path = {:?} }}",
            binding.display().to_string()
        ),
    );

    // Outside the workspace, so no workspace setting helps it build.
    let dir = std::env::temp_dir().join(format!("dss-fresh-crate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = |path: &Path, text: &str| {
        std::fs::create_dir_all(path.parent().expect("a file in a folder"))
            .and_then(|()| std::fs::write(path, text))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(&dir.join("Cargo.toml"), &manifest)?;
    write(&dir.join("src/lib.rs"), &code)?;
    write(&dir.join("hello.lua"), &script)?;
    // The workspace's versions, so the build needs nothing new.
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .map_err(|e| format!("cannot copy Cargo.lock: {e}"))?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = root().join("target/binding/fresh-crate");
    let status = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--lib"])
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "the front-page example does not build as a fresh crate ({})",
            dir.display()
        ));
    }
    let built = target.join("debug").join(format!(
        "{}hello{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::copy(&built, lib.join("hello.so"))
        .map_err(|e| format!("cannot copy {}: {e}", built.display()))?;

    // The script's `--> ` lines are its expected output.
    let expected: Vec<String> = script
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--> "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let host = crate::examples::host()?;
    for interpreter in ["lua5.4", &host.to_string_lossy()] {
        let mut cmd = Command::new(interpreter);
        clear_lua_env(&mut cmd);
        cmd.arg(dir.join("hello.lua"))
            .env("LUA_CPATH", format!("{}/?.so;;", lib.display()))
            .env(
                "LUA_PATH",
                format!("{0}/?.lua;{0}/?/init.lua;;", lib.display()),
            );
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {interpreter}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let got: Vec<String> = stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if !out.status.success() || got != expected {
            return Err(format!(
                "the front-page script under {interpreter} printed {got:?} (expected {expected:?}), {}; stderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("front-page example: ok ({})", expected.join(" | "));
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

    specs(lua.interpreter, &lib, &[])?;
    if lua.name == "5.4" {
        // The same library inside the embedded host (which exports the Lua
        // C API and preloads darksidesync): all but the specs about a stock
        // interpreter without darksidesync preloaded (tagged #stock).
        let host = crate::examples::host()?;
        specs(&host.to_string_lossy(), &lib, &["--exclude-tags=stock"])?;
    }
    Ok(())
}

/// Runs `tests/binding` with busted under `interpreter`, `lib` on the paths.
fn specs(interpreter: &str, lib: &Path, extra: &[&str]) -> Result<(), String> {
    println!("== binding specs, {interpreter} ==");
    let lua_path = format!("{0}/?.lua;{0}/?/init.lua;;", lib.display());
    let lua_cpath = format!("{}/?.so;;", lib.display());
    let mut busted = Command::new(interpreter);
    clear_lua_env(&mut busted);
    busted
        .current_dir(root())
        .arg(BUSTED)
        .args(["--output=plainTerminal", "--pattern=_spec"])
        .args(extra)
        .arg(root().join("tests/binding"))
        .env("LUA_PATH", &lua_path)
        .env("LUA_CPATH", &lua_cpath)
        .env("DSS_LUA", interpreter);
    let status = busted
        .status()
        .map_err(|e| format!("cannot run busted under {interpreter}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("binding specs failed under {interpreter}"))
    }
}
