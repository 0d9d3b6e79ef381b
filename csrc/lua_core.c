/*
 * lua_core.c — minimal hwfota.core entry point of the fsm branch, only so the FOTA
 * binding can be tested; the lead's lua_core.c replaces it at merge.
 */
#include <lauxlib.h>
#include <lua.h>

#include "lua_fota.h"

int luaopen_hwfota_core(lua_State *L);

int luaopen_hwfota_core(lua_State *L)
{
    lua_newtable(L);
    hf_lua_fota_register(L);
    return 1;
}
