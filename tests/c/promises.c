/*
 * promises -- a C utility for the promises the C ABI makes at its edges
 * (issue 21): every entry point called from a finaliser that lua_close
 * runs after darksidesync is gone, unreg() from a worker racing the Lua
 * thread, callbacks that raise, and the Lua-thread finalizer.
 *
 * Written only against include/darksidesync.h and the Lua C API.
 *
 *   local p = require "promises"      -- before require "darksidesync"
 *   p.probe_close()   a userdata whose __gc (run by lua_close after
 *                     darksidesync's own finalisers) calls every entry point;
 *                     prints "promises: close probe ok (N calls)" or exits 97
 *   p.bind()          after require "darksidesync": fetches the APIs and
 *                     registers the utilities the probe uses at close
 *   p.race_start(api, items)  registers a utility (1 or 2), starts a worker
 *                     that posts `items` fire-and-forget items, unreg()s,
 *                     then marks the utility dead
 *   p.race_done()     true once the worker finished (joined)
 *   p.race_counts()   -> { after_dead = n, ran = n, cancelled = n }
 *   p.raise(api, where) posts one item from the Lua thread whose decoder
 *                     (1) or run (2) raises "promises: raised in <where>"
 *   p.raise_counts()  -> { freed_ok = n, freed_other = n }
 *   p.raise_mixed(api, "oxo..") posts one item per character (numbered
 *                     from 1) with the same utility: 'o' pushes the global
 *                     promises_ran, its number, the stack top it found
 *                     (0: it started on an empty stack) and false; 'n'
 *                     does the same after calling the global
 *                     promises_nested, with true if its data was released
 *                     meanwhile (2v0); 'x' raises "promises:
 *                     raised at <n>"; returns how many posts failed
 *   p.raise_unreg_from_thread(api) unreg()s that utility from a new
 *                     thread; false when it did not return within 10 s
 *   p.finalizer_start(cb, items) registers a 2v0 utility with a Lua-thread
 *                     finalizer, keeps cb in the registry, starts a worker
 *                     posting `items` items that call cb, then unreg()s
 *   p.finalizer_counts() -> { finalized = n, with_state = n, after_items = 0/1,
 *                           unreffed = n, worker_done = bool, ran = n, freed = n }
 *   p.has_finalizer() whether the API has setfinalizer
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "darksidesync.h"

#if LUA_VERSION_NUM < 502
#define compat_setfuncs(L, l) luaL_register(L, NULL, l)
#else
#define compat_setfuncs(L, l) luaL_setfuncs(L, l, 0)
#endif

#define LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)

static const DSS_api_1v0_t *api1;
static const dss_api_2v0_t *api2;

static const char libid_close1 = 1, libid_close2 = 2, libid_fresh = 3;
static const char libid_race1 = 4, libid_race2 = 5, libid_raise1 = 6, libid_raise2 = 7;
static const char libid_fin = 8;

static int fetch_apis(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, DSS_REGISTRY_NAME);
    if (!lua_istable(L, -1)) return luaL_error(L, "promises: require \"darksidesync\" first");
    lua_getfield(L, -1, DSS_API_1v0_KEY);
    api1 = (const DSS_api_1v0_t *)lua_touserdata(L, -1);
    lua_getfield(L, -2, DSS_API_2v0_KEY);
    api2 = (const dss_api_2v0_t *)lua_touserdata(L, -1);
    lua_pop(L, 3);
    if (api1 == NULL || api2 == NULL || !DSS2_HAS(api2, waits)) return luaL_error(L, "promises: no DSS APIs");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Every entry point at close                                           */
/* ------------------------------------------------------------------ */

static void *close_utilid;      /* 1v0, registered by bind() */
static dss2_handle close_handle; /* 2v0, likewise */
static int close_freed;         /* free_fn calls of posts made at close */

static void noop_cancel1(void *u) { (void)u; }
static void noop_cancel2(dss2_handle h, void *ud) { (void)h, (void)ud; }
static int noop_decode(lua_State *L, void *d, void *u) { (void)L, (void)d, (void)u; return 0; }
static int noop_return(lua_State *L, void *d, void *u, int g) { (void)L, (void)d, (void)u, (void)g; return 0; }
static int noop_run(lua_State *L, void *d, dss2_handle h) { (void)L, (void)d, (void)h; return 0; }
static void count_free(void *d, int outcome) { (void)outcome; ++*(int *)d; }
static void noop_finalize(lua_State *L, dss2_handle h, void *ud) { (void)L, (void)h, (void)ud; }

