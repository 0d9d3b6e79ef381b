/*
 * lua_pump.c — the wait set hwfota.core.poll keeps across calls (see
 * lua_pump.h).
 */
#include "lua_pump.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define PUMP_MT      "hwfota.Pump"
#define PUMP_KEY     "hwfota.pump"   /* registry field */
#define PUMP_REGS_MIN 256            /* registration records to start with */

typedef struct lua_pump {
    hf_pump pp;               /* first: hf_lua_pump_new_key finds the rest from it */
    int busy;                 /* a core.poll is using it */
    unsigned long long keys;  /* keys handed out */
} lua_pump;

static int pump_gc(lua_State *L)
{
    lua_pump *lp = luaL_checkudata(L, 1, PUMP_MT);
    hf_pump_close(&lp->pp);
    return 0;
}

static int pump_release(lua_State *L)
{
    lua_pump *lp = luaL_checkudata(L, 1, PUMP_MT);
    lp->busy = 0;
    return 0;
}

static hf_pump_backend backend_named(const char *name)
{
    return name && strcmp(name, "poll") == 0 ? HF_PUMP_POLL : HF_PUMP_EPOLL;
}

/* Push a new set on `backend` (epoll falling back to poll(2) when the kernel
 * refuses it) and make it the state's. */
static lua_pump *make_pump(lua_State *L, hf_pump_backend backend)
{
    lua_pump *lp = lua_newuserdatauv(L, sizeof *lp, 1);
    memset(lp, 0, sizeof *lp);
    hf_pump_reset(&lp->pp);
    luaL_setmetatable(L, PUMP_MT);
    hf_error err;
    hf_error_clear(&err);
    if (hf_pump_open(&lp->pp, backend, &err) != 0)
        hf_pump_reset(&lp->pp);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, PUMP_KEY);
    return lp;
}

/* Push the state's set, making it on first use. */
static lua_pump *push_pump(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, PUMP_KEY) == LUA_TUSERDATA)
        return luaL_checkudata(L, -1, PUMP_MT);
    lua_pop(L, 1);
    return make_pump(L, backend_named(getenv("HWFOTA_PUMP")));
}

hf_pump *hf_lua_pump_take(lua_State *L, hf_pump_slot *slots, size_t cap)
{
    lua_pump *lp = push_pump(L);
    if (lp->busy) {
        lua_pop(L, 1);
        lua_pushboolean(L, 0);
        return NULL;
    }
    lp->busy = 1;
    lua_toclose(L, -1);
    hf_pump_round(&lp->pp, slots, cap);
    return &lp->pp;
}

int hf_lua_pump_add(lua_State *L, int idx, hf_pump *pp, int fd, unsigned events,
                    unsigned long long key)
{
    if (fd < 0)
        return -1;
    size_t have = hf_pump_regs(pp);
    if (hf_pump_backend_of(pp) == HF_PUMP_EPOLL && (size_t)fd >= have) {
        size_t want = have ? have : PUMP_REGS_MIN;
        while (want <= (size_t)fd)
            want *= 2;
        hf_pump_reg *regs = lua_newuserdatauv(L, want * sizeof *regs, 0);
        memset(regs, 0, want * sizeof *regs);
        if (have) {
            lua_getiuservalue(L, idx, 1);
            memcpy(regs, lua_touserdata(L, -1), have * sizeof *regs);
            lua_pop(L, 1);
        }
        lua_setiuservalue(L, idx, 1);   /* the old records go to the collector */
        hf_pump_set_regs(pp, regs, want);
    }
    return hf_pump_add_keyed(pp, fd, events, key);
}

unsigned long long hf_lua_pump_new_key(hf_pump *pp)
{
    lua_pump *lp = (lua_pump *)(void *)pp;
    return ++lp->keys;
}

/* hwfota.core.pump([backend]) -> backend, epoll_ctl calls. For tests and
 * `make bench`: "poll" or "epoll" makes a new set on that backend (not from a
 * callback inside core.poll: the set is in use then). */
static int core_pump(lua_State *L)
{
    static const char *const names[] = {"poll", "epoll", NULL};
    lua_pump *lp;
    if (!lua_isnoneornil(L, 1)) {
        int b = luaL_checkoption(L, 1, NULL, names);
        lp = push_pump(L);
        if (lp->busy)
            return luaL_error(L, "hwfota.core.pump: the wait set is in use (called from a "
                              "callback inside poll)");
        hf_pump_close(&lp->pp);
        lua_pop(L, 1);
        lp = make_pump(L, b == 0 ? HF_PUMP_POLL : HF_PUMP_EPOLL);
    } else {
        lp = push_pump(L);
    }
    lua_pushstring(L, hf_pump_backend_name(&lp->pp));
    lua_pushinteger(L, (lua_Integer)hf_pump_ctl_calls(&lp->pp));
    return 2;
}

void hf_lua_pump_register(lua_State *L)
{
    static const luaL_Reg meta[] = {
        {"__gc", pump_gc},
        {"__close", pump_release},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, PUMP_MT))
        luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
    lua_pushcfunction(L, core_pump);
    lua_setfield(L, -2, "pump");
}
