/*
 * darksidesync.h -- the C ABI of the Lua module `darksidesync`.
 *
 * A C "utility" library (anything with its own background threads) hands
 * work to a Lua state through the module: its threads *deliver* items into
 * the state's FIFO, and the Lua side runs them when it is ready (`poll()`,
 * `dispatch()`, `run()` ...). No foreign thread ever touches the Lua state:
 * the utility's callbacks that receive a `lua_State*` always run on the Lua
 * thread.
 *
 * The utility has no link-time dependency on darksidesync. After
 * `require "darksidesync"`, the module publishes, in the Lua registry:
 *
 *     registry["DSS.DarkSideSync"] = {
 *         ["Version"]     = "0.1",
 *         ["DSS API 1v0"] = <light userdata -> const DSS_api_1v0_t>,
 *         ["DSS API 2v0"] = <light userdata -> const dss_api_2v0_t>,
 *     }
 *
 * and the utility (usually in its `luaopen_*`) fetches the table of the
 * version it was written for (see `dss_api_lookup` in the usage sketch at
 * the end of this file).
 *
 * Table of contents
 *   1. Common                   struct lua_State, registry names
 *   2. DSS API 1v0              binary compatible with DarkSideSync 1.0
 *   3. DSS API 2v0              handles, outcomes, ownership, timeouts, stats
 *   4. Usage sketch
 *
 * The API structs are immutable, static, and valid for the life of the
 * process: the module pins itself in memory (it is linked `-z nodelete`),
 * so function pointers obtained once stay callable after `lua_close`, and
 * also pins every utility library that registers (on Linux its shared
 * object is re-opened with RTLD_NODELETE), so Lua cannot unload a
 * utility's code while darksidesync may still call it (at lua_close,
 * cancel callbacks and decoder(NULL) calls run after Lua has released
 * the utility's library handle).
 *
 * Every function validates its arguments and returns a code; none of them
 * raises a Lua error, aborts, or lets a Rust panic escape. That holds in a
 * finaliser that lua_close runs too, before or after darksidesync's own:
 * reg()/getutilid()/getid() then return DSS_ERR_NOT_STARTED (1v0) or
 * DSS2_ECLOSED (2v0), the other entry points as on a closed state.
 *
 * Callbacks given a lua_State (decoder, return, run, reply, finalize)
 * must not raise. One that does anyway (or runs out of memory pushing)
 * is survived (it runs inside lua_pcall): under dispatch() its error
 * goes to the state's error handler and the next items run; poll()
 * returns, as the item's callback, a function raising it. The item
 * counts as run (2v0 free_fn gets DSS2_OK). A decoder or run() starts on
 * an empty stack: what it pushes first is at index 1.
 * Their C types may be unwound through (Rust: extern "C-unwind"), as a
 * Lua error is on LuaJIT x64.
 *
 * Unregistering from another thread. unreg() called on any thread but
 * the Lua thread returns only when no decoder, run() or free_fn(.., OK)
 * of the utility runs on the Lua thread, and none starts afterwards (so
 * do not call it while holding a lock such a callback takes). Items the
 * Lua thread had already taken are cancelled there, on its next turn,
 * which may come after unreg() returned (decoder(NULL) / free_fn): free
 * what they use in the 2v0 finalizer (setfinalizer()), which runs after
 * them, not right after unreg(). On the Lua thread itself (from a
 * callback) unreg() does not wait: it would wait for itself.
 *
 * Signal handlers. Two calls never wait for room, and never wait for
 * anything the code they interrupted holds, so they may be made from a
 * signal handler that interrupted the Lua thread inside poll(),
 * dispatch() or any other darksidesync call, or another thread inside a
 * delivery (DarkSideSync's luaexit does this):
 *
 *   - 1v0 deliver() with pReturn == NULL;
 *   - 2v0 post() with timeout_ms == 0 (DSS2_NOWAIT semantics).
 *
 * Whatever path they take, they take their room first: the queue never
 * holds more than setcapacity() items, and a full queue refuses them:
 * DSS_ERR_OUT_OF_MEMORY (1v0) or DSS2_EFULL (2v0, and free_fn(data,
 * DSS2_EFULL) runs inside the call). When the queue's lock is free,
 * nothing waits in the side ring and the queue's buffer has room they
 * queue as usual; otherwise the item goes to a small side ring of the
 * state (64 slots, allocated when the state opens) with one atomic
 * reservation, a write() to the state's fd() and a sendto() to the
 * setport() port, and the next holder of the queue's lock moves it into
 * the queue. Ordering: such an item comes before every delivery whose
 * call began after this one returned, as for any delivery. A queued
 * item keeps fd() readable (and has sent its datagram) until it is
 * taken, whatever the order of fd(), setport() and deliveries. Only
 * while the 64 slots are all pending:
 *
 *   - a call made while a darksidesync call of its own thread is
 *     interrupted (a signal handler) refuses as when full;
 *   - any other call waits for the queue's lock (held by another thread
 *     for a short section, never across Lua code or a wait) and for
 *     other threads' ring slots being written, then queues, growing the
 *     queue's buffer if need be. This is the one wait a fire-and-forget
 *     deliver() can make; it never waits for room.
 *
 * Each call is accepted (the item runs, or is cancelled, exactly once)
 * or refused with a code.
 *
 * Async-signal-safe: both calls borrow the handle's record without a
 * lock or a reference count (unreg() waits for such a borrow to end; a
 * handle unregistered first is reported stale), carry the item inline,
 * count with atomics, take the queue's lock only with a try-lock (never
 * a wait) and allocate nothing (their system calls: a write() to fd(), a
 * sendto() when setport() is on, and a futex wake when the Lua thread
 * sleeps in wait()). Conditions, all met by a utility written like
 * luaexit:
 *
 *   - 2v0: the handle was registered with a cancel callback, or one
 *     post()/call() was made before the handler can run (the first one
 *     pins the utility's shared object with dlopen());
 *   - the interrupted thread has made a darksidesync call before (the
 *     module's thread-local mark is then set up: its first use in a
 *     thread may allocate);
 *   - the ring is not full (fewer than 64 such deliveries waiting for
 *     the lock's holder), or the handler interrupted a darksidesync call
 *     of its own thread (a full ring then refuses). With a full ring
 *     another thread's call waits for the lock and may allocate.
 *
 * Every other call may wait for locks or allocate and must not be made
 * from a handler. The portable pattern works everywhere: set a `volatile
 * sig_atomic_t` flag or write() to a pipe in the handler, and deliver
 * from one of your threads.
 *
 * Compiles with `-std=c99 -Wall -Wextra -Werror` (and as C++).
 */
