/*
 * dssbench -- the C utility the benchmarks drive (`cargo xtask bench`).
 *
 * Written only against include/darksidesync.h and the Lua C API, like any
 * third party's utility: it measures the paths binding authors have.
 * Loaded by a stock interpreter after darksidesync:
 *
 *     local dss = require "darksidesync"
 *     local b   = require "dssbench"
 *
 * At open it registers itself in the state with DSS API 1v0 and with DSS
 * API 2v0. Every item carries one integer; its decoder (1v0) or run (2v0)
 * pushes the job's callback (kept in the registry under a fixed key, so
 * each state has its own) and that integer. Producer threads of one job
 * send the distinct values 1..total, so the Lua side can check that every
 * item arrived exactly once (count and sum).
 *
 *   b.post1(cb, producers, per)   -> job   1v0 deliver(), fire-and-forget (it never
 *                                          waits: refused on a full queue, tried again)
 *   b.call1(cb, calls, gap_us)    -> job   1v0 blocking deliver(); reply = cb's result
 *   b.post2(cb, producers, per)   -> job   2v0 post(), waiting for room
 *   b.post2nw(cb, producers, per) -> job   2v0 post(..., 0), never waiting (refused
 *                                          DSS2_EFULL on a full queue, tried again)
 *   b.call2(cb, calls, gap_us)    -> job   2v0 call(); reply = cb's result
 *   job:wait()                    -> true  joins the job's threads
 *   job:done()                    -> boolean
 *   job:result()                  -> { sent =, failed =, bad_replies =,
 *                                          full_retries = (a no-wait post refused
 *                                          as full and tried again),
 *                                          p50_us =, p99_us =, max_us =,
 *                                          error = "code (text)" of a failed delivery }
 *   b.pcall_loop(cb, n)           calls cb(i) for i = 1..n through lua_pcall,
 *                                 fetching cb as a decoder does (the limit
 *                                 of any path that calls Lua per item)
 *   b.cancelled()                 -> items cancelled so far (decoder(NULL))
 *   b.now()                       -> monotonic seconds
 *
 * A call's reply is checked: cb(i) must return i + 1, or the call counts
 * in bad_replies.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

#include "darksidesync.h"

/* Lua 5.1 and LuaJIT (built against the 5.1 headers, its ABI): the few
 * 5.2+ calls used here, spelt with 5.1's API. */
#if LUA_VERSION_NUM < 502
#define LUA_OK 0
static void compat_rawgetp(lua_State *L, int idx, const void *p) {
    lua_pushlightuserdata(L, (void *)p);
    lua_rawget(L, idx);
}
static void compat_rawsetp(lua_State *L, int idx, const void *p) {
    lua_pushlightuserdata(L, (void *)p);
    lua_insert(L, -2);
    lua_rawset(L, idx);
}
static void compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
    for (; l->name != NULL; l++) {
        for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#define lua_rawgetp(L, idx, p) compat_rawgetp(L, idx, p)
#define lua_rawsetp(L, idx, p) compat_rawsetp(L, idx, p)
#define luaL_setfuncs(L, l, nup) compat_setfuncs(L, l, nup)
#define luaL_setmetatable(L, name) (luaL_getmetatable(L, name), lua_setmetatable(L, -2))
#define luaL_newlibtable(L, l) lua_createtable(L, 0, (int)(sizeof(l) / sizeof *(l)) - 1)
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs(L, l, 0))
/* Every number is a float there: an integral one is the reply's integer. */
#define lua_isinteger(L, i) \
    (lua_type(L, i) == LUA_TNUMBER && lua_tonumber(L, i) == (lua_Number)lua_tointeger(L, i))
#endif

#define MAX_PRODUCERS 16
#define JOB_META "dssbench.job"

/* The APIs are static structs of the module, the same for every state. */
static const DSS_api_1v0_t *api1;
static const dss_api_2v0_t *api2;
/* Identify the library to both APIs, and key the callback in the registry. */
static const char lib1_id, lib2_id, callback_key;
static atomic_long cancelled;

/* This state's registrations (malloc'd: the cancel callbacks may run after
 * Lua freed everything it owns; a few bytes per state are never freed). */
typedef struct context {
    void *utilid;
    dss2_handle handle;
} context;

typedef enum { POST1, CALL1, POST2, POST2NW, CALL2 } job_kind;

