//! The values a [`LuaCallback`](crate::LuaCallback) is posted: [`Arg`]
//! (one value) and [`Args`] (none, one, or a tuple of up to four).
//!
//! A value is made owned at the sender ([`Args::carry`]), travels in the
//! item and is pushed through the Lua C API on the Lua thread. Scalars
//! travel as themselves; byte strings, `Option`s and [`ArgTable`]s as
//! owned copies. What cannot cross is refused at the sender with
//! [`Error::Unsupported`]: an integer beyond a Lua integer, a table nested
//! deeper than [`ArgTable::MAX_DEPTH`].

use std::ffi::c_int;

use crate::raw::{self, lua_State};

pub use crate::arg_table::ArgTable;
use crate::arg_table::{FALSE, FLOAT, INT, NIL, TRUE};
use crate::error::Error;

pub(crate) mod sealed {
    use super::*;

    pub trait Sealed {}

    /// One owned value, pushed on the Lua thread.
    pub trait Push: Send + 'static {
        /// Pushes the value onto `l`'s stack.
        ///
        /// # Safety
        /// `l` is the running state, on the Lua thread, with room for one
        /// value.
        unsafe fn push_onto(self, l: *mut lua_State);

        /// Pushes the value [`Arg::packed_one`] made `bits` of.
        ///
        /// # Safety
        /// As for [`push_onto`](Push::push_onto); `bits` came from `packed_one`.
        unsafe fn push_packed(bits: u32, l: *mut lua_State) {
            let _ = (bits, l);
        }
    }

    /// The owned values of a post.
    pub trait Carried: Send + 'static {
        /// How many values [`push`](Carried::push) pushes.
        const COUNT: c_int;

        /// Pushes the values.
        ///
        /// # Safety
        /// `l` is the running state, on the Lua thread, with room for
        /// `COUNT` values.
        unsafe fn push(self, l: *mut lua_State);

        /// Pushes the values [`Args::packed`] made `bits` of.
        ///
        /// # Safety
        /// As for [`push`](Carried::push); `bits` came from `packed`.
        unsafe fn push_packed(bits: u32, l: *mut lua_State);
    }
}

use sealed::{Carried, Push};

/// Values a [`LuaCallback`](crate::LuaCallback) is called with: one
/// [`Arg`], `()` (no value) or a tuple of up to four. Sealed: the values
/// are pushed through the Lua C API.
pub trait Args: sealed::Sealed + Send {
    /// The owned values that travel in the item.
    #[doc(hidden)]
    type Carried: Carried;

    /// Makes the values owned; refuses what cannot cross.
    #[doc(hidden)]
    fn carry(self) -> Result<Self::Carried, Error>;

    /// The values in 32 bits, when they fit (see `LuaCallback`).
    #[doc(hidden)]
    fn packed(&self) -> Option<u32> {
        None
    }
}

/// One value of [`Args`] (and of an [`ArgTable`]):
///
/// | Rust | Lua |
/// |---|---|
/// | `i64`, `i32`, `u32`; `u64`, `usize` up to `i64::MAX` | integer (a number before 5.3) |
/// | `f64`, `f32` | float |
/// | `bool` | boolean |
/// | `String`, `&'static str` | string |
/// | `&[u8]`, `Vec<u8>`, `Box<[u8]>`; on unix `&OsStr`, `OsString`, `&Path`, `PathBuf` (their bytes) | string (any bytes) |
/// | `Option<T>` | `T`'s value, or `nil` |
/// | [`ArgTable`] | a table (named fields and a list) |
///
/// A borrowed `&str` goes as `s.as_bytes()` (copied) or `s.to_owned()`.
/// A `u64` or `usize` above `i64::MAX`, or an [`ArgTable`] that cannot
/// cross, makes the post fail at the sender with [`Error::Unsupported`].
pub trait Arg: sealed::Sealed + Send {
    /// The owned value that travels.
    #[doc(hidden)]
    type Owned: Push;

    /// Makes the value owned; refuses what cannot cross.
    #[doc(hidden)]
    fn own(self) -> Result<Self::Owned, Error>;

    /// Writes the value into an [`ArgTable`].
    #[doc(hidden)]
    fn encode(self, into: &mut ArgTable) -> Result<(), Error>;