#ifndef DARKSIDESYNC_H
#define DARKSIDESYNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================== */
/* 1. Common                                                              */
/* ===================================================================== */

/* The Lua state. Signatures below spell it `struct lua_State *`, which is
 * the very type lua.h calls `lua_State *`; declaring only the struct tag
 * keeps this header free of Lua headers and of a typedef that would clash
 * with lua.h's under C99 (which forbids repeating a typedef), whichever of
 * the two headers is included first. */
struct lua_State;

/* Key of the table in the Lua registry. */
#define DSS_REGISTRY_NAME "DSS.DarkSideSync"
/* Key, in that table, of the module's version string ("0.1", as 1.0 had). */
#define DSS_VERSION_KEY "Version"
#define DSS_VERSION "0.1"

/* ===================================================================== */
/* 2. DSS API 1v0                                                          */
/* ===================================================================== */
/*
 * Identical in names, layout, signatures, codes and semantics to
 * DarkSideSync 1.0, so a utility written for it works unchanged. What is
 * *not* reproduced is the original's crashes (see "Differences").
 *
 * Life of a utility
 *   reg()        on the Lua thread, once per Lua state; returns the utilid.
 *   deliver()    from any thread, any number of times.
 *   unreg()      from any thread; items still queued are cancelled.
 *   cancel(id)   called by darksidesync when the utility's Lua state
 *                closes. The utility must stop delivering and call unreg().
 *
 * Life of an item (pData is the utility's; darksidesync never frees it)
 *   delivered  decoder(L, pData, utilid) on the Lua thread, inside poll()
 *              or dispatch(). It pushes the Lua callback and its arguments
 *              and returns how many values it pushed (callback included).
 *              Returning 0 (or less) means: nothing to call; the item ends
 *              there (a waiting deliver() returns DSS_SUCCESS).
 *   cancelled  decoder(NULL, pData, utilid), exactly once: free your
 *              data. On the thread that closed the state or unregistered
 *              the utility; for items poll()/dispatch() had already taken
 *              from the queue, on the Lua thread before the next item runs
 *              (an item of an unregistered utility never runs; see
 *              "Unregistering from another thread" above); for a
 *              blocking delivery, always before its deliver() returns.
 *              An item refused by deliver() (error code) is NOT
 *              cancelled: the caller still owns pData.
 *   The decoder must not raise a Lua error and must not block (see
 *   above for what happens when it raises).
 *
 * Blocking deliveries (pReturn != NULL)
 *   deliver() blocks until one of:
 *   - the Lua side answered: poll() put a callable userdata in args[1];
 *     calling it runs pReturn(L, pData, utilid, 0) with the call's
 *     arguments on an otherwise empty stack; pReturn returns how many
 *     values it pushed, and those are what the call returns. dispatch()
 *     does the same with the Lua callback's return values.       -> -100
 *   - the reply userdata was collected uncalled, or the callback raised
 *     an error under dispatch(): pReturn(L, pData, utilid, 1)
 *     ("garbage") on the Lua thread, L being the state (its main thread
 *     for a collected userdata), as DarkSideSync 1.0 did.        -> -100
 *   - the state closed while the answer was pending (poll() handed out
 *     the reply userdata, or the callback is not done): pReturn(NULL,
 *     pData, utilid, 1) on the thread blocked in deliver().       -> -100
 *   - the utility called unreg() while the answer was pending: likewise
 *     pReturn(NULL, ..., 1) on the blocked thread, at once; calling the
 *     reply userdata later does nothing.         -> DSS_ERR_INVALID_UTILID
 *   - the decoder returned 0: pReturn is not called.              -> -100
 *   - the item was cancelled before it ran, wherever it sat (queue or
 *     already taken by poll()): decoder(NULL, ...) before deliver()
 *     returns.                -> DSS_ERR_NOT_STARTED after a close,
 *                                DSS_ERR_INVALID_UTILID after unreg()
 *   - it was issued from the Lua thread itself (it would wait for
 *     itself forever): fails at once, nothing is queued or called.
 *                                                -> DSS_ERR_WOULD_DEADLOCK
 *   pReturn is called at most once per item.
 *
 * The Lua thread
 *   A blocking deliver() from the thread running the state's Lua code
 *   returns DSS_ERR_WOULD_DEADLOCK. The module learns which thread that
 *   is from every darksidesync Lua function and from reg()/getutilid()
 *   (2v0: reg()/getid()): a host that moves a state to another thread
 *   makes one of those calls there before a utility delivers blocking
 *   from that thread.
 *
 * Differences from DarkSideSync 1.0 (its bugs, fixed)
 *   - utilids are generation-checked handles, not pointers: NULL, stale
 *     (after unreg or close) and garbage utilids return
 *     DSS_ERR_INVALID_UTILID (or DSS_ERR_NOT_STARTED once closed).
 *   - closing one Lua state cancels only that state's utilities, last
 *     registered first.
 *   - cancelled items get decoder(NULL, ...) without crashing.
 *   - the queue is bounded (`darksidesync.setcapacity`); on a full queue
 *     a fire-and-forget deliver() returns DSS_ERR_OUT_OF_MEMORY at once
 *     (1.0 promised it never waits for room), a blocking one waits for room, or
 *     returns DSS_ERR_OUT_OF_MEMORY on the Lua thread.
 *   - a blocking deliver() from the Lua thread returns
 *     DSS_ERR_WOULD_DEADLOCK instead of hanging.
 *   - the UDP wake-up payload is text, and one datagram per burst.
 */

