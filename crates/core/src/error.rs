//! Every way a post, a call or a registration can end other than success.

use std::fmt;

/// Why the queue refused an item. The item itself comes back in [`PostError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostErrorKind {
    /// The queue is at capacity and the producer asked not to wait
    /// (or its wait timed out).
    Full,
    /// The hub was closed; nothing will be accepted any more.
    Closed,
    /// The port was unregistered; its handle is stale.
    Unregistered,
    /// The queue is full and the producer is the consumer thread itself:
    /// blocking would wait for a drain that can never happen.
    WouldDeadlock,
}

impl PostErrorKind {
    /// A short, stable, lowercase name (`"full"`, `"closed"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PostErrorKind::Full => "full",
            PostErrorKind::Closed => "closed",
            PostErrorKind::Unregistered => "unregistered",
            PostErrorKind::WouldDeadlock => "would deadlock",
        }
    }
}

impl fmt::Display for PostErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused post: the reason, and the item handed back to its producer so
/// nothing is lost silently.
pub struct PostError<T> {
    /// Why the item was refused.
    pub kind: PostErrorKind,
    /// The refused item, still owned by the producer.
    pub item: T,
}

impl<T> PostError<T> {
    /// Drops the item and keeps the reason.
    pub fn into_kind(self) -> PostErrorKind {
        self.kind
    }
}

impl<T> fmt::Debug for PostError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PostError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "post refused: {}", self.kind)
    }
}

impl<T> std::error::Error for PostError<T> {}

/// The outcome of a [`call`](crate::Port::call) that did not get a reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallError {
    /// The consumer ran the handler and it failed; the text says why.
    Handler(String),
    /// The item was dropped unrun while the hub stayed open (its port was
    /// unregistered, or the consumer discarded the reply without answering).
    Cancelled,
    /// The hub closed before the consumer answered.
    Closed,
    /// No reply within the caller's timeout. The item may still run later;
    /// its reply is then discarded (see [`Reply::is_abandoned`](crate::Reply::is_abandoned)).
    TimedOut,
    /// The queue was full and the caller asked not to wait.
    Full,
    /// The port was unregistered before the call was queued.
    Unregistered,
    /// The call was issued from the consumer thread, which would then wait
    /// for itself forever.
    WouldDeadlock,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Handler(text) => write!(f, "handler error: {text}"),
            CallError::Cancelled => f.write_str("cancelled"),
            CallError::Closed => f.write_str("closed"),
            CallError::TimedOut => f.write_str("timed out"),
            CallError::Full => f.write_str("full"),
            CallError::Unregistered => f.write_str("unregistered"),
            CallError::WouldDeadlock => f.write_str("would deadlock"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<PostErrorKind> for CallError {
    fn from(kind: PostErrorKind) -> Self {
        match kind {
            PostErrorKind::Full => CallError::Full,
            PostErrorKind::Closed => CallError::Closed,
            PostErrorKind::Unregistered => CallError::Unregistered,
            PostErrorKind::WouldDeadlock => CallError::WouldDeadlock,
        }
    }
}

/// Why a port's cancel notification fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// The hub closed (its Lua state is going away).
    HubClosed,
    /// The port was unregistered.
    Unregistered,
}

/// Why the core discards an accepted item without handing it to the
/// consumer: the item's discard path (see
/// [`Hub::with_discard`](crate::Hub::with_discard)) is told which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Discarded {
    /// A call's item was refused before it was queued (the caller gets the
    /// matching [`CallError`]). Refused posts are not discarded: their item
    /// comes back in [`PostError::item`].
    Refused(PostErrorKind),
    /// Its port was unregistered (the item was queued, or in the consumer's
    /// batch, see [`Hub::purge_stale`](crate::Hub::purge_stale)).
    Unregistered,
    /// Its hub closed.
    Closed,
}
