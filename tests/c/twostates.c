/*
 * twostates -- a C host with two Lua states in one process, each with
 * darksidesync and the dssutil utility loaded (see dssutil.c).
 *
 *   twostates <dir>      <dir> holds darksidesync.so and dssutil.so
 *
 * 1. Both states load the modules; the utility registers in each.
 * 2. State A gets queued items of both API versions, blocked waiters
 *    (1v0 and 2v0 blocking deliveries), producers blocked on a full queue
 *    and threads that keep delivering; nothing in A is dispatched.
 * 3. lua_close(A).
 * 4. State B checks, through the utility's process-global records: A's
 *    cancel callbacks ran once each; every A item got its decoder with a
 *    NULL state or its free callback exactly once; every waiter was
 *    released with a closed/invalid code; every delivering thread stopped
 *    with an error code; B's utility was not cancelled; and B still works
 *    (fire-and-forget, poll + reply, dispatch + call, both versions).
 * 5. lua_close(B); B's utility is cancelled.
 * 6. States C and D, each created, driven and closed by its own thread
 *    (the embedded-host layout), run traffic of both versions at the same
 *    time; C finishes and closes while D is still busy, D must complete.
 *
 * Exit 0 only if everything held.
 *
 * Every failure prints a line and makes the exit status non-zero.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static int failures;
static pthread_mutex_t failures_mu = PTHREAD_MUTEX_INITIALIZER;

/* Runs chunk in L; a Lua error is a test failure. */
static void run(lua_State *L, const char *name, const char *chunk) {
    if (luaL_loadbuffer(L, chunk, strlen(chunk), name) != 0 || lua_pcall(L, 0, 0, 0) != 0) {
        fprintf(stderr, "twostates: FAIL %s: %s\n", name, lua_tostring(L, -1));
        lua_pop(L, 1);
        pthread_mutex_lock(&failures_mu);
        failures++;
        pthread_mutex_unlock(&failures_mu);
    } else {
        fprintf(stderr, "twostates: ok   %s\n", name);
    }
}

static lua_State *open_state(const char *dir) {
    lua_State *L = luaL_newstate();
    char buf[4096];
    if (L == NULL) {
        fprintf(stderr, "twostates: cannot create a Lua state\n");
        exit(2);
    }
    luaL_openlibs(L);
    snprintf(buf, sizeof buf,
             "package.cpath = %s .. '/?.so;' .. package.cpath\n"
             "package.path = %s .. '/?.lua;' .. package.path\n"
             "dss = require 'darksidesync'\n"
             "u = require 'dssutil'\n",
             "DIR", "DIR");
    lua_pushstring(L, dir);
    lua_setglobal(L, "DIR");
    run(L, "open", buf);
    return L;
}

/* Shared Lua helpers, defined in each state. */
static const char *helpers =
    "function check(cond, ...) if not cond then error(string.format(...), 2) end end\n"
    "function eq(a, b, what) if a ~= b then error(what .. ': expected ' .. tostring(b) .. ', got ' .. tostring(a), 2) end end\n"
    "function until_(pred, what) for _ = 1, 20000 do if pred() then return end u.sleep(1) end error('gave up waiting for ' .. what, 2) end\n";

/* State A: fill it with work that will never be dispatched. */
static const char *setup_a =
    "A = u.ctx()\n"
    "u.set_unreg_on_cancel(true, false)\n" /* 2v0: keep the handle to observe ECLOSED */
    "dss.setcapacity(64)\n"
    "local cb = function() error('A must never run anything') end\n"
    "jobs = {}\n"
    "jobs.v1post = u.v1_post(cb, 10, 2)\n"
    "jobs.v2post = u.v2_post(cb, 10, 2, -1)\n"
    "until_(function() return u.done(jobs.v1post) and u.done(jobs.v2post) end, 'posts')\n"
    "eq(dss.queuesize(), 40, 'queued in A')\n"
    "jobs.v1call = u.v1_call(cb, 7)\n"
    "jobs.v2call = u.v2_call(cb, 8, -1)\n"
    "until_(function() return dss.queuesize() == 42 end, 'blocked waiters queued')\n"
    /* producers that keep delivering: they fill the queue (64); 2v0 posts
     * block, 1v0 fire-and-forget delivers get -104 and retry */
    "jobs.v1flood = u.v1_flood(cb, 2)\n"
    "jobs.v2flood = u.v2_flood(cb, 2)\n"
    /* at least 64: a 1v0 fire-and-forget deliver that finds the queue's
     * lock taken goes to the side ring (up to 64 more, see the header) */
    "until_(function() return dss.queuesize() >= 64 end, 'full queue')\n"
    "u.sleep(20)\n"
    "check(not u.done(jobs.v1flood) and not u.done(jobs.v2flood), 'floods must still be at it on the full queue')\n"
    "check(not u.done(jobs.v1call) and not u.done(jobs.v2call), 'callers must be blocked')\n";

