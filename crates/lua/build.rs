//! Pins the module in memory: Lua `dlclose`s C modules at `lua_close`, but
//! foreign threads may still hold ports (and, through the C ABI, function
//! pointers) of this library after that. `-z nodelete` makes `dlclose` a
//! no-op for this shared object.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
