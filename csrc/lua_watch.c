/*
 * lua_watch.c — the Lua binding of the path watcher (lua_watch.h).
 *
 *   core.path_watch()      -> watcher, or nil, message, code (ENOTSUP: no inotify)
 *   watcher:add(dir)       -> wd, or nil, message, code (ENOENT: no such directory yet)
 *   watcher:remove(wd)     -> true, or nil, message, code
 *   watcher:read()         -> array of {wd =, what = "appeared"|"gone"|"dir_gone"|
 *                             "overflow", name =} (empty when nothing is queued), or
 *                             nil, message, code
 *   watcher:getfd()        -> the fd to wait on (-1 once closed): hwfota.watch takes it
 *   watcher:close()        idempotent; also on garbage collection
 */
#include <lauxlib.h>
#include <lua.h>

#include "lua_util.h"
#include "lua_watch.h"
#include "path_watch.h"

#define PW_MT "hwfota.path_watch"

static hf_pw *check_pw(lua_State *L)
{
    return luaL_checkudata(L, 1, PW_MT);
}

static int pw_new(lua_State *L)
{
    hf_pw *w = lua_newuserdatauv(L, sizeof *w, 0);
    w->fd = -1;
    luaL_setmetatable(L, PW_MT);
    hf_error err;
    hf_error_clear(&err);
    if (hf_pw_open(w, &err) < 0) return hf_lua_fail(L, err.msg, err.code);
    return 1;
}

static int pw_add(lua_State *L)
{
    hf_pw *w = check_pw(L);
    const char *dir = luaL_checkstring(L, 2);
    hf_error err;
    hf_error_clear(&err);
    int wd = hf_pw_add(w, dir, &err);
    if (wd < 0) return hf_lua_fail(L, err.msg, err.code);
    lua_pushinteger(L, wd);
    return 1;
}

static int pw_remove(lua_State *L)
{
    hf_pw *w = check_pw(L);
    lua_Integer wd = luaL_checkinteger(L, 2);
    luaL_argcheck(L, wd >= 0 && wd <= 0x7fffffff, 2, "watch descriptor expected");
    hf_error err;
    hf_error_clear(&err);
    if (hf_pw_remove(w, (int)wd, &err) < 0) return hf_lua_fail(L, err.msg, err.code);
    lua_pushboolean(L, 1);
    return 1;
}

static const char *const kind_names[] = {"", "appeared", "gone", "dir_gone", "overflow"};

/* The array being filled is on the top of the stack. */
static void push_event(const hf_pw_event *ev, void *ctx)
{
    lua_State *L = ctx;
    lua_createtable(L, 0, 3);
    hf_lua_set_int(L, "wd", ev->wd);
    hf_lua_set_str(L, "what", kind_names[ev->kind]);
    hf_lua_set_str(L, "name", ev->name);
    lua_seti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

static int pw_read(lua_State *L)
{
    hf_pw *w = check_pw(L);
    lua_newtable(L);
    hf_error err;
    hf_error_clear(&err);
    if (hf_pw_read(w, push_event, L, &err) < 0) return hf_lua_fail(L, err.msg, err.code);
    return 1;
}

static int pw_getfd(lua_State *L)
{
    lua_pushinteger(L, hf_pw_fd(check_pw(L)));
    return 1;
}

static int pw_close(lua_State *L)
{
    hf_pw_close(check_pw(L));
    return 0;
}

static int pw_tostring(lua_State *L)
{
    lua_pushfstring(L, "hwfota.path_watch (fd %d)", hf_pw_fd(check_pw(L)));
    return 1;
}

static const luaL_Reg pw_methods[] = {
    {"add", pw_add},
    {"remove", pw_remove},
    {"read", pw_read},
    {"getfd", pw_getfd},
    {"close", pw_close},
    {NULL, NULL},
};

static const luaL_Reg pw_meta[] = {
    {"__gc", pw_close},
    {"__close", pw_close},
    {"__tostring", pw_tostring},
    {NULL, NULL},
};

void hf_lua_watch_register(lua_State *L)
{
    if (luaL_newmetatable(L, PW_MT)) {
        luaL_setfuncs(L, pw_meta, 0);
        luaL_newlib(L, pw_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, pw_new);
    lua_setfield(L, -2, "path_watch");
}
