//! Exports the embedded Lua's C API from the host binary, as the stock
//! `lua5.4` does: a C module (`luv`, `lfs`, a 1v0/2v0 utility, a library on
//! `darksidesync-binding`) is linked against no Lua library and finds
//! `lua_gettop` and the rest in the program that `dlopen`s it.
//! `--export-dynamic` puts every global symbol of the binary in its dynamic
//! symbol table, which also keeps `--gc-sections` from dropping the API
//! functions the host itself never calls (`runtime::keep_lua_api` makes
//! sure every object file of the vendored Lua is linked in).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os.ends_with("bsd") {
        println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
