/*
 * dssutil -- a DarkSideSync utility library for the C-ABI tests.
 *
 * Written only against include/darksidesync.h (and the Lua C API): it is
 * what a third-party utility looks like. Loaded as a Lua C module after
 * darksidesync:
 *
 *     local dss = require "darksidesync"
 *     local u   = require "dssutil"
 *
 * At open it registers itself in the state twice: with DSS API 1v0 (exactly
 * as a DarkSideSync 1.0 utility would) and with DSS API 2v0. Its functions
 * start pthreads that deliver through either version and record what every
 * call returned and which callbacks ran, so the tests can assert:
 *
 *   - every result code a utility can get,
 *   - each item's decoder (1v0) or free callback (2v0) is called exactly once,
 *     with a NULL state when cancelled,
 *   - blocked waiters are released, threads delivering after lua_close get
 *     an error code.
 *
 * Jobs and per-state contexts live in process-global tables so that a
 * second Lua state (or the C host) can inspect what happened to a state
 * that has already closed.
 *
 * Lua functions (ctx = this state's context unless an id is given):
 *   u.ctx()                          -> context id
 *   u.v1_post(cb, n, threads)        -> job    fire-and-forget 1v0 items
 *   u.v1_call(cb, value)             -> job    one blocking 1v0 delivery
 *                                            (value < 0: the decoder pushes nothing)
 *   u.v1_flood(cb)                   -> job    delivers until an error code
 *   u.v2_post(cb, n, threads, timeout_ms) -> job
 *   u.v2_call(cb, value, timeout_ms, nowait) -> job  (value < 0: run pushes nothing)
 *   u.v2_flood(cb)                   -> job
 *   u.v2_hold_then(cb, ms)           -> job    hold(), sleep, post one item, release()
 *   u.join(job)                      -> { codes = {...}, reply = v, err = text, accepted = n, refused = n }
 *   u.done(job)                      -> boolean
 *   u.progress(job)                  -> post() calls begun, returned (2v0 posts)
 *   u.here_v1(cb, blocking)          -> code   deliver() from the Lua thread
 *   u.here_v1_one(cb, shape)         -> code   fire-and-forget deliver() whose decoder
 *                                            pushes cb and one argument: 42 (shape 1),
 *                                            nil (2), or 7 above an uncounted value (3)
 *   u.here_v2_post(cb, timeout_ms)   -> code
 *   u.here_v2_call(cb)               -> code
 *   u.codes()                        -> table of codes of the argument-checking paths
 *   u.counters([ctx])                -> table of per-context counters
 *   u.v1_unreg([ctx]) / u.v2_unreg([ctx]) -> code
 *   u.v1_reregister() / u.v2_reregister() -> code (after unreg)
 *   u.v2_status([ctx]) / u.v2_hold() / u.v2_release() -> code
 *   u.v2_stats()                     -> table (or nil, code)
 *   u.v2_waits([state])              -> table of dss2_waits_t fields (or nil, code);
 *                                       state = true: DSS2_WAITS_STATE
 *   u.set_unreg_on_cancel(v1, v2)    whether cancel callbacks call unreg()
 *   u.sleep(ms)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

#include "darksidesync.h"

#if LUA_VERSION_NUM < 502
#define compat_setfuncs(L, l) luaL_register(L, NULL, l)
#else
#define compat_setfuncs(L, l) luaL_setfuncs(L, l, 0)
#endif

#define MAX_CTX 64
#define MAX_JOBS 16384
#define MAX_THREADS 8

/* ------------------------------------------------------------------ */
/* Process-global state                                                 */
/* ------------------------------------------------------------------ */

/* Counters of one Lua state's registration. */
typedef struct counters {
    long v1_decoded;      /* decoder called with a state */
    long v1_cancelled;    /* decoder called with NULL */
    long v1_returned;     /* return callback, garbage = 0 */
    long v1_garbage;      /* return callback, garbage = 1 */
    long v1_garbage_with_state; /* ... of which given a lua_State */
    long v1_cancel_calls; /* cancel callback */
    long v2_ran;          /* run callback */
    long v2_freed_ok;     /* free callback, outcome DSS2_OK */
    long v2_freed_other;  /* free callback, any other outcome */
    long v2_replied;      /* reply callback */
    long v2_cancel_calls; /* cancel callback */
    long v2_finalized;    /* Lua-thread finalizer (2v0 setfinalizer) */
    long inline_ran;      /* post_inline run() calls */
    long inline_freed_ok, inline_freed_other; /* post_inline free_fn calls */
    long inline_bad;      /* an inline copy that was not what was posted, or misaligned */
    long double_calls;    /* a callback called twice for one item: always a bug */
    long null_state;      /* a 2v0 callback given a NULL state: always a bug */
} counters;

typedef struct ctx {
    int id;
    void *utilid;        /* 1v0 */
    dss2_handle h;       /* 2v0 */
    int v1_unreg_on_cancel;
    int v2_unreg_on_cancel;
    int v2_status_at_cancel; /* status(h) seen inside the cancel callback */
    counters c;
    /* Registry references dropped where no lua_State was at hand (a
     * cancelled item, free_fn, a job's last thread): released on the Lua
     * thread by the next call that has one (release_refs). */
    int *dead;
    int ndead, cap_dead;
} ctx;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static ctx *ctxs[MAX_CTX];
static int nctx;

static const DSS_api_1v0_t *api1;
static const dss_api_2v0_t *api2;

/* Addresses identifying this library to darksidesync. */
static const char libid1 = 1;
static const char libid2 = 2;

#define COUNT(cx, field, delta)              \
    do {                                     \
        pthread_mutex_lock(&mu);             \
        (cx)->c.field += (delta);            \
        pthread_mutex_unlock(&mu);           \
    } while (0)

static void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------ */
/* Registry references                                                  */
/* ------------------------------------------------------------------ */

/* Every luaL_ref this utility takes is released once nothing can use it:
 * with luaL_unref where a lua_State of the Lua thread is at hand, else
 * queued here and released by the next call on the Lua thread (any Lua
 * function of this module, a decoder or run with a state, and the 2v0
 * finalizer, which darksidesync runs after unreg() or at close). */
