/*
 * lua_port.c — the hwfota.Port userdata (see lua_port.h).
 *
 * One port = one transport + one AT engine, both embedded in the userdata, so
 * nothing is allocated in the byte path. The engine's callbacks run while the
 * port reads; they only queue Lua values (results, subscribed URC lines,
 * diagnostics) in the port's user value. The queue is dispatched to Lua
 * callbacks afterwards, when the engine is between two inputs, so a callback
 * may itself send commands, wait on them, or remove its own handler.
 *
 * Lua-side state lives in one user value table:
 *   events   FIFO of queued items {t="r"|"u"|"e", ...}, indices p->ev_head..ev_tail
 *   waiters  [id] = callback function (port:send) or true (port:command waits)
 *   done     [id] = completed item picked up by a waiting port:command
 *   handlers [hid] = callback function of port:on
 *   on_event diagnostics callback (port:on_event)
 */
#include "lua_port.h"

#include <stdint.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "at_engine.h"
#include "io_pump.h"
#include "lua_pump.h"
#include "transport.h"

#define PORT_HANDLERS      32
#define PORT_HANDLER_PLEN  HF_AT_URC_PREFIX_LEN  /* a prefix is registered with the engine */
#define PORT_MAX_DEPTH     8      /* nested waits from callbacks */
#define PORT_MAX_POLL      100000 /* ports in one hwfota.core.poll call (each is an fd) */
#define PORT_POLL_INLINE   64     /* ports whose bookkeeping one call keeps on the C stack */
#define PORT_MAX_FDS       100000 /* other fds in one hwfota.core.poll call */
#define PORT_FDS_INLINE    64     /* other fds whose bookkeeping one call keeps on the C stack */

typedef struct port_handler {
    lua_Integer id;
    const char *prefix;       /* the Lua string's bytes, anchored in env.prefixes[id] until
                                 port:off (Lua strings do not move): no copy per port */
    size_t plen;
    int removed;
} port_handler;

typedef struct hf_port {
    hf_transport *tr;
    unsigned long opens;      /* transports opened so far: tells a reopened port */
    int sync;                 /* resynchronise before the first command after (re)open */
    char path[256];
    hf_transport_opts topts;
    double default_timeout;
    int closed;
    int lost;
    char lost_msg[HF_ERROR_MSG_MAX];
    lua_State *L;             /* set only while the engine runs on behalf of Lua */
    int idx;                  /* stack index of this port's userdata in L meanwhile */
    int depth;                /* nested dispatch/wait depth */
    lua_Integer ev_head, ev_tail;
    port_handler handlers[PORT_HANDLERS];
    size_t nhandlers;
    lua_Integer next_handler;
    int handlers_dirty;       /* some handler removed: sweep when not dispatching */
    unsigned long long pump_key;  /* the wait set's key for this transport (lua_pump.h) */
    unsigned long pump_opens;     /* the transport that key is for */
    hf_at at;
} hf_port;

/* ------------------------------------------------- user value accessors */

/* Push env[field] of the port at stack index idx. */
static int push_env_field(lua_State *L, int idx, const char *field)
{
    lua_getiuservalue(L, idx, 1);
    int t = lua_getfield(L, -1, field);
    lua_remove(L, -2);
    return t;
}

/* Append the value on top of the stack to the port's event FIFO (pops it). */
static void queue_event(lua_State *L, hf_port *p, int port_idx)
{
    push_env_field(L, port_idx, "events");
    lua_insert(L, -2);
    lua_seti(L, -2, ++p->ev_tail);
    lua_pop(L, 1);
}

/* The engine callbacks find the userdata on the stack at p->idx (set by enter). */
static int port_stack_index(hf_port *p)
{
    return p->idx;
}

/* ------------------------------------------------------ engine callbacks */

static const char *status_code(const hf_at_result *r)
{
    switch (r->status) {
    case HF_AT_STATUS_DONE: return hf_final_error_code(r->final.kind);
    case HF_AT_STATUS_TIMEOUT: return "ETIMEDOUT";
    case HF_AT_STATUS_PORTLOST: return "EPORTLOST";
    case HF_AT_STATUS_OVERFLOW: return "EOVERFLOW";
    case HF_AT_STATUS_CANCELLED: return "ECANCELED";
    }
    return "EIO";
}

/* Build {command=, lines={...}, final=, kind=, code=, text=, elapsed=}. */
static void push_result_table(lua_State *L, const hf_at_result *r)
{
    lua_createtable(L, 0, 7);
    lua_pushstring(L, r->command ? r->command : "");
    lua_setfield(L, -2, "command");
    lua_createtable(L, (int)r->nlines, 0);
    for (size_t i = 0; i < r->nlines; i++) {
        lua_pushlstring(L, r->lines[i], r->line_lens[i]);
        lua_seti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "lines");
    lua_pushstring(L, r->final_line ? r->final_line : "");
    lua_setfield(L, -2, "final");
    lua_pushstring(L, r->final.kind == HF_FINAL_NONE ? "NONE" : hf_final_name(r->final.kind));
    lua_setfield(L, -2, "kind");
    if (r->final.code >= 0) {
        lua_pushinteger(L, r->final.code);
        lua_setfield(L, -2, "code");
    }
    if (r->final.text_len > 0) {
        lua_pushlstring(L, r->final.text, r->final.text_len);
        lua_setfield(L, -2, "text");
    }
    lua_pushnumber(L, r->elapsed);
    lua_setfield(L, -2, "elapsed");
}