/* Result codes (as in DarkSideSync 1.0; -109 is new). */
#define DSS_SUCCESS                 (-100) /* done */
#define DSS_ERR_UDP_SEND_FAILED     (-99)  /* warning: the item WAS queued, the UDP wake-up failed */
#define DSS_ERR_INVALID_UTILID      (-101) /* NULL, garbage, unregistered or reused utilid */
#define DSS_ERR_NOT_STARTED         (-102) /* darksidesync not loaded in that state, or the state closed */
#define DSS_ERR_NO_CANCEL_PROVIDED  (-103) /* reg() without a cancel callback */
#define DSS_ERR_OUT_OF_MEMORY       (-104) /* allocation failed, or queue full (fire-and-forget, or on the Lua thread) */
#define DSS_ERR_NO_DECODE_PROVIDED  (-105) /* deliver() without a decoder */
#define DSS_ERR_NO_GLOBALS          (-106) /* reg()/getutilid() given a NULL lua_State */
#define DSS_ERR_UNKNOWN_LIB         (-107) /* getutilid(): libid not registered in that state */
#define DSS_ERR_ALREADY_REGISTERED  (-108) /* reg(): libid already registered; its utilid is returned */
#define DSS_ERR_WOULD_DEADLOCK      (-109) /* new: blocking deliver() from the Lua thread */

/* Registry key of the 1v0 table, and its `version` field. */
#define DSS_API_1v0_KEY "DSS API 1v0"

