/*
 * lua_cmds.c — the Lua binding of the FOTA command table (see lua_cmds.h). It only
 * converts: texts, parameter rules and parsers are fota_cmds.c's and fota_parse.c's.
 *
 * Conventions: run-time failures return nil, message, CODE; wrong argument types
 * raise (luaL_argerror / luaL_checktype).
 */
#include "lua_cmds.h"

#include <lauxlib.h>
#include <string.h>

#include "fota_cmds.h"
#include "fota_parse.h"
#include "lua_util.h"

#define LINES_MAX 64            /* answer lines taken by fota_parse */

/* The command named by argument idx; a name the table does not hold raises. */
static hf_fota_cmd check_cmd(lua_State *L, int idx)
{
    size_t n;
    const char *name = luaL_checklstring(L, idx, &n);
    hf_fota_cmd c = hf_fota_cmd_by_name(name, n);
    if (c == HF_CMD_NONE) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (int i = 1; i < HF_CMD_COUNT; i++) {
            luaL_addstring(&b, i > 1 ? ", " : "");
            luaL_addstring(&b, hf_fota_cmd_get((hf_fota_cmd)i)->name);
        }
        luaL_pushresult(&b);
        luaL_argerror(L, idx, lua_pushfstring(L, "unknown FOTA command (one of %s)",
                                              lua_tostring(L, -1)));
    }
    return c;
}

/* params.k: a string or nil ("" then), checked by the parameter rule (a failure is
 * kept in err for the caller to return); anything else raises. */
static const char *param_str(lua_State *L, int t, const char *k, hf_error *err)
{
    const char *v = "";
    if (hf_lua_field(L, t, k, LUA_TSTRING, "parameter", "a string")) {
        size_t n;
        v = lua_tolstring(L, -1, &n);
        if (!err->code)
            (void)hf_fota_check_at_param(k, v, n, err);   /* an embedded NUL too */
        lua_pop(L, 1);            /* the string stays alive in the table */
    }
    return v;
}

/* params.k: an integer (*given set), or nil (def); a non-integer number is out of
 * range (bad); anything else raises. */
static long param_int(lua_State *L, int t, const char *k, long def, int *given, int *bad)
{
    long v = def;
    *given = 0;
    if (hf_lua_field(L, t, k, LUA_TNUMBER, "parameter", "an integer")) {
        *given = 1;
        int isint;
        lua_Integer i = lua_tointegerx(L, -1, &isint);
        if (!isint || i < -1000000 || i > 1000000)
            *bad = 1;
        else
            v = (long)i;
        lua_pop(L, 1);
    }
    return v;
}

/***
 * A FOTA command as the state machine sends it: its text (built from params for
 * `fotacfg` and `fotamode`, checked by the machine's own parameter rules) and how to
 * wait for its answer.
 * @function fota_command
 * @tparam string name a row of the command table: "ati", "gmr", "cgsn", "state",
 *   "dlq", "fotacfg_read", "fotacfg", "fotamode", "fotadet", "dl_start", "dl_pause",
 *   "dl_stop", "fwup", "echo_off", "cmee", "probe" ... (an unknown name raises)
 * @tparam[opt] table params `fotacfg`: {apn=, user=, password=, auth=0|1|2};
 *   `fotamode`: {auto_query=, auto_download=, auto_upgrade=, resume=, period=} (booleans;
 *   period days 1..365 or nil)
 * @return {name=, text=, expect="all"|"none"|"prefix", prefix=, timeout= (s, nil: the
 *   port's), idempotent=, on_timeout="resend"|"ask_state"|"never"}, or nil, message,
 *   "EINVAL" when a parameter breaks the rule
 */
static int l_fota_command(lua_State *L)
{
    hf_fota_cmd c = check_cmd(L, 1);
    const hf_fota_cmd_def *r = hf_fota_cmd_get(c);
    hf_fota_cmd_params p;
    memset(&p, 0, sizeof p);
    int bad = 0;
    hf_error err;
    hf_error_clear(&err);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        p.apn = param_str(L, 2, "apn", &err);
        p.user = param_str(L, 2, "user", &err);
        p.password = param_str(L, 2, "password", &err);
        int given;
        p.auth = (int)param_int(L, 2, "auth", 0, &given, &bad);
        p.mode.auto_query = hf_lua_bool_field(L, 2, "auto_query", 0, "parameter");
        p.mode.auto_download = hf_lua_bool_field(L, 2, "auto_download", 0, "parameter");
        p.mode.auto_upgrade = hf_lua_bool_field(L, 2, "auto_upgrade", 0, "parameter");
        p.mode.resume = hf_lua_bool_field(L, 2, "resume", 0, "parameter");
        long period = param_int(L, 2, "period", 0, &given, &bad);
        if (given) {
            p.mode.has_period = 1;
            p.mode.period = period < 0 || period > 65535 ? 0 : (unsigned)period;  /* 0: refused */
        }
    }
    char text[HF_ERROR_MSG_MAX];
    if (err.code && r->build)
        return hf_lua_fail(L, err.msg, err.code);
    if (bad)
        return hf_lua_fail(L, "auth and period must be integers (auth 0..2, period 1..365 days)",
                     "EINVAL");
    if (hf_fota_cmd_text(c, &p, text, sizeof text, &err) < 0)
        return hf_lua_fail(L, err.msg, err.code);
    static const char *const expect[] = {"all", "none", "prefix"};
    lua_createtable(L, 0, 7);
    hf_lua_set_str(L, "name", r->name);
    hf_lua_set_str(L, "text", text);
    hf_lua_set_str(L, "expect", expect[r->expect]);
    if (r->prefix)
        hf_lua_set_str(L, "prefix", r->prefix);
    if (r->timeout > 0) {
        lua_pushnumber(L, r->timeout);
        lua_setfield(L, -2, "timeout");
    }
    hf_lua_set_bool(L, "idempotent", r->idempotent);
    hf_lua_set_str(L, "on_timeout", hf_fota_tmo_name(r->on_timeout));
    return 1;
}

