//! Project tasks: `cargo xtask <command> [args]`.
//!
//! Each command lives in its own file and exposes one `main(args)`.

mod lua_specs;
mod module;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    let result = match args.first().map(String::as_str) {
        Some("module") => module::main(rest),
        Some("lua-specs") => lua_specs::main(rest),
        _ => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    "usage: cargo xtask <command>\n\
     \x20 module --lua <5.1|5.2|5.3|5.4|jit> --out DIR   build the Lua module and its helper files into DIR\n\
     \x20 lua-specs                                      build the module for every Lua and run the busted specs"
        .to_string()
}

/// The workspace root (the parent of this crate).
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}
