/*
 * manystates -- a C host with N Lua states in one process, each on its own
 * thread, each fed by its own 2v0 producer thread (the dssbench utility).
 * Compiled against the Lua 5.4 headers and liblua5.4 only; darksidesync.so
 * and dssbench.so are loaded by `require`, as in any embedding program.
 *
 *   manystates <libdir> <states.lua> <states> <items per state>
 *
 * Every thread creates its state and runs <states.lua> (bench/lua/state.lua)
 * with the item count; once all states are ready they start together, and
 * each calls the function the chunk returned (which checks its items
 * arrived exactly once). Prints
 *
 *   RESULT states=N items=TOTAL secs=S items_per_s=X
 *
 * with the time from the common start to the last state's end. Exit status
 * non-zero if any state failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#define MAX_STATES 64

static const char *libdir, *chunk;
static long items;
static pthread_barrier_t ready;

typedef struct state_run {
    double end;
    int failed;
} state_run;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup(lua_State *L) {
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.so", libdir);
    lua_setfield(L, -2, "cpath");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", libdir, libdir);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    if (luaL_loadfile(L, chunk) != LUA_OK) return lua_error(L);
    lua_pushinteger(L, items);
    lua_call(L, 1, 1);
    return 1;
}

static void *run_state(void *arg) {
    state_run *r = arg;
    lua_State *L = luaL_newstate();
    int ok = L != NULL;
    if (ok) {
        lua_pushcfunction(L, setup);
        ok = lua_pcall(L, 0, 1, 0) == LUA_OK;
        if (!ok) fprintf(stderr, "manystates: setup: %s\n", lua_tostring(L, -1));
    }
    /* Everyone waits here, ready or not, so no thread is left behind. */
    pthread_barrier_wait(&ready);
    if (ok && lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fprintf(stderr, "manystates: run: %s\n", lua_tostring(L, -1));
        ok = 0;
    }
    r->end = now_s();
    r->failed = !ok;
    if (L != NULL) lua_close(L);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: manystates <libdir> <states.lua> <states> <items per state>\n");
        return 2;
    }
    libdir = argv[1];
    chunk = argv[2];
    int states = atoi(argv[3]);
    items = atol(argv[4]);
    if (states < 1 || states > MAX_STATES || items < 1) {
        fprintf(stderr, "manystates: 1..%d states and at least one item\n", MAX_STATES);
        return 2;
    }
    pthread_t threads[MAX_STATES];
    state_run runs[MAX_STATES] = {{0}};
    /* The main thread joins the barrier too: it starts the clock. */
    pthread_barrier_init(&ready, NULL, (unsigned)states + 1);
    for (int i = 0; i < states; i++) {
        if (pthread_create(&threads[i], NULL, run_state, &runs[i]) != 0) {
            fprintf(stderr, "manystates: cannot start a thread\n");
            return 1;
        }
    }
    pthread_barrier_wait(&ready);
    double start = now_s(), end = start;
    int failed = 0;
    for (int i = 0; i < states; i++) {
        pthread_join(threads[i], NULL);
        failed += runs[i].failed;
        if (runs[i].end > end) end = runs[i].end;
    }
    if (failed) {
        fprintf(stderr, "manystates: %d of %d states failed\n", failed, states);
        return 1;
    }
    double secs = end - start;
    printf("RESULT states=%d items=%ld secs=%f items_per_s=%f\n", states, items * states, secs,
           (double)(items * states) / secs);
    return 0;
}
