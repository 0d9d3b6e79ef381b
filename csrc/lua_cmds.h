/*
 * lua_cmds.h — the Lua binding of the FOTA command table and its answer parsers
 * (hwfota.core.fota_command, fota_parse, setup_commands, check_at_param,
 * parse_fotastate, parse_fotadlq): what the Lua layer sends and reads outside the
 * state machine comes from the same rows the machine uses (fota_cmds.h).
 */
#ifndef HF_LUA_CMDS_H
#define HF_LUA_CMDS_H

#include <lua.h>

/* Add the functions to the module table on top of the stack. Returns 0; the table
 * stays on the stack. */
int hf_lua_cmds_register(lua_State *L);

#endif