/* Decoder: L == NULL means "cancelled, free pData". Pushes the callback and
 * its arguments, returns how many values were pushed. */
typedef int (*DSS_decoder_1v0_t)(struct lua_State *L, void *pData, void *utilid);
/* Return callback of a blocking delivery (see above). */
typedef int (*DSS_return_1v0_t)(struct lua_State *L, void *pData, void *utilid, int garbage);
/* Called once when the utility's Lua state closes (on the closing thread). */
typedef void (*DSS_cancel_1v0_t)(void *utilid);

/* Lua thread. Registers libid (any unique address, e.g. of a static) in
 * state L. Returns the utilid, or NULL with *errcode set to
 * DSS_ERR_NO_GLOBALS / DSS_ERR_NOT_STARTED / DSS_ERR_NO_CANCEL_PROVIDED /
 * DSS_ERR_OUT_OF_MEMORY. Registering libid again in the same state returns
 * the existing utilid with DSS_ERR_ALREADY_REGISTERED. *errcode is
 * DSS_SUCCESS on success; errcode may be NULL. */
typedef void *(*DSS_register_1v0_t)(struct lua_State *L, void *libid, DSS_cancel_1v0_t pCancel, int *errcode);
/* Lua thread. The utilid of libid in state L, or NULL with *errcode
 * DSS_ERR_UNKNOWN_LIB / DSS_ERR_NO_GLOBALS / DSS_ERR_NOT_STARTED. */
typedef void *(*DSS_getutilid_1v0_t)(struct lua_State *L, void *libid, int *errcode);
/* Any thread. Queues an item (see "Life of an item"); pReturn NULL means
 * fire-and-forget, which never waits for room (DSS_ERR_OUT_OF_MEMORY when
 * the queue is full; the one wait it can make, for the queue's lock with
 * a full side ring, is under "Signal handlers"). Returns DSS_SUCCESS, DSS_ERR_UDP_SEND_FAILED (queued),
 * DSS_ERR_INVALID_UTILID, DSS_ERR_NOT_STARTED, DSS_ERR_NO_DECODE_PROVIDED,
 * DSS_ERR_OUT_OF_MEMORY, DSS_ERR_WOULD_DEADLOCK. */
typedef int (*DSS_deliver_1v0_t)(void *utilid, DSS_decoder_1v0_t pDecode, DSS_return_1v0_t pReturn, void *pData);
/* Any thread. Unregisters: queued items are cancelled (decoder(NULL)),
 * including those poll()/dispatch() already took (they never run; off the
 * Lua thread it waits for a running decoder, see "Unregistering from
 * another thread" at the top), every
 * blocked deliver() returns DSS_ERR_INVALID_UTILID at once (see
 * "Blocking deliveries"), cancel is not called. After the state closed, unreg() releases the utilid's record and
 * returns DSS_SUCCESS. Returns DSS_ERR_INVALID_UTILID for a stale id. */
typedef int (*DSS_unregister_1v0_t)(void *utilid);

typedef struct DSS_api_1v0_s {
    const char *version;          /* "DSS API 1v0" */
    DSS_register_1v0_t reg;
    DSS_getutilid_1v0_t getutilid;
    DSS_deliver_1v0_t deliver;
    DSS_unregister_1v0_t unreg;
} DSS_api_1v0_t;