static void defer_unref(ctx *cx, int ref) {
    pthread_mutex_lock(&mu);
    if (cx->ndead == cx->cap_dead) {
        int cap = cx->cap_dead ? 2 * cx->cap_dead : 64;
        int *d = (int *)realloc(cx->dead, (size_t)cap * sizeof *d);
        if (d == NULL) abort();
        cx->dead = d;
        cx->cap_dead = cap;
    }
    cx->dead[cx->ndead++] = ref;
    pthread_mutex_unlock(&mu);
}

static void release_ref(ctx *cx, lua_State *L, int ref) {
    if (ref == LUA_NOREF || ref == LUA_REFNIL) return;
    if (L != NULL)
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
    else
        defer_unref(cx, ref);
}

/* Lua thread: releases the references queued by defer_unref. */
static void release_refs(lua_State *L, ctx *cx) {
    int batch[64], n, i;
    do {
        pthread_mutex_lock(&mu);
        n = cx->ndead < 64 ? cx->ndead : 64;
        cx->ndead -= n;
        memcpy(batch, cx->dead + cx->ndead, (size_t)n * sizeof *batch);
        pthread_mutex_unlock(&mu);
        for (i = 0; i < n; i++) luaL_unref(L, LUA_REGISTRYINDEX, batch[i]);
    } while (n > 0);
}

/* ------------------------------------------------------------------ */
/* Items                                                                */
/* ------------------------------------------------------------------ */

struct job;

typedef struct item {
    ctx *cx;
    struct job *j;   /* the job whose callback reference it uses, or NULL */
    int own_ref;     /* without a job: the item owns cbref */
    int cbref;       /* the Lua callback, in the state's registry */
    int thread, seq;
    int blocking;
    lua_Integer value; /* argument of a blocking delivery */
    int calls;       /* decoder/free calls, for the exactly-once check */
    /* results of a blocking delivery */
    lua_Integer reply;
    int got_reply, garbage;
} item;

static void item_done(item *it, lua_State *L);

static void once(item *it) {
    pthread_mutex_lock(&mu);
    if (++it->calls > 1) it->cx->c.double_calls++;
    pthread_mutex_unlock(&mu);
}

/* 1v0 decoder: pushes cb, thread, seq (and value for blocking items). */
static int v1_decode(lua_State *L, void *pData, void *utilid) {
    item *it = (item *)pData;
    (void)utilid;
    once(it);
    if (L == NULL) {
        COUNT(it->cx, v1_cancelled, 1);
        if (!it->blocking) item_done(it, NULL);
        return 0;
    }
    COUNT(it->cx, v1_decoded, 1);
    release_refs(L, it->cx);
    if (it->blocking && it->value < 0) return 0; /* "nothing to call" */
    lua_rawgeti(L, LUA_REGISTRYINDEX, it->cbref);
    lua_pushinteger(L, it->thread);
    lua_pushinteger(L, it->seq);
    if (it->blocking) {
        lua_pushinteger(L, it->value);
        return 4;
    }
    item_done(it, L); /* the callback is on the stack: its reference may go */
    return 3;
}

/* 1v0 return callback: keeps the first answer value, returns "ack". */
static int v1_return(lua_State *L, void *pData, void *utilid, int garbage) {
    item *it = (item *)pData;
    (void)utilid;
    if (garbage) {
        it->garbage = 1;
        COUNT(it->cx, v1_garbage, 1);
        if (L != NULL) COUNT(it->cx, v1_garbage_with_state, 1);
        return 0;
    }
    COUNT(it->cx, v1_returned, 1);
    it->got_reply = 1;
    it->reply = lua_gettop(L) >= 1 ? lua_tointeger(L, 1) : -1;
    lua_pushstring(L, "ack");
    return 1;
}

static void v1_cancel(void *utilid) {
    ctx *cx = NULL;
    int i;
    pthread_mutex_lock(&mu);
    for (i = 0; i < nctx; i++)
        if (ctxs[i]->utilid == utilid) cx = ctxs[i];
    if (cx) cx->c.v1_cancel_calls++;
    pthread_mutex_unlock(&mu);
    fprintf(stderr, "dssutil: 1v0 cancel of context %d\n", cx ? cx->id : -1);
    if (cx && cx->v1_unreg_on_cancel) api1->unreg(utilid);
}

/* 2v0 run: pushes cb, thread, seq (and value for calls). */
static int v2_run(lua_State *L, void *data, dss2_handle h) {
    item *it = (item *)data;
    (void)h;
    if (L == NULL) {
        COUNT(it->cx, null_state, 1);
        return 0;
    }
    COUNT(it->cx, v2_ran, 1);
    release_refs(L, it->cx);
    if (it->blocking && it->value < 0) return 0; /* "nothing to call" */
    lua_rawgeti(L, LUA_REGISTRYINDEX, it->cbref);
    lua_pushinteger(L, it->thread);
    lua_pushinteger(L, it->seq);
    if (it->blocking) {
        lua_pushinteger(L, it->value);
        return 4;
    }
    return 3;
}

static void v2_free(void *data, int outcome) {
    item *it = (item *)data;
    once(it);
    if (outcome == DSS2_OK)
        COUNT(it->cx, v2_freed_ok, 1);
    else
        COUNT(it->cx, v2_freed_other, 1);
    item_done(it, NULL);
}

static int v2_reply(lua_State *L, void *data, dss2_handle h, int nresults) {
    item *it = (item *)data;
    (void)h;
    if (L == NULL) {
        COUNT(it->cx, null_state, 1);
        return 0;
    }
    COUNT(it->cx, v2_replied, 1);
    it->got_reply = 1;
    it->reply = nresults >= 1 ? lua_tointeger(L, 1) : -1;
    lua_pushstring(L, "ack2");
    return 1;
}

static void v2_cancel(dss2_handle h, void *ud) {
    ctx *cx = (ctx *)ud;
    int st = api2->status(h);
    pthread_mutex_lock(&mu);
    cx->c.v2_cancel_calls++;
    cx->v2_status_at_cancel = st;
    pthread_mutex_unlock(&mu);
    fprintf(stderr, "dssutil: 2v0 cancel of context %d (%ld items cancelled so far)\n", cx->id,
            cx->c.v1_cancelled + cx->c.v2_freed_other);
    if (cx->v2_unreg_on_cancel) api2->unreg(h);
}

/* 2v0 finalizer: on the Lua thread, after the last item of the 2v0
 * registration ran or was discarded (after unreg() or at close). */
