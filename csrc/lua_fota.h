/*
 * lua_fota.h — the Lua binding of the FOTA state machine and the FOTA field
 * parsers (hwfota.core.fota_new, parse_fotastate, version_compare, ...).
 */
#ifndef HF_LUA_FOTA_H
#define HF_LUA_FOTA_H

#include <lua.h>

/* Add the FOTA functions to the module table on top of the stack (and register
 * the "hwfota.Fota" metatable). Returns 0; the table stays on the stack. */
int hf_lua_fota_register(lua_State *L);

#endif
