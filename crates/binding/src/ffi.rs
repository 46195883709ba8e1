//! The DSS API 2v0 as `include/darksidesync.h` declares it, from
//! `darksidesync-sys` (the one Rust definition of the C ABI, checked
//! against the header by its layout test). This crate does not link to
//! darksidesync; it finds the published struct in the registry.

pub use darksidesync_sys::v2::*;
pub use darksidesync_sys::REGISTRY_NAME;
