//! `cargo xtask package`: the published crates as crates.io would get them.

use crate::cmd::{cargo, run, Result};
use crate::hygiene::published_crates;

/// `cargo xtask package`: `cargo package` for every published crate (one
/// run, so that their path dependencies on each other resolve), without
/// the verification build. `--allow-dirty`: a working tree with changes
/// is what a developer runs the suite in.
pub fn main() -> Result {
    let mut cmd = cargo();
    cmd.args(["package", "--no-verify", "--allow-dirty"]);
    for name in published_crates()? {
        cmd.args(["-p", &name]);
    }
    run(&mut cmd)
}
