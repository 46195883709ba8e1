//! The C ABI of the Lua module `darksidesync`, as Rust types: what
//! `include/darksidesync.h` declares, defined once for every Rust user (the
//! module that implements it, `darksidesync-binding`, the tests).
//!
//! * [`v1`]: DSS API 1v0, binary compatible with DarkSideSync 1.0.
//! * [`v2`]: DSS API 2v0: generation-checked handles, explicit outcomes,
//!   ownership through a free callback, keep-alive, statistics.
//!
//! The header is the contract and documents the semantics; this crate only
//! mirrors layouts and values. `tests/layout.rs` compiles a C program
//! against the header and checks every size, field offset and code here
//! against it.
//!
//! After `require "darksidesync"`, `registry[`[`REGISTRY_NAME`]`]` holds
//! the module's [`VERSION`] under [`VERSION_KEY`] and a light userdata
//! pointing to each API struct under [`v1::API_KEY`] and [`v2::API_KEY`].
#![no_std]
#![warn(missing_docs)]

pub mod v1;
pub mod v2;

/// The Lua state: mlua's own `lua_State` with the `mlua` feature, an
/// opaque type otherwise (the header declares only `struct lua_State`).
#[cfg(feature = "mlua")]
pub use mlua_sys::lua_State;

/// The Lua state (opaque; only ever used behind a pointer).
#[cfg(not(feature = "mlua"))]
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct lua_State {
    _opaque: [u8; 0],
    _not_send_sync_unpin: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// `DSS_REGISTRY_NAME`: key of the module's table in the Lua registry.
pub const REGISTRY_NAME: &str = "DSS.DarkSideSync";
/// [`REGISTRY_NAME`], NUL-terminated, for the Lua C API.
pub const REGISTRY_NAME_C: &core::ffi::CStr = c"DSS.DarkSideSync";
/// `DSS_VERSION_KEY`: key of the version string in that table.
pub const VERSION_KEY: &str = "Version";
/// `DSS_VERSION`: the version string (as DarkSideSync 1.0 had it).
pub const VERSION: &str = "0.1";
