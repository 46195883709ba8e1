//! [`ArgTable`]: a small table a [`LuaCallback`](crate::LuaCallback) post
//! carries (an event with named fields, a list of paths), built at the
//! sender from [`Arg`] values and made a fresh Lua table on the Lua thread.
//!
//! # Encoding
//!
//! One byte buffer per table, nested tables included, so a post costs one
//! allocation (and its free on the Lua thread) whatever the table holds:
//! entries in the order they were added, each `ITEM value` (the next list
//! index) or `FIELD len:u32 name value`; a value is a tag and its bytes
//! (`INT i64`, `FLOAT f64`, `BYTES len:u32 bytes`, `TABLE narr:u32
//! nrec:u32 len:u32 entries`, `NIL`, `TRUE`, `FALSE`), little-endian. Only
//! [`ArgTable`] writes it; the reader stops at anything else.

use std::borrow::Cow;
use std::ffi::c_int;

use crate::raw::{self, lua_State};

use crate::args::sealed::{self, Push};
use crate::args::Arg;
use crate::error::Error;

const ITEM: u8 = 1;
const FIELD: u8 = 2;
pub(crate) const NIL: u8 = 3;
pub(crate) const TRUE: u8 = 4;
pub(crate) const FALSE: u8 = 5;
pub(crate) const INT: u8 = 6;
pub(crate) const FLOAT: u8 = 7;
pub(crate) const BYTES: u8 = 8;
const TABLE: u8 = 9;

/// A table to post: named fields and a list (`t[1]`, `t[2]`, ...), each
/// value any [`Arg`], nested tables included. Built at the sender; a
/// value that cannot cross (an integer beyond `i64`, nesting deeper than
/// [`MAX_DEPTH`](ArgTable::MAX_DEPTH), a string or table beyond 4 GiB)
/// is remembered and makes the post fail with [`Error::Unsupported`],
/// before anything is queued.
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
#[derive(Debug, Clone)]
pub struct ArgTable {
    /// The entries, encoded (see the module docs).
    buf: Vec<u8>,
    /// How many list items and fields: `lua_createtable`'s sizes.
    narr: u32,
    nrec: u32,
    /// 1 + the depth of the deepest table inside.
    depth: usize,
    /// The first value that could not cross.
    error: Option<Box<Error>>,
}

impl Default for ArgTable {
    fn default() -> ArgTable {
        ArgTable::new()
    }
}

/// Room reserved up front: a few fields without growing.
const START: usize = 64;

impl ArgTable {
    /// How deep tables may nest (this one counts as 1): each level takes
    /// Lua stack slots and native stack on the Lua thread.
    pub const MAX_DEPTH: usize = 16;

    /// An empty table.
    pub fn new() -> ArgTable {
        ArgTable {
            buf: Vec::new(),
            narr: 0,
            nrec: 0,
            depth: 1,
            error: None,
        }
    }

    /// A table whose list is `items` (`t[1]`, `t[2]`, ...).
    pub fn list<T: Arg>(items: impl IntoIterator<Item = T>) -> ArgTable {
        items.into_iter().fold(ArgTable::new(), ArgTable::item)
    }

    /// Sets the field `name` to `value`.
    pub fn field(mut self, name: impl Into<Cow<'static, str>>, value: impl Arg) -> ArgTable {
        if self.error.is_none() {
            let at = self.start(FIELD);
            let name = name.into();
            let written = self
                .bytes(name.as_bytes())
                .and_then(|()| value.encode(&mut self));
            self.end(at, written, |t| t.nrec += 1);
        }
        self
    }

    /// Appends `value` to the list.
    pub fn item(mut self, value: impl Arg) -> ArgTable {
        if self.error.is_none() {
            let at = self.start(ITEM);
            let written = value.encode(&mut self);
            self.end(at, written, |t| t.narr += 1);
        }
        self
    }

    /// Starts an entry; returns where it starts.
    fn start(&mut self, entry: u8) -> usize {
        if self.buf.capacity() == 0 {
            self.buf.reserve(START);
        }
        self.buf.push(entry);
        self.buf.len() - 1
    }

    /// Ends the entry started at `at`: counts it, or takes it out and
    /// keeps the error.
    fn end(&mut self, at: usize, written: Result<(), Error>, count: impl FnOnce(&mut ArgTable)) {
        match written {
            Ok(()) => count(self),
            Err(e) => {
                self.buf.truncate(at);
                self.error = Some(Box::new(e));
            }
        }
    }

    /// Writes a value that is a tag alone (never fails).
    pub(crate) fn tag(&mut self, tag: u8) -> Result<(), Error> {
        self.buf.push(tag);
        Ok(())
    }

    /// Writes a value that is a tag and 8 bytes (never fails).
    pub(crate) fn word(&mut self, tag: u8, bytes: [u8; 8]) -> Result<(), Error> {
        self.buf.push(tag);
        self.buf.extend_from_slice(&bytes);
        Ok(())
    }