/* Queue {t="r", id=, ok=bool, res=, msg=, code=} for a finished command. */
static void on_result(void *ud, const hf_at_result *r)
{
    hf_port *p = ud;
    lua_State *L = p->L;
    if (!L)
        return; /* closing from __gc: nobody is left to tell */
    lua_createtable(L, 0, 6);
    lua_pushliteral(L, "r");
    lua_setfield(L, -2, "t");
    lua_pushinteger(L, (lua_Integer)r->id);
    lua_setfield(L, -2, "id");
    push_result_table(L, r);
    lua_setfield(L, -2, "res");
    int ok = r->status == HF_AT_STATUS_DONE && r->final.kind == HF_FINAL_OK;
    lua_pushboolean(L, ok);
    lua_setfield(L, -2, "ok");
    if (!ok) {
        const char *cmd = r->command ? r->command : "";
        switch (r->status) {
        case HF_AT_STATUS_DONE:
            lua_pushstring(L, r->final_line ? r->final_line : "ERROR");
            break;
        case HF_AT_STATUS_TIMEOUT:
            lua_pushfstring(L, "%s: no answer from the module in time", cmd);
            break;
        case HF_AT_STATUS_PORTLOST:
            lua_pushfstring(L, "%s: port lost (%s)", cmd,
                            p->lost_msg[0] ? p->lost_msg : "closed");
            break;
        case HF_AT_STATUS_OVERFLOW:
            lua_pushfstring(L, "%s: response larger than %d lines or %d bytes", cmd,
                            HF_AT_RESP_LINES, HF_AT_RESP_BYTES);
            break;
        case HF_AT_STATUS_CANCELLED:
            lua_pushfstring(L, "%s: cancelled before it was sent", cmd);
            break;
        }
        lua_setfield(L, -2, "msg");
        lua_pushstring(L, p->closed && r->status == HF_AT_STATUS_PORTLOST ? "ECLOSED"
                                                                       : status_code(r));
        lua_setfield(L, -2, "code");
    }
    queue_event(L, p, port_stack_index(p));
}

static int handler_matches(const port_handler *h, const char *line, size_t len)
{
    return !h->removed && h->plen <= len && memcmp(h->prefix, line, h->plen) == 0;
}

/* Queue an unsolicited line only when somebody subscribed to it: unwanted
 * noise (^RSSI every few seconds) costs no allocation. */
static void on_urc(void *ud, const char *line, size_t len)
{
    hf_port *p = ud;
    lua_State *L = p->L;
    if (!L)
        return;
    int wanted = 0;
    for (size_t i = 0; i < p->nhandlers && !wanted; i++)
        wanted = handler_matches(&p->handlers[i], line, len);
    if (!wanted)
        return;
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "u");
    lua_setfield(L, -2, "t");
    lua_pushlstring(L, line, len);
    lua_setfield(L, -2, "line");
    queue_event(L, p, port_stack_index(p));
}

static const char *event_name(hf_at_event ev)
{
    switch (ev) {
    case HF_AT_EV_OVERFLOW: return "overflow";
    case HF_AT_EV_TIMEOUT: return "timeout";
    case HF_AT_EV_RESYNC_START: return "resync";
    case HF_AT_EV_RESYNC_DONE: return "resync_done";
    case HF_AT_EV_RESYNC_FAILED: return "resync_failed";
    case HF_AT_EV_DISCARDED: return "discarded";
    case HF_AT_EV_GAVE_UP: return "gave_up";
    case HF_AT_EV_RESYNC_REFUSED: return "resync_refused";
    case HF_AT_EV_RESYNC_FALLBACK: return "resync_fallback";
    }
    return "unknown";
}

static void queue_diag(lua_State *L, hf_port *p, const char *name, const char *detail,
                       size_t len)
{
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "e");
    lua_setfield(L, -2, "t");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "event");
    lua_pushlstring(L, detail ? detail : "", detail ? len : 0);
    lua_setfield(L, -2, "detail");
    queue_event(L, p, port_stack_index(p));
}

static void on_event(void *ud, hf_at_event ev, const char *detail, size_t len)
{
    hf_port *p = ud;
    if (p->L)
        queue_diag(p->L, p, event_name(ev), detail, len);
}

static const hf_at_callbacks port_callbacks = {on_result, on_urc, on_event};

/* ------------------------------------------------------------- checks */

static hf_port *check_port(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, HF_PORT_MT);
}

/* Push nil, msg, code: the run-time failure convention. */
static int push_fail(lua_State *L, const char *msg, const char *code)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, code);
    return 3;
}

static int fail_if_unusable(lua_State *L, hf_port *p)
{
    if (p->closed)
        return push_fail(L, "port is closed", "ECLOSED");
    if (p->lost) {
        lua_pushnil(L);
        lua_pushfstring(L, "port lost: %s", p->lost_msg);
        lua_pushliteral(L, "EPORTLOST");
        return 3;
    }
    return 0;
}

/* ------------------------------------------------------------- I/O core */

/* The transport failed: fail every command, forget the fd. The port object
 * stays valid; port:reopen() can bring it back. */
static void mark_lost(hf_port *p, const hf_error *err)
{
    if (p->lost)
        return;
    p->lost = 1;
    hf_strlcpy(p->lost_msg, sizeof p->lost_msg, err && err->msg[0] ? err->msg : "port lost");
    hf_transport_close(p->tr);
    p->tr = NULL;
    hf_at_port_lost(&p->at);
    if (p->L)
        queue_diag(p->L, p, "port_lost", p->lost_msg, strlen(p->lost_msg));
}

static void flush_output(hf_port *p)
{
    if (p->lost || p->closed || !p->tr)
        return;
    hf_error err;
    hf_error_clear(&err);
    if (hf_pump_flush(p->tr, &p->at, &err) < 0)
        mark_lost(p, &err);
}

/* Add the port's fd to the wait set; returns its slot, -1 when it has none. */
static int port_add_fd(hf_port *p, hf_pump *pp)
{
    if (p->closed || p->lost || !p->tr)
        return -1;
    return hf_pump_add(pp, hf_transport_fd(p->tr), hf_pump_port_events(&p->at));
}

/* port_add_fd into the state's lasting wait set (stack index pidx): the
 * port's key changes with each transport it opens, so a reopened port whose
 * fd got the same number is registered again. */
static int port_add_kept(lua_State *L, int pidx, hf_port *p, hf_pump *pp)
{
    if (p->closed || p->lost || !p->tr)
        return -1;
    if (!p->pump_key || p->pump_opens != p->opens) {
        p->pump_key = hf_lua_pump_new_key(pp);
        p->pump_opens = p->opens;
    }
    return hf_lua_pump_add(L, pidx, pp, hf_transport_fd(p->tr), hf_pump_port_events(&p->at),
                           p->pump_key);
}

/* Handle what the wait reported for one port, then fire due timeouts. A port
 * with nothing reported and no output waiting has nothing to pump. */
