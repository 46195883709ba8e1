//! The header on its own: both include orders with `lua.h`, and as C++.

use std::process::Command;

use super::build::{incs, CFLAGS};
use crate::cmd::{root, run, Result};

/// The header alone, both include orders, and as C++.
pub(super) fn check() -> Result {
    let dir = root().join("target/capi");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let body = "static int dec(lua_State *L, void *d, void *u) { (void)L; (void)d; (void)u; return 0; }\n\
                int main(void) { DSS_decoder_1v0_t f = dec; dss_api_2v0_t a; a.size = sizeof a; (void)f;\n\
                return DSS2_HAS(&a, strerror) ? 0 : 1; }\n";
    for (name, first, second) in [
        ("h_after.c", "lua.h", "darksidesync.h"),
        ("h_before.c", "darksidesync.h", "lua.h"),
    ] {
        let src = dir.join(name);
        std::fs::write(
            &src,
            format!("#include \"{first}\"\n#include \"{second}\"\n{body}"),
        )
        .map_err(|e| e.to_string())?;
        run(Command::new("gcc")
            .args(CFLAGS)
            .arg("-pedantic")
            .args(incs("/usr/include/lua5.4"))
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(src.with_extension("o")))?;
    }
    let src = dir.join("h_before.c");
    run(Command::new("g++")
        .args(["-x", "c++", "-Wall", "-Wextra", "-Werror"])
        .args(incs("/usr/include/lua5.4"))
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(dir.join("h_cxx.o")))
}