static int probe_calls, probe_wrong;

static void expect(const char *what, long got, long want) {
    probe_calls++;
    if (got != want) {
        probe_wrong++;
        fprintf(stderr, "promises: close probe: %s returned %ld, expected %ld\n", what, got, want);
    }
}

static int probe_gc(lua_State *L) {
    int ec = 0;
    void *id;
    dss2_handle h = 0;
    dss2_stats_t st;
    dss2_waits_t w;
    char buf[16];
    if (api1 == NULL || api2 == NULL) {
        fprintf(stderr, "promises: close probe: bind() was never called\n");
        _exit(97);
    }
    /* 1v0 */
    id = api1->reg(L, (void *)&libid_fresh, noop_cancel1, &ec);
    expect("1v0 reg", ec, DSS_ERR_NOT_STARTED);
    expect("1v0 reg's utilid is NULL", id == NULL, 1);
    ec = 0;
    id = api1->getutilid(L, (void *)&libid_close1, &ec);
    expect("1v0 getutilid", ec, DSS_ERR_NOT_STARTED);
    expect("1v0 getutilid's utilid is NULL", id == NULL, 1);
    expect("1v0 deliver", api1->deliver(close_utilid, noop_decode, NULL, NULL), DSS_ERR_NOT_STARTED);
    expect("1v0 blocking deliver", api1->deliver(close_utilid, noop_decode, noop_return, NULL), DSS_ERR_NOT_STARTED);
    expect("1v0 unreg", api1->unreg(close_utilid), DSS_SUCCESS);
    expect("1v0 unreg again", api1->unreg(close_utilid), DSS_ERR_INVALID_UTILID);
    /* 2v0 */
    expect("2v0 reg", api2->reg(L, &libid_fresh, "fresh", noop_cancel2, NULL, &h), DSS2_ECLOSED);
    expect("2v0 getid", api2->getid(L, &libid_close2, &h), DSS2_ECLOSED);
    close_freed = 0;
    expect("2v0 post", api2->post(close_handle, noop_run, count_free, &close_freed, 0), DSS2_ECLOSED);
    expect("2v0 post's free_fn", close_freed, 1);
    expect("2v0 waiting post", api2->post(close_handle, noop_run, count_free, &close_freed, -1), DSS2_ECLOSED);
    expect("2v0 call", api2->call(close_handle, noop_run, NULL, NULL, -1, 0, buf, sizeof buf), DSS2_ECLOSED);
    expect("2v0 hold", api2->hold(close_handle), DSS2_ECLOSED);
    expect("2v0 release", api2->release(close_handle), DSS2_ECLOSED);
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    expect("2v0 stats", api2->stats(close_handle, &st), DSS2_OK);
    memset(&w, 0, sizeof w);
    w.size = sizeof w;
    expect("2v0 waits", api2->waits(close_handle, 0, &w), DSS2_ECLOSED);
    expect("2v0 status", api2->status(close_handle), DSS2_ECLOSED);
    expect("2v0 strerror", api2->strerror(DSS2_ECLOSED) != NULL, 1);
    if (DSS2_HAS(api2, setfinalizer))
        expect("2v0 setfinalizer", api2->setfinalizer(close_handle, noop_finalize, NULL), DSS2_ECLOSED);
    expect("2v0 unreg", api2->unreg(close_handle), DSS2_OK);
    expect("2v0 unreg again", api2->unreg(close_handle), DSS2_ESTALE);
    if (probe_wrong > 0) {
        fprintf(stderr, "promises: close probe: %d of %d calls wrong\n", probe_wrong, probe_calls);
        _exit(97);
    }
    fprintf(stderr, "promises: close probe ok (%d calls)\n", probe_calls);
    return 0;
}