static void port_after_wait(hf_port *p, unsigned ready)
{
    if (!p->closed && !p->lost && p->tr && (ready || (hf_pump_port_events(&p->at) & HF_PUMP_WRITE))) {
        hf_error err;
        hf_error_clear(&err);
        if (hf_pump_port_ready(p->tr, &p->at, ready, &err) < 0)
            mark_lost(p, &err);
    }
    double d = hf_at_deadline(&p->at);
    if (d < 0)
        return;   /* no timeout pending: nothing to tick, nothing queued by one */
    hf_at_tick(&p->at, hf_pump_now());
    flush_output(p); /* a timeout may have queued a resync query */
}

/* ------------------------------------------------------------- dispatch */

static void report_callback_error(lua_State *L, int port_idx, const char *what)
{
    /* message on top of the stack */
    const char *msg = lua_tostring(L, -1);
    if (push_env_field(L, port_idx, "on_event") == LUA_TFUNCTION) {
        lua_createtable(L, 0, 2);
        lua_pushliteral(L, "callback_error");
        lua_setfield(L, -2, "event");
        lua_pushfstring(L, "%s: %s", what, msg ? msg : "(error object is not a string)");
        lua_setfield(L, -2, "detail");
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            fprintf(stderr, "hwfota: on_event callback failed: %s\n", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    } else {
        lua_pop(L, 1);
        fprintf(stderr, "hwfota: %s callback failed: %s\n", what,
                msg ? msg : "(error object is not a string)");
    }
    lua_pop(L, 1); /* the message */
}

static int traceback_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* Call the function below nargs arguments on the stack, protected. */
static void call_protected(lua_State *L, int port_idx, int nargs, const char *what)
{
    int fn = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback_handler);
    lua_insert(L, fn);
    if (lua_pcall(L, nargs, 0, fn) != LUA_OK)
        report_callback_error(L, port_idx, what);
    lua_remove(L, fn);
}

/* Push ok-or-nil, msg, code, detail for a result item on top of the stack. */
static int push_result_values(lua_State *L, int item)
{
    lua_getfield(L, item, "ok");
    int ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (ok) {
        lua_getfield(L, item, "res");
        return 1;
    }
    lua_pushnil(L);
    lua_getfield(L, item, "msg");
    lua_getfield(L, item, "code");
    lua_getfield(L, item, "res");
    return 4;
}

static void dispatch_result(lua_State *L, int port_idx, int item)
{
    lua_getfield(L, item, "id");
    lua_Integer id = lua_tointeger(L, -1);
    lua_pop(L, 1);
    push_env_field(L, port_idx, "waiters");
    int waiters = lua_gettop(L);
    int t = lua_geti(L, waiters, id);
    lua_pushnil(L);
    lua_seti(L, waiters, id);
    if (t == LUA_TFUNCTION) {
        int n = push_result_values(L, item);
        call_protected(L, port_idx, n, "command");
    } else {
        lua_pop(L, 1);
        push_env_field(L, port_idx, "done");
        lua_pushvalue(L, item);
        lua_seti(L, -2, id);
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* waiters */
}

static void dispatch_urc(lua_State *L, hf_port *p, int port_idx, int item)
{
    lua_getfield(L, item, "line");
    size_t len;
    const char *line = lua_tolstring(L, -1, &len);
    int line_idx = lua_gettop(L);
    size_t n = p->nhandlers; /* handlers added by a callback start with the next line */
    for (size_t i = 0; i < n && i < p->nhandlers; i++) {
        if (!handler_matches(&p->handlers[i], line, len))
            continue;
        push_env_field(L, port_idx, "handlers");
        lua_geti(L, -1, p->handlers[i].id);
        lua_remove(L, -2);
        lua_pushvalue(L, line_idx);
        call_protected(L, port_idx, 1, "unsolicited-code handler");
    }
    lua_pop(L, 1);
}

static void dispatch_diag(lua_State *L, int port_idx, int item)
{
    if (push_env_field(L, port_idx, "on_event") != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return;
    }
    lua_pushvalue(L, item);
    call_protected(L, port_idx, 1, "on_event");
}

/* Remove handlers marked by port:off (possibly from inside their callback). */
static void sweep_handlers(hf_port *p)
{
    if (!p->handlers_dirty || p->depth > 0)
        return;
    size_t j = 0;
    for (size_t i = 0; i < p->nhandlers; i++)
        if (!p->handlers[i].removed)
            p->handlers[j++] = p->handlers[i];
    p->nhandlers = j;
    p->handlers_dirty = 0;
}

/* Deliver queued items in order; returns how many were delivered. */
static int dispatch(lua_State *L, hf_port *p, int port_idx)
{
    int count = 0;
    p->depth++;
    while (p->ev_head < p->ev_tail) {
        lua_Integer k = ++p->ev_head;
        push_env_field(L, port_idx, "events");
        lua_geti(L, -1, k);
        lua_pushnil(L);
        lua_seti(L, -3, k);
        lua_remove(L, -2);
        int item = lua_gettop(L);
        lua_getfield(L, item, "t");
        const char *t = lua_tostring(L, -1);
        char kind = t ? t[0] : '?';
        lua_pop(L, 1);
        if (kind == 'r')
            dispatch_result(L, port_idx, item);
        else if (kind == 'u')
            dispatch_urc(L, p, port_idx, item);
        else
            dispatch_diag(L, port_idx, item);
        lua_settop(L, item - 1);
        count++;
    }
    p->depth--;
    sweep_handlers(p);
    return count;
}

/* Let the engine's callbacks reach Lua: the port's userdata is at stack
 * index idx of L until leave(). */
static void enter(lua_State *L, hf_port *p, int idx)
{
    p->L = L;
    p->idx = lua_absindex(L, idx);
}

static void leave(hf_port *p)
{
    p->L = NULL;
}

/* One wait of at most `wait` seconds on one port (at stack index 1), then dispatch. */
static int port_step(lua_State *L, hf_port *p, double wait)
{
    hf_pump pp;
    hf_pump_reset(&pp);
    enter(L, p, 1);
    flush_output(p);
    double deadline = hf_at_deadline(&p->at);
    double until = hf_pump_now() + (wait > 0 ? wait : 0);
    if (deadline >= 0 && deadline < until)
        until = deadline;
    int slot = port_add_fd(p, &pp);
    unsigned ready = 0;
    if (slot >= 0) {
        hf_error err;
        hf_error_clear(&err);
        if (hf_pump_wait(&pp, until, &err) > 0)
            ready = hf_pump_ready(&pp, slot);
    }
    port_after_wait(p, ready);
    leave(p);
    return dispatch(L, p, 1);
}

/* ------------------------------------------------------------ methods */

static double opt_seconds(lua_State *L, int idx, const char *field, double dflt)
{
    double v = dflt;
    if (idx != 0 && lua_type(L, idx) == LUA_TTABLE) {
        int t = lua_getfield(L, idx, field);
        if (t == LUA_TNUMBER)
            v = lua_tonumber(L, -1);
        else if (t != LUA_TNIL)
            luaL_error(L, "option '%s' must be a number of seconds", field);
        lua_pop(L, 1);
    }
    if (!(v >= 0) || v > HF_PUMP_MAX_WAIT)
        luaL_error(L, "option '%s' out of range (0 .. 2592000 seconds)", field);
    return v;
}

/* A prefix given by the caller: a string without CR, LF or NUL, shorter than the
 * engine's slot (a line never contains CR or LF, so such a prefix could never
 * match; NUL would silently cut it). Misuse: raises, like port:on. */
static const char *check_prefix(lua_State *L, int idx, const char *what)
{
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (len >= HF_AT_PREFIX_LEN)
        luaL_error(L, "%s longer than %d bytes", what, HF_AT_PREFIX_LEN - 1);
    if (memchr(s, '\r', len) || memchr(s, '\n', len) || memchr(s, '\0', len))
        luaL_error(L, "%s must not contain CR, LF or NUL", what);
    return s;
}

/* Options of port:command and port:send; anything else is a typo and raises. */
static void check_command_opts(lua_State *L, int idx)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!k || (strcmp(k, "prefix") && strcmp(k, "expect") && strcmp(k, "timeout")))
            luaL_error(L, "unknown option '%s' (prefix, expect, timeout)",
                       k ? k : luaL_typename(L, -1));
    }
}