/* ===================================================================== */
/* 3. DSS API 2v0                                                          */
/* ===================================================================== */
/*
 * Design (what 1v0 cannot express, and how 2v0 does it)
 *
 * - Handles, not pointers. A `dss2_handle` is an opaque 64-bit value:
 *   slot index and generation in a process-global table. 0 is never a
 *   valid handle. A handle is stale after unreg(); using a stale, garbage
 *   or zero handle returns DSS2_ESTALE, never undefined behaviour. After
 *   the utility's state closed, the handle reports DSS2_ECLOSED until the
 *   utility calls unreg(), which releases it. Closing a state releases its
 *   queue, descriptors and buffers at once; what a utility that never
 *   calls unreg() keeps is one small record per handle.
 * - Explicit outcomes. call() returns exactly one of: DSS2_OK (replied),
 *   DSS2_EHANDLER (the Lua callback raised; its message is copied into the
 *   caller's buffer), DSS2_ECANCELLED, DSS2_ECLOSED, DSS2_ETIMEDOUT,
 *   DSS2_EFULL, DSS2_EWOULDDEADLOCK, DSS2_ESTALE, DSS2_EINVAL.
 * - Bounded queue, caller's choice when full: post(timeout_ms = 0)
 *   refuses at once with DSS2_EFULL, > 0 waits that long, < 0 waits for
 *   room without limit (never on the Lua thread: DSS2_EWOULDDEADLOCK).
 * - Ownership is explicit:
 *     post():  the item owns `data` from the moment post() is called.
 *              free_fn(data, outcome) is called exactly once, whatever
 *              happens: after run() on the Lua thread (outcome DSS2_OK),
 *              when the item is cancelled (DSS2_ECANCELLED or DSS2_ECLOSED,
 *              on the thread that cancelled it), or before post() returns
 *              when it is refused (outcome = post's return code).
 *              free_fn may be NULL when data needs no release.
 *     call():  `data` is borrowed for the duration of call() only: run()
 *              and reply() may use it on the Lua thread while call() is
 *              blocked, and never after call() returned (a timed-out
 *              call's item is skipped when it reaches the Lua thread).
 *              call() never frees it.
 * - Keep-alive: hold()/release() count references that keep
 *   `darksidesync.run()` waiting for this utility's deliveries.
 *   unreg() and the state's close drop the utility's references.
 *   Registering takes none: a registered utility does not by itself keep
 *   run() alive (as in 1v0, where run() never waits for a utility), so a
 *   library whose users end their program by letting run() return keeps
 *   working. A utility that delivers on its own (timers, signals, I/O)
 *   calls hold() while it may still deliver. (The Rust binding,
 *   darksidesync-binding, holds by default and offers an opt-out; that is
 *   its own choice, made through this call.)
 * - A finalizer on the Lua thread (setfinalizer()): called once with the
 *   state after the utility's last item ran or was discarded (after
 *   unreg(), or at lua_close), where it luaL_unref()s its callbacks and
 *   frees its context (cancel and free_fn get no state).
 * - Statistics per utility (stats()), and how long items wait in the
 *   queue, per utility and per state (waits(), while timing is on).
 * - Extensible: the struct starts with its size; fields are only ever
 *   appended. A utility compiled against a newer header must check
 *   `api->size >= offsetof(dss_api_2v0_t, field) + sizeof api->field`
 *   before using a field that may be missing (DSS2_HAS macro).
 * - Callbacks that take a lua_State* always run on the Lua thread and are
 *   never called with NULL; cancellation goes to free_fn and cancel.
 *
 * Threads: reg() and getid() on the Lua thread (they take L; they also
 * tell the module which thread runs the state, see "The Lua thread" in
 * section 2); everything else on any thread. cancel() runs on the thread that closes the state
 * (inside lua_close), after the utility's queued items were cancelled,
 * utilities of that state last registered first.
 */

#define DSS_API_2v0_KEY "DSS API 2v0"

/* Result codes of 2v0. Success is 0, errors are negative. */
#define DSS2_OK               0   /* done / replied / queued */
#define DSS2_EINVAL         (-1)  /* a NULL or invalid argument */
#define DSS2_ESTALE         (-2)  /* zero, garbage or unregistered handle */
#define DSS2_ECLOSED        (-3)  /* the handle's Lua state has closed */
#define DSS2_ENOTSTARTED    (-4)  /* darksidesync is not loaded in that lua_State */
#define DSS2_EALREADY       (-5)  /* reg(): libid already registered; *out holds its handle */
#define DSS2_EUNKNOWNLIB    (-6)  /* getid(): libid not registered in that state */
#define DSS2_ENOMEM         (-7)  /* allocation failed */
#define DSS2_EFULL          (-8)  /* queue full and the caller chose not to wait (or its wait ended) */
#define DSS2_ETIMEDOUT      (-9)  /* call(): no reply within timeout_ms */
#define DSS2_EWOULDDEADLOCK (-10) /* blocking on the Lua thread would wait for itself */
#define DSS2_ECANCELLED     (-11) /* dropped unrun: unreg(), run() pushed nothing, reply never given */
#define DSS2_EHANDLER       (-12) /* call(): the Lua callback raised; text in errbuf */
#define DSS2_EINTERNAL      (-13) /* a bug in darksidesync (caught; nothing crashed) */

/* call() flags */
#define DSS2_NOWAIT 1             /* refuse with DSS2_EFULL when the queue is full */

/* Opaque handle; 0 is never valid. */
typedef uint64_t dss2_handle;

/* Lua thread. Pushes the Lua callback and its arguments; returns how many
 * values it pushed (callback included). 0 = nothing to call. Must not raise
 * or block (one that raises: see the top of this file). */
