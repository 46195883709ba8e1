//! `cargo xtask rocks`: the rockspec, as a Lua user installs it. For Lua 5.1
//! and 5.4, `luarocks make` into a fresh tree under `target/rocks/`, then
//! the spec `tests/rock/installed_spec.lua` under busted with exactly the
//! search paths `luarocks path` prints for that tree (no hand-set
//! `LUA_CPATH`).

use std::fs;
use std::process::Command;

use crate::cmd::{clear_lua_env, run, Result};
use crate::root;

const ROCKSPEC: &str = "rockspecs/darksidesync-scm-1.rockspec";
const BUSTED: &str = "/usr/bin/busted";

pub fn main() -> Result {
    crate::deps::ensure()?;
    for (version, interpreter) in [("5.1", "lua5.1"), ("5.4", "lua5.4")] {
        let tree = root().join("target/rocks").join(version);
        // A fresh tree each time: what `make` installs, not what was left.
        if tree.exists() {
            fs::remove_dir_all(&tree)
                .map_err(|e| format!("cannot empty {}: {e}", tree.display()))?;
        }
        run(Command::new("luarocks")
            .args(["--lua-version", version, "--tree"])
            .arg(&tree)
            .args(["make", ROCKSPEC]))?;
        // `luarocks path` prints `export LUA_PATH=...` lines for sh.
        let script = format!(
            "eval \"$(luarocks --lua-version {version} --tree '{tree}' path)\" && \
             exec {interpreter} {BUSTED} --output=plainTerminal --no-auto-insulate \
             tests/rock/installed_spec.lua",
            tree = tree.display()
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]).env("DSS_ROCK_TREE", &tree);
        clear_lua_env(&mut cmd);
        run(&mut cmd)?;
    }
    Ok(())
}