typedef struct job {
    job_kind kind;
    context *ctx;
    int producers;
    long per;      /* items per producer, or calls */
    long gap_us;   /* pause between calls */
    pthread_t threads[MAX_PRODUCERS];
    int joined;
    atomic_int finished;
    atomic_long sent, failed, bad_replies;
    atomic_long full_retries; /* a no-wait post refused as full, retried */
    atomic_int error; /* the code of the last failed delivery, 0 if none */
    uint64_t *latencies_ns; /* calls only */
} job;

typedef struct worker {
    job *j;
    long first; /* first value this thread sends */
} worker;

/* A blocking call's item lives on the caller's stack. */
typedef struct call_slot {
    long value;
    long answer;
    int answered;
} call_slot;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    if (us > 0) nanosleep(&ts, NULL);
}

/* Pushes the callback and the integer: what every decoder and run does. */
static int push_item(lua_State *L, long value) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &callback_key);
    lua_pushinteger(L, (lua_Integer)value);
    return 2;
}

/* ---- 1v0 ------------------------------------------------------------- */

static int decode1(lua_State *L, void *data, void *utilid) {
    (void)utilid;
    if (L == NULL) {
        atomic_fetch_add(&cancelled, 1);
        return 0;
    }
    return push_item(L, (long)(intptr_t)data);
}

static int decode1_call(lua_State *L, void *data, void *utilid) {
    (void)utilid;
    if (L == NULL) {
        atomic_fetch_add(&cancelled, 1);
        return 0;
    }
    return push_item(L, ((call_slot *)data)->value);
}

static int return1(lua_State *L, void *data, void *utilid, int garbage) {
    call_slot *slot = data;
    (void)utilid;
    if (!garbage && L != NULL && lua_gettop(L) >= 1 && lua_isinteger(L, 1)) {
        slot->answer = (long)lua_tointeger(L, 1);
        slot->answered = 1;
    }
    return 0;
}

static void cancel1(void *utilid) {
    api1->unreg(utilid);
}

/* ---- 2v0 ------------------------------------------------------------- */

static int run2(lua_State *L, void *data, dss2_handle h) {
    (void)h;
    return push_item(L, (long)(intptr_t)data);
}

static int run2_call(lua_State *L, void *data, dss2_handle h) {
    (void)h;
    return push_item(L, ((call_slot *)data)->value);
}

static void free2(void *data, int outcome) {
    (void)data;
    if (outcome != DSS2_OK) atomic_fetch_add(&cancelled, 1);
}

/* A no-wait post refused as full is tried again: not a cancellation. */
static void free2_nowait(void *data, int outcome) {
    (void)data;
    if (outcome != DSS2_OK && outcome != DSS2_EFULL) atomic_fetch_add(&cancelled, 1);
}

static int reply2(lua_State *L, void *data, dss2_handle h, int nresults) {
    call_slot *slot = data;
    (void)h;
    if (nresults >= 1 && lua_isinteger(L, 1)) {
        slot->answer = (long)lua_tointeger(L, 1);
        slot->answered = 1;
    }
    return 0;
}

static void cancel2(dss2_handle h, void *ud) {
    (void)ud;
    api2->unreg(h);
}

/* ---- producer threads ------------------------------------------------ */

static void *produce(void *arg) {
    worker *w = arg;
    job *j = w->j;
    long sent = 0, failed = 0;
    long retries = 0;
    for (long i = 0; i < j->per; i++) {
        void *data = (void *)(intptr_t)(w->first + i);
        int rc;
        if (j->kind == POST1) {
            /* A fire-and-forget deliver() never waits: on a full queue it
             * refuses (we keep data) and a 1v0 utility tries again. */
            while ((rc = api1->deliver(j->ctx->utilid, decode1, NULL, data)) ==
                   DSS_ERR_OUT_OF_MEMORY) {
                retries++;
                sched_yield();
            }
        } else if (j->kind == POST2NW) {
            /* post(..., 0) never waits either: DSS2_EFULL, tried again. */
            while ((rc = api2->post(j->ctx->handle, run2, free2_nowait, data, 0)) ==
                   DSS2_EFULL) {
                retries++;
                sched_yield();
            }
        } else {
            rc = api2->post(j->ctx->handle, run2, free2, data, -1);
        }
        if (rc == (j->kind == POST1 ? DSS_SUCCESS : DSS2_OK)) {
            sent++;
        } else {
            failed++;
            atomic_store(&j->error, rc);
            break;
        }
    }
    atomic_fetch_add(&j->sent, sent);
    atomic_fetch_add(&j->failed, failed);
    atomic_fetch_add(&j->full_retries, retries);
    atomic_fetch_add(&j->finished, 1);
    free(w);
    return NULL;
}