    /// The value in 32 bits, when it fits.
    #[doc(hidden)]
    fn packed_one(&self) -> Option<u32> {
        None
    }
}

/// An `Arg` that travels as itself.
macro_rules! itself {
    ($t:ty, |$v:ident, $into:ident| $encode:expr, |$pv:ident, $l:ident| $push:expr $(, packed |$p:ident| $pack:expr, |$b:ident, $bl:ident| $unpack:expr)?) => {
        impl sealed::Sealed for $t {}
        impl Push for $t {
            unsafe fn push_onto(self, $l: *mut lua_State) {
                let $pv = self;
                // SAFETY: the caller's contract (a running state with room).
                unsafe { $push }
            }
            $(unsafe fn push_packed($b: u32, $bl: *mut lua_State) {
                // SAFETY: the caller's contract (a running state with room).
                unsafe { $unpack }
            })?
        }
        impl Arg for $t {
            type Owned = $t;
            #[inline]
            fn own(self) -> Result<$t, Error> {
                Ok(self)
            }
            fn encode(self, $into: &mut ArgTable) -> Result<(), Error> {
                let $v = self;
                $encode
            }
            $(fn packed_one(&self) -> Option<u32> {
                let $p = self;
                $pack
            })?
        }
    };
}

/// Pushes an integer packed as an `i32`.
///
/// # Safety
/// As for [`Push::push_onto`].
unsafe fn push_i32_bits(bits: u32, l: *mut lua_State) {
    // SAFETY: the caller's contract.
    unsafe { raw::push_integer(l, i64::from(bits as i32)) }
}

itself!(
    i64,
    |v, t| t.word(INT, v.to_le_bytes()),
    |v, l| raw::push_integer(l, v),
    packed | v | i32::try_from(*v).ok().map(|v| v as u32),
    |b, l| push_i32_bits(b, l)
);
itself!(
    i32,
    |v, t| t.word(INT, i64::from(v).to_le_bytes()),
    |v, l| raw::push_integer(l, i64::from(v)),
    packed | v | Some(*v as u32),
    |b, l| push_i32_bits(b, l)
);
itself!(
    u32,
    |v, t| t.word(INT, i64::from(v).to_le_bytes()),
    |v, l| raw::push_integer(l, i64::from(v)),
    packed | v | Some(*v),
    |b, l| raw::push_integer(l, i64::from(b))
);
itself!(
    bool,
    |v, t| t.tag(if v { TRUE } else { FALSE }),
    |v, l| raw::push_boolean(l, v),
    packed | v | Some(*v as u32),
    |b, l| raw::push_boolean(l, b != 0)
);
itself!(f64, |v, t| t.word(FLOAT, v.to_le_bytes()), |v, l| {
    raw::push_number(l, v)
});
itself!(String, |v, t| t.string(v.as_bytes()), |v, l| {
    raw::push_bytes(l, v.as_bytes())
});
itself!(&'static str, |v, t| t.string(v.as_bytes()), |v, l| {
    raw::push_bytes(l, v.as_bytes())
});
itself!(Vec<u8>, |v, t| t.string(&v), |v, l| {
    raw::push_bytes(l, &v)
});
itself!(Box<[u8]>, |v, t| t.string(&v), |v, l| {
    raw::push_bytes(l, &v)
});

/// An `Arg` that travels as another type (`$o`, which is [`Push`]).
macro_rules! converted {
    (<$($lt:lifetime)?> $t:ty => $o:ty, |$v:ident| $own:expr) => {
        converted!(<$($lt)?> $t => $o, |$v| $own, |v, t| v.own()?.encode(t));
    };
    (<$($lt:lifetime)?> $t:ty => $o:ty, |$v:ident| $own:expr, |$ev:ident, $into:ident| $encode:expr) => {
        impl<$($lt)?> sealed::Sealed for $t {}
        impl<$($lt)?> Arg for $t {
            type Owned = $o;
            fn own(self) -> Result<$o, Error> {
                let $v = self;
                $own
            }
            fn encode(self, $into: &mut ArgTable) -> Result<(), Error> {
                let $ev = self;
                $encode
            }
        }
    };
}

/// An integer beyond a Lua integer.
fn too_big(v: impl std::fmt::Display) -> Error {
    Error::Unsupported(format!("integer {v} does not fit a Lua integer (i64)"))
}

