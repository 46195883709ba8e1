//! Pins the shared object in memory, as the module's own build does
//! (`crates/lua/build.rs`): this build *is* the module for the benches, and
//! its threads may outlive the state that `dlclose`s it.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