static void *call(void *arg) {
    worker *w = arg;
    job *j = w->j;
    long sent = 0, failed = 0, bad = 0;
    char errbuf[128];
    for (long i = 0; i < j->per; i++) {
        call_slot slot = {w->first + i, 0, 0};
        sleep_us(j->gap_us);
        uint64_t t0 = now_ns();
        int rc = j->kind == CALL1
                     ? api1->deliver(j->ctx->utilid, decode1_call, return1, &slot)
                     : api2->call(j->ctx->handle, run2_call, reply2, &slot, -1, 0, errbuf,
                                  sizeof errbuf);
        j->latencies_ns[i] = now_ns() - t0;
        if (rc != (j->kind == CALL1 ? DSS_SUCCESS : DSS2_OK)) {
            failed++;
            atomic_store(&j->error, rc);
            break;
        }
        sent++;
        if (!slot.answered || slot.answer != slot.value + 1) bad++;
    }
    atomic_fetch_add(&j->sent, sent);
    atomic_fetch_add(&j->failed, failed);
    atomic_fetch_add(&j->bad_replies, bad);
    atomic_fetch_add(&j->finished, 1);
    free(w);
    return NULL;
}

/* ---- Lua functions --------------------------------------------------- */

static context *ctx_of(lua_State *L) {
    return lua_touserdata(L, lua_upvalueindex(1));
}

static void set_callback(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &callback_key);
}

static int start(lua_State *L, job_kind kind) {
    int calls = kind == CALL1 || kind == CALL2;
    set_callback(L);
    /* (cb, producers, per) or (cb, calls, gap_us) */
    long a2 = (long)luaL_checkinteger(L, 2), a3 = (long)luaL_checkinteger(L, 3);
    int producers = calls ? 1 : (int)a2;
    long per = calls ? a2 : a3, gap_us = calls ? a3 : 0;
    luaL_argcheck(L, producers >= 1 && producers <= MAX_PRODUCERS, 2, "1..16 producers");
    luaL_argcheck(L, per >= 0, calls ? 2 : 3, "a count >= 0");
    luaL_argcheck(L, gap_us >= 0, 3, "a gap >= 0");
    job **ud = lua_newuserdata(L, sizeof *ud);
    *ud = NULL;
    luaL_setmetatable(L, JOB_META);
    job *j = calloc(1, sizeof *j);
    if (j == NULL) return luaL_error(L, "dssbench: out of memory");
    *ud = j;
    j->kind = kind;
    j->ctx = ctx_of(L);
    j->per = per;
    j->gap_us = gap_us;
    if (calls) {
        j->latencies_ns = calloc((size_t)j->per + 1, sizeof *j->latencies_ns);
        if (j->latencies_ns == NULL) return luaL_error(L, "dssbench: out of memory");
    }
    /* j->producers counts the threads started, the ones join() waits for. */
    for (int p = 0; p < producers; p++) {
        worker *w = malloc(sizeof *w);
        if (w == NULL) return luaL_error(L, "dssbench: out of memory");
        w->j = j;
        w->first = 1 + (long)p * j->per;
        if (pthread_create(&j->threads[p], NULL, calls ? call : produce, w) != 0) {
            free(w);
            return luaL_error(L, "dssbench: cannot start a thread");
        }
        j->producers = p + 1;
    }
    return 1;
}

static int l_post1(lua_State *L) { return start(L, POST1); }
static int l_call1(lua_State *L) { return start(L, CALL1); }
static int l_post2(lua_State *L) { return start(L, POST2); }
static int l_post2nw(lua_State *L) { return start(L, POST2NW); }
static int l_call2(lua_State *L) { return start(L, CALL2); }

static job *check_job(lua_State *L) {
    job **ud = luaL_checkudata(L, 1, JOB_META);
    if (*ud == NULL) luaL_error(L, "dssbench: job not started");
    return *ud;
}

static void join(job *j) {
    if (j->joined) return;
    for (int p = 0; p < j->producers; p++) pthread_join(j->threads[p], NULL);
    j->joined = 1;
}

