//! valgrind and AddressSanitizer for `cargo xtask capi-sanitize`.

use std::process::Command;

use crate::cmd::Result;

/// memcheck: any error or definitely lost block fails.
pub(super) const VALGRIND: &[&str] = &[
    "valgrind",
    "--quiet",
    "--error-exitcode=99",
    "--leak-check=full",
    "--show-leak-kinds=definite",
    "--errors-for-leak-kinds=definite",
    "--track-origins=yes",
];

/// The AddressSanitizer runtime, to preload into a stock interpreter.
pub(super) fn asan_runtime() -> Result<String> {
    let out = Command::new("gcc")
        .arg("-print-file-name=libasan.so")
        .output()
        .map_err(|e| e.to_string())?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let real = std::fs::canonicalize(&path).map_err(|_| {
        format!(
            "libasan not found (gcc -print-file-name=libasan.so gave {path:?}); install libasan"
        )
    })?;
    Ok(real.display().to_string())
}
