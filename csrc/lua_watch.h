/*
 * lua_watch.h — the Lua binding of the path watcher (path_watch.h):
 * hwfota.core.path_watch() -> a watcher object (add, remove, read, getfd, close)
 * that hwfota.pathwatch drives on the poll loop (hwfota.watch).
 */
#ifndef HF_LUA_WATCH_H
#define HF_LUA_WATCH_H

#include <lua.h>

/* Add path_watch to the module table on top of the stack (it stays there). */
void hf_lua_watch_register(lua_State *L);

#endif
