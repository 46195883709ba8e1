//! The example background libraries `darksidesync.timer`, `.signal` and
//! `.process`. Each is its own crate (`crates/libs/*`) built only on
//! `darksidesync-binding`, the way a third party writes one; they are
//! linked into this shared object only so that the thin
//! `luaopen_darksidesync_*` entries in `lib.rs` (and the embedded host's
//! preloads) find them. See `doc/libs.md`.

pub use darksidesync_process as process;
pub use darksidesync_signal as signal;
pub use darksidesync_timer as timer;