converted!(<> u64 => i64, |v| i64::try_from(v).map_err(|_| too_big(v)));
converted!(<> usize => i64, |v| i64::try_from(v).map_err(|_| too_big(v)));
converted!(<> f32 => f64, |v| Ok(v.into()));
converted!(<'a> &'a [u8] => Box<[u8]>, |v| Ok(v.into()), |v, t| t.string(v));

#[cfg(unix)]
mod unix {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    use super::*;

    converted!(<'a> &'a OsStr => Box<[u8]>, |v| Ok(v.as_bytes().into()), |v, t| t.string(v.as_bytes()));
    converted!(<> OsString => Vec<u8>, |v| Ok(v.into_vec()), |v, t| t.string(v.as_bytes()));
    converted!(<'a> &'a Path => Box<[u8]>, |v| Ok(v.as_os_str().as_bytes().into()),
        |v, t| t.string(v.as_os_str().as_bytes()));
    converted!(<> PathBuf => Vec<u8>, |v| Ok(v.into_os_string().into_vec()),
        |v, t| t.string(v.as_os_str().as_bytes()));
}

impl<T: Arg> sealed::Sealed for Option<T> {}
impl<P: Push> Push for Option<P> {
    unsafe fn push_onto(self, l: *mut lua_State) {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Some(v) => v.push_onto(l),
                None => raw::push_nil(l),
            }
        }
    }
}
impl<T: Arg> Arg for Option<T> {
    type Owned = Option<T::Owned>;
    fn own(self) -> Result<Self::Owned, Error> {
        self.map(T::own).transpose()
    }
    fn encode(self, into: &mut ArgTable) -> Result<(), Error> {
        match self {
            Some(v) => v.encode(into),
            None => into.tag(NIL),
        }
    }
}

impl sealed::Sealed for () {}
impl Args for () {
    type Carried = ();
    fn carry(self) -> Result<(), Error> {
        Ok(())
    }
    fn packed(&self) -> Option<u32> {
        Some(0)
    }
}
impl Carried for () {
    const COUNT: c_int = 0;
    unsafe fn push(self, _l: *mut lua_State) {}
    unsafe fn push_packed(_bits: u32, _l: *mut lua_State) {}
}

impl<P: Push> Carried for (P,) {
    const COUNT: c_int = 1;
    unsafe fn push(self, l: *mut lua_State) {
        // SAFETY: the caller's contract.
        unsafe { self.0.push_onto(l) }
    }
    unsafe fn push_packed(bits: u32, l: *mut lua_State) {
        // SAFETY: the caller's contract.
        unsafe { P::push_packed(bits, l) }
    }
}

/// One value alone is the same post as a 1-tuple of it.
impl<A: Arg> Args for A {
    type Carried = (A::Owned,);
    #[inline]
    fn carry(self) -> Result<Self::Carried, Error> {
        Ok((self.own()?,))
    }
    fn packed(&self) -> Option<u32> {
        self.packed_one()
    }
}

impl<A: Arg> sealed::Sealed for (A,) {}
impl<A: Arg> Args for (A,) {
    type Carried = (A::Owned,);
    #[inline]
    fn carry(self) -> Result<Self::Carried, Error> {
        Ok((self.0.own()?,))
    }
    fn packed(&self) -> Option<u32> {
        self.0.packed_one()
    }
}

macro_rules! tuple {
    ($n:expr; $($name:ident),+) => {
        impl<$($name: Push),+> Carried for ($($name,)+) {
            const COUNT: c_int = $n;
            #[allow(non_snake_case)]
            unsafe fn push(self, l: *mut lua_State) {
                let ($($name,)+) = self;
                // SAFETY: the caller's contract, room for all of them.
                unsafe { $($name.push_onto(l);)+ }
            }
            unsafe fn push_packed(_bits: u32, _l: *mut lua_State) {}
        }
        impl<$($name: Arg),+> sealed::Sealed for ($($name,)+) {}
        impl<$($name: Arg),+> Args for ($($name,)+) {
            type Carried = ($($name::Owned,)+);
            #[allow(non_snake_case)]
            #[inline]
            fn carry(self) -> Result<Self::Carried, Error> {
                let ($($name,)+) = self;
                Ok(($($name.own()?,)+))
            }
        }
    };
}

tuple!(2; A, B);
tuple!(3; A, B, C);
tuple!(4; A, B, C, D);
