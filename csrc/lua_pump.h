/*
 * lua_pump.h — the wait set hwfota.core.poll keeps across calls, one per Lua
 * state (a userdata in the registry, no C global): epoll on Linux, so the
 * kernel holds the registrations between waits and a wake costs what is
 * ready, not what is watched; poll(2) elsewhere, or when HWFOTA_PUMP=poll is
 * set when the set is first made (or core.pump("poll") switches it: tests
 * and `make bench` run both backends).
 *
 * A core.poll that runs inside a callback of another (nested) cannot share
 * the set the outer call is filling: it gets NULL and waits on a poll(2) set
 * of its own, as before. The epoll fd is close-on-exec; a forked child that
 * went on polling with the parent's Lua state would share the parent's
 * kernel set (hwfota never forks).
 */
#ifndef HF_LUA_PUMP_H
#define HF_LUA_PUMP_H

#include <lua.h>

#include "io_pump.h"

/* Push the state's set (making it on first use) and take it for this C call:
 * it is given back when the call returns or raises (a to-be-closed slot).
 * Returns the set, at the top of the stack; when another call holds it, pushes
 * false and returns NULL. Begins a round with `cap` slots in `slots` (NULL:
 * inline). */
hf_pump *hf_lua_pump_take(lua_State *L, hf_pump_slot *slots, size_t cap);

/* hf_pump_add_keyed on the set at stack index `idx` (from hf_lua_pump_take),
 * first growing its registration records past fd (memory owned by Lua).
 * Returns the slot or -1 (fd < 0, the round's slots full). */
int hf_lua_pump_add(lua_State *L, int idx, hf_pump *pp, int fd, unsigned events,
                    unsigned long long key);

/* A key no registration of this state's set has had (for a port's new
 * transport; hf_pump_add_keyed). */
unsigned long long hf_lua_pump_new_key(hf_pump *pp);

/* Add core.pump to the module table on top of the stack. */
void hf_lua_pump_register(lua_State *L);

#endif