/* Read opts.prefix (string or array) / opts.expect into the engine's form. */
static hf_at_expect read_expect(lua_State *L, int idx, const char **prefixes, size_t *np)
{
    *np = 0;
    if (idx == 0 || lua_type(L, idx) != LUA_TTABLE)
        return HF_AT_EXPECT_ALL;
    check_command_opts(L, idx);
    hf_at_expect ex = HF_AT_EXPECT_ALL;
    int t = lua_getfield(L, idx, "prefix");
    if (t == LUA_TSTRING) {
        prefixes[(*np)++] = check_prefix(L, -1, "option 'prefix'");
        ex = HF_AT_EXPECT_PREFIXES;
    } else if (t == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        if (n < 1 || n > HF_AT_PREFIX_MAX)
            luaL_error(L, "option 'prefix' must list 1 to %d prefixes", HF_AT_PREFIX_MAX);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_geti(L, -1, i) != LUA_TSTRING)
                luaL_error(L, "option 'prefix' must contain only strings");
            prefixes[(*np)++] = check_prefix(L, -1, "option 'prefix' entry");
            lua_pop(L, 1); /* the string stays alive in the table */
        }
        ex = HF_AT_EXPECT_PREFIXES;
    } else if (t != LUA_TNIL) {
        luaL_error(L, "option 'prefix' must be a string or an array of strings");
    }
    /* the prefix value stays on the stack (anchors the strings) */
    int e = lua_getfield(L, idx, "expect");
    if (e == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        if (strcmp(s, "none") == 0)
            ex = HF_AT_EXPECT_NONE;
        else if (strcmp(s, "all") == 0)
            ex = HF_AT_EXPECT_ALL;
        else
            luaL_error(L, "option 'expect' must be \"all\" or \"none\"");
    } else if (e != LUA_TNIL) {
        luaL_error(L, "option 'expect' must be \"all\" or \"none\"");
    }
    lua_pop(L, 1);
    return ex;
}

/* Submit; on success leaves nothing extra on the stack and returns the id. */
static int submit(lua_State *L, hf_port *p, lua_Integer *id, int opts_idx)
{
    size_t len;
    const char *cmd = lua_tolstring(L, 2, &len);   /* a string: check_command */
    const char *prefixes[HF_AT_PREFIX_MAX];
    size_t np = 0;
    int top = lua_gettop(L);
    hf_at_expect ex = read_expect(L, opts_idx, prefixes, &np);
    double timeout = opt_seconds(L, opts_idx, "timeout", p->default_timeout);
    if (!(timeout > 0))
        luaL_error(L, "option 'timeout' must be more than 0 seconds");
    hf_error err;
    hf_error_clear(&err);
    unsigned long uid = 0;
    enter(L, p, 1);   /* a submit may start the resync: its event reaches on_event */
    int rc = hf_at_submit(&p->at, cmd, len, ex, prefixes, np, timeout, &uid, &err);
    leave(p);
    lua_settop(L, top);
    if (rc < 0)
        return push_fail(L, err.msg, err.code ? err.code : "EINVAL");
    *id = (lua_Integer)uid;
    return 0;
}

/* The command argument must be a string: a number would be converted and sent. */
static void check_command(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_typeerror(L, idx, "string");
}

/***
 * Send a command and wait for its final result (see lua/hwfota/init.lua for the
 * documented Lua-level API).
 */
