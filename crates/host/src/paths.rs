//! `package.path` and `package.cpath` as Debian's `lua5.4` sets them, so
//! that `require` finds what `apt install lua-*` and LuaRocks put on the
//! machine, and the environment (`LUA_PATH_5_4`, `LUA_PATH`,
//! `LUA_CPATH_5_4`, `LUA_CPATH`) changes them as it changes `lua5.4`'s:
//! the versioned variable wins, `;;` stands for the default, `-E` ignores
//! them all.
//!
//! The vendored Lua's own defaults are upstream's (`/usr/local/...` only),
//! so the root state gets these instead (`runtime::new_state`); states it
//! spawns copy their parent's paths (`darksidesync.states`).

use std::sync::atomic::{AtomicBool, Ordering};

use mlua::{Lua, Table};

/// `-E` was given: ignore `LUA_*` environment variables (all states).
static IGNORE_ENV: AtomicBool = AtomicBool::new(false);

/// Makes every state ignore the `LUA_*` environment variables (`-E`).
pub fn ignore_environment() {
    IGNORE_ENV.store(true, Ordering::SeqCst);
}

/// Whether `-E` was given.
pub fn environment_ignored() -> bool {
    IGNORE_ENV.load(Ordering::SeqCst)
}

/// Debian's folder for architecture-dependent files (`x86_64-linux-gnu`),
/// where its `lua-*` packages put their C modules.
fn multiarch() -> Option<&'static str> {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return None;
    }
    Some(match std::env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "x86" => "i386-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" if cfg!(target_endian = "little") => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        _ => return None,
    })
}

/// The default `package.path`: Debian's `lua5.4`'s.
pub fn default_path() -> String {
    [
        "/usr/local/share/lua/5.4/?.lua",
        "/usr/local/share/lua/5.4/?/init.lua",
        "/usr/local/lib/lua/5.4/?.lua",
        "/usr/local/lib/lua/5.4/?/init.lua",
        "/usr/share/lua/5.4/?.lua",
        "/usr/share/lua/5.4/?/init.lua",
        "./?.lua",
        "./?/init.lua",
    ]
    .join(";")
}

/// The default `package.cpath`: Debian's `lua5.4`'s (newer Debian
/// releases add the `/usr/local/lib/<multiarch>` folder; it is searched
/// here on every release).
pub fn default_cpath() -> String {
    let mut dirs = vec!["/usr/local/lib/lua/5.4/?.so".to_string()];
    if let Some(arch) = multiarch() {
        dirs.push(format!("/usr/local/lib/{arch}/lua/5.4/?.so"));
        dirs.push(format!("/usr/lib/{arch}/lua/5.4/?.so"));
    }
    dirs.push("/usr/lib/lua/5.4/?.so".into());
    dirs.push("/usr/local/lib/lua/5.4/loadall.so".into());
    dirs.push("./?.so".into());
    dirs.join(";")
}

/// `value` with its first `;;` replaced by `default`, as Lua's `setpath`
/// (loadlib.c) does: no empty entries at either end.
fn with_default(value: &str, default: &str) -> String {
    let Some(at) = value.find(";;") else {
        return value.to_string();
    };
    let (prefix, suffix) = (&value[..at], &value[at + 2..]);
    let mut out = String::new();
    if !prefix.is_empty() {
        out.push_str(prefix);
        out.push(';');
    }
    out.push_str(default);
    if !suffix.is_empty() {
        out.push(';');
        out.push_str(suffix);
    }
    out
}

/// The value of the search path read from `NAME_5_4`, else `NAME`, else
/// `default` (as `lua5.4` reads them).
fn resolve(name: &str, default: &str) -> String {
    if environment_ignored() {
        return default.to_string();
    }
    let value = std::env::var(format!("{name}_5_4")).or_else(|_| std::env::var(name));
    match value {
        Ok(v) => with_default(&v, default),
        Err(_) => default.to_string(),
    }
}

/// Sets `package.path` and `package.cpath` of `lua`.
pub fn set(lua: &Lua) -> mlua::Result<()> {
    let package: Table = lua.globals().get("package")?;
    package.set("path", resolve("LUA_PATH", &default_path()))?;
    package.set("cpath", resolve("LUA_CPATH", &default_cpath()))?;
    Ok(())
}

/// `LUA_INIT_5_4`, else `LUA_INIT`, with the chunk name `lua5.4` gives it
/// (`=LUA_INIT_5_4` / `=LUA_INIT`); `None` when unset or under `-E`.
pub fn init() -> Option<(String, String)> {
    if environment_ignored() {
        return None;
    }
    ["LUA_INIT_5_4", "LUA_INIT"]
        .iter()
        .find_map(|name| Some((format!("={name}"), std::env::var(name).ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_semicolon_stands_for_the_default() {
        assert_eq!(with_default("/a/?.lua;;", "D"), "/a/?.lua;D");
        assert_eq!(with_default(";;/b/?.lua", "D"), "D;/b/?.lua");
        assert_eq!(with_default("/a;;/b;;", "D"), "/a;D;/b;;");
        assert_eq!(with_default(";;", "D"), "D");
        assert_eq!(with_default("/a/?.lua", "D"), "/a/?.lua");
    }

    #[test]
    fn the_defaults_search_debian_s_folders() {
        assert!(default_path().contains("/usr/share/lua/5.4/?.lua"));
        #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
        assert!(default_cpath().contains("/usr/lib/x86_64-linux-gnu/lua/5.4/?.so"));
    }
}