typedef int (*dss2_run_fn)(struct lua_State *L, void *data, dss2_handle h);
/* Lua thread, call() only: the Lua side's answer (callback results under
 * dispatch(), or the arguments of the reply userdata under poll()) is on
 * an otherwise empty stack, `nresults` values. Read what you need into
 * data; return how many values you pushed (the reply userdata's call
 * returns them). Must not raise or block. */
typedef int (*dss2_reply_fn)(struct lua_State *L, void *data, dss2_handle h, int nresults);
/* Any thread, post() only: release data. `outcome` is DSS2_OK when run()
 * ran, otherwise why the item never ran. Called exactly once per post(). */
typedef void (*dss2_free_fn)(void *data, int outcome);
/* Called once when the utility's state closes (not on unreg()); ud as
 * given to reg(). The utility should stop delivering and call unreg(h). */
typedef void (*dss2_cancel_fn)(dss2_handle h, void *ud);

/* Per-utility counters (stats()). Set `size` = sizeof(dss2_stats_t) before
 * the call; only fields that fit in `size` are written. */
typedef struct dss2_stats {
    size_t size;
    uint64_t posted;      /* items accepted (post and call) */
    uint64_t ran;         /* items whose run() was called on the Lua thread */
    uint64_t cancelled;   /* accepted items dropped unrun */
    uint64_t refused;     /* post()/call() refused (full, closed (DSS2_ECLOSED), would deadlock ...) */
    uint64_t replies;     /* calls answered (reply() ran) */
    uint64_t errors;      /* calls answered with a handler error */
    uint64_t timeouts;    /* calls that timed out */
    uint64_t keep_alive;  /* keep-alive references held now */
} dss2_stats_t;

/* How long items waited in the queue, from post() or call() to the moment
 * the Lua thread took them to run (waits()). Recorded only while timing is
 * on in the Lua state: `darksidesync.timing(true)` from Lua; it is off by
 * default (it reads the clock twice per item). Set `size` =
 * sizeof(dss2_waits_t) before the call; only fields that fit are written.
 * Quantiles are never below the true value and at most 12.5% above it;
 * max, count and total_ns are exact. */
typedef struct dss2_waits {
    size_t size;
    uint64_t enabled;     /* 1 while timing is on; 0: off, every field below is 0 */
    uint64_t count;       /* items taken to run since timing was turned on */
    uint64_t p50_ns;      /* median wait, nanoseconds */
    uint64_t p99_ns;      /* 99th percentile */
    uint64_t max_ns;      /* longest wait */
    uint64_t total_ns;    /* all waits added up (total_ns / count is the mean) */
} dss2_waits_t;

/* waits() flags */
#define DSS2_WAITS_STATE 1        /* the whole state's items, not only this utility's */

/* post_inline(): the most bytes an item carries, and what its run returns
 * when it did the item's work itself and pushed nothing. */
#define DSS2_INLINE_MAX 24
#define DSS2_RAN (-1)

/* Lua thread. Registers libid (a unique address) with state L under a
 * name (copied; may be NULL). cancel may be NULL. Writes the handle to
 * *out. Returns DSS2_OK, DSS2_EALREADY (*out = the existing handle),
 * DSS2_EINVAL, DSS2_ENOTSTARTED, DSS2_ECLOSED, DSS2_ENOMEM. */
typedef int (*dss2_reg_fn)(struct lua_State *L, const void *libid, const char *name,
                           dss2_cancel_fn cancel, void *ud, dss2_handle *out);
/* Lua thread. The handle of libid in state L: DSS2_OK, DSS2_EUNKNOWNLIB,
 * DSS2_EINVAL, DSS2_ENOTSTARTED, DSS2_ECLOSED (the state is closing). */
typedef int (*dss2_getid_fn)(struct lua_State *L, const void *libid, dss2_handle *out);
/* Any thread. Unregisters: queued items are cancelled (free_fn with
 * DSS2_ECANCELLED), including those poll()/dispatch() already took (they
 * never run), blocked calls return DSS2_ECANCELLED at once wherever their
 * item sits (a call's run()/reply() already running is waited for first),
 * keep-alive
 * references are dropped, cancel is not called; the handle becomes stale.
 * Off the Lua thread it waits for a running run()/free_fn (see
 * "Unregistering from another thread" at the top). With a finalizer set
 * (setfinalizer()) it queues one item, the finalizer's turn: fd() turns
 * readable, and dispatch()/poll() take it without calling anything.
 * On a closed handle releases its record. DSS2_OK or DSS2_ESTALE. */
