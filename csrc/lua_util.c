/*
 * lua_util.c — shared binding conversions (see lua_util.h).
 */
#include "lua_util.h"

#include <lauxlib.h>

int hf_lua_fail(lua_State *L, const char *msg, const char *code)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, code);
    return 3;
}

void hf_lua_set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

void hf_lua_set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

void hf_lua_set_bool(lua_State *L, const char *k, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

int hf_lua_field(lua_State *L, int t, const char *k, int ty, const char *kind,
                 const char *expected)
{
    int got = lua_getfield(L, t, k);
    if (got == ty)
        return 1;
    lua_pop(L, 1);
    if (got != LUA_TNIL)
        luaL_error(L, "%s '%s' must be %s (got %s)", kind, k, expected, lua_typename(L, got));
    return 0;
}

int hf_lua_bool_field(lua_State *L, int t, const char *k, int def, const char *kind)
{
    int v = def;
    if (hf_lua_field(L, t, k, LUA_TBOOLEAN, kind, "a boolean")) {
        v = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    return v;
}
