/*
 * luaexit -- a signal-handler utility for the C-ABI tests, written like
 * DarkSideSync 1.0's example utility `luaexit`: its SIGTERM handler calls
 * deliver() (DSS API 1v0, no return callback) or post() (DSS API 2v0,
 * timeout_ms = 0) on the thread the signal interrupted, usually the Lua
 * thread in the middle of poll() or dispatch().
 *
 * Written only against include/darksidesync.h and the Lua C API.
 *
 *   local ex = require "luaexit"
 *   ex.install(callback, api)   api 1 or 2; registers and installs the handler
 *   ex.fire(n, max_gap_us)      starts a thread that sends SIGTERM to this
 *                               process n times, each after the handler
 *                               finished with the previous one (so none
 *                               coalesce), max_gap_us apart at most
 *   ex.counts()                 -> { sent, handled, accepted, refused,
 *                                    decoded, cancelled, last_refusal, done }
 *   ex.uninstall()              default SIGTERM action, joins the sender
 *
 * The sender thread blocks SIGTERM, so the kernel delivers every one to the
 * Lua thread. A handler that waits for a lock its own thread holds hangs
 * the process, which is what the test's watchdog catches.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "darksidesync.h"

static const DSS_api_1v0_t *api1;
static const dss_api_2v0_t *api2;
static void *utilid;
static dss2_handle handle2;
static int api_version;
static int cbref = LUA_NOREF;
static const char libid = 'x';

/* Written by the handler (on the Lua thread) or the decoder (Lua thread);
 * read by the sender thread and Lua. */
static volatile sig_atomic_t handled, accepted, refused, last_refusal;
static volatile sig_atomic_t decoded, cancelled;
static volatile sig_atomic_t sent, sending_done;
static pthread_t sender;
static int sender_started;
static long fire_n, fire_gap_us;

static int decode1(struct lua_State *L, void *pData, void *id)
{
    (void)pData;
    (void)id;
    if (L == NULL) {
        cancelled++;
        return 0;
    }
    decoded++;
    lua_rawgeti(L, LUA_REGISTRYINDEX, cbref);
    lua_pushinteger(L, decoded);
    return 2;
}

static int run2(struct lua_State *L, void *data, dss2_handle h)
{
    (void)h;
    return decode1(L, data, NULL);
}

static void free2(void *data, int outcome)
{
    (void)data;
    if (outcome == DSS2_ECANCELLED || outcome == DSS2_ECLOSED) cancelled++;
}

/* The handler: what luaexit did, deliver() straight from the signal. */
static void on_term(int sig)
{
    int code, ok;
    (void)sig;
    if (api_version == 1) {
        code = api1->deliver(utilid, decode1, NULL, NULL);
        ok = code == DSS_SUCCESS || code == DSS_ERR_UDP_SEND_FAILED;
    } else {
        code = api2->post(handle2, run2, free2, NULL, 0);
        ok = code == DSS2_OK;
    }
    if (ok) {
        accepted++;
    } else {
        refused++;
        last_refusal = code;
    }
    handled++;
}

static void cancel1(void *id)
{
    api1->unreg(id);
}

static void cancel2(dss2_handle h, void *ud)
{
    (void)ud;
    api2->unreg(h);
}

static void sleep_us(long us)
{
    struct timespec ts;
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (us % 1000000) * 1000;
    nanosleep(&ts, NULL);
}

static void *send_signals(void *arg)
{
    long i;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    sigset_t set;
    (void)arg;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (i = 0; i < fire_n; i++) {
        /* Wait until the previous signal was handled: a pending SIGTERM
         * would swallow the next one. A hung handler hangs us here too. */
        while (handled < sent) sleep_us(50);
        seed = seed * 1103515245u + 12345u;
        sleep_us(fire_gap_us > 0 ? (long)((seed >> 8) % (unsigned)fire_gap_us) : 0);
        sent++;
        kill(getpid(), SIGTERM);
    }
    sending_done = 1;
    return NULL;
}

static int l_install(lua_State *L)
{
    int version = (int)luaL_checkinteger(L, 2);
    struct sigaction sa;
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    cbref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_getfield(L, LUA_REGISTRYINDEX, DSS_REGISTRY_NAME);
    if (!lua_istable(L, -1)) return luaL_error(L, "luaexit: darksidesync is not loaded");
    lua_getfield(L, -1, DSS_API_1v0_KEY);
    lua_getfield(L, -2, DSS_API_2v0_KEY);
    api1 = (const DSS_api_1v0_t *)lua_touserdata(L, -2);
    api2 = (const dss_api_2v0_t *)lua_touserdata(L, -1);
    lua_pop(L, 3);
    if (api1 == NULL || api2 == NULL) return luaL_error(L, "luaexit: no DSS API");

    if (version == 1) {
        int err = 0;
        utilid = api1->reg(L, (void *)&libid, cancel1, &err);
        if (err != DSS_SUCCESS) return luaL_error(L, "luaexit: 1v0 reg: %d", err);
    } else {
        int err = api2->reg(L, &libid, "luaexit", cancel2, NULL, &handle2);
        if (err != DSS2_OK) return luaL_error(L, "luaexit: 2v0 reg: %d", err);
    }
    api_version = version;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0) return luaL_error(L, "luaexit: sigaction failed");
    return 0;
}

static int l_fire(lua_State *L)
{
    fire_n = (long)luaL_checkinteger(L, 1);
    fire_gap_us = (long)luaL_optinteger(L, 2, 2000);
    if (sender_started) return luaL_error(L, "luaexit: already firing");
    if (pthread_create(&sender, NULL, send_signals, NULL) != 0)
        return luaL_error(L, "luaexit: pthread_create failed");
    sender_started = 1;
    return 0;
}

static void setint(lua_State *L, const char *k, long v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static int l_counts(lua_State *L)
{
    lua_newtable(L);
    setint(L, "sent", sent);
    setint(L, "handled", handled);
    setint(L, "accepted", accepted);
    setint(L, "refused", refused);
    setint(L, "last_refusal", last_refusal);
    setint(L, "decoded", decoded);
    setint(L, "cancelled", cancelled);
    lua_pushboolean(L, sending_done);
    lua_setfield(L, -2, "done");
    return 1;
}

static int l_uninstall(lua_State *L)
{
    (void)L;
    signal(SIGTERM, SIG_DFL);
    if (sender_started) {
        pthread_join(sender, NULL);
        sender_started = 0;
    }
    return 0;
}

int luaopen_luaexit(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"install", l_install},
        {"fire", l_fire},
        {"counts", l_counts},
        {"uninstall", l_uninstall},
        {NULL, NULL},
    };
    lua_newtable(L);
#if LUA_VERSION_NUM >= 502
    luaL_setfuncs(L, fns, 0);
#else
    luaL_register(L, NULL, fns);
#endif
    return 1;
}