static void push_fotastate(lua_State *L, const hf_fotastate *st)
{
    lua_createtable(L, 0, 8);
    hf_lua_set_int(L, "state", st->state);
    hf_lua_set_str(L, "name", hf_fota_state_name(st->state));
    if (st->has_version) {
        hf_lua_set_str(L, "version", st->version.text);
        hf_lua_set_int(L, "size", (lua_Integer)st->size);
        hf_lua_set_str(L, "description", st->desc);
        hf_lua_set_bool(L, "truncated", st->desc_truncated);
    }
    if (st->error_code >= 0) {
        hf_lua_set_int(L, "error_code", st->error_code);
        hf_lua_set_str(L, "error_meaning", hf_fota_error_meaning(st->error_code));
    }
}

static void push_fotadlq(lua_State *L, const hf_fotadlq *d)
{
    lua_createtable(L, 0, 4);
    hf_lua_set_int(L, "index", d->index);
    hf_lua_set_str(L, "name", d->name);
    hf_lua_set_int(L, "done", (lua_Integer)d->done);
    hf_lua_set_int(L, "total", (lua_Integer)d->total);
}

static void push_answer(lua_State *L, const hf_fota_answer *a)
{
    lua_createtable(L, 0, 12);
    if (a->has & HF_ANS_MAKER)
        hf_lua_set_str(L, "manufacturer", a->manufacturer);
    if (a->has & HF_ANS_MODEL)
        hf_lua_set_str(L, "model", a->model);
    if (a->has & HF_ANS_REVISION)
        hf_lua_set_str(L, "revision", a->revision);
    if (a->has & HF_ANS_FIRMWARE)
        hf_lua_set_str(L, "firmware", a->firmware.text);
    if (a->has & HF_ANS_IMEI)
        hf_lua_set_str(L, "imei", a->imei);
    if (a->has & HF_ANS_SIM) {
        hf_lua_set_bool(L, "sim_ready", a->sim_ready);
        if (!a->sim_ready)
            hf_lua_set_str(L, "sim_what", a->sim_what);
    }
    if (a->has & HF_ANS_REG) {
        if (a->reg_stat >= 0)
            hf_lua_set_int(L, "reg_stat", a->reg_stat);
        hf_lua_set_bool(L, "registered", hf_creg_registered(a->reg_stat));
    }
    if (a->has & HF_ANS_STATE) {
        push_fotastate(L, &a->states[a->nstates - 1]);
        lua_setfield(L, -2, "state");
        lua_createtable(L, (int)a->nstates, 0);
        for (size_t i = 0; i < a->nstates; i++) {
            push_fotastate(L, &a->states[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "states");
    }
    if (a->has & HF_ANS_PROGRESS) {
        const hf_fota_progress *p = &a->progress;
        lua_createtable(L, (int)p->nfiles, 0);
        for (size_t i = 0; i < p->nfiles; i++) {
            push_fotadlq(L, &p->files[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "files");
        hf_lua_set_int(L, "done", (lua_Integer)p->done);
        hf_lua_set_int(L, "total", (lua_Integer)p->total);
        hf_lua_set_int(L, "percent", p->percent);
    }
    if (a->has & HF_ANS_CFG) {     /* never the password itself */
        lua_createtable(L, 0, 4);
        hf_lua_set_str(L, "apn", a->cfg.apn);
        hf_lua_set_str(L, "user", a->cfg.user);
        hf_lua_set_bool(L, "password_set", a->cfg.password[0] != '\0');
        hf_lua_set_int(L, "auth", a->cfg.auth);
        lua_setfield(L, -2, "fotacfg");
    }
}

/***
 * Read the answer lines of a FOTA command with the parser the state machine uses.
 * @function fota_parse
 * @tparam string name the command (as `fota_command`)
 * @tparam {string,...} lines the response lines (at most 64 are read)
 * @tparam[opt=false] boolean partial return what was read even when the answer lacks
 *   what the command must report
 * @return table of what the answer says: `manufacturer`, `model`, `revision` (as
 *   written), `firmware` (normalised), `imei`, `sim_ready`/`sim_what`,
 *   `reg_stat`/`registered`, `state` (the answer) and `states` (with the ^FOTASTATE
 *   URCs before it), `files`/`done`/`total`/`percent`, `fotacfg` ({apn=, user=,
 *   password_set=, auth=}, never the password); or nil, message, code (`EMODULE`,
 *   `EPROTO`) when it lacks what the command must report
 */
static int l_fota_parse(lua_State *L)
{
    hf_fota_cmd c = check_cmd(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int partial = lua_toboolean(L, 3);
    const char *lines[LINES_MAX];
    size_t lens[LINES_MAX], n = 0;
    lua_Integer len = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= len && n < LINES_MAX; i++) {
        if (lua_rawgeti(L, 2, i) != LUA_TSTRING)
            luaL_argerror(L, 2, lua_pushfstring(L, "line %d is not a string", (int)i));
        lines[n] = lua_tolstring(L, -1, &lens[n]);   /* anchored by the table */
        n++;
        lua_pop(L, 1);
    }
    hf_fota_answer *a = lua_newuserdatauv(L, sizeof *a, 0);   /* big: GC-owned scratch */
    hf_error err;
    if (hf_fota_cmd_parse(c, lines, lens, n, a, &err) < 0 && !partial)
        return hf_lua_fail(L, err.msg, err.code);
    push_answer(L, a);
    return 1;
}

/***
 * The port setup commands (sent after every open, before the state machine's):
 * echo off and verbose errors, from the command table.
 * @function setup_commands
 * @treturn {string,...}
 */
static int l_setup_commands(lua_State *L)
{
    lua_newtable(L);
    int k = 0;
    for (int i = 1; i < HF_CMD_COUNT; i++)
        if (hf_fota_cmd_get((hf_fota_cmd)i)->setup) {
            lua_pushstring(L, hf_fota_cmd_get((hf_fota_cmd)i)->text);
            lua_rawseti(L, -2, ++k);
        }
    return 1;
}

/***
 * Check one port setup command (option `setup`) against the rule of fota_cmds.h: it
 * must not change what the module does (no FOTA command, reset, chaining ...).
 * @function check_setup_command
 * @tparam string command
 * @return true, or false, why
 */
static int l_check_setup_command(lua_State *L)
{
    size_t n;
    const char *c = luaL_checklstring(L, 1, &n);
    hf_error err;
    if (hf_fota_check_setup_command(c, n, &err) < 0) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * Check a text parameter that goes into an AT command (APN, user, password): the
 * state machine's own rule, for every path (hwfota.run, Session:configure, the
 * command). At most 63 bytes; no '"', ';', CR, LF, NUL or control byte (0x00-0x1F,
 * 0x7F: backspace, Ctrl-Z, ESC ... would edit or end the command line).
 * @function check_at_param
 * @tparam string name what the value is (for the message)
 * @tparam string value
 * @return true, or nil, message, "EINVAL"
 */
static int l_check_at_param(lua_State *L)
{
    size_t nl, n;
    const char *name = luaL_checklstring(L, 1, &nl);
    const char *v = luaL_checklstring(L, 2, &n);
    char what[32];
    hf_strlcpy(what, sizeof what, memchr(name, '\0', nl) ? "parameter" : name);
    hf_error err;
    if (hf_fota_check_at_param(what, v, n, &err) < 0)
        return hf_lua_fail(L, err.msg, err.code);
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * Parse a ^FOTASTATE line.
 * @function parse_fotastate
 * @tparam string line
 * @return {state=, name=, version=, size=, description=, truncated=, error_code=,
 *   error_meaning=} or nil, message, "EPARSE"
 */

/***
 * Parse a ^FOTADLQ line.
 * @function parse_fotadlq
 * @tparam string line
 * @return {index=, name=, done=, total=} or nil, message, "EPARSE"
 */

/* Both line parsers above: the closure's upvalue says which (0: ^FOTASTATE). */
static int l_parse_line(lua_State *L)
{
    size_t n;
    const char *line = luaL_checklstring(L, 1, &n);
    hf_error err;
    if (lua_tointeger(L, lua_upvalueindex(1)) == 0) {
        hf_fotastate *st = lua_newuserdatauv(L, sizeof *st, 0);   /* big: GC-owned */
        if (hf_parse_fotastate(line, n, st, &err) < 0)
            return hf_lua_fail(L, err.msg, err.code);
        push_fotastate(L, st);
    } else {
        hf_fotadlq d;
        if (hf_parse_fotadlq(line, n, &d, &err) < 0)
            return hf_lua_fail(L, err.msg, err.code);
        push_fotadlq(L, &d);
    }
    return 1;
}

int hf_lua_cmds_register(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"fota_command", l_fota_command}, {"fota_parse", l_fota_parse},
        {"setup_commands", l_setup_commands}, {"check_setup_command", l_check_setup_command},
        {"check_at_param", l_check_at_param}, {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
    static const char *const line_parsers[] = {"parse_fotastate", "parse_fotadlq"};
    for (int i = 0; i < 2; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, l_parse_line, 1);
        lua_setfield(L, -2, line_parsers[i]);
    }
    return 0;
}
