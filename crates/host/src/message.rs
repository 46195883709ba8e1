//! [`Msg`]: a Lua value copied as plain data between states — the module's
//! [`Portable`](darksidesync::states::Portable), used here for the script's
//! arguments.

pub use darksidesync::states::Portable as Msg;