static int l_probe_close(lua_State *L) {
    lua_newuserdata(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, probe_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    /* Anchored in the registry: collected only by lua_close. */
    lua_setfield(L, LUA_REGISTRYINDEX, "promises.probe");
    return 0;
}

static int l_bind(lua_State *L) {
    int ec = 0, rc;
    fetch_apis(L);
    close_utilid = api1->reg(L, (void *)&libid_close1, noop_cancel1, &ec);
    if (close_utilid == NULL) return luaL_error(L, "promises: 1v0 reg: %d", ec);
    rc = api2->reg(L, &libid_close2, "promises.close", noop_cancel2, NULL, &close_handle);
    if (rc != DSS2_OK) return luaL_error(L, "promises: 2v0 reg: %d", rc);
    return 0;
}

/* ------------------------------------------------------------------ */
/* unreg() from a worker racing the Lua thread                          */
/* ------------------------------------------------------------------ */

static struct {
    int api, items;
    void *utilid;
    dss2_handle h;
    pthread_t worker;
    int running;
    int dead, done;                  /* atomics */
    long after_dead, ran, cancelled; /* atomics */
} race;

/* Called with a state after the worker's unreg() returned: what must never
 * happen (a real utility would have freed what the item points to). */
static int race_decode(lua_State *L, void *d, void *u) {
    (void)d, (void)u;
    if (L == NULL) {
        ADD(&race.cancelled, 1);
        return 0;
    }
    if (LOAD(&race.dead)) ADD(&race.after_dead, 1);
    ADD(&race.ran, 1);
    return 0;
}

static int race_run(lua_State *L, void *d, dss2_handle h) {
    (void)h;
    return race_decode(L, d, NULL);
}

static void race_free(void *d, int outcome) {
    (void)d;
    if (outcome == DSS2_OK) {
        if (LOAD(&race.dead)) ADD(&race.after_dead, 1);
    } else {
        ADD(&race.cancelled, 1);
    }
}

static void *race_worker(void *arg) {
    int i;
    (void)arg;
    for (i = 0; i < race.items; i++) {
        if (race.api == 1)
            (void)api1->deliver(race.utilid, race_decode, NULL, NULL);
        else
            (void)api2->post(race.h, race_run, race_free, NULL, 0);
    }
    if (race.api == 1)
        (void)api1->unreg(race.utilid);
    else
        (void)api2->unreg(race.h);
    STORE(&race.dead, 1);
    STORE(&race.done, 1);
    return NULL;
}

static int l_race_start(lua_State *L) {
    int ec = 0;
    if (race.running) return luaL_error(L, "promises: a race is running");
    if (api1 == NULL) fetch_apis(L);
    race.api = (int)luaL_checkinteger(L, 1);
    race.items = (int)luaL_checkinteger(L, 2);
    STORE(&race.dead, 0);
    STORE(&race.done, 0);
    if (race.api == 1) {
        race.utilid = api1->reg(L, (void *)&libid_race1, noop_cancel1, &ec);
        if (race.utilid == NULL) return luaL_error(L, "promises: 1v0 reg: %d", ec);
    } else {
        int rc = api2->reg(L, &libid_race2, "promises.race", NULL, NULL, &race.h);
        if (rc != DSS2_OK) return luaL_error(L, "promises: 2v0 reg: %d", rc);
    }
    if (pthread_create(&race.worker, NULL, race_worker, NULL) != 0) return luaL_error(L, "promises: pthread_create");
    race.running = 1;
    return 0;
}

static int l_race_done(lua_State *L) {
    int done = LOAD(&race.done);
    if (done && race.running) {
        pthread_join(race.worker, NULL);
        race.running = 0;
    }
    lua_pushboolean(L, done);
    return 1;
}

#define SETINT(name, v)            \
    do {                           \
        lua_pushinteger(L, (v));   \
        lua_setfield(L, -2, name); \
    } while (0)

static int l_race_counts(lua_State *L) {
    lua_newtable(L);
    SETINT("after_dead", LOAD(&race.after_dead));
    SETINT("ran", LOAD(&race.ran));
    SETINT("cancelled", LOAD(&race.cancelled));
    return 1;
}

/* ------------------------------------------------------------------ */
/* Callbacks that raise                                                 */
/* ------------------------------------------------------------------ */

static void *raise_utilid;
static dss2_handle raise_handle;
static int raise_freed_ok, raise_freed_other;

static int raise_decode(lua_State *L, void *d, void *u) {
    (void)u;
    if (L == NULL) return 0;
    lua_pushstring(L, "pushed before the error");
    return luaL_error(L, "promises: raised in %s", (const char *)d);
}

static int raise_run(lua_State *L, void *d, dss2_handle h) {
    (void)h;
    return raise_decode(L, d, NULL);
}

static void raise_free(void *d, int outcome) {
    (void)d;
    if (outcome == DSS2_OK)
        raise_freed_ok++;
    else
        raise_freed_other++;
}

static int l_raise(lua_State *L) {
    int api = (int)luaL_checkinteger(L, 1);
    const char *where = luaL_checkstring(L, 2);
    int ec = 0;
    /* The string stays alive: it is anchored below until the next call. */
    lua_pushvalue(L, 2);
    lua_setfield(L, LUA_REGISTRYINDEX, "promises.raise_where");
    if (api1 == NULL) fetch_apis(L);
    if (api == 1) {
        if (raise_utilid == NULL) raise_utilid = api1->reg(L, (void *)&libid_raise1, noop_cancel1, &ec);
        lua_pushinteger(L, api1->deliver(raise_utilid, raise_decode, NULL, (void *)where));
    } else {
        if (raise_handle == 0) (void)api2->reg(L, &libid_raise2, "promises.raise", NULL, NULL, &raise_handle);
        lua_pushinteger(L, api2->post(raise_handle, raise_run, raise_free, (void *)where, 0));
    }
    return 1;
}

/* A run of items, some of which raise: pattern "oxo..." posts one item
 * per character, numbered from 1; an 'o' item's decoder/run pushes the
 * global promises_ran and its number, an 'x' item's raises "promises:
 * raised at <n>". The number and the kind travel in the data pointer. */
static int mixed_decode(lua_State *L, void *d, void *u) {
    intptr_t v = (intptr_t)d;
    int top;
    (void)u;
    if (L == NULL) return 0;
    top = lua_gettop(L); /* the header: an empty stack */
    int nested = (v & 2) != 0, freed_before = raise_freed_ok, early = 0;
    lua_pushstring(L, "pushed before the error");
    if (v & 1) return luaL_error(L, "promises: raised at %d", (int)(v >> 2));
    if (nested) {
        /* Calls back into darksidesync while running: its data must not
         * be released under it. */
        lua_getglobal(L, "promises_nested");
        lua_call(L, 0, 0);
        early = raise_freed_ok != freed_before;
    }
    lua_settop(L, 0);
    lua_getglobal(L, "promises_ran");
    lua_pushinteger(L, (lua_Integer)(v >> 2));
    lua_pushinteger(L, top);
    lua_pushboolean(L, early);
    return 4;
}

static int mixed_run(lua_State *L, void *d, dss2_handle h) {
    (void)h;
    return mixed_decode(L, d, NULL);
}

static int l_raise_mixed(lua_State *L) {
    int api = (int)luaL_checkinteger(L, 1);
    size_t len, i;
    const char *pattern = luaL_checklstring(L, 2, &len);
    int ec = 0, failed = 0;
    if (api1 == NULL) fetch_apis(L);
    if (api == 1 && raise_utilid == NULL) raise_utilid = api1->reg(L, (void *)&libid_raise1, noop_cancel1, &ec);
    if (api == 2 && raise_handle == 0) (void)api2->reg(L, &libid_raise2, "promises.raise", NULL, NULL, &raise_handle);
    for (i = 0; i < len; i++) {
        void *d = (void *)(intptr_t)(((intptr_t)(i + 1) << 2) | (pattern[i] == 'x') | ((pattern[i] == 'n') << 1));
        int code = api == 1 ? api1->deliver(raise_utilid, mixed_decode, NULL, d)
                            : api2->post(raise_handle, mixed_run, raise_free, d, 0);
        if (code != (api == 1 ? -100 : DSS2_OK)) failed++;
    }
    lua_pushinteger(L, failed);
    return 1;
}

/* unreg() of the raising utility from another thread: true when it
 * returned within 10 s (a running mark left behind by a callback that
 * raised would keep it waiting). */
static int unreg_done;
static void *unreg_worker(void *arg) {
    int api = (int)(intptr_t)arg;
    if (api == 1)
        (void)api1->unreg(raise_utilid);
    else
        (void)api2->unreg(raise_handle);
    STORE(&unreg_done, 1);
    return NULL;
}

static int l_raise_unreg_from_thread(lua_State *L) {
    int api = (int)luaL_checkinteger(L, 1);
    pthread_t t;
    int i;
    STORE(&unreg_done, 0);
    if (pthread_create(&t, NULL, unreg_worker, (void *)(intptr_t)api) != 0) return luaL_error(L, "promises: pthread_create");
    for (i = 0; i < 10000 && !LOAD(&unreg_done); i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    if (!LOAD(&unreg_done)) {
        pthread_detach(t); /* still waiting: the test fails; exit ends it */
        lua_pushboolean(L, 0);
        return 1;
    }
    pthread_join(t, NULL);
    if (api == 1)
        raise_utilid = NULL;
    else
        raise_handle = 0;
    lua_pushboolean(L, 1);
    return 1;
}

static int l_raise_counts(lua_State *L) {
    lua_newtable(L);
    SETINT("freed_ok", raise_freed_ok);
    SETINT("freed_other", raise_freed_other);
    return 1;
}

/* ------------------------------------------------------------------ */
/* The Lua-thread finalizer                                             */
/* ------------------------------------------------------------------ */

static struct {
    dss2_handle h;
    int cbref;
    int items;
    pthread_t worker;
    int running;
    int unreg_begun, worker_done;    /* atomics */
    long ran, freed;                 /* atomics */
    int finalized, with_state, after_items, unreffed;
} fin;

static int fin_run(lua_State *L, void *d, dss2_handle h) {
    (void)d, (void)h;
    ADD(&fin.ran, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fin.cbref);
    return 1;
}

static void fin_free(void *d, int outcome) {
    (void)d, (void)outcome;
    ADD(&fin.freed, 1);
}

static void fin_finalize(lua_State *L, dss2_handle h, void *ud) {
    fin.finalized++;
    if (L != NULL) fin.with_state++;
    /* Every item ran or was discarded before: each was freed. */
    fin.after_items = LOAD(&fin.freed) == fin.items && LOAD(&fin.unreg_begun) && h == fin.h &&
                      ud == (void *)&fin;
    if (L != NULL && fin.cbref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, fin.cbref);
        fin.cbref = LUA_NOREF;
        fin.unreffed++;
    }
}

static void *fin_worker(void *arg) {
    int i;
    (void)arg;
    for (i = 0; i < fin.items; i++) (void)api2->post(fin.h, fin_run, fin_free, NULL, -1);
    /* Let the Lua thread run some first (observed; at most ~10 s). */
    for (i = 0; i < 10000 && LOAD(&fin.ran) == 0; i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    STORE(&fin.unreg_begun, 1);
    (void)api2->unreg(fin.h);
    STORE(&fin.worker_done, 1);
    return NULL;
}

static int l_finalizer_start(lua_State *L) {
    int rc;
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (api1 == NULL) fetch_apis(L);
    if (!DSS2_HAS(api2, setfinalizer)) return luaL_error(L, "promises: no setfinalizer in this DSS API 2v0");
    if (fin.running) {
        pthread_join(fin.worker, NULL);
        fin.running = 0;
    }
    memset(&fin, 0, sizeof fin);
    fin.items = (int)luaL_checkinteger(L, 2);
    rc = api2->reg(L, &libid_fin, "promises.finalizer", NULL, NULL, &fin.h);
    if (rc != DSS2_OK) return luaL_error(L, "promises: 2v0 reg: %d", rc);
    rc = api2->setfinalizer(fin.h, fin_finalize, &fin);
    if (rc != DSS2_OK) return luaL_error(L, "promises: setfinalizer: %d", rc);
    lua_pushvalue(L, 1);
    fin.cbref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (pthread_create(&fin.worker, NULL, fin_worker, NULL) != 0) return luaL_error(L, "promises: pthread_create");
    fin.running = 1;
    return 0;
}

static int l_finalizer_counts(lua_State *L) {
    int done = LOAD(&fin.worker_done);
    if (done && fin.running) {
        pthread_join(fin.worker, NULL);
        fin.running = 0;
    }
    lua_newtable(L);
    SETINT("finalized", fin.finalized);
    SETINT("with_state", fin.with_state);
    SETINT("after_items", fin.after_items);
    SETINT("unreffed", fin.unreffed);
    SETINT("ran", LOAD(&fin.ran));
    SETINT("freed", LOAD(&fin.freed));
    lua_pushboolean(L, done);
    lua_setfield(L, -2, "worker_done");
    return 1;
}

static int l_has_finalizer(lua_State *L) {
    if (api1 == NULL) fetch_apis(L);
    lua_pushboolean(L, DSS2_HAS(api2, setfinalizer));
    return 1;
}

static const luaL_Reg funcs[] = {
    {"probe_close", l_probe_close},
    {"bind", l_bind},
    {"race_start", l_race_start},
    {"race_done", l_race_done},
    {"race_counts", l_race_counts},
    {"raise", l_raise},
    {"raise_counts", l_raise_counts},
    {"raise_mixed", l_raise_mixed},
    {"raise_unreg_from_thread", l_raise_unreg_from_thread},
    {"finalizer_start", l_finalizer_start},
    {"finalizer_counts", l_finalizer_counts},
    {"has_finalizer", l_has_finalizer},
    {NULL, NULL},
};

int luaopen_promises(lua_State *L) {
    lua_newtable(L);
    compat_setfuncs(L, funcs);
    return 1;
}
