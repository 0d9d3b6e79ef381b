/*
 * lua_port.h — the hwfota.Port userdata: one module AT port (transport + AT
 * engine) seen from Lua. Holds no protocol logic: it moves bytes between the
 * transport and the engine, sleeps in poll(), and turns engine results and
 * unsolicited lines into Lua values and callbacks.
 */
#ifndef HF_LUA_PORT_H
#define HF_LUA_PORT_H

#include <lua.h>

#define HF_PORT_MT "hwfota.Port"

/* Add open, poll (many ports at once) and the Port metatable to the module
 * table on top of the stack. */
void hf_lua_port_register(lua_State *L);

#endif
