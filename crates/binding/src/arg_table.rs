//! [`ArgTable`]: a small table a [`LuaCallback`](crate::LuaCallback) post
//! carries (an event with named fields, a list of paths), built at the
//! sender from [`Arg`] values and made a fresh Lua table on the Lua thread.

use std::borrow::Cow;
use std::ffi::{c_char, c_int};

use mlua::ffi::{self as lua, lua_State};

use crate::args::sealed::{self, Plain, Push};
use crate::args::Arg;
use crate::error::Error;

/// A table to post: named fields and a list (`t[1]`, `t[2]`, ...), each
/// value any [`Arg`], nested tables included. Built at the sender; a
/// value that cannot cross (an integer beyond `i64`, nesting deeper than
/// [`MAX_DEPTH`](ArgTable::MAX_DEPTH)) is remembered and makes the post
/// fail with [`Error::Unsupported`], before anything is queued.
///
/// A field set twice keeps its later value; a `None` in the list leaves
/// a hole (`#t` is then unreliable, as for any Lua table with holes).
///
/// ```
/// use darksidesync_binding::ArgTable;
/// use std::path::Path;
///
/// let event = ArgTable::new()
///     .field("kind", "create")
///     .field("path", Path::new("/tmp/a"))          // its bytes: any path
///     .field("size", Some(42u64))
///     .field("tags", ArgTable::list(["new", "file"]));
/// # let _ = event;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ArgTable {
    list: Vec<Plain>,
    fields: Vec<(Cow<'static, str>, Plain)>,
    /// 1 + the depth of the deepest table inside.
    depth: usize,
    /// The first value that could not cross.
    error: Option<Error>,
}

impl ArgTable {
    /// How deep tables may nest (this one counts as 1): each level takes
    /// Lua stack slots and native stack on the Lua thread.
    pub const MAX_DEPTH: usize = 16;

    /// An empty table.
    pub fn new() -> ArgTable {
        ArgTable {
            depth: 1,
            ..ArgTable::default()
        }
    }

    /// A table whose list is `items` (`t[1]`, `t[2]`, ...).
    pub fn list<T: Arg>(items: impl IntoIterator<Item = T>) -> ArgTable {
        items.into_iter().fold(ArgTable::new(), ArgTable::item)
    }

    /// Sets the field `name` to `value`.
    pub fn field(mut self, name: impl Into<Cow<'static, str>>, value: impl Arg) -> ArgTable {
        if let Some(v) = self.take(value) {
            self.fields.push((name.into(), v));
        }
        self
    }

    /// Appends `value` to the list.
    pub fn item(mut self, value: impl Arg) -> ArgTable {
        if let Some(v) = self.take(value) {
            self.list.push(v);
        }
        self
    }

    /// `value` as it goes in, or `None` once something could not cross.
    fn take(&mut self, value: impl Arg) -> Option<Plain> {
        if self.error.is_some() {
            return None;
        }
        match value.plain() {
            Ok(Plain::Table(t)) if t.depth + 1 > ArgTable::MAX_DEPTH => {
                self.error = Some(Error::Unsupported(format!(
                    "tables nested deeper than {} levels",
                    ArgTable::MAX_DEPTH
                )));
                None
            }
            Ok(v) => {
                if let Plain::Table(t) = &v {
                    self.depth = self.depth.max(t.depth + 1);
                }
                Some(v)
            }
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }

    /// Pushes a fresh table with the values.
    ///
    /// # Safety
    /// `l` is the running state, on the Lua thread, with room for one
    /// value.
    pub(crate) unsafe fn push(self, l: *mut lua_State) {
        // SAFETY: the caller's contract; two more slots (key, value) are
        // checked for first (a nested table checks its own). The table is
        // fresh, without a metatable: raw sets only.
        unsafe {
            if lua::lua_checkstack(l, 2) == 0 {
                lua::lua_pushnil(l);
                return;
            }
            let narr = c_int::try_from(self.list.len()).unwrap_or(0);
            let nrec = c_int::try_from(self.fields.len()).unwrap_or(0);
            lua::lua_createtable(l, narr, nrec);
            for (i, v) in self.list.into_iter().enumerate() {
                v.push(l);
                lua::lua_rawseti(l, -2, (i + 1) as _);
            }
            for (k, v) in self.fields {
                lua::lua_pushlstring(l, k.as_ptr() as *const c_char, k.len());
                v.push(l);
                lua::lua_rawset(l, -3);
            }
        }
    }
}

impl<T: Arg> FromIterator<T> for ArgTable {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> ArgTable {
        ArgTable::list(items)
    }
}

impl sealed::Sealed for ArgTable {}
impl Push for ArgTable {
    unsafe fn push(self, l: *mut lua_State) {
        // SAFETY: the caller's contract.
        unsafe { ArgTable::push(self, l) }
    }
}
impl Arg for ArgTable {
    type Owned = ArgTable;
    fn own(self) -> Result<ArgTable, Error> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
    fn plain(self) -> Result<Plain, Error> {
        Ok(Plain::Table(self.own()?))
    }
}
