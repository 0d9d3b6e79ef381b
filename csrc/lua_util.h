/*
 * lua_util.h — the small conversions every binding file shares: the
 * `nil, message, code` failure, table fields, and option fields read with a type
 * check (a wrong type raises, as the binding's conventions say).
 */
#ifndef HF_LUA_UTIL_H
#define HF_LUA_UTIL_H

#include <lua.h>

/* Push nil, msg, code; returns 3. */
int hf_lua_fail(lua_State *L, const char *msg, const char *code);

/* t[k] = v on the table at the top of the stack. */
void hf_lua_set_str(lua_State *L, const char *k, const char *v);
void hf_lua_set_int(lua_State *L, const char *k, lua_Integer v);
void hf_lua_set_bool(lua_State *L, const char *k, int v);

/* Push table t's field k when its type is ty and return 1; leave nothing and return
 * 0 when it is nil; raise "<kind> '<k>' must be <expected> (got <type>)" otherwise. */
int hf_lua_field(lua_State *L, int t, const char *k, int ty, const char *kind,
                 const char *expected);

/* t[k] as a boolean: def when nil; another type raises as hf_lua_field does. */
int hf_lua_bool_field(lua_State *L, int t, const char *k, int def, const char *kind);

#endif