    /// Writes `len:u32 bytes`.
    fn bytes(&mut self, b: &[u8]) -> Result<(), Error> {
        let len = u32::try_from(b.len())
            .map_err(|_| Error::Unsupported("a string longer than 4 GiB".into()))?;
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(b);
        Ok(())
    }

    /// Writes a byte string value.
    pub(crate) fn string(&mut self, b: &[u8]) -> Result<(), Error> {
        self.buf.push(BYTES);
        self.bytes(b)
    }

    /// Writes `table` as a nested value.
    fn nested(&mut self, table: ArgTable) -> Result<(), Error> {
        let table = table.own()?;
        if table.depth + 1 > ArgTable::MAX_DEPTH {
            return Err(Error::Unsupported(format!(
                "tables nested deeper than {} levels",
                ArgTable::MAX_DEPTH
            )));
        }
        let len = u32::try_from(table.buf.len())
            .map_err(|_| Error::Unsupported("a table larger than 4 GiB".into()))?;
        self.depth = self.depth.max(table.depth + 1);
        self.buf.push(TABLE);
        for n in [table.narr, table.nrec, len] {
            self.buf.extend_from_slice(&n.to_le_bytes());
        }
        self.buf.extend_from_slice(&table.buf);
        Ok(())
    }

    /// Pushes a fresh table with the entries.
    ///
    /// # Safety
    /// `l` is the running state, on the Lua thread, with room for one
    /// value.
    pub(crate) unsafe fn push(self, l: *mut lua_State) {
        // SAFETY: the caller's contract.
        unsafe { push_table(l, self.narr, self.nrec, &self.buf) }
    }
}

/// Reads what [`ArgTable`] wrote, from the front.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn word(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Pushes a table of `narr` items and `nrec` fields encoded in `body`.
///
/// # Safety
/// `l` is the running state, on the Lua thread, with room for one value.
unsafe fn push_table(l: *mut lua_State, narr: u32, nrec: u32, body: &[u8]) {
    // SAFETY: the caller's contract; two more slots (key, value) are
    // checked for first (a nested table checks its own). The table is
    // fresh, without a metatable: raw sets only. Pushing raises only on
    // memory exhaustion.
    unsafe {
        if !raw::reserve(l, 2) {
            raw::push_nil(l);
            return;
        }
        let sizes = |n: u32| c_int::try_from(n).unwrap_or(0);
        raw::push_new_table(l, sizes(narr), sizes(nrec));
        let mut r = Reader(body);
        let mut index: i64 = 0;
        while let Some(entry) = r.byte() {
            match entry {
                ITEM => {
                    if !push_value(l, &mut r) {
                        break;
                    }
                    index += 1;
                    raw::set_index(l, -2, index);
                }
                FIELD => {
                    let Some(name) = r.bytes() else { break };
                    raw::push_bytes(l, name);
                    if !push_value(l, &mut r) {
                        raw::pop(l, 1);
                        break;
                    }
                    raw::set_field(l, -3);
                }
                _ => break,
            }
        }
    }
}

/// Pushes the value at the reader's front; false (nothing pushed) when
/// the buffer does not hold one.
///
/// # Safety
/// As for [`push_table`].
unsafe fn push_value(l: *mut lua_State, r: &mut Reader<'_>) -> bool {
    // SAFETY: the caller's contract (room for one value).
    unsafe {
        match r.byte() {
            Some(NIL) => raw::push_nil(l),
            Some(TRUE) => raw::push_boolean(l, true),
            Some(FALSE) => raw::push_boolean(l, false),
            Some(INT) => match r.word() {
                Some(w) => raw::push_integer(l, i64::from_le_bytes(w)),
                None => return false,
            },
            Some(FLOAT) => match r.word() {
                Some(w) => raw::push_number(l, f64::from_le_bytes(w)),
                None => return false,
            },
            Some(BYTES) => match r.bytes() {
                Some(b) => raw::push_bytes(l, b),
                None => return false,
            },
            Some(TABLE) => {
                let (Some(narr), Some(nrec), Some(len)) = (r.u32(), r.u32(), r.u32()) else {
                    return false;
                };
                let Some(body) = r.take(len as usize) else {
                    return false;
                };
                push_table(l, narr, nrec, body);
            }
            _ => return false,
        }
    }
    true
}

impl<T: Arg> FromIterator<T> for ArgTable {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> ArgTable {
        ArgTable::list(items)
    }
}

impl sealed::Sealed for ArgTable {}
impl Push for ArgTable {
    unsafe fn push_onto(self, l: *mut lua_State) {
        // SAFETY: the caller's contract.
        unsafe { ArgTable::push(self, l) }
    }
}
impl Arg for ArgTable {
    type Owned = ArgTable;
    fn own(self) -> Result<ArgTable, Error> {
        match self.error {
            Some(e) => Err(*e),
            None => Ok(self),
        }
    }
    fn encode(self, into: &mut ArgTable) -> Result<(), Error> {
        into.nested(self)
    }
}