static int l_job_wait(lua_State *L) {
    join(check_job(L));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_job_done(lua_State *L) {
    job *j = check_job(L);
    lua_pushboolean(L, atomic_load(&j->finished) >= j->producers);
    return 1;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double percentile_us(const uint64_t *sorted, long n, double p) {
    if (n <= 0) return 0.0;
    long i = (long)((double)(n - 1) * p + 0.5);
    return (double)sorted[i] / 1000.0;
}

static int l_job_result(lua_State *L) {
    job *j = check_job(L);
    join(j);
    long sent = atomic_load(&j->sent);
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, sent);
    lua_setfield(L, -2, "sent");
    lua_pushinteger(L, atomic_load(&j->failed));
    lua_setfield(L, -2, "failed");
    lua_pushinteger(L, atomic_load(&j->bad_replies));
    lua_setfield(L, -2, "bad_replies");
    lua_pushinteger(L, atomic_load(&j->full_retries));
    lua_setfield(L, -2, "full_retries");
    int error = atomic_load(&j->error);
    if (error != 0) {
        lua_pushfstring(L, "%d (%s)", error, api2->strerror(error));
        lua_setfield(L, -2, "error");
    }
    if (j->latencies_ns != NULL) {
        qsort(j->latencies_ns, (size_t)sent, sizeof *j->latencies_ns, cmp_u64);
        lua_pushnumber(L, percentile_us(j->latencies_ns, sent, 0.50));
        lua_setfield(L, -2, "p50_us");
        lua_pushnumber(L, percentile_us(j->latencies_ns, sent, 0.99));
        lua_setfield(L, -2, "p99_us");
        lua_pushnumber(L, percentile_us(j->latencies_ns, sent, 1.0));
        lua_setfield(L, -2, "max_us");
    }
    return 1;
}

/* A job collected with threads still running is leaked, not freed under
 * them (the scenarios always wait). */
static int l_job_gc(lua_State *L) {
    job **ud = luaL_checkudata(L, 1, JOB_META);
    job *j = *ud;
    *ud = NULL;
    if (j != NULL && (j->joined || atomic_load(&j->finished) >= j->producers)) {
        join(j);
        free(j->latencies_ns);
        free(j);
    }
    return 0;
}

static int l_pcall_loop(lua_State *L) {
    set_callback(L);
    lua_Integer n = luaL_checkinteger(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        push_item(L, (long)i);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) return lua_error(L);
    }
    return 0;
}

static int l_cancelled(lua_State *L) {
    lua_pushinteger(L, atomic_load(&cancelled));
    return 1;
}

static int l_now(lua_State *L) {
    lua_pushnumber(L, now_s());
    return 1;
}

/* The published API table of `key`, or a Lua error. */
static const void *lookup(lua_State *L, const char *key) {
    lua_getfield(L, LUA_REGISTRYINDEX, DSS_REGISTRY_NAME);
    if (!lua_istable(L, -1)) luaL_error(L, "dssbench: require \"darksidesync\" first");
    lua_getfield(L, -1, key);
    const void *api = lua_touserdata(L, -1);
    lua_pop(L, 2);
    if (api == NULL) luaL_error(L, "dssbench: no %s published", key);
    return api;
}

int luaopen_dssbench(lua_State *L) {
    api1 = lookup(L, DSS_API_1v0_KEY);
    api2 = lookup(L, DSS_API_2v0_KEY);
    if (!DSS2_HAS(api2, strerror)) return luaL_error(L, "dssbench: DSS API 2v0 too old");
    context *ctx = malloc(sizeof *ctx);
    if (ctx == NULL) return luaL_error(L, "dssbench: out of memory");
    int err = DSS_SUCCESS;
    ctx->utilid = api1->reg(L, (void *)&lib1_id, cancel1, &err);
    if (ctx->utilid == NULL) return luaL_error(L, "dssbench: 1v0 reg failed (%d)", err);
    int rc = api2->reg(L, &lib2_id, "dssbench", cancel2, NULL, &ctx->handle);
    if (rc != DSS2_OK && rc != DSS2_EALREADY)
        return luaL_error(L, "dssbench: 2v0 reg failed: %s", api2->strerror(rc));

    static const luaL_Reg job_methods[] = {
        {"wait", l_job_wait}, {"done", l_job_done}, {"result", l_job_result}, {NULL, NULL}};
    if (luaL_newmetatable(L, JOB_META)) {
        luaL_newlib(L, job_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_job_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);

    static const luaL_Reg funcs[] = {{"post1", l_post1}, {"call1", l_call1},
                                     {"post2", l_post2}, {"post2nw", l_post2nw},
                                     {"call2", l_call2},
                                     {"pcall_loop", l_pcall_loop}, {"cancelled", l_cancelled},
                                     {"now", l_now}, {NULL, NULL}};
    luaL_newlibtable(L, funcs);
    lua_pushlightuserdata(L, ctx);
    luaL_setfuncs(L, funcs, 1);
    return 1;
}