static int port_command(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    check_command(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    int n = fail_if_unusable(L, p);
    if (n)
        return n;
    if (p->depth >= PORT_MAX_DEPTH)
        return luaL_error(L, "port:command nested too deeply inside callbacks");
    lua_Integer id;
    if ((n = submit(L, p, &id, 3)) != 0)
        return n;
    push_env_field(L, 1, "waiters");
    lua_pushboolean(L, 1);
    lua_seti(L, -2, id);
    lua_pop(L, 1);
    p->depth++;
    for (;;) {
        push_env_field(L, 1, "done");
        if (lua_geti(L, -1, id) == LUA_TTABLE) {
            lua_pushnil(L);
            lua_seti(L, -3, id);
            p->depth--;
            sweep_handlers(p);
            return push_result_values(L, lua_gettop(L));
        }
        lua_pop(L, 2);
        port_step(L, p, 3600.0);
    }
}

/* port:send(cmd [, opts] [, callback]) -> id | nil, msg, code */
static int port_send(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    check_command(L, 2);
    int cb = 0;
    if (lua_type(L, 3) == LUA_TFUNCTION) {
        cb = 3;
    } else {
        if (!lua_isnoneornil(L, 3))
            luaL_checktype(L, 3, LUA_TTABLE);
        if (!lua_isnoneornil(L, 4))
            luaL_checktype(L, 4, LUA_TFUNCTION);
        cb = lua_isnoneornil(L, 4) ? 0 : 4;
    }
    int opts = (cb == 3) ? 0 : 3;
    lua_settop(L, 4);
    int n = fail_if_unusable(L, p);
    if (n)
        return n;
    lua_Integer id;
    if ((n = submit(L, p, &id, opts)) != 0)
        return n;
    push_env_field(L, 1, "waiters");
    if (cb)
        lua_pushvalue(L, cb);
    else
        lua_pushboolean(L, 1);
    lua_seti(L, -2, id);
    lua_pop(L, 1);
    /* Start writing now: the deadline only starts once the last byte is out. */
    enter(L, p, 1);
    flush_output(p);
    leave(p);
    dispatch(L, p, 1);
    lua_pushinteger(L, id);
    return 1;
}

/* port:result(id) -> res | nil,msg,code,detail | false (not finished) */
static int port_result(lua_State *L)
{
    check_port(L, 1);
    lua_Integer id = luaL_checkinteger(L, 2);
    push_env_field(L, 1, "done");
    if (lua_geti(L, -1, id) != LUA_TTABLE) {
        /* false only while a result can still come: an id never sent, already
         * collected, or sent with a callback would make `until port:result(id)` spin */
        if (push_env_field(L, 1, "waiters") == LUA_TTABLE && lua_geti(L, -1, id) == LUA_TBOOLEAN) {
            lua_pushboolean(L, 0);
            return 1;
        }
        lua_pushnil(L);
        lua_pushfstring(L, "no pending command with id %I (unknown, already collected, "
                        "or sent with a callback)", id);
        lua_pushliteral(L, "EINVAL");
        return 3;
    }
    lua_pushnil(L);
    lua_seti(L, -3, id);
    return push_result_values(L, lua_gettop(L));
}

static int port_poll(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    double seconds = luaL_optnumber(L, 2, 0.0);
    luaL_argcheck(L, seconds >= 0 && seconds <= HF_PUMP_MAX_WAIT, 2, "seconds out of range");
    lua_settop(L, 1);
    if (p->closed)
        return push_fail(L, "port is closed", "ECLOSED");
    int total = dispatch(L, p, 1);
    double end = hf_pump_now() + seconds;
    while (!total) {
        if (p->lost) {
            int n = fail_if_unusable(L, p);
            return n;
        }
        double left = end - hf_pump_now();
        total += port_step(L, p, left > 0 ? left : 0);
        if (left <= 0)
            break;
    }
    lua_pushinteger(L, total);
    return 1;
}

/* A string option: its index in names, as luaL_checkoption finds it, but the
 * error names the option and its choices (what failed and why), and a string
 * with a NUL ("r\0x") is no option. The value is at stack index idx; arg is
 * the argument it belongs to (for the message). */
static int check_option(lua_State *L, int idx, int arg, const char *def,
                        const char *const names[], const char *what)
{
    size_t len = 0;
    const char *s = def;
    if (!lua_isnoneornil(L, idx)) {
        if (lua_type(L, idx) != LUA_TSTRING)
            return luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a string, got %s", what,
                                                         luaL_typename(L, idx)));
        s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len)
            s = NULL;
    }
    for (int i = 0; s && names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, what);
    luaL_addstring(&b, " must be ");
    for (int i = 0; names[i]; i++) {
        luaL_addstring(&b, i == 0 ? "\"" : names[i + 1] ? ", \"" : " or \"");
        luaL_addstring(&b, names[i]);
        luaL_addchar(&b, '"');
    }
    luaL_pushresult(&b);
    return luaL_argerror(L, arg, lua_tostring(L, -1));
}

static const char *const fd_events[] = {"r", "w", "rw", NULL};
static const unsigned fd_event_bits[] = {HF_PUMP_READ, HF_PUMP_WRITE,
                                         HF_PUMP_READ | HF_PUMP_WRITE};

/* Read fds[i] = {fd = n, events = "r"|"w"|"rw" [, key = k]} (on top of the
 * stack) into the set: at stack index pidx when it is the lasting one (kp),
 * else a set of this call's own. `key` (an integer, optional) says the fd is
 * the same open file as in the last call with that key (lua_pump.h). */
static int add_watch(lua_State *L, hf_pump *pp, int pidx, int kept, lua_Integer i)
{
    int w = lua_gettop(L);
    if (lua_getfield(L, w, "fd") != LUA_TNUMBER || !lua_isinteger(L, -1))
        return luaL_error(L, "bad argument #3 to 'poll' (fds[%d].fd must be an integer)",
                          (int)i);
    lua_Integer fd = lua_tointeger(L, -1);
    if (fd < 0 || fd > INT32_MAX)
        return luaL_error(L, "bad argument #3 to 'poll' (fds[%d].fd %I is not a file "
                          "descriptor)", (int)i, fd);
    lua_Integer key = 0;
    int kt = lua_getfield(L, w, "key");
    if (kt != LUA_TNIL) {
        if (kt != LUA_TNUMBER || !lua_isinteger(L, -1))
            return luaL_error(L, "bad argument #3 to 'poll' (fds[%d].key must be an integer)",
                              (int)i);
        key = lua_tointeger(L, -1);
    }
    lua_getfield(L, w, "events");
    int v = lua_absindex(L, -1);
    const char *what = lua_pushfstring(L, "fds[%d].events", (int)i);
    int ev = check_option(L, v, 3, NULL, fd_events, what);
    lua_settop(L, w);
    if (kept)   /* watchers' keys live apart from ports' keys: top bit set */
        return hf_lua_pump_add(L, pidx, pp, (int)fd, fd_event_bits[ev],
                               key ? (unsigned long long)key | (1ull << 63) : 0);
    return hf_pump_add(pp, (int)fd, fd_event_bits[ev]);
}

/* fds[i].ready = "r", "w", "rw", with "h" (hang-up or error) or "n" (not an
 * open fd) appended; nil when nothing was reported. */