/* State B: it works before A closes. */
static const char *work_b =
    "B = u.ctx()\n"
    "local seen = {}\n"
    "local cb = function(t, s, v) seen[#seen + 1] = s; return (v or 0) * 2 end\n"
    "local j = u.v1_post(cb, 5, 1)\n"
    "eq(u.join(j).code, -100, 'v1 post in B')\n"
    "eq(dss.dispatch(), 5, 'dispatched in B')\n"
    "local c = u.v1_call(cb, 21)\n"
    "until_(function() return dss.queuesize() == 1 end, 'v1 call queued in B')\n"
    "local n, f, args = dss.poll()\n"
    "eq(n, 0, 'left'); eq(args.n, 4, 'args.n')\n"
    "eq(args[1](42), 'ack', 'reply userdata returns what pReturn pushed')\n"
    "local r = u.join(c)\n"
    "eq(r.code, -100, 'v1 call code'); eq(r.reply, 42, 'v1 reply')\n"
    "local c2 = u.v2_call(cb, 4, -1)\n"
    "until_(function() return dss.queuesize() == 1 end, 'v2 call queued in B')\n"
    "eq(dss.dispatch(), 1, 'v2 call dispatched')\n"
    "r = u.join(c2)\n"
    "eq(r.code, 0, 'v2 call code'); eq(r.reply, 8, 'v2 reply')\n";

/* State B: what happened to A. */
static const char *check_a =
    /* join first: released threads finish (and free refused items) on their own time */
    "local v1p, v2p = u.join(jobs.v1post), u.join(jobs.v2post)\n"
    "local v1f, v2f = u.join(jobs.v1flood), u.join(jobs.v2flood)\n"
    "local v1c, v2c = u.join(jobs.v1call), u.join(jobs.v2call)\n"
    "local c = u.counters(A)\n"
    "eq(c.double_calls, 0, 'no callback twice'); eq(c.null_state, 0, 'no 2v0 callback with NULL state')\n"
    "eq(c.v1_cancel_calls, 1, 'A 1v0 cancel'); eq(c.v2_cancel_calls, 1, 'A 2v0 cancel')\n"
    "eq(c.v2_status_at_cancel, -3, 'status inside cancel is ECLOSED')\n"
    "eq(c.v1_decoded + c.v2_ran, 0, 'nothing of A ran')\n"
    "eq(v1p.accepted, 20, 'v1 posted'); eq(v2p.accepted, 20, 'v2 posted')\n"
    "for _, code in ipairs(v1f.codes) do check(code == -102 or code == -101, 'v1 flood ended with %d', code) end\n"
    "for _, code in ipairs(v2f.codes) do eq(code, -3, 'v2 flood ended ECLOSED') end\n"
    /* and went on delivering after the close: every attempt an error code */
    "eq(v1f.late_attempts, 1000, 'v1 late attempts'); eq(v1f.late_accepted, 0, 'v1 late deliveries refused')\n"
    "eq(v2f.late_attempts, 1000, 'v2 late attempts'); eq(v2f.late_accepted, 0, 'v2 late posts/calls ECLOSED')\n"
    "eq(v1c.code, -102, 'v1 waiter released: not started (closed)'); check(v1c.cancelled, 'v1 waiter item cancelled')\n"
    "eq(v2c.code, -3, 'v2 waiter released: ECLOSED')\n"
    /* every accepted 1v0 item got decoder(NULL) exactly once (incl. the call) */
    "eq(c.v1_cancelled, v1p.accepted + v1f.accepted + 1, 'each 1v0 item cancelled once')\n"
    /* every 2v0 post got free exactly once: accepted ones cancelled, refused ones at refusal */
    "eq(c.v2_freed_ok, 0, 'no 2v0 item ran')\n"
    "eq(c.v2_freed_other, v2p.accepted + v2p.refused + v2f.accepted + v2f.refused, 'each 2v0 item freed once')\n"
    "eq(u.v2_status(A), -3, 'A handle reports ECLOSED')\n"
    "eq(u.v1_deliver_stale(A), -101, 'A 1v0 utilid unregistered in cancel: invalid')\n"
    "eq(u.v2_unreg(A), 0, 'unreg releases the closed handle')\n"
    "eq(u.v2_status(A), -2, 'then the handle is stale')\n"
    "local b = u.counters(B)\n"
    "eq(b.v1_cancel_calls + b.v2_cancel_calls, 0, 'B not cancelled by A closing')\n";