static void v2_finalize(lua_State *L, dss2_handle h, void *ud) {
    ctx *cx = (ctx *)ud;
    (void)h;
    COUNT(cx, v2_finalized, 1);
    release_refs(L, cx);
}

/* Registers the 2v0 handle's finalizer, where the API has it. */
static void set_finalizer(ctx *cx) {
    if (DSS2_HAS(api2, setfinalizer)) (void)api2->setfinalizer(cx->h, v2_finalize, cx);
}

/* ------------------------------------------------------------------ */
/* Jobs: threads that deliver                                           */
/* ------------------------------------------------------------------ */

enum kind { V1_POST, V1_CALL, V1_FLOOD, V2_POST, V2_CALL, V2_FLOOD, V2_HOLD };

typedef struct job {
    enum kind kind;
    ctx *cx;
    void *utilid;
    dss2_handle h;
    int cbref;
    int n, nthreads;
    long timeout_ms, hold_ms;
    int nowait;
    lua_Integer value;
    pthread_t tids[MAX_THREADS];
    int started;
    int joined;
    int finished;           /* threads done */
    int items_out;          /* items made and not yet done (item_done) */
    long calls_begun;       /* post() calls begun, and returned: a test sees */
    long calls_returned;    /* a post blocked in the queue without a sleep */
    long late_attempts;     /* floods: deliveries tried after the first error */
    long late_accepted;     /* ... of which accepted: must stay 0 */
    int codes[MAX_THREADS]; /* last code seen by each thread */
    long accepted, refused;
    lua_Integer reply;
    int got_reply, garbage, cancelled;
    char err[256];
} job;

#define ADD_LOCKED(field)            \
    do {                             \
        pthread_mutex_lock(&mu);     \
        (field)++;                   \
        pthread_mutex_unlock(&mu);   \
    } while (0)

typedef struct targ {
    job *j;
    int t;
} targ;

static job *jobs[MAX_JOBS];
static int njobs;

static item *new_item(job *j, int t, int seq) {
    item *it = (item *)calloc(1, sizeof *it);
    if (it == NULL) abort();
    it->cx = j->cx;
    it->j = j;
    it->cbref = j->cbref;
    it->thread = t;
    it->seq = seq;
    pthread_mutex_lock(&mu);
    j->items_out++;
    pthread_mutex_unlock(&mu);
    return it;
}

/* The job's callback reference, once its threads finished and its last
 * item is done (else LUA_NOREF). Under mu. */
static int take_job_ref(job *j) {
    int ref = LUA_NOREF;
    if (j->finished == j->started && j->items_out == 0) {
        ref = j->cbref;
        j->cbref = LUA_NOREF;
    }
    return ref;
}

/* An item ran, was cancelled, refused or answered: nothing uses it any
 * more. L: a state of the Lua thread, or NULL elsewhere. */
static void item_done(item *it, lua_State *L) {
    int ref = LUA_NOREF;
    if (it->j != NULL) {
        pthread_mutex_lock(&mu);
        it->j->items_out--;
        ref = take_job_ref(it->j);
        pthread_mutex_unlock(&mu);
    } else if (it->own_ref) {
        ref = it->cbref;
    }
    release_ref(it->cx, L, ref);
    free(it);
}

static void finish(job *j, int t, int code, long acc, long ref) {
    int cbref;
    pthread_mutex_lock(&mu);
    j->codes[t] = code;
    j->accepted += acc;
    j->refused += ref;
    j->finished++;
    cbref = take_job_ref(j);
    pthread_mutex_unlock(&mu);
    release_ref(j->cx, NULL, cbref);
}

/* Floods keep delivering this many times after their first error code,
 * as a utility thread that has not noticed the close yet would. */
#define LATE_TRIES 500

static void late(job *j, long attempts, long accepted) {
    pthread_mutex_lock(&mu);
    j->late_attempts += attempts;
    j->late_accepted += accepted;
    pthread_mutex_unlock(&mu);
}