typedef int (*dss2_unreg_fn)(dss2_handle h);
/* Any thread. Fire-and-forget. See "Ownership" (free_fn is always called)
 * and "Bounded queue" (timeout_ms). run must not be NULL.
 * DSS2_OK, DSS2_EINVAL, DSS2_ESTALE, DSS2_ECLOSED, DSS2_EFULL,
 * DSS2_EWOULDDEADLOCK, DSS2_ENOMEM. */
typedef int (*dss2_post_fn)(dss2_handle h, dss2_run_fn run, dss2_free_fn free_fn,
                            void *data, long timeout_ms);
/* Any thread but the Lua thread. Blocking delivery: queues run(L, data, h)
 * and waits for the answer, at most timeout_ms in total (< 0: no limit).
 * reply may be NULL (the answer is then only waited for). With
 * DSS2_NOWAIT in flags a full queue returns DSS2_EFULL at once. On
 * DSS2_EHANDLER the error text is copied to errbuf (truncated, always
 * NUL-terminated when errlen > 0); errbuf may be NULL. Returns one outcome:
 * DSS2_OK, DSS2_EHANDLER, DSS2_ECANCELLED, DSS2_ECLOSED, DSS2_ETIMEDOUT,
 * DSS2_EFULL, DSS2_EWOULDDEADLOCK, DSS2_ESTALE, DSS2_EINVAL, DSS2_ENOMEM. */
typedef int (*dss2_call_fn)(dss2_handle h, dss2_run_fn run, dss2_reply_fn reply, void *data,
                            long timeout_ms, int flags, char *errbuf, size_t errlen);
/* Any thread. Takes / drops one keep-alive reference. DSS2_OK,
 * DSS2_ESTALE, DSS2_ECLOSED; release() with none held: DSS2_EINVAL. */
typedef int (*dss2_hold_fn)(dss2_handle h);
typedef int (*dss2_release_fn)(dss2_handle h);
/* Any thread. Copies the utility's counters (works on closed handles).
 * DSS2_OK, DSS2_EINVAL, DSS2_ESTALE. */
typedef int (*dss2_stats_fn)(dss2_handle h, dss2_stats_t *out);
/* Any thread. Copies the waits of the utility's items (with
 * DSS2_WAITS_STATE in flags: of every item of its state) into *out;
 * `enabled` = 0 and zeros while timing is off. DSS2_OK, DSS2_EINVAL,
 * DSS2_ESTALE, DSS2_ECLOSED. Appended in 0.1.0 after strerror: check
 * DSS2_HAS(api, waits). */
typedef int (*dss2_waits_fn)(dss2_handle h, int flags, dss2_waits_t *out);
/* Any thread. post() without an allocation: the item carries a copy of
 * the `len` bytes at `bytes` (len <= DSS2_INLINE_MAX) instead of a data
 * pointer, for a producer whose data is that small (a Rust closure, say).
 * run(L, p, h) and free_fn(p, outcome) get p = a pointer to the copy,
 * 8-byte aligned and valid during that call only (the copy moves with the
 * item: it must not point into itself). Ownership of the bytes' contents
 * passes to the call as with post(): free_fn(p, outcome) is called exactly
 * once (after run() with DSS2_OK, or with why it never ran, or before
 * post_inline() returns when refused), and the caller no longer uses its
 * own bytes; free_fn may be NULL. run may return DSS2_RAN: it did the
 * item's work itself and pushed nothing; the item counts as run
 * (dispatch() counts it, poll() returns the count alone) and nothing is
 * called. Codes as post(); len > DSS2_INLINE_MAX, or bytes NULL with
 * len > 0, return DSS2_EINVAL without taking anything (free_fn is not
 * called). Appended in 0.1.0 after waits: check DSS2_HAS(api,
 * post_inline). */
typedef int (*dss2_post_inline_fn)(dss2_handle h, dss2_run_fn run, dss2_free_fn free_fn,
                                   const void *bytes, size_t len, long timeout_ms);
/* Any thread. DSS2_OK (live), DSS2_ECLOSED or DSS2_ESTALE. */
typedef int (*dss2_status_fn)(dss2_handle h);
/* Lua thread, with the state: the utility's finalizer (setfinalizer()),
 * where it luaL_unref()s what it keeps in the registry and frees its
 * context (as Node-API's finalize_cb). Called once per handle, after
 * every item of the utility ran or was discarded (run()/decoder and
 * free_fn all returned) and when none of its callbacks will be called
 * again:
 *   - after unreg(h): on the Lua thread, when the state next takes its
 *     queue (dispatch(), run(), poll(), ... ; unreg() queues a wake-up,
 *     so fd() becomes readable), with the thread that runs it as L;
 *   - at lua_close, when unreg() did not come first: after the queued
 *     items were discarded (free_fn(.., DSS2_ECLOSED)) and the cancel
 *     callbacks ran, with the closing state as L. A finalizer still
 *     pending from an unreg() runs there too.
 * It must not block. An error it raises goes to the state's error
 * handler (at lua_close it is dropped); the finalizer has run. */
