//! Keeping `darksidesync.run()` alive: the registration's own reference
//! ([`Dss::unref`], [`Dss::reference`]) and one per piece of work
//! ([`Dss::hold`], a [`Hold`]).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{error_of, Error};
use crate::ffi;
use crate::handle::{Dss, Inner};

impl Dss {
    /// Lets `darksidesync.run()` return while this library is registered
    /// but idle: drops the registration's keep-alive reference (like
    /// Neon's `Channel::unref` or `napi_unref_threadsafe_function`). Take
    /// a [`hold`](Dss::hold) for each piece of pending work instead. True
    /// when the reference was held.
    pub fn unref(&self) -> bool {
        if !self.inner.keeps_run_alive.swap(false, Ordering::AcqRel) {
            return false;
        }
        // SAFETY: release() accepts any handle value and returns a code.
        unsafe { (self.inner.api.release)(self.inner.handle) };
        true
    }

    /// Takes the registration's keep-alive reference again after
    /// [`unref`](Dss::unref) (Neon's `Channel::reference`); registering
    /// takes it. Nothing happens when it is held.
    pub fn reference(&self) -> Result<(), Error> {
        if self.inner.keeps_run_alive.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // SAFETY: hold() accepts any handle value and returns a code.
        let rc = unsafe { (self.inner.api.hold)(self.inner.handle) };
        if rc == ffi::OK {
            Ok(())
        } else {
            self.inner.keeps_run_alive.store(false, Ordering::Release);
            Err(error_of(self.inner.api, rc))
        }
    }

    /// Takes a keep-alive reference: while it is held,
    /// `darksidesync.run()` keeps waiting for this library's deliveries.
    /// For a library that called [`unref`](Dss::unref): one per piece of
    /// pending work.
    pub fn hold(&self) -> Result<Hold, Error> {
        // SAFETY: hold() accepts any handle value and returns a code.
        let rc = unsafe { (self.inner.api.hold)(self.inner.handle) };
        if rc == ffi::OK {
            Ok(Hold {
                inner: self.inner.clone(),
            })
        } else {
            Err(error_of(self.inner.api, rc))
        }
    }
}

/// A keep-alive reference ([`Dss::hold`]); released on drop.
pub struct Hold {
    inner: Arc<Inner>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        // SAFETY: release() accepts any handle value and returns a code; a
        // closed or unregistered handle already dropped its references.
        unsafe { (self.inner.api.release)(self.inner.handle) };
    }
}

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hold")
    }
}
