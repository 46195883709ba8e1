//! Installs the system packages the test suite runs against: the Debian Lua
//! interpreters, busted and the real event loops. Nothing is optional: a
//! missing interpreter fails the suite instead of skipping it.

use std::process::Command;

use crate::cmd::{on_path, run, Result};

/// Debian packages the suite needs, with a file each one installs.
pub const PACKAGES: &[(&str, &str)] = &[
    ("lua5.1", "/usr/bin/lua5.1"),
    ("lua5.2", "/usr/bin/lua5.2"),
    ("lua5.3", "/usr/bin/lua5.3"),
    ("lua5.4", "/usr/bin/lua5.4"),
    ("luajit", "/usr/bin/luajit"),
    ("lua-busted", "/usr/bin/busted"),
    ("lua-luv", "/usr/lib/x86_64-linux-gnu/lua/5.4/luv.so"),
    ("lua-cqueues", "/usr/share/lua/5.4/cqueues.lua"),
    ("lua-filesystem", "/usr/lib/x86_64-linux-gnu/lua/5.4/lfs.so"),
    ("lua-socket", "/usr/share/lua/5.4/socket.lua"),
    ("lua-copas", "/usr/share/lua/5.1/copas.lua"),
    ("liblua5.4-dev", "/usr/include/lua5.4/lua.h"),
    ("liblua5.1-0-dev", "/usr/include/lua5.1/lua.h"),
    ("valgrind", "/usr/bin/valgrind"),
    ("luarocks", "/usr/bin/luarocks"),
];

/// Installs whatever is missing (as root, through apt-get), then checks that
/// everything is there.
pub fn ensure() -> Result {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !on_path("apt-get") {
        return Err(format!(
            "missing packages: {}; install them with `sudo apt-get install {}`",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    let still = missing_packages();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "apt-get ran, but these are still missing: {}",
            still.join(", ")
        ))
    }
}

/// The packages whose marker file is absent.
fn missing_packages() -> Vec<&'static str> {
    PACKAGES
        .iter()
        .filter(|(_, file)| !std::path::Path::new(file).exists())
        .map(|(pkg, _)| *pkg)
        .collect()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