static void *job_thread(void *p) {
    targ *a = (targ *)p;
    job *j = a->j;
    int t = a->t, i, rc = DSS_SUCCESS;
    long acc = 0, ref = 0;
    free(a);
    switch (j->kind) {
    case V1_POST:
    case V1_FLOOD:
        for (i = 0; j->kind == V1_FLOOD || i < j->n; i++) {
            item *it = new_item(j, t, i);
            rc = api1->deliver(j->utilid, v1_decode, NULL, it);
            if (rc == DSS_SUCCESS || rc == DSS_ERR_UDP_SEND_FAILED) {
                acc++;
            } else if (rc == DSS_ERR_OUT_OF_MEMORY && j->kind == V1_FLOOD) {
                /* Full: a fire-and-forget deliver returns at once; a
                 * flood waits for room and tries again. */
                item_done(it, NULL);
                ref++;
                sleep_ms(1);
            } else {
                item_done(it, NULL); /* refused: still ours */
                ref++;
                if (j->kind == V1_FLOOD) break;
            }
        }
        if (j->kind == V1_FLOOD) {
            long k, ok = 0;
            for (k = 0; k < LATE_TRIES; k++) {
                item *it = new_item(j, t, -1);
                int r = api1->deliver(j->utilid, v1_decode, k % 2 ? v1_return : NULL, it);
                if (r == DSS_SUCCESS || r == DSS_ERR_UDP_SEND_FAILED) ok++;
                if (!(k % 2) && (r == DSS_SUCCESS || r == DSS_ERR_UDP_SEND_FAILED)) continue; /* queued: not ours */
                item_done(it, NULL);
            }
            late(j, LATE_TRIES, ok);
        }
        break;
    case V1_CALL: {
        item *it = new_item(j, t, 0);
        it->blocking = 1;
        it->value = j->value;
        rc = api1->deliver(j->utilid, v1_decode, v1_return, it);
        pthread_mutex_lock(&mu);
        j->reply = it->reply;
        j->got_reply = it->got_reply;
        j->garbage = it->garbage;
        j->cancelled = it->calls > 0 && !it->got_reply && !it->garbage;
        pthread_mutex_unlock(&mu);
        item_done(it, NULL);
        break;
    }
    case V2_POST:
    case V2_FLOOD:
        for (i = 0; j->kind == V2_FLOOD || i < j->n; i++) {
            item *it = new_item(j, t, i);
            ADD_LOCKED(j->calls_begun);
            rc = api2->post(j->h, v2_run, v2_free, it, j->kind == V2_FLOOD ? -1 : j->timeout_ms);
            ADD_LOCKED(j->calls_returned);
            /* free_fn owns the item whatever happened */
            if (rc == DSS2_OK) {
                acc++;
            } else {
                ref++;
                if (j->kind == V2_FLOOD) break;
            }
        }
        if (j->kind == V2_FLOOD) {
            long k, ok = 0;
            char err[32];
            for (k = 0; k < LATE_TRIES; k++) {
                int r;
                if (k % 2) {
                    item it;
                    memset(&it, 0, sizeof it);
                    it.cx = j->cx;
                    r = api2->call(j->h, v2_run, v2_reply, &it, -1, 0, err, sizeof err);
                } else {
                    r = api2->post(j->h, v2_run, v2_free, new_item(j, t, -1), -1);
                    if (r != DSS2_OK) ref++; /* freed by post, counted like the others */
                }
                if (r == DSS2_OK) ok++;
                if (r != DSS2_ECLOSED && r != DSS2_ESTALE) ok++; /* any other answer is wrong too */
            }
            late(j, LATE_TRIES, ok);
        }
        break;
    case V2_CALL: {
        item it; /* borrowed by call() only while it blocks */
        char err[256];
        memset(&it, 0, sizeof it);
        it.cx = j->cx;
        it.cbref = j->cbref;
        it.thread = t;
        it.blocking = 1;
        it.value = j->value;
        err[0] = 'X'; /* must be overwritten on DSS2_EHANDLER */
        err[1] = 0;
        rc = api2->call(j->h, v2_run, v2_reply, &it, j->timeout_ms, j->nowait ? DSS2_NOWAIT : 0, err, sizeof err);
        pthread_mutex_lock(&mu);
        j->reply = it.reply;
        j->got_reply = it.got_reply;
        if (rc == DSS2_EHANDLER) memcpy(j->err, err, sizeof err);
        pthread_mutex_unlock(&mu);
        break;
    }
    case V2_HOLD: {
        item *it;
        rc = api2->hold(j->h);
        if (rc != DSS2_OK) break;
        sleep_ms(j->hold_ms);
        it = new_item(j, t, 0);
        rc = api2->post(j->h, v2_run, v2_free, it, -1);
        if (rc == DSS2_OK) acc++;
        sleep_ms(j->hold_ms);
        {
            int r2 = api2->release(j->h);
            if (rc == DSS2_OK) rc = r2;
        }
        break;
    }
    }
    finish(j, t, rc, acc, ref);
    return NULL;
}

/* This state's context; every Lua function comes here first, so it also
 * releases the registry references queued meanwhile. */
