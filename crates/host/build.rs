//! Exports the embedded Lua's C API from the host binary, as the stock
//! `lua5.4` does: a C module (`luv`, `lfs`, a 1v0/2v0 utility, a library on
//! `darksidesync-binding`) is linked against no Lua library and finds
//! `lua_gettop` and the rest in the program that `dlopen`s it.
//!
//! `--dynamic-list` puts exactly the `lua_*`, `luaL_*` and `luaopen_*`
//! symbols in the binary's dynamic symbol table (not the Rust ones), which
//! also keeps `--gc-sections` from dropping the API functions the host
//! itself never calls. `tests/c_modules.rs` checks the table.

use std::path::PathBuf;

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os.ends_with("bsd") {
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let list = out.join("lua-api.list");
        std::fs::write(&list, "{\n  lua_*;\n  luaL_*;\n  luaopen_*;\n};\n")
            .expect("OUT_DIR is writable");
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--dynamic-list={}",
            list.display()
        );
    }
    println!("cargo:rerun-if-changed=build.rs");
}