static void set_ready(lua_State *L, unsigned ready)
{
    char buf[5];
    size_t n = 0;
    if (ready & HF_PUMP_READ)
        buf[n++] = 'r';
    if (ready & HF_PUMP_WRITE)
        buf[n++] = 'w';
    if (ready & (HF_PUMP_HUP | HF_PUMP_ERR))
        buf[n++] = 'h';
    if (ready & HF_PUMP_INVALID)
        buf[n++] = 'n';
    if (n)
        lua_pushlstring(L, buf, n);
    else
        lua_pushnil(L);
    lua_setfield(L, -2, "ready");
}

/* hwfota.core.poll({port, ...}, seconds [, fds]) -> events handled. One wait
 * for many ports, and for other fds: fds is an array of {fd =, events = "r" |
 * "w" | "rw" [, key =]}; each gets `ready` (set_ready) after the wait. The
 * loop that lets one process drive many modules and watch sockets, pipes,
 * signals. The wait set is the Lua state's lasting one (lua_pump.h: epoll on
 * Linux, registrations kept between calls); a call from a callback inside
 * another call waits on a poll(2) set of its own. */
static int core_poll(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    double seconds = luaL_optnumber(L, 2, 0.0);
    luaL_argcheck(L, seconds >= 0 && seconds <= HF_PUMP_MAX_WAIT, 2, "seconds out of range");
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    /* a __len metamethod may answer anything: a negative count would reach the
     * wait as a huge count */
    luaL_argcheck(L, n >= 0, 1, "the ports table has a negative length");
    luaL_argcheck(L, n <= PORT_MAX_POLL, 1, "too many ports for one poll");
    lua_Integer nf = lua_isnoneornil(L, 3) ? 0 : luaL_len(L, 3);
    luaL_argcheck(L, nf >= 0, 3, "the fds table has a negative length");
    luaL_argcheck(L, nf <= PORT_MAX_FDS, 3, "too many fds for one poll");
    lua_settop(L, 3);
    luaL_checkstack(L, (int)n + 8, "too many ports");
    hf_pump own, *pp;
    unsigned fready_inl[PORT_FDS_INLINE];
    unsigned *fready = fready_inl;        /* fds' slots, then what they reported */
    int slots_inl[PORT_POLL_INLINE];
    hf_port *ports_inl[PORT_POLL_INLINE];
    unsigned long opens_inl[PORT_POLL_INLINE];
    int *slots = slots_inl;               /* ports' slots, then what they reported */
    hf_port **ports = ports_inl;
    unsigned long *opens = opens_inl;     /* which transport each slot watched */
    hf_pump_slot *ws = NULL;
    size_t slots_n = (size_t)n + (size_t)nf;
    if (n > PORT_POLL_INLINE || nf > PORT_FDS_INLINE || slots_n > HF_PUMP_MAX_FDS) {
        /* one block for the call's bookkeeping and the wait set's slots, owned
         * by Lua (stack index 4, below the ports): freed by the collector, also
         * when a callback raises */
        size_t ns = (size_t)n;
        char *block = lua_newuserdatauv(L, ns * (sizeof *ports + sizeof *opens + sizeof *slots) +
                                        slots_n * sizeof(hf_pump_slot) +
                                        (size_t)nf * sizeof *fready, 0);
        ports = (hf_port **)(void *)block;
        opens = (unsigned long *)(void *)(block + ns * sizeof *ports);
        ws = (hf_pump_slot *)(void *)(block + ns * (sizeof *ports + sizeof *opens));
        slots = (int *)(void *)(ws + slots_n);
        fready = (unsigned *)(void *)(slots + ns);
    } else {
        lua_pushnil(L);                   /* stack index 4 either way */
    }
    /* stack index 5: the lasting set, taken until this call ends (false when a
     * call further out holds it) */
    pp = hf_lua_pump_take(L, ws, slots_n);
    int kept = pp != NULL;
    if (!kept) {
        pp = &own;
        hf_pump_reset_with(pp, ws, slots_n);
    }
    double now = hf_pump_now(), until = now + seconds;
    int total = 0;
    for (lua_Integer i = 0; i < nf; i++) {
        lua_geti(L, 3, i + 1);
        if (!lua_istable(L, -1))
            return luaL_error(L, "bad argument #3 to 'poll' (fds[%d] is a %s, not a table)",
                              (int)(i + 1), luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    /* stack index 6: the Port metatable, looked up once (not by name per port);
     * ports[i] stays at stack index 7 + i for the whole call */
    luaL_getmetatable(L, HF_PORT_MT);
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        ports[i] = NULL;
        if (lua_type(L, -1) == LUA_TUSERDATA && lua_getmetatable(L, -1)) {
            if (lua_rawequal(L, -1, 6))
                ports[i] = lua_touserdata(L, -2);
            lua_pop(L, 1);
        }
        if (!ports[i])
            return luaL_error(L, "bad argument #1 to 'poll' (ports[%d] is a %s, not a "
                              "hwfota.Port)", (int)(i + 1), luaL_typename(L, -1));
    }
    for (lua_Integer i = 0; i < n; i++) {
        hf_port *p = ports[i];
        int idx = (int)(7 + i);
        enter(L, p, idx);
        flush_output(p);
        slots[i] = kept ? port_add_kept(L, 5, p, pp) : port_add_fd(p, pp);
        opens[i] = p->opens;
        leave(p);
        total += dispatch(L, p, idx);
        double d = hf_at_deadline(&p->at);
        if (d >= 0 && d < until)
            until = d;
    }
    for (lua_Integer i = 0; i < nf; i++) {
        lua_geti(L, 3, i + 1);
        fready[i] = (unsigned)add_watch(L, pp, 5, kept, i + 1);
        lua_pop(L, 1);
    }
    if (total)
        until = now;
    hf_error err;
    hf_error_clear(&err);
    int r = hf_pump_wait(pp, until, &err);
    if (r < 0)
        return luaL_error(L, "%s", err.msg);
    /* What each slot reported, taken now: the callbacks below may run a
     * nested wait (on a set of its own, but the lasting set's round is over). */
    for (lua_Integer i = 0; i < n; i++)
        slots[i] = r > 0 ? (int)hf_pump_ready(pp, slots[i]) : 0;
    for (lua_Integer i = 0; i < nf; i++)
        fready[i] = r > 0 ? hf_pump_ready(pp, (int)fready[i]) : 0;
    /* Callbacks run between the wait and a port's turn below (and, above, after
     * its slot was filled): one may have lost and reopened this port. What the
     * wait said then was about the old fd (a hang-up, or a number reused): it
     * must not mark the new transport lost. */
    for (lua_Integer i = 0; i < n; i++) {
        hf_port *p = ports[i];
        int idx = (int)(7 + i);
        enter(L, p, idx);
        port_after_wait(p, p->opens == opens[i] ? (unsigned)slots[i] : 0);
        leave(p);
        total += dispatch(L, p, idx);
    }
    for (lua_Integer i = 0; i < nf; i++) {
        lua_geti(L, 3, i + 1);
        if (lua_istable(L, -1))
            set_ready(L, fready[i]);
        lua_pop(L, 1);
    }
    lua_pushinteger(L, total);
    return 1;
}

static int port_on(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    size_t plen;
    if (lua_type(L, 2) != LUA_TSTRING)
        luaL_typeerror(L, 2, "string");
    const char *prefix = lua_tolstring(L, 2, &plen);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    luaL_argcheck(L, plen < PORT_HANDLER_PLEN, 2, "prefix too long");
    luaL_argcheck(L, memchr(prefix, '\r', plen) == NULL && memchr(prefix, '\n', plen) == NULL,
                  2, "prefix must not contain CR or LF");
    luaL_argcheck(L, memchr(prefix, '\0', plen) == NULL, 2, "prefix must not contain NUL");
    sweep_handlers(p);
    if (p->nhandlers >= PORT_HANDLERS)
        return push_fail(L, "too many unsolicited-code handlers on this port", "ENOSPC");
    /* The engine routes the prefix as unsolicited from now on, even inside a
     * command that takes every line ("" subscribes to what is unsolicited anyway:
     * registering it would leave no line to any response). */
    if (plen > 0 && hf_at_urc_prefix_add(&p->at, prefix) < 0)
        return push_fail(L, "too many unsolicited prefixes registered on this port", "ENOSPC");
    port_handler *h = &p->handlers[p->nhandlers++];
    h->id = ++p->next_handler;
    h->prefix = prefix;
    h->plen = plen;
    h->removed = 0;
    push_env_field(L, 1, "prefixes");
    lua_pushvalue(L, 2);
    lua_seti(L, -2, h->id);
    lua_pop(L, 1);
    push_env_field(L, 1, "handlers");
    lua_pushvalue(L, 3);
    lua_seti(L, -2, h->id);
    lua_pushinteger(L, h->id);
    return 1;
}

static int port_off(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    lua_Integer id = luaL_checkinteger(L, 2);
    for (size_t i = 0; i < p->nhandlers; i++) {
        if (p->handlers[i].id == id && !p->handlers[i].removed) {
            p->handlers[i].removed = 1;
            if (p->handlers[i].plen > 0)
                hf_at_urc_prefix_remove(&p->at, p->handlers[i].prefix);
            p->handlers[i].prefix = "";   /* its string is let go below */
            p->handlers_dirty = 1;
            push_env_field(L, 1, "prefixes");
            lua_pushnil(L);
            lua_seti(L, -2, id);
            lua_pop(L, 1);
            push_env_field(L, 1, "handlers");
            lua_pushnil(L);
            lua_seti(L, -2, id);
            sweep_handlers(p);
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

static int port_on_event(lua_State *L)
{
    check_port(L, 1);
    if (!lua_isnil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "on_event");
    return 0;
}

static int port_fileno(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    int n = fail_if_unusable(L, p);
    if (n)
        return n;
    lua_pushinteger(L, hf_transport_fd(p->tr));
    return 1;
}

static int port_kind(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    if (!p->tr)
        return fail_if_unusable(L, p);
    lua_pushstring(L, hf_transport_kind(p->tr));
    return 1;
}

static int port_path(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    lua_pushstring(L, p->path);
    return 1;
}

static int port_is_lost(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    lua_pushboolean(L, p->lost || p->closed);
    return 1;
}

static int port_stats(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)p->at.timeouts);
    lua_setfield(L, -2, "timeouts");
    lua_pushinteger(L, (lua_Integer)p->at.consecutive_timeouts);
    lua_setfield(L, -2, "consecutive_timeouts");
    lua_pushinteger(L, (lua_Integer)p->at.overflows);
    lua_setfield(L, -2, "overflows");
    lua_pushinteger(L, (lua_Integer)p->at.urcs);
    lua_setfield(L, -2, "urcs");
    lua_pushinteger(L, (lua_Integer)p->at.echoes);
    lua_setfield(L, -2, "echoes");
    lua_pushboolean(L, hf_at_idle(&p->at));
    lua_setfield(L, -2, "idle");
    return 1;
}

/* What the open had to do (a stale exclusive flag taken over): an on_event
 * item {event = "stale_exclusive", detail = message}, delivered once a handler
 * is set and the port is next driven. */
static void report_open_note(lua_State *L, hf_port *p, int idx)
{
    const char *note = hf_transport_note(p->tr);
    if (!note || !note[0])
        return;
    enter(L, p, idx);
    queue_diag(L, p, "stale_exclusive", note, strlen(note));
    leave(p);
}

/* hf_transport_open, and when the process is out of fds (EMFILE: many modules
 * in one process) the soft RLIMIT_NOFILE raised to the hard limit and one more
 * try; when that is not enough, an error that names both limits. */
static hf_transport *open_transport(const char *path, const hf_transport_opts *o,
                                    hf_error *err)
{
    hf_transport *tr = hf_transport_open(path, o, err);
    if (tr || !err->code || strcmp(err->code, "EMFILE") != 0)
        return tr;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return NULL;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            hf_error_clear(err);
            tr = hf_transport_open(path, o, err);
            if (tr || !err->code || strcmp(err->code, "EMFILE") != 0)
                return tr;
        } else {
            rl.rlim_cur = was;
        }
    }
    char was_msg[HF_ERROR_MSG_MAX];
    snprintf(was_msg, sizeof was_msg, "%s", err->msg);
    hf_error_set(err, "EMFILE", "%s: this process has as many open files as RLIMIT_NOFILE "
                 "allows (%llu, hard limit %llu): raise the hard limit (ulimit -Hn) to drive "
                 "more modules in one process", was_msg,
                 (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
    return NULL;
}

/* port:reopen([path]) -> true | nil,msg,code: open the port again after the
 * module reset (same options), at the same path or at `path` when the module
 * came back under another name (USB re-enumeration). Pending commands already
 * failed with EPORTLOST. A port that is not lost is left alone. */
static int port_reopen(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    size_t plen = 0;
    const char *path = luaL_optlstring(L, 2, NULL, &plen);
    if (path)
        luaL_argcheck(L, plen > 0 && plen < sizeof p->path && strlen(path) == plen, 2,
                      "path must be a non-empty string without NUL");
    if (p->closed)
        return push_fail(L, "port is closed", "ECLOSED");
    if (!p->lost) {
        lua_pushboolean(L, 1);
        return 1;
    }
    hf_error err;
    hf_error_clear(&err);
    hf_transport *tr = open_transport(path ? path : p->path, &p->topts, &err);
    if (!tr)
        return push_fail(L, err.msg, err.code ? err.code : "EIO");
    if (path)
        memcpy(p->path, path, plen + 1);
    p->tr = tr;
    p->opens++;
    p->lost = 0;
    p->lost_msg[0] = '\0';
    if (p->sync)
        hf_at_require_sync(&p->at);   /* the module may still answer the old port's last command */
    report_open_note(L, p, 1);
    lua_pushboolean(L, 1);
    return 1;
}

/* Idempotent close shared by close, __close and __gc. From __gc (L == NULL)
 * no Lua code runs: pending callbacks are dropped. */
static void port_shutdown(lua_State *L, hf_port *p)
{
    if (p->closed)
        return;
    p->closed = 1;
    hf_transport_close(p->tr);
    p->tr = NULL;
    if (L) {
        enter(L, p, 1);
        hf_at_port_lost(&p->at);
        leave(p);
    } else {
        p->L = NULL;
        hf_at_port_lost(&p->at);
    }
}

static int port_close(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    lua_settop(L, 1);
    port_shutdown(L, p);
    dispatch(L, p, 1);
    lua_pushboolean(L, 1);
    return 1;
}

static int port_gc(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    port_shutdown(NULL, p);
    return 0;
}

static int port_tostring(lua_State *L)
{
    hf_port *p = check_port(L, 1);
    lua_pushfstring(L, "hwfota.Port(%s, %s)", p->path,
                    p->closed ? "closed" : p->lost ? "lost" : hf_transport_kind(p->tr));
    return 1;
}

/* hwfota.core.open(path, baudrate, flow, timeout, sync) -> port | nil, msg, code.
 * sync (default true): resynchronise before the first command (at_engine.h,
 * hf_at_require_sync), and again after every reopen. */
static int core_open(lua_State *L)
{
    size_t plen;
    if (lua_type(L, 1) != LUA_TSTRING)   /* a number would be opened as a relative path */
        luaL_typeerror(L, 1, "string");
    const char *path = lua_tolstring(L, 1, &plen);
    lua_Integer baud = luaL_optinteger(L, 2, 115200);
    static const char *const flows[] = {"none", "rtscts", NULL};
    static const hf_flow flow_kinds[] = {HF_FLOW_NONE, HF_FLOW_RTSCTS};
    int flow = check_option(L, 3, 3, "none", flows, "flow control");
    double timeout = luaL_optnumber(L, 4, 30.0);
    int sync = lua_isnoneornil(L, 5) ? 1 : lua_toboolean(L, 5);
    luaL_argcheck(L, plen > 0 && plen < sizeof(((hf_port *)0)->path) &&
                     strlen(path) == plen, 1, "path must be 1 to 255 bytes without NUL");
    luaL_argcheck(L, baud >= 50 && baud <= 4000000, 2, "baud rate out of range");
    luaL_argcheck(L, timeout > 0 && timeout <= 3600, 4, "timeout out of range (0 .. 3600 s)");

    hf_port *p = lua_newuserdatauv(L, sizeof *p, 1);
    memset(p, 0, sizeof *p);
    p->closed = 1; /* until the transport is open: __gc must not touch it */
    luaL_setmetatable(L, HF_PORT_MT);
    lua_createtable(L, 0, 6);
    static const char *const tables[] = {"events", "waiters", "done", "handlers", "prefixes"};
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        lua_newtable(L);
        lua_setfield(L, -2, tables[i]);
    }
    lua_setiuservalue(L, -2, 1);

    memcpy(p->path, path, plen + 1);
    p->topts.baudrate = (int)baud;
    p->topts.flow = flow_kinds[flow];
    p->default_timeout = timeout;
    hf_error err;
    hf_error_clear(&err);
    p->tr = open_transport(path, &p->topts, &err);
    if (!p->tr)
        return push_fail(L, err.msg, err.code ? err.code : "EIO");
    p->closed = 0;
    p->opens = 1;
    p->sync = sync;
    hf_at_init(&p->at, &port_callbacks, p);
    if (sync)
        hf_at_require_sync(&p->at);
    report_open_note(L, p, lua_gettop(L));
    return 1;
}

static int core_now(lua_State *L)
{
    lua_pushnumber(L, hf_pump_now());
    return 1;
}

static const luaL_Reg port_methods[] = {
    {"command", port_command},
    {"send", port_send},
    {"result", port_result},
    {"poll", port_poll},
    {"on", port_on},
    {"off", port_off},
    {"on_event", port_on_event},
    {"fileno", port_fileno},
    {"kind", port_kind},
    {"path", port_path},
    {"is_lost", port_is_lost},
    {"stats", port_stats},
    {"reopen", port_reopen},
    {"close", port_close},
    {NULL, NULL},
};

static const luaL_Reg port_meta[] = {
    {"__gc", port_gc},
    {"__close", port_close},
    {"__tostring", port_tostring},
    {NULL, NULL},
};

void hf_lua_port_register(lua_State *L)
{
    if (luaL_newmetatable(L, HF_PORT_MT)) {
        luaL_setfuncs(L, port_meta, 0);
        luaL_newlib(L, port_methods);
        lua_setfield(L, -2, "__index");
    }
    /* core.Port: the method table, so that the Lua layer can make waits yield
     * inside tasks (hwfota.loop) around the C methods */
    lua_getfield(L, -1, "__index");
    lua_setfield(L, -3, "Port");
    lua_pop(L, 1);
    lua_pushcfunction(L, core_open);
    lua_setfield(L, -2, "open");
    lua_pushcfunction(L, core_poll);
    lua_setfield(L, -2, "poll");
    lua_pushcfunction(L, core_now);
    lua_setfield(L, -2, "now");
}
