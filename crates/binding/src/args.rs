//! The values a [`LuaCallback`](crate::LuaCallback) is called with
//! ([`Args`], [`Arg`]), pushed through the Lua C API on the Lua thread,
//! and packed into a post's data word when they fit in 32 bits.

use std::ffi::{c_char, c_int};

use mlua::ffi::{self as lua, lua_State};

mod sealed {
    pub trait Sealed {}
}

/// Values a [`LuaCallback`](crate::LuaCallback) is called with: one [`Arg`], `()` (no value)
/// or a tuple of up to four. Sealed: the values are pushed through the
/// Lua C API.
pub trait Args: sealed::Sealed + Send + 'static {
    /// How many values [`push`](Args::push) pushes.
    #[doc(hidden)]
    const COUNT: c_int;

    /// Pushes the values.
    ///
    /// # Safety
    /// `l` is the running state, on the Lua thread, with room for
    /// `COUNT` values.
    #[doc(hidden)]
    unsafe fn push(self, l: *mut lua_State);

    /// The values in 32 bits, when they fit (see the module docs).
    #[doc(hidden)]
    fn packed(&self) -> Option<u32> {
        None
    }

    /// Pushes the values [`packed`](Args::packed) made `bits` of.
    ///
    /// # Safety
    /// As for [`push`](Args::push); `bits` came from `packed`.
    #[doc(hidden)]
    unsafe fn push_packed(bits: u32, l: *mut lua_State) {
        let _ = (bits, l);
    }
}

/// One value of [`Args`]: `i64`, `i32`, `u32`, `f64`, `bool`, `String`,
/// `&'static str`.
pub trait Arg: sealed::Sealed + Send + 'static {
    /// Pushes the value.
    ///
    /// # Safety
    /// As for [`Args::push`], with room for one value.
    #[doc(hidden)]
    unsafe fn push_one(self, l: *mut lua_State);

    /// The value in 32 bits, when it fits.
    #[doc(hidden)]
    fn packed_one(&self) -> Option<u32> {
        None
    }

    /// Pushes the value [`packed_one`](Arg::packed_one) made `bits` of.
    ///
    /// # Safety
    /// As for [`push_one`](Arg::push_one); `bits` came from `packed_one`.
    #[doc(hidden)]
    unsafe fn push_packed_one(bits: u32, l: *mut lua_State) {
        let _ = (bits, l);
    }
}

macro_rules! arg {
    ($t:ty, |$v:ident, $l:ident| $push:expr) => {
        impl sealed::Sealed for $t {}
        impl Arg for $t {
            unsafe fn push_one(self, $l: *mut lua_State) {
                let $v = self;
                // SAFETY: the caller's contract (a running state with room).
                unsafe { $push }
            }
        }
        impl Args for $t {
            const COUNT: c_int = 1;
            unsafe fn push(self, l: *mut lua_State) {
                // SAFETY: the caller's contract.
                unsafe { self.push_one(l) }
            }
        }
    };
    ($t:ty, |$v:ident, $l:ident| $push:expr, |$pv:ident| $pack:expr, |$b:ident, $bl:ident| $unpack:expr) => {
        impl sealed::Sealed for $t {}
        impl Arg for $t {
            unsafe fn push_one(self, $l: *mut lua_State) {
                let $v = self;
                // SAFETY: the caller's contract (a running state with room).
                unsafe { $push }
            }
            fn packed_one(&self) -> Option<u32> {
                let $pv = self;
                $pack
            }
            unsafe fn push_packed_one($b: u32, $bl: *mut lua_State) {
                // SAFETY: the caller's contract (a running state with room).
                unsafe { $unpack }
            }
        }
        impl Args for $t {
            const COUNT: c_int = 1;
            unsafe fn push(self, l: *mut lua_State) {
                // SAFETY: the caller's contract.
                unsafe { self.push_one(l) }
            }
            fn packed(&self) -> Option<u32> {
                self.packed_one()
            }
            unsafe fn push_packed(bits: u32, l: *mut lua_State) {
                // SAFETY: the caller's contract.
                unsafe { <$t as Arg>::push_packed_one(bits, l) }
            }
        }
    };
}

/// Pushes an integer packed as an `i32`.
///
/// # Safety
/// As for [`Arg::push_one`].
unsafe fn push_i32_bits(bits: u32, l: *mut lua_State) {
    // SAFETY: the caller's contract.
    unsafe { lua::lua_pushinteger(l, bits as i32 as lua::lua_Integer) }
}

arg!(
    i64,
    |v, l| lua::lua_pushinteger(l, v as lua::lua_Integer),
    |v| i32::try_from(*v).ok().map(|v| v as u32),
    |b, l| push_i32_bits(b, l)
);
arg!(
    i32,
    |v, l| lua::lua_pushinteger(l, v as lua::lua_Integer),
    |v| Some(*v as u32),
    |b, l| push_i32_bits(b, l)
);
arg!(
    u32,
    |v, l| lua::lua_pushinteger(l, v as lua::lua_Integer),
    |v| Some(*v),
    |b, l| lua::lua_pushinteger(l, b as lua::lua_Integer)
);
arg!(
    bool,
    |v, l| lua::lua_pushboolean(l, v as c_int),
    |v| Some(*v as u32),
    |b, l| lua::lua_pushboolean(l, (b != 0) as c_int)
);
arg!(f64, |v, l| lua::lua_pushnumber(l, v as lua::lua_Number));
arg!(String, |v, l| push_str(l, &v));
arg!(&'static str, |v, l| push_str(l, v));

/// # Safety
/// As for [`Arg::push_one`].
unsafe fn push_str(l: *mut lua_State, s: &str) {
    // SAFETY: the caller's contract; Lua copies the bytes.
    unsafe { lua::lua_pushlstring(l, s.as_ptr() as *const c_char, s.len()) };
}

impl sealed::Sealed for () {}
impl Args for () {
    const COUNT: c_int = 0;
    unsafe fn push(self, _l: *mut lua_State) {}
    fn packed(&self) -> Option<u32> {
        Some(0)
    }
    unsafe fn push_packed(_bits: u32, _l: *mut lua_State) {}
}

impl<A: Arg> sealed::Sealed for (A,) {}
impl<A: Arg> Args for (A,) {
    const COUNT: c_int = 1;
    unsafe fn push(self, l: *mut lua_State) {
        // SAFETY: the caller's contract.
        unsafe { self.0.push_one(l) }
    }
    fn packed(&self) -> Option<u32> {
        self.0.packed_one()
    }
    unsafe fn push_packed(bits: u32, l: *mut lua_State) {
        // SAFETY: the caller's contract.
        unsafe { A::push_packed_one(bits, l) }
    }
}

macro_rules! tuple {
    ($n:expr; $($name:ident),+) => {
        impl<$($name: Arg),+> sealed::Sealed for ($($name,)+) {}
        impl<$($name: Arg),+> Args for ($($name,)+) {
            const COUNT: c_int = $n;
            #[allow(non_snake_case)]
            unsafe fn push(self, l: *mut lua_State) {
                let ($($name,)+) = self;
                // SAFETY: the caller's contract, room for all of them.
                unsafe { $($name.push_one(l);)+ }
            }
        }
    };
}

tuple!(2; A, B);
tuple!(3; A, B, C);
tuple!(4; A, B, C, D);