static const char *check_b_after =
    "eq(u.counters(B).v1_cancel_calls, 0, 'B untouched')\n";

/* Phase 6: a state per thread. ROUNDS sets how much traffic (C: few, D: many). */
static const char *threaded =
    "local seen, replies = 0, 0\n"
    "local cb = function(t, s, v) seen = seen + 1; return v and v * 3 end\n"
    "local posts = { u.v1_post(cb, 50 * ROUNDS, 2), u.v2_post(cb, 50 * ROUNDS, 2, -1) }\n"
    "local calls = {}\n"
    "for i = 1, ROUNDS do calls[#calls + 1] = { u.v1_call(cb, i), i }; calls[#calls + 1] = { u.v2_call(cb, i, -1), i } end\n"
    "local want = 200 * ROUNDS + 2 * ROUNDS\n"
    "local done = 0\n"
    "while done < want do dss.wait(1); done = done + dss.dispatch() end\n"
    "eq(seen, want, 'every item ran once')\n"
    "for _, j in ipairs(posts) do local r = u.join(j); check(r.code == -100 or r.code == 0, 'post code %d', r.code) end\n"
    "for _, c in ipairs(calls) do local r = u.join(c[1]); check(r.code == -100 or r.code == 0, 'call code %d', r.code); eq(r.reply, c[2] * 3, 'reply') end\n"
    "eq(u.here_v2_call(), -10, 'a blocking call on the thread of the state would deadlock')\n"
    "local k = u.counters()\n"
    "eq(k.double_calls + k.null_state + k.v1_cancel_calls + k.v2_cancel_calls, 0, 'clean')\n";

typedef struct {
    const char *dir;
    int rounds;
    const char *name;
} state_thread_arg;

static void *state_thread(void *p) {
    state_thread_arg *a = (state_thread_arg *)p;
    char name[64];
    lua_State *L = open_state(a->dir);
    run(L, "helpers", helpers);
    lua_pushinteger(L, a->rounds);
    lua_setglobal(L, "ROUNDS");
    snprintf(name, sizeof name, "state %s on its own thread", a->name);
    run(L, name, threaded);
    lua_close(L);
    fprintf(stderr, "twostates: %s closed by its thread\n", a->name);
    return NULL;
}

int main(int argc, char **argv) {
    lua_State *a, *b;
    if (argc != 2) {
        fprintf(stderr, "usage: twostates <dir with darksidesync.so and dssutil.so>\n");
        return 2;
    }
    a = open_state(argv[1]);
    b = open_state(argv[1]);
    if (failures) return 1;
    run(a, "helpers A", helpers);
    run(b, "helpers B", helpers);
    run(b, "B works before", work_b);
    run(a, "A filled", setup_a);
    /* hand A's ids to B */
    lua_getglobal(a, "A");
    lua_pushinteger(b, lua_tointeger(a, -1));
    lua_setglobal(b, "A");
    lua_pop(a, 1);
    run(a, "export jobs", "JOBS = string.format('jobs = {v1post=%d, v2post=%d, v1call=%d, v2call=%d, v1flood=%d, v2flood=%d}',"
                          " jobs.v1post, jobs.v2post, jobs.v1call, jobs.v2call, jobs.v1flood, jobs.v2flood)");
    lua_getglobal(a, "JOBS");
    {
        char chunk[512];
        snprintf(chunk, sizeof chunk, "%s", lua_tostring(a, -1) ? lua_tostring(a, -1) : "error('no jobs')");
        lua_pop(a, 1);
        lua_close(a);
        fprintf(stderr, "twostates: A closed\n");
        run(b, "import jobs", chunk);
    }
    run(b, "A cancelled, released, stopped", check_a);
    run(b, "B works after", work_b);
    run(b, "B untouched", check_b_after);
    lua_close(b);
    {
        pthread_t tc, td;
        state_thread_arg c = {argv[1], 2, "C"}, d = {argv[1], 20, "D"};
        if (pthread_create(&tc, NULL, state_thread, &c) != 0 || pthread_create(&td, NULL, state_thread, &d) != 0) {
            fprintf(stderr, "twostates: cannot start threads\n");
            return 2;
        }
        pthread_join(tc, NULL);
        pthread_join(td, NULL);
    }
    fprintf(stderr, "twostates: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