typedef void (*dss2_finalize_fn)(struct lua_State *L, dss2_handle h, void *ud);
/* Any thread. Sets the finalizer of a live handle (fn NULL: none), with
 * the `ud` it is given. DSS2_OK, DSS2_ESTALE, DSS2_ECLOSED. Appended in
 * 0.1.x after post_inline: check DSS2_HAS(api, setfinalizer). */
typedef int (*dss2_setfinalizer_fn)(dss2_handle h, dss2_finalize_fn fn, void *ud);
/* Any thread. A static description of a 2v0 or 1v0 code (never NULL). */
typedef const char *(*dss2_strerror_fn)(int code);

typedef struct dss_api_2v0 {
    size_t size;                /* sizeof(dss_api_2v0_t) of the publisher; first, always */
    const char *version;        /* "DSS API 2v0" */
    dss2_reg_fn reg;
    dss2_getid_fn getid;
    dss2_unreg_fn unreg;
    dss2_post_fn post;
    dss2_call_fn call;
    dss2_hold_fn hold;
    dss2_release_fn release;
    dss2_stats_fn stats;
    dss2_status_fn status;
    dss2_strerror_fn strerror;
    dss2_waits_fn waits;        /* check DSS2_HAS(api, waits) */
    dss2_post_inline_fn post_inline; /* check DSS2_HAS(api, post_inline) */
    dss2_setfinalizer_fn setfinalizer; /* check DSS2_HAS(api, setfinalizer) */
    /* later versions append here */
} dss_api_2v0_t;

/* True when the published struct `api` has field `field`. */
#define DSS2_HAS(api, field) \
    ((api)->size >= offsetof(dss_api_2v0_t, field) + sizeof((api)->field))

/* ===================================================================== */
/* 4. Usage sketch                                                         */
/* ===================================================================== */
/*
 *   #include <lua.h>
 *   #include <lauxlib.h>
 *   #include "darksidesync.h"
 *
 *   static const dss_api_2v0_t *api;
 *   static const char libid;          // its address identifies the library
 *
 *   int luaopen_mylib(lua_State *L) {
 *       lua_getfield(L, LUA_REGISTRYINDEX, DSS_REGISTRY_NAME);
 *       if (!lua_istable(L, -1)) {
 *           // Not loaded in this state yet: load it, as a Lua module loads
 *           // its own dependencies (the script need not require it first).
 *           lua_pop(L, 1);
 *           lua_getglobal(L, "require");
 *           lua_pushstring(L, "darksidesync");
 *           lua_call(L, 1, 0);            // raises "module 'darksidesync' not found ..."
 *           lua_getfield(L, LUA_REGISTRYINDEX, DSS_REGISTRY_NAME);
 *           if (!lua_istable(L, -1)) return luaL_error(L, "mylib: darksidesync did not publish its C API");
 *       }
 *       lua_getfield(L, -1, DSS_API_2v0_KEY);
 *       api = (const dss_api_2v0_t *)lua_touserdata(L, -1);
 *       lua_pop(L, 2);
 *       if (api == NULL || !DSS2_HAS(api, strerror)) return luaL_error(L, "no DSS API 2v0");
 *       dss2_handle h;
 *       int rc = api->reg(L, &libid, "mylib", on_cancel, NULL, &h);
 *       if (rc != DSS2_OK && rc != DSS2_EALREADY) return luaL_error(L, "%s", api->strerror(rc));
 *       ... start threads that call api->post(h, ...) / api->call(h, ...)
 *       // Release what the state keeps for us on the Lua thread, once
 *       // nothing of ours runs any more (after unreg() or at close):
 *       if (DSS2_HAS(api, setfinalizer)) api->setfinalizer(h, on_finalize, ctx);
 *       // While work is in flight, keep the script's darksidesync.run()
 *       // waiting for it: api->hold(h) when a job starts, api->release(h)
 *       // after its last post. (Registration alone takes no keep-alive.)
 *   }
 *
 *   -- and the script:
 *   local mylib = require "mylib"     -- loads darksidesync itself
 *   mylib.start(function(result) print(result) end)
 *   require("darksidesync").run()     -- returns when no job holds it
 */

#ifdef __cplusplus
}
#endif

#endif /* DARKSIDESYNC_H */