static ctx *ctx_of(lua_State *L) {
    ctx *cx;
    lua_getfield(L, LUA_REGISTRYINDEX, "dssutil.ctx");
    cx = (ctx *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (cx == NULL) luaL_error(L, "dssutil: not opened in this state");
    release_refs(L, cx);
    return cx;
}

static ctx *ctx_arg(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return ctx_of(L);
    {
        lua_Integer id = luaL_checkinteger(L, idx);
        ctx *cx = NULL;
        pthread_mutex_lock(&mu);
        if (id >= 0 && id < nctx) cx = ctxs[id];
        pthread_mutex_unlock(&mu);
        if (cx == NULL) luaL_error(L, "dssutil: no context %d", (int)id);
        return cx;
    }
}

/* Registers the job and starts its threads; returns the job id to Lua. */
static int start(lua_State *L, job *j) {
    int t, id;
    pthread_mutex_lock(&mu);
    if (njobs == MAX_JOBS) {
        pthread_mutex_unlock(&mu);
        free(j);
        return luaL_error(L, "dssutil: too many jobs");
    }
    id = njobs++;
    jobs[id] = j;
    /* Before any thread runs: the last one to finish sees them all. */
    j->started = j->nthreads;
    pthread_mutex_unlock(&mu);
    for (t = 0; t < j->nthreads; t++) {
        targ *a = (targ *)malloc(sizeof *a);
        if (a == NULL) abort();
        a->j = j;
        a->t = t;
        if (pthread_create(&j->tids[t], NULL, job_thread, a) != 0) abort();
    }
    lua_pushinteger(L, id);
    return 1;
}

static job *new_job(lua_State *L, enum kind kind, int n, int nthreads) {
    ctx *cx = ctx_of(L);
    job *j;
    luaL_checkany(L, 1);
    if (nthreads < 1 || nthreads > MAX_THREADS) luaL_error(L, "dssutil: 1..%d threads", MAX_THREADS);
    j = (job *)calloc(1, sizeof *j);
    if (j == NULL) luaL_error(L, "dssutil: out of memory");
    j->kind = kind;
    j->cx = cx;
    j->utilid = cx->utilid;
    j->h = cx->h;
    j->n = n;
    j->nthreads = nthreads;
    lua_pushvalue(L, 1);
    j->cbref = luaL_ref(L, LUA_REGISTRYINDEX);
    return j;
}

/* ------------------------------------------------------------------ */
/* Lua functions                                                        */
/* ------------------------------------------------------------------ */

static int l_v1_post(lua_State *L) {
    job *j = new_job(L, V1_POST, (int)luaL_checkinteger(L, 2), (int)luaL_optinteger(L, 3, 1));
    return start(L, j);
}

static int l_v1_call(lua_State *L) {
    job *j = new_job(L, V1_CALL, 1, 1);
    j->value = luaL_optinteger(L, 2, 0);
    return start(L, j);
}

static int l_v1_flood(lua_State *L) {
    return start(L, new_job(L, V1_FLOOD, 0, (int)luaL_optinteger(L, 2, 1)));
}

static int l_v2_post(lua_State *L) {
    job *j = new_job(L, V2_POST, (int)luaL_checkinteger(L, 2), (int)luaL_optinteger(L, 3, 1));
    j->timeout_ms = (long)luaL_optinteger(L, 4, -1);
    return start(L, j);
}

static int l_v2_call(lua_State *L) {
    job *j = new_job(L, V2_CALL, 1, 1);
    j->value = luaL_optinteger(L, 2, 0);
    j->timeout_ms = (long)luaL_optinteger(L, 3, -1);
    j->nowait = lua_toboolean(L, 4);
    return start(L, j);
}

static int l_v2_flood(lua_State *L) {
    return start(L, new_job(L, V2_FLOOD, 0, (int)luaL_optinteger(L, 2, 1)));
}

static int l_v2_hold_then(lua_State *L) {
    job *j = new_job(L, V2_HOLD, 1, 1);
    j->hold_ms = (long)luaL_optinteger(L, 2, 100);
    return start(L, j);
}

static job *job_arg(lua_State *L) {
    lua_Integer id = luaL_checkinteger(L, 1);
    job *j = NULL;
    pthread_mutex_lock(&mu);
    if (id >= 0 && id < njobs) j = jobs[id];
    pthread_mutex_unlock(&mu);
    if (j == NULL) luaL_error(L, "dssutil: no job %d", (int)id);
    return j;
}

static int l_done(lua_State *L) {
    job *j = job_arg(L);
    int done;
    pthread_mutex_lock(&mu);
    done = j->finished == j->started;
    pthread_mutex_unlock(&mu);
    lua_pushboolean(L, done);
    return 1;
}

#define SETINT(name, v)           \
    do {                          \
        lua_pushinteger(L, (v));  \
        lua_setfield(L, -2, name); \
    } while (0)

/* How many post() calls the job began and how many returned, without
 * joining: begun > returned while one waits for room. */
static int l_progress(lua_State *L) {
    job *j = job_arg(L);
    long begun, returned;
    pthread_mutex_lock(&mu);
    begun = j->calls_begun;
    returned = j->calls_returned;
    pthread_mutex_unlock(&mu);
    lua_pushinteger(L, begun);
    lua_pushinteger(L, returned);
    return 2;
}

/* Joins the job's threads (blocks: only call when nothing needs
 * dispatching by this state) and reports what they saw. */
static int l_join(lua_State *L) {
    job *j = job_arg(L);
    int t;
    if (!j->joined) {
        for (t = 0; t < j->started; t++) pthread_join(j->tids[t], NULL);
        j->joined = 1;
    }
    lua_newtable(L);
    lua_newtable(L);
    for (t = 0; t < j->started; t++) {
        lua_pushinteger(L, j->codes[t]);
        lua_rawseti(L, -2, t + 1);
    }
    lua_setfield(L, -2, "codes");
    SETINT("code", j->codes[0]);
    SETINT("accepted", j->accepted);
    SETINT("refused", j->refused);
    SETINT("late_attempts", j->late_attempts);
    SETINT("late_accepted", j->late_accepted);
    if (j->got_reply) SETINT("reply", j->reply);
    lua_pushboolean(L, j->garbage);
    lua_setfield(L, -2, "garbage");
    lua_pushboolean(L, j->cancelled);
    lua_setfield(L, -2, "cancelled");
    lua_pushstring(L, j->err);
    lua_setfield(L, -2, "err");
    return 1;
}

static int l_counters(lua_State *L) {
    ctx *cx = ctx_arg(L, 1);
    counters c;
    int st;
    pthread_mutex_lock(&mu);
    c = cx->c;
    st = cx->v2_status_at_cancel;
    pthread_mutex_unlock(&mu);
    lua_newtable(L);
    SETINT("v1_decoded", c.v1_decoded);
    SETINT("v1_cancelled", c.v1_cancelled);
    SETINT("v1_returned", c.v1_returned);
    SETINT("v1_garbage", c.v1_garbage);
    SETINT("v1_garbage_with_state", c.v1_garbage_with_state);
    SETINT("v1_cancel_calls", c.v1_cancel_calls);
    SETINT("v2_ran", c.v2_ran);
    SETINT("v2_freed_ok", c.v2_freed_ok);
    SETINT("v2_freed_other", c.v2_freed_other);
    SETINT("v2_replied", c.v2_replied);
    SETINT("v2_cancel_calls", c.v2_cancel_calls);
    SETINT("v2_finalized", c.v2_finalized);
    SETINT("v2_status_at_cancel", st);
    SETINT("inline_ran", c.inline_ran);
    SETINT("inline_freed_ok", c.inline_freed_ok);
    SETINT("inline_freed_other", c.inline_freed_other);
    SETINT("inline_bad", c.inline_bad);
    SETINT("double_calls", c.double_calls);
    SETINT("null_state", c.null_state);
    return 1;
}

/* Deliveries made on the Lua thread itself. */
static int l_here_v1(lua_State *L) {
    ctx *cx = ctx_of(L);
    int blocking = lua_toboolean(L, 2);
    job j;
    item *it;
    int rc;
    luaL_checkany(L, 1);
    memset(&j, 0, sizeof j);
    j.cx = cx;
    lua_pushvalue(L, 1);
    j.cbref = luaL_ref(L, LUA_REGISTRYINDEX);
    it = new_item(&j, -1, 0);
    it->j = NULL; /* j is on this stack: the item owns the reference */
    it->own_ref = 1;
    it->blocking = blocking;
    rc = api1->deliver(cx->utilid, v1_decode, blocking ? v1_return : NULL, it);
    /* Refused items are still ours; a blocking item is never touched by
     * darksidesync once deliver() returned (its decoder does not free it). */
    if (blocking || (rc != DSS_SUCCESS && rc != DSS_ERR_UDP_SEND_FAILED)) item_done(it, L);
    lua_pushinteger(L, rc);
    return 1;
}

/* An item whose decoder pushes the callback and one argument. */
typedef struct one_arg {
    ctx *cx;
    int cbref;
    int shape;
} one_arg;

static int one_arg_decode(lua_State *L, void *pData, void *utilid) {
    one_arg *o = (one_arg *)pData;
    (void)utilid;
    if (L != NULL) {
        if (o->shape == 3) lua_pushstring(L, "below what the decoder returns");
        lua_rawgeti(L, LUA_REGISTRYINDEX, o->cbref);
        if (o->shape == 2)
            lua_pushnil(L);
        else
            lua_pushinteger(L, o->shape == 1 ? 42 : 7);
    }
    release_ref(o->cx, L, o->cbref);
    free(o);
    return L != NULL ? 2 : 0;
}

static int l_here_v1_one(lua_State *L) {
    ctx *cx = ctx_of(L);
    one_arg *o;
    int rc;
    luaL_checkany(L, 1);
    o = (one_arg *)malloc(sizeof *o);
    if (o == NULL) return luaL_error(L, "dssutil: out of memory");
    o->cx = cx;
    o->shape = (int)luaL_checkinteger(L, 2);
    lua_pushvalue(L, 1);
    o->cbref = luaL_ref(L, LUA_REGISTRYINDEX);
    rc = api1->deliver(cx->utilid, one_arg_decode, NULL, o);
    if (rc != DSS_SUCCESS && rc != DSS_ERR_UDP_SEND_FAILED) {
        luaL_unref(L, LUA_REGISTRYINDEX, o->cbref);
        free(o);
    }
    lua_pushinteger(L, rc);
    return 1;
}

static int l_here_v2_post(lua_State *L) {
    ctx *cx = ctx_of(L);
    job j;
    item *it;
    luaL_checkany(L, 1);
    memset(&j, 0, sizeof j);
    j.cx = cx;
    lua_pushvalue(L, 1);
    j.cbref = luaL_ref(L, LUA_REGISTRYINDEX);
    it = new_item(&j, -1, 0);
    it->j = NULL; /* j is on this stack: the item owns the reference */
    it->own_ref = 1;
    /* free_fn runs whatever happens, and releases the reference. */
    lua_pushinteger(L, api2->post(cx->h, v2_run, v2_free, it, (long)luaL_optinteger(L, 2, -1)));
    return 1;
}

static int l_here_v2_call(lua_State *L) {
    ctx *cx = ctx_of(L);
    item it;
    char err[64];
    memset(&it, 0, sizeof it);
    it.cx = cx;
    it.cbref = LUA_NOREF;
    lua_pushinteger(L, api2->call(cx->h, v2_run, v2_reply, &it, 1000, 0, err, sizeof err));
    return 1;
}

/* A post_inline() item: the bytes themselves travel in the item. */
typedef struct inline_item {
    ctx *cx;
    int cbref;     /* the Lua callback */
    int itself;    /* run() calls it itself and returns DSS2_RAN */
    lua_Integer magic;
} inline_item;

#define INLINE_MAGIC 0x5eedf00dL

static int inline_ok(const void *p) {
    const inline_item *it = (const inline_item *)p;
    return ((uintptr_t)p % 8) == 0 && it->magic == INLINE_MAGIC;
}

static int inline_run(lua_State *L, void *data, dss2_handle h) {
    inline_item *it = (inline_item *)data;
    (void)h;
    if (!inline_ok(data)) {
        COUNT(it->cx, inline_bad, 1);
        return 0;
    }
    COUNT(it->cx, inline_ran, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, it->cbref);
    lua_pushinteger(L, 42);
    if (!it->itself) return 2;
    if (lua_pcall(L, 1, 0, 0) != 0) lua_pop(L, 1);
    return DSS2_RAN;
}

static void inline_free(void *data, int outcome) {
    inline_item *it = (inline_item *)data;
    if (!inline_ok(data)) {
        COUNT(it->cx, inline_bad, 1);
        return;
    }
    if (outcome == DSS2_OK)
        COUNT(it->cx, inline_freed_ok, 1);
    else
        COUNT(it->cx, inline_freed_other, 1);
    it->magic = 0; /* a second free of this copy would count as bad */
}

/* here_v2_inline(cb, itself, timeout_ms [, len]) -> code: a post_inline()
 * from the Lua thread. `len` (default the item's size) tests the limit. */
static int l_here_v2_inline(lua_State *L) {
    ctx *cx = ctx_of(L);
    inline_item it;
    size_t len = (size_t)luaL_optinteger(L, 4, (lua_Integer)sizeof it);
    unsigned char big[DSS2_INLINE_MAX + 8];
    luaL_checkany(L, 1);
    if (!DSS2_HAS(api2, post_inline)) return luaL_error(L, "no post_inline");
    memset(&it, 0, sizeof it);
    it.cx = cx;
    it.itself = lua_toboolean(L, 2);
    it.magic = INLINE_MAGIC;
    lua_pushvalue(L, 1);
    it.cbref = luaL_ref(L, LUA_REGISTRYINDEX);
    memset(big, 0, sizeof big);
    memcpy(big, &it, sizeof it);
    lua_pushinteger(L, api2->post_inline(cx->h, inline_run, inline_free, big, len,
                                         (long)luaL_optinteger(L, 3, -1)));
    return 1;
}

static int dummy_decode(lua_State *L, void *d, void *u) {
    (void)L, (void)d, (void)u;
    return 0;
}

static void dummy_cancel(void *u) {
    (void)u;
}

static int dummy_run(lua_State *L, void *d, dss2_handle h) {
    (void)L, (void)d, (void)h;
    return 0;
}

/* Every argument-checking path of both versions, from the Lua thread. */
static int l_codes(lua_State *L) {
    ctx *cx = ctx_of(L);
    int ec = 0;
    void *id;
    dss2_handle h = 0;
    char buf[8];
    dss2_stats_t st;
    static const char unknown_lib = 0;
    lua_newtable(L);
    /* 1v0 */
    id = api1->reg(L, (void *)&libid1, dummy_cancel, &ec);
    SETINT("v1_reg_again", ec);
    lua_pushboolean(L, id == cx->utilid);
    lua_setfield(L, -2, "v1_reg_again_same");
    ec = 0;
    id = api1->reg(L, (void *)&unknown_lib, NULL, &ec);
    SETINT("v1_reg_nocancel", ec);
    lua_pushboolean(L, id == NULL);
    lua_setfield(L, -2, "v1_reg_nocancel_null");
    ec = 0;
    id = api1->reg(NULL, (void *)&unknown_lib, dummy_cancel, &ec);
    SETINT("v1_reg_nostate", ec);
    (void)api1->reg(L, (void *)&unknown_lib, NULL, NULL); /* NULL errcode must not crash */
    ec = 0;
    id = api1->getutilid(L, (void *)&libid1, &ec);
    SETINT("v1_getutilid", ec);
    lua_pushboolean(L, id == cx->utilid);
    lua_setfield(L, -2, "v1_getutilid_same");
    ec = 0;
    id = api1->getutilid(L, (void *)&unknown_lib, &ec);
    SETINT("v1_getutilid_unknown", ec);
    ec = 0;
    (void)api1->getutilid(NULL, (void *)&libid1, &ec);
    SETINT("v1_getutilid_nostate", ec);
    SETINT("v1_deliver_null", api1->deliver(NULL, dummy_decode, NULL, NULL));
    SETINT("v1_deliver_garbage", api1->deliver((void *)(uintptr_t)0xdeadbeefUL, dummy_decode, NULL, NULL));
    SETINT("v1_deliver_nodecoder", api1->deliver(cx->utilid, NULL, NULL, NULL));
    SETINT("v1_unreg_null", api1->unreg(NULL));
    {
        /* A state without darksidesync: the API pointers are process-wide,
         * so a utility could try; it must be told "not started". */
        lua_State *bare = luaL_newstate();
        if (bare != NULL) {
            ec = 0;
            id = api1->reg(bare, (void *)&libid1, dummy_cancel, &ec);
            SETINT("v1_reg_bare", ec);
            ec = 0;
            (void)api1->getutilid(bare, (void *)&libid1, &ec);
            SETINT("v1_getutilid_bare", ec);
            SETINT("v2_reg_bare", api2->reg(bare, &libid2, "dssutil", NULL, NULL, &h));
            lua_close(bare);
        }
    }
    SETINT("v1_unreg_garbage", api1->unreg((void *)(uintptr_t)0x12345678UL));
    /* 2v0 */
    SETINT("v2_reg_again", api2->reg(L, &libid2, "dssutil", v2_cancel, cx, &h));
    lua_pushboolean(L, h == cx->h);
    lua_setfield(L, -2, "v2_reg_again_same");
    SETINT("v2_reg_noout", api2->reg(L, &libid2, "dssutil", v2_cancel, cx, NULL));
    SETINT("v2_reg_nostate", api2->reg(NULL, &libid2, "dssutil", v2_cancel, cx, &h));
    SETINT("v2_reg_nolibid", api2->reg(L, NULL, "dssutil", v2_cancel, cx, &h));
    h = 0;
    SETINT("v2_getid", api2->getid(L, &libid2, &h));
    lua_pushboolean(L, h == cx->h);
    lua_setfield(L, -2, "v2_getid_same");
    SETINT("v2_getid_unknown", api2->getid(L, &unknown_lib, &h));
    SETINT("v2_post_zero", api2->post(0, dummy_run, NULL, NULL, 0));
    SETINT("v2_post_garbage", api2->post(0x00000abc00000001ULL, dummy_run, NULL, NULL, 0));
    SETINT("v2_post_norun", api2->post(cx->h, NULL, NULL, NULL, 0));
    SETINT("v2_call_zero", api2->call(0, dummy_run, NULL, NULL, 0, 0, buf, sizeof buf));
    SETINT("v2_call_norun", api2->call(cx->h, NULL, NULL, NULL, 0, 0, buf, sizeof buf));
    SETINT("v2_hold_zero", api2->hold(0));
    SETINT("v2_release_zero", api2->release(0));
    SETINT("v2_release_none", api2->release(cx->h));
    SETINT("v2_unreg_zero", api2->unreg(0));
    SETINT("v2_status_zero", api2->status(0));
    SETINT("v2_stats_null", api2->stats(cx->h, NULL));
    st.size = 0;
    SETINT("v2_stats_small", api2->stats(cx->h, &st));
    if (DSS2_HAS(api2, waits)) {
        dss2_waits_t w;
        SETINT("v2_waits_null", api2->waits(cx->h, 0, NULL));
        w.size = 0;
        SETINT("v2_waits_small", api2->waits(cx->h, 0, &w));
        w.size = sizeof w;
        SETINT("v2_waits_badflags", api2->waits(cx->h, 2, &w));
        SETINT("v2_waits_zero", api2->waits(0, 0, &w));
    }
    lua_pushstring(L, api2->strerror(DSS2_ETIMEDOUT));
    lua_setfield(L, -2, "v2_strerror_timedout");
    lua_pushstring(L, api2->strerror(12345));
    lua_setfield(L, -2, "v2_strerror_unknown");
    lua_pushstring(L, api2->strerror(DSS_ERR_INVALID_UTILID));
    lua_setfield(L, -2, "v2_strerror_v1");
    return 1;
}

static int l_v1_unreg(lua_State *L) {
    ctx *cx = ctx_arg(L, 1);
    lua_pushinteger(L, api1->unreg(cx->utilid));
    return 1;
}

static int l_v1_deliver_stale(lua_State *L) {
    ctx *cx = ctx_arg(L, 1);
    lua_pushinteger(L, api1->deliver(cx->utilid, dummy_decode, NULL, NULL));
    return 1;
}

static int l_v1_reregister(lua_State *L) {
    ctx *cx = ctx_of(L);
    int ec = 0;
    void *id = api1->reg(L, (void *)&libid1, v1_cancel, &ec);
    if (id != NULL) cx->utilid = id;
    lua_pushinteger(L, ec);
    return 1;
}

static int l_v2_reregister(lua_State *L) {
    ctx *cx = ctx_of(L);
    dss2_handle h = 0;
    int rc = api2->reg(L, &libid2, "dssutil", v2_cancel, cx, &h);
    if (rc == DSS2_OK) {
        cx->h = h;
        set_finalizer(cx);
    }
    lua_pushinteger(L, rc);
    return 1;
}

static int l_v2_unreg(lua_State *L) {
    lua_pushinteger(L, api2->unreg(ctx_arg(L, 1)->h));
    return 1;
}

static int l_v2_status(lua_State *L) {
    lua_pushinteger(L, api2->status(ctx_arg(L, 1)->h));
    return 1;
}

static int l_v2_hold(lua_State *L) {
    lua_pushinteger(L, api2->hold(ctx_of(L)->h));
    return 1;
}

static int l_v2_release(lua_State *L) {
    lua_pushinteger(L, api2->release(ctx_of(L)->h));
    return 1;
}

static int l_v2_stats(lua_State *L) {
    dss2_stats_t st;
    int rc;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    rc = api2->stats(ctx_arg(L, 1)->h, &st);
    if (rc != DSS2_OK) {
        lua_pushnil(L);
        lua_pushinteger(L, rc);
        return 2;
    }
    lua_newtable(L);
    SETINT("posted", (lua_Integer)st.posted);
    SETINT("ran", (lua_Integer)st.ran);
    SETINT("cancelled", (lua_Integer)st.cancelled);
    SETINT("refused", (lua_Integer)st.refused);
    SETINT("replies", (lua_Integer)st.replies);
    SETINT("errors", (lua_Integer)st.errors);
    SETINT("timeouts", (lua_Integer)st.timeouts);
    SETINT("keep_alive", (lua_Integer)st.keep_alive);
    return 1;
}

static int l_v2_waits(lua_State *L) {
    dss2_waits_t w;
    int rc;
    if (!DSS2_HAS(api2, waits)) return luaL_error(L, "dssutil: this darksidesync has no waits()");
    memset(&w, 0, sizeof w);
    w.size = sizeof w;
    rc = api2->waits(ctx_of(L)->h, lua_toboolean(L, 1) ? DSS2_WAITS_STATE : 0, &w);
    if (rc != DSS2_OK) {
        lua_pushnil(L);
        lua_pushinteger(L, rc);
        return 2;
    }
    lua_newtable(L);
    SETINT("enabled", (lua_Integer)w.enabled);
    SETINT("count", (lua_Integer)w.count);
    SETINT("p50_ns", (lua_Integer)w.p50_ns);
    SETINT("p99_ns", (lua_Integer)w.p99_ns);
    SETINT("max_ns", (lua_Integer)w.max_ns);
    SETINT("total_ns", (lua_Integer)w.total_ns);
    return 1;
}

static int l_set_unreg_on_cancel(lua_State *L) {
    ctx *cx = ctx_of(L);
    cx->v1_unreg_on_cancel = lua_toboolean(L, 1);
    cx->v2_unreg_on_cancel = lua_toboolean(L, 2);
    return 0;
}

static int l_ctx(lua_State *L) {
    lua_pushinteger(L, ctx_of(L)->id);
    return 1;
}

static int l_sleep(lua_State *L) {
    sleep_ms((long)luaL_checkinteger(L, 1));
    return 0;
}

static const luaL_Reg funcs[] = {
    {"ctx", l_ctx},
    {"v1_post", l_v1_post},
    {"v1_call", l_v1_call},
    {"v1_flood", l_v1_flood},
    {"v2_post", l_v2_post},
    {"v2_call", l_v2_call},
    {"v2_flood", l_v2_flood},
    {"v2_hold_then", l_v2_hold_then},
    {"join", l_join},
    {"done", l_done},
    {"progress", l_progress},
    {"here_v1", l_here_v1},
    {"here_v1_one", l_here_v1_one},
    {"here_v2_post", l_here_v2_post},
    {"here_v2_call", l_here_v2_call},
    {"here_v2_inline", l_here_v2_inline},
    {"codes", l_codes},
    {"counters", l_counters},
    {"v1_unreg", l_v1_unreg},
    {"v1_deliver_stale", l_v1_deliver_stale},
    {"v1_reregister", l_v1_reregister},
    {"v2_unreg", l_v2_unreg},
    {"v2_reregister", l_v2_reregister},
    {"v2_status", l_v2_status},
    {"v2_hold", l_v2_hold},
    {"v2_release", l_v2_release},
    {"v2_stats", l_v2_stats},
    {"v2_waits", l_v2_waits},
    {"set_unreg_on_cancel", l_set_unreg_on_cancel},
    {"sleep", l_sleep},
    {NULL, NULL},
};

/* Frees the process-global tables at exit (after the tests joined their
 * threads), so leak checkers see no lost blocks. */
__attribute__((destructor)) static void dssutil_fini(void) {
    int i;
    for (i = 0; i < njobs; i++) free(jobs[i]);
    for (i = 0; i < nctx; i++) {
        free(ctxs[i]->dead);
        free(ctxs[i]);
    }
    njobs = nctx = 0;
}

int luaopen_dssutil(lua_State *L) {
    ctx *cx;
    int ec = 0, rc;
    lua_getfield(L, LUA_REGISTRYINDEX, DSS_REGISTRY_NAME);
    if (!lua_istable(L, -1)) return luaL_error(L, "dssutil: require \"darksidesync\" first");
    lua_getfield(L, -1, DSS_API_1v0_KEY);
    lua_getfield(L, -2, DSS_API_2v0_KEY);
    /* States may open on different threads at once: publish under the lock
     * (every state hands out the same process-wide tables). */
    pthread_mutex_lock(&mu);
    api1 = (const DSS_api_1v0_t *)lua_touserdata(L, -2);
    api2 = (const dss_api_2v0_t *)lua_touserdata(L, -1);
    pthread_mutex_unlock(&mu);
    lua_pop(L, 3);
    if (api1 == NULL || strcmp(api1->version, DSS_API_1v0_KEY) != 0) return luaL_error(L, "dssutil: no DSS API 1v0");
    if (api2 == NULL || strcmp(api2->version, DSS_API_2v0_KEY) != 0 || !DSS2_HAS(api2, strerror))
        return luaL_error(L, "dssutil: no DSS API 2v0");

    cx = (ctx *)calloc(1, sizeof *cx);
    if (cx == NULL) return luaL_error(L, "dssutil: out of memory");
    cx->v1_unreg_on_cancel = 1; /* what the 1v0 contract asks of a utility */
    cx->v2_unreg_on_cancel = 1;
    pthread_mutex_lock(&mu);
    if (nctx == MAX_CTX) {
        pthread_mutex_unlock(&mu);
        free(cx);
        return luaL_error(L, "dssutil: too many states");
    }
    cx->id = nctx;
    ctxs[nctx++] = cx;
    pthread_mutex_unlock(&mu);

    cx->utilid = api1->reg(L, (void *)&libid1, v1_cancel, &ec);
    if (cx->utilid == NULL || ec != DSS_SUCCESS) return luaL_error(L, "dssutil: 1v0 reg failed: %d", ec);
    rc = api2->reg(L, &libid2, "dssutil", v2_cancel, cx, &cx->h);
    if (rc != DSS2_OK) return luaL_error(L, "dssutil: 2v0 reg failed: %s", api2->strerror(rc));
    set_finalizer(cx);
    lua_pushlightuserdata(L, cx);
    lua_setfield(L, LUA_REGISTRYINDEX, "dssutil.ctx");

    lua_newtable(L);
    compat_setfuncs(L, funcs);
    return 1;
}
