/*
 * lua_fota.c — the Lua binding of the FOTA state machine (userdata "hwfota.Fota")
 * and of the version and model tables. It only converts tables to C structs and back:
 * every protocol decision is in fota_fsm.c / fota_parse.c.
 *
 * Conventions: run-time failures return nil, message, CODE; wrong argument types
 * raise (luaL_argerror / luaL_checktype).
 */
#include "lua_fota.h"

#include <lauxlib.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "fota_fsm.h"
#include "fota_journal.h"
#include "fota_parse.h"
#include "lua_util.h"

#define FOTA_MT "hwfota.Fota"
#define LINES_MAX 64            /* response lines taken from one result event */

typedef struct lfota {
    hf_fota fsm;
    int closed;
} lfota;

/* ---- options ------------------------------------------------------------------------ */

static double opt_num(lua_State *L, int t, const char *k, double def)
{
    double v = def;
    if (hf_lua_field(L, t, k, LUA_TNUMBER, "option", "a number")) {
        v = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    return v;
}

/* A credential: copied only when it fits; returns 0, or -1 when too long. */
static int opt_cred(lua_State *L, int t, const char *k, char *dst, size_t cap)
{
    int r = 0;
    int ty = lua_getfield(L, t, k);
    if (ty == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (n >= cap || memchr(s, '\0', n))
            r = -1;
        else
            memcpy(dst, s, n + 1);
    } else if (ty != LUA_TNIL) {
        luaL_error(L, "option '%s' must be a string", k);
    }
    lua_pop(L, 1);
    return r;
}

static int opt_auth(lua_State *L, int t)
{
    int auth = 0;
    int ty = lua_getfield(L, t, "auth");
    if (ty == LUA_TNUMBER) {
        int isint = 0;
        lua_Integer a = lua_tointegerx(L, -1, &isint);   /* 1.5, NaN, 2^63: not 0 */
        auth = isint && a >= 0 && a <= 2 ? (int)a : -1;
    } else if (ty == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        auth = !strcmp(s, "none") ? 0 : !strcmp(s, "pap") ? 1 : !strcmp(s, "chap") ? 2 : -1;
    } else if (ty != LUA_TNIL) {
        luaL_error(L, "option 'auth' must be \"none\", \"pap\", \"chap\" or 0..2");
    }
    lua_pop(L, 1);
    return auth;
}

/* Options fota_new knows (anything else is a typo: raise, naming it). */
static const char *const fota_keys[] = {
    "force", "skip_model_check", "models", "check_prereq", "read_imei", "resume", "apn", "user",
    "password", "auth", "mode", "poll_interval", "dl_poll", "dl_poll_idle", "state_poll",
    "resume_interval", "reboot_timeout", "detect_timeout", "stall_timeout",
    "auto_upgrade_wait", "busy_delay", "boot_settle", "discard_timeout", "cmd_retries",
    "max_redetect", "auto_upgrade_ok", NULL};
static const char *const mode_keys[] = {
    "auto_query", "auto_download", "auto_upgrade", "resume", "period", NULL};

static void check_keys(lua_State *L, int t, const char *where, const char *const *known)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (size_t i = 0; known[i] && !ok; i++)
                ok = strcmp(known[i], k) == 0;
        }
        if (!ok)
            luaL_error(L, "unknown %s option '%s'", where,
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                      : luaL_typename(L, -1));
    }
}

static void opt_mode(lua_State *L, int t, hf_fota_config *c)
{
    int ty = lua_getfield(L, t, "mode");
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (ty != LUA_TTABLE)
        luaL_error(L, "option 'mode' must be a table");
    int m = lua_gettop(L);
    c->has_mode = 1;
    c->mode.auto_query = hf_lua_bool_field(L, m, "auto_query", 0, "option");
    c->mode.auto_download = hf_lua_bool_field(L, m, "auto_download", 0, "option");
    c->mode.auto_upgrade = hf_lua_bool_field(L, m, "auto_upgrade", 0, "option");
    c->mode.resume = hf_lua_bool_field(L, m, "resume", 1, "option");
    check_keys(L, m, "mode", mode_keys);
    double p = opt_num(L, m, "period", -1);
    lua_getfield(L, m, "period");
    int has = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (has) {
        /* NaN, fractions and negatives are not silently dropped or truncated */
        c->mode.has_period = 1;
        c->mode.period = (p >= HF_FOTA_PERIOD_MIN && p <= HF_FOTA_PERIOD_MAX && p == floor(p))
                             ? (unsigned)p : 70000u; /* init: EINVAL */
    }
    lua_pop(L, 1);
}

/* models = {["MU709"] = "11.0.0.0.0", ...}: the integrator's rows of the supported
 * table. Wrong types raise; too many rows, a key too long or a bad version return
 * an EINVAL message (hf_fota_init names the row). */
static const char *opt_models(lua_State *L, int t, hf_fota_config *c,
                              hf_fota_model rows[HF_FOTA_MODELS_MAX])
{
    int ty = lua_getfield(L, t, "models");
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (ty != LUA_TTABLE)
        luaL_error(L, "option 'models' must be a table {[model] = minimum firmware}");
    int m = lua_gettop(L);
    const char *bad = NULL;
    lua_pushnil(L);
    while (lua_next(L, m)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "option 'models' must map model names (strings) to minimum "
                       "firmware versions (strings)");
        size_t kl, vl;
        const char *k = lua_tolstring(L, -2, &kl);
        const char *v = lua_tolstring(L, -1, &vl);
        if (!bad && c->nmodels >= HF_FOTA_MODELS_MAX)
            bad = "option models: at most 16 rows";
        else if (!bad && (kl == 0 || kl >= HF_MODEL_MAX || memchr(k, '\0', kl)))
            bad = "option models: a model name must be 1..47 characters without NUL";
        else if (!bad && (vl >= HF_VERSION_TEXT_MAX || memchr(v, '\0', vl)))
            bad = "option models: a minimum firmware must be a version like 12.815.03.01.00";
        else if (!bad) {
            hf_fota_model *r = &rows[c->nmodels++];
            memcpy(r->model, k, kl + 1);
            memcpy(r->min_firmware, v, vl + 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return bad;
}

/* Fill cfg from the options table at index t; returns NULL or an EINVAL message. */
/* The interval and timeout options (seconds; hf_fota_init checks their range). */
#define SECS(f) {#f, offsetof(hf_fota_config, f)}
static const struct { const char *name; size_t off; } secs_opts[] = {
    SECS(poll_interval), SECS(dl_poll), SECS(dl_poll_idle), SECS(state_poll),
    SECS(resume_interval), SECS(reboot_timeout), SECS(detect_timeout), SECS(stall_timeout),
    SECS(auto_upgrade_wait), SECS(busy_delay), SECS(boot_settle), SECS(discard_timeout),
};
#undef SECS

static const char *read_opts(lua_State *L, int t, hf_fota_config *c,
                             hf_fota_model rows[HF_FOTA_MODELS_MAX])
{
    hf_fota_config_default(c);
    check_keys(L, t, "fota_new", fota_keys);
    c->force = hf_lua_bool_field(L, t, "force", 0, "option");
    c->skip_model_check = hf_lua_bool_field(L, t, "skip_model_check", 0, "option");
    c->models = rows;
    const char *bad_models = opt_models(L, t, c, rows);
    if (bad_models)
        return bad_models;
    c->check_prereq = hf_lua_bool_field(L, t, "check_prereq", 1, "option");
    c->read_imei = hf_lua_bool_field(L, t, "read_imei", 1, "option");
    c->resume = hf_lua_bool_field(L, t, "resume", 1, "option");
    c->auto_upgrade_ok = hf_lua_bool_field(L, t, "auto_upgrade_ok", 0, "option");
    lua_getfield(L, t, "apn");
    c->has_cfg = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (opt_cred(L, t, "apn", c->apn, sizeof c->apn) < 0 ||
        opt_cred(L, t, "user", c->user, sizeof c->user) < 0 ||
        opt_cred(L, t, "password", c->password, sizeof c->password) < 0)
        return "apn, user and password must be at most 63 bytes without NUL";
    c->auth = opt_auth(L, t);
    if (c->auth < 0)
        return "auth must be \"none\", \"pap\", \"chap\" or 0..2";
    opt_mode(L, t, c);
    for (size_t i = 0; i < sizeof secs_opts / sizeof secs_opts[0]; i++) {
        double *v = (double *)(void *)((char *)c + secs_opts[i].off);
        *v = opt_num(L, t, secs_opts[i].name, *v);
    }
    double r = opt_num(L, t, "cmd_retries", c->cmd_retries);
    double d = opt_num(L, t, "max_redetect", c->max_redetect);
    if (!(r >= 0 && r <= 10) || !(d >= 0 && d <= 10))
        return "cmd_retries and max_redetect must be 0..10";
    c->cmd_retries = (unsigned)r;
    c->max_redetect = (unsigned)d;
    return NULL;
}

/***
 * Create a FOTA state machine.
 * @function fota_new
 * @tparam[opt] table opts force, skip_model_check, models ({[model] = minimum firmware}:
 *   rows added to the supported table, matched before it), check_prereq (true), read_imei (true),
 *   apn, user, password, auth ("none"|"pap"|"chap"|0..2), mode {auto_query, auto_download,
 *   auto_upgrade, resume, period}, resume, auto_upgrade_ok (false: without mode, the
 *   AT^FOTAMODE sent before each download is 0,0,0,<resume>; true: 0,0,1,<resume>),
 *   poll_interval, dl_poll, dl_poll_idle, state_poll,
 *   resume_interval, reboot_timeout (180), detect_timeout, stall_timeout,
 *   auto_upgrade_wait, busy_delay, boot_settle (20), discard_timeout (30), cmd_retries,
 *   max_redetect
 * @return hwfota.Fota userdata, or nil, message, "EINVAL"
 */
static int l_fota_new(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    hf_fota_config cfg;
    hf_fota_model rows[HF_FOTA_MODELS_MAX];
    const char *bad = read_opts(L, 1, &cfg, rows);
    if (bad)
        return hf_lua_fail(L, bad, "EINVAL");
    lfota *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->closed = 1;
    luaL_setmetatable(L, FOTA_MT);
    if (cfg.nmodels > 0) {
        /* the machine keeps a pointer: the rows live as long as it, in its user value */
        hf_fota_model *keep = lua_newuserdatauv(L, cfg.nmodels * sizeof *keep, 0);
        memcpy(keep, rows, cfg.nmodels * sizeof *keep);
        lua_setiuservalue(L, -2, 1);
        cfg.models = keep;
    } else {
        cfg.models = NULL;
    }
    hf_error err;
    if (hf_fota_init(&u->fsm, &cfg, &err) < 0)
        return hf_lua_fail(L, err.msg, err.code);
    u->closed = 0;
    return 1;
}

/* ---- actions to Lua ------------------------------------------------------------------- */

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void push_offer(lua_State *L, const hf_fota *f)
{
    if (f->have_target)
        hf_lua_set_str(L, "version", f->target.text);
    hf_lua_set_int(L, "size", (lua_Integer)f->size);
    hf_lua_set_str(L, "description", f->desc);
}

static void push_progress(lua_State *L, const hf_fota_progress *p)
{
    lua_createtable(L, (int)p->nfiles, 0);
    for (size_t i = 0; i < p->nfiles; i++) {
        lua_createtable(L, 0, 4);
        hf_lua_set_int(L, "index", p->files[i].index);
        hf_lua_set_str(L, "name", p->files[i].name);
        hf_lua_set_int(L, "done", (lua_Integer)p->files[i].done);
        hf_lua_set_int(L, "total", (lua_Integer)p->files[i].total);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "files");
    hf_lua_set_int(L, "done", (lua_Integer)p->done);
    hf_lua_set_int(L, "total", (lua_Integer)p->total);
    hf_lua_set_int(L, "percent", p->percent);
}

static void push_emit(lua_State *L, const hf_fota *f, const hf_fota_action *a)
{
    static const char *names[] = {"", "state", "progress", "new_version", "decision_needed",
                                  "phase", "info", "notice", "done", "failed"};
    hf_lua_set_str(L, "event", (unsigned)a->emit < sizeof names / sizeof names[0] ? names[a->emit] : "");
    switch (a->emit) {
    case HF_EMIT_STATE:
        hf_lua_set_int(L, "code", a->code);
        hf_lua_set_str(L, "name", a->name);
        break;
    case HF_EMIT_PROGRESS: push_progress(L, &f->progress); break;
    case HF_EMIT_NEW_VERSION: push_offer(L, f); break;
    case HF_EMIT_DECISION:
        hf_lua_set_str(L, "decision", a->name);
        push_offer(L, f);
        break;
    case HF_EMIT_PHASE: hf_lua_set_str(L, "phase", a->name); break;
    case HF_EMIT_INFO:
        hf_lua_set_str(L, "model", f->model);
        if (f->have_running)
            hf_lua_set_str(L, "revision", f->running.text);
        hf_lua_set_str(L, "imei", f->imei);
        break;
    case HF_EMIT_NOTICE: hf_lua_set_str(L, "message", a->text); break;
    case HF_EMIT_DONE:
        hf_lua_set_str(L, "outcome", a->name);
        if (f->have_from)
            hf_lua_set_str(L, "from", f->from.text);
        if (f->have_running)
            hf_lua_set_str(L, "to", f->running.text);
        break;
    case HF_EMIT_FAILED:
        hf_lua_set_str(L, "code", a->name);
        hf_lua_set_str(L, "message", a->text);
        hf_lua_set_str(L, "phase", hf_fota_phase_name(f->failed_in));
        if (a->code >= 0)
            hf_lua_set_int(L, "module_code", a->code);
        break;
    }
}

static void push_journal(lua_State *L, const hf_fota *f)
{
    hf_fota_snapshot s;
    char text[HF_JOURNAL_TEXT_MAX];
    hf_fota_snapshot_take(f, &s);
    if (hf_journal_format(&s, text, sizeof text) < 0)
        text[0] = '\0';
    hf_lua_set_str(L, "phase", hf_fota_phase_name(f->phase));
    hf_lua_set_str(L, "data", text);
}

/* The actions of one step as an array. Journal actions of one step are merged into
 * the first (its data is the end-of-step snapshot): one flash write per step. */
static int push_actions(lua_State *L, const hf_fota *f, const hf_fota_actions *out)
{
    static const char *kinds[] = {"", "send", "timer", "reopen", "journal", "emit"};
    lua_createtable(L, (int)out->n, 0);
    int n = 0, journaled = 0;
    for (size_t i = 0; i < out->n; i++) {
        const hf_fota_action *a = &out->a[i];
        if (a->kind == HF_ACT_JOURNAL && journaled++)
            continue;
        lua_createtable(L, 0, 6);
        hf_lua_set_str(L, "kind", kinds[a->kind]);
        switch (a->kind) {
        case HF_ACT_SEND:
            hf_lua_set_str(L, "command", a->text);
            hf_lua_set_int(L, "id", (lua_Integer)a->id);
            hf_lua_set_str(L, "expect", a->expect == HF_FOTA_EXPECT_ALL ? "all" :
                                 a->expect == HF_FOTA_EXPECT_NONE ? "none" : "prefix");
            if (a->prefix)
                hf_lua_set_str(L, "prefix", a->prefix);
            break;
        case HF_ACT_TIMER: set_num(L, "at", a->at); break;
        case HF_ACT_REOPEN: set_num(L, "deadline", a->at); break;
        case HF_ACT_JOURNAL: push_journal(L, f); break;
        case HF_ACT_EMIT: push_emit(L, f, a); break;
        }
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

/* ---- events from Lua ---------------------------------------------------------------- */

static lfota *check_fota(lua_State *L)
{
    return luaL_checkudata(L, 1, FOTA_MT);
}

static const struct {
    const char *name;
    hf_fota_final final;
} finals[] = {
    {"OK", HF_FF_OK}, {"ERROR", HF_FF_ERROR}, {"CME", HF_FF_CME}, {"CMS", HF_FF_ERROR},
    {"NOT_SUPPORT", HF_FF_ERROR}, {"TOO_MANY", HF_FF_ERROR}, {"NO_CARRIER", HF_FF_ERROR},
    {"BUSY", HF_FF_ERROR}, {"NO_ANSWER", HF_FF_ERROR}, {"NO_DIALTONE", HF_FF_ERROR},
    {"TIMEOUT", HF_FF_TIMEOUT}, {"PORTLOST", HF_FF_PORTLOST}, {"CANCELLED", HF_FF_CANCELLED},
    {"OVERFLOW", HF_FF_ERROR},
};

static const char *field_str(lua_State *L, int t, const char *k, size_t *len)
{
    int ty = lua_getfield(L, t, k);
    const char *s = NULL;
    if (ty == LUA_TSTRING)
        s = lua_tolstring(L, -1, len);   /* stays referenced by the event table */
    else if (ty != LUA_TNIL)
        luaL_error(L, "event field '%s' must be a string", k);
    lua_pop(L, 1);
    return s;
}

static void read_result(lua_State *L, int t, hf_fota_event *ev, const char **lines,
                        size_t *lens)
{
    size_t n;
    const char *fin = field_str(L, t, "final", &n);
    if (!fin)
        luaL_error(L, "result event needs final=\"OK\"|\"ERROR\"|\"CME\"|\"TIMEOUT\"|...");
    size_t i = 0;
    while (i < sizeof finals / sizeof finals[0] && strcmp(finals[i].name, fin))
        i++;
    if (i == sizeof finals / sizeof finals[0])
        luaL_error(L, "unknown final \"%s\"", fin);
    ev->final = finals[i].final;
    ev->command = field_str(L, t, "command", &n);
    ev->text = field_str(L, t, "text", &ev->text_len);
    lua_getfield(L, t, "id");
    ev->id = lua_isinteger(L, -1) ? (unsigned long)lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    lua_getfield(L, t, "code");
    ev->code = lua_isinteger(L, -1) ? (long)lua_tointeger(L, -1) : -1;
    lua_pop(L, 1);
    int ty = lua_getfield(L, t, "lines");
    if (ty == LUA_TTABLE) {
        lua_Integer count = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer k = 1; k <= count && ev->nlines < LINES_MAX; k++) {
            if (lua_rawgeti(L, -1, k) != LUA_TSTRING)
                luaL_error(L, "result lines[%d] must be a string", (int)k);
            lines[ev->nlines] = lua_tolstring(L, -1, &lens[ev->nlines]);
            ev->nlines++;
            lua_pop(L, 1);
        }
    } else if (ty != LUA_TNIL) {
        luaL_error(L, "result field 'lines' must be an array of strings");
    }
    lua_pop(L, 1);
    ev->lines = lines;
    ev->line_lens = lens;
}

static hf_fota_decision read_decision(lua_State *L, int t)
{
    size_t n;
    const char *v = field_str(L, t, "value", &n);
    static const char *names[] = {"", "download", "defer", "reject", "upgrade",
                                  "keep_until_reboot"};
    for (int i = 1; v && i < 6; i++)
        if (!strcmp(v, names[i]))
            return (hf_fota_decision)i;
    luaL_error(L, "decision value must be \"download\", \"defer\", \"reject\", \"upgrade\" "
               "or \"keep_until_reboot\"");
    return 0;
}

/***
 * Start the FOTA operation.
 * @function Fota:start
 * @tparam number now monotonic seconds
 * @treturn table array of actions (see the README of the binding)
 */
static int l_start(lua_State *L)
{
    lfota *u = check_fota(L);
    double now = luaL_checknumber(L, 2);
    luaL_argcheck(L, isfinite(now), 2, "now must be a finite number of seconds");
    if (u->closed)
        return hf_lua_fail(L, "closed", "ECLOSED");
    hf_fota_actions out;
    hf_fota_start(&u->fsm, now, &out);
    return push_actions(L, &u->fsm, &out);
}

/***
 * Feed one event.
 * @function Fota:feed
 * @tparam table ev {kind="result"|"urc"|"timer"|"port_lost"|"port_back"|"decision"|
 *   "cancel"|"pause"|"resume", now=seconds, ...}
 * @treturn table array of actions
 */
static int l_feed(lua_State *L)
{
    lfota *u = check_fota(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (u->closed)
        return hf_lua_fail(L, "closed", "ECLOSED");
    static const struct { const char *n; hf_fota_event_kind k; } kinds[] = {
        {"result", HF_EV_RESULT}, {"urc", HF_EV_URC}, {"timer", HF_EV_TIMER},
        {"port_lost", HF_EV_PORT_LOST}, {"port_back", HF_EV_PORT_BACK},
        {"decision", HF_EV_DECISION}, {"cancel", HF_EV_CANCEL}, {"pause", HF_EV_PAUSE},
        {"resume", HF_EV_RESUME}};
    hf_fota_event ev;
    const char *lines[LINES_MAX];
    size_t lens[LINES_MAX];
    memset(&ev, 0, sizeof ev);
    size_t n;
    const char *kind = field_str(L, 2, "kind", &n);
    if (kind && strlen(kind) != n)
        kind = NULL;   /* "timer\0junk" is not "timer" */
    size_t i = 0;
    while (kind && i < sizeof kinds / sizeof kinds[0] && strcmp(kinds[i].n, kind))
        i++;
    if (!kind || i == sizeof kinds / sizeof kinds[0])
        return luaL_argerror(L, 2, "event kind must be result, urc, timer, port_lost, "
                             "port_back, decision, cancel, pause or resume");
    ev.kind = kinds[i].k;
    ev.now = opt_num(L, 2, "now", u->fsm.now);
    if (!isfinite(ev.now))
        return luaL_argerror(L, 2, "event field 'now' must be a finite number of seconds");
    if (ev.kind == HF_EV_RESULT)
        read_result(L, 2, &ev, lines, lens);
    else if (ev.kind == HF_EV_URC && !(ev.line = field_str(L, 2, "line", &ev.line_len)))
        return luaL_argerror(L, 2, "urc event needs line=<string>");
    else if (ev.kind == HF_EV_DECISION)
        ev.decision = read_decision(L, 2);
    hf_fota_actions out;
    hf_fota_feed(&u->fsm, &ev, &out);
    return push_actions(L, &u->fsm, &out);
}

/***
 * The journal snapshot as versioned text (write it atomically).
 * @function Fota:snapshot
 * @treturn string
 */
static int l_snapshot(lua_State *L)
{
    lfota *u = check_fota(L);
    if (u->closed)
        return hf_lua_fail(L, "closed", "ECLOSED");
    hf_fota_snapshot s;
    char text[HF_JOURNAL_TEXT_MAX];
    hf_fota_snapshot_take(&u->fsm, &s);
    if (hf_journal_format(&s, text, sizeof text) < 0)
        return hf_lua_fail(L, "snapshot does not fit", "EOVERFLOW");
    lua_pushstring(L, text);
    return 1;
}

/***
 * Resume from a journal text, before start().
 * @function Fota:restore
 * @tparam string text
 * @tparam[opt] boolean carried true when the text is a snapshot of a machine of this
 *   process that held the port until now (session steps): the target of a finished
 *   machine is then trusted; a journal from disk (false) names a target only a run
 *   that AT^FWUP'd may keep
 * @tparam[opt] boolean reopened with carried: the port was reopened since that
 *   machine held it, so the module is confirmed again (its IMEI) before anything
 *   changes it
 * @return true, or nil, message, "EJOURNAL"|"EBUSY"
 */
static int l_restore(lua_State *L)
{
    lfota *u = check_fota(L);
    size_t n;
    const char *text = luaL_checklstring(L, 2, &n);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TBOOLEAN);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TBOOLEAN);
    int carried = lua_toboolean(L, 3) ? (lua_toboolean(L, 4) ? HF_RESTORE_CARRIED_REOPENED
                                                              : HF_RESTORE_CARRIED) : 0;
    if (u->closed)
        return hf_lua_fail(L, "closed", "ECLOSED");
    hf_fota_snapshot s;
    hf_error err;
    if (hf_journal_parse(text, n, &s, &err) < 0 || hf_fota_restore_from(&u->fsm, &s, carried, &err) < 0)
        return hf_lua_fail(L, err.msg, err.code);
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * The module this operation must find, before start(): the IMEI an earlier attempt
 * of the same run confirmed, on a port reopened since. The probe's AT+CGSN confirms
 * it by the state machine's rule (a differing reading is asked again; two agreeing
 * readings of another IMEI fail EIDENTITY) before anything changes the module.
 * @function Fota:expect_imei
 * @tparam string imei 14 to 17 decimal digits
 * @return true, or nil, message, "EINVAL"|"EBUSY"|"EIDENTITY"
 */
static int l_expect_imei(lua_State *L)
{
    lfota *u = check_fota(L);
    size_t n;
    const char *imei = luaL_checklstring(L, 2, &n);
    if (u->closed)
        return hf_lua_fail(L, "closed", "ECLOSED");
    if (n != strlen(imei))
        return hf_lua_fail(L, "expected IMEI contains a NUL byte", "EINVAL");
    hf_error err;
    if (hf_fota_expect_imei(&u->fsm, imei, &err) < 0)
        return hf_lua_fail(L, err.msg, err.code);
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * The current phase name ("probe", ..., "done", "failed").
 * @function Fota:phase
 * @treturn string
 */
static int l_phase(lua_State *L)
{
    lfota *u = check_fota(L);
    if (u->closed)
        return hf_lua_fail(L, "closed", "ECLOSED");
    lua_pushstring(L, hf_fota_phase_name(u->fsm.phase));
    return 1;
}

/***
 * What the machine knows: phase, model, revision, imei, from, target, size,
 * description, state, state_name, fwup_sent, failed (code).
 * @function Fota:info
 * @treturn table
 */
static int l_info(lua_State *L)
{
    lfota *u = check_fota(L);
    if (u->closed)
        return hf_lua_fail(L, "closed", "ECLOSED");
    const hf_fota *f = &u->fsm;
    lua_createtable(L, 0, 12);
    hf_lua_set_str(L, "phase", hf_fota_phase_name(f->phase));
    hf_lua_set_str(L, "model", f->model);
    hf_lua_set_str(L, "imei", f->imei);
    if (f->have_running)
        hf_lua_set_str(L, "revision", f->running.text);
    if (f->have_from)
        hf_lua_set_str(L, "from", f->from.text);
    push_offer(L, f);
    if (f->last_state >= 0) {
        hf_lua_set_int(L, "state", f->last_state);
        hf_lua_set_str(L, "state_name", hf_fota_state_name(f->last_state));
    }
    lua_pushboolean(L, f->fwup_sent);
    lua_setfield(L, -2, "fwup_sent");
    if (f->fail_code)
        hf_lua_set_str(L, "failed", f->fail_code);
    return 1;
}

/* __gc and __close and close(): one idempotent close (nothing to free inside). */
static int l_close(lua_State *L)
{
    lfota *u = check_fota(L);
    u->closed = 1;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lfota *u = check_fota(L);
    if (u->closed)
        lua_pushstring(L, "hwfota.Fota (closed)");
    else
        lua_pushfstring(L, "hwfota.Fota (%s)", hf_fota_phase_name(u->fsm.phase));
    return 1;
}

/* ---- versions and tables ------------------------------------------------------------ */

/***
 * Compare two firmware versions field by field after normalising them.
 * @function version_compare
 * @tparam string a
 * @tparam string b
 * @return -1, 0 or 1, or nil, message, "EPARSE"
 */
static int l_version_compare(lua_State *L)
{
    size_t na, nb;
    const char *a = luaL_checklstring(L, 1, &na);
    const char *b = luaL_checklstring(L, 2, &nb);
    hf_version va, vb;
    hf_error err;
    if (hf_version_parse(a, na, &va, &err) < 0 || hf_version_parse(b, nb, &vb, &err) < 0)
        return hf_lua_fail(L, err.msg, err.code);
    lua_pushinteger(L, hf_version_compare(&va, &vb));
    return 1;
}

/***
 * Normalise a firmware version (trim spaces and quotes, check the syntax).
 * @function version_normalize
 * @tparam string v
 * @return string, or nil, message, "EPARSE"
 */
static int l_version_normalize(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    hf_version v;
    hf_error err;
    if (hf_version_parse(s, n, &v, &err) < 0)
        return hf_lua_fail(L, err.msg, err.code);
    lua_pushstring(L, v.text);
    return 1;
}

/***
 * Name of a FOTA state number.
 * @function fota_state_name
 * @tparam integer n
 * @treturn string "idle", "downloading", ..., "unknown"
 */
static int l_state_name(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    lua_pushstring(L, hf_fota_state_name(n < -1000 || n > 1000 ? -1 : (int)n));
    return 1;
}

/***
 * Meaning of a ^FOTASTATE 13/20 error code.
 * @function fota_error_meaning
 * @tparam integer code
 * @treturn string
 */
static int l_error_meaning(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    lua_pushstring(L, hf_fota_error_meaning(n < -1 || n > 100000 ? -1 : (long)n));
    return 1;
}

/***
 * Look a module model up in the FOTA support table, as ATI prints it ("MU509",
 * "MU609-b", "MU609 (mini PCIE)"...): see hf_model_match in fota_parse.h.
 * @function supported_model
 * @tparam string model e.g. "MU609"
 * @tparam[opt] string firmware the running version: its family chooses MU509-c (11.x)
 *   and the AT&T rows (12.107.x)
 * @return minimum firmware, canonical model name; or nil, message, "EUNSUPPORTED"
 */
static int l_supported_model(lua_State *L)
{
    size_t n, vn = 0;
    const char *m = luaL_checklstring(L, 1, &n);
    const char *vs = luaL_optlstring(L, 2, NULL, &vn);
    hf_version v;
    int have = vs && hf_version_parse(vs, vn, &v, NULL) == 0;
    const hf_model_entry *e = hf_model_match(m, n, have ? &v : NULL);
    if (!e) {
        char shown[48];   /* never echo a huge or NUL-carrying argument back whole */
        size_t k = 0;
        for (; k < n && k < sizeof shown - 4 && m[k] >= 0x20 && m[k] < 0x7f; k++)
            shown[k] = m[k];
        if (k < n)
            memcpy(shown + k, "...", 4);
        else
            shown[k] = '\0';
        lua_pushnil(L);
        lua_pushfstring(L, "model \"%s\" is not in the FOTA support table", shown);
        lua_pushstring(L, "EUNSUPPORTED");
        return 3;
    }
    lua_pushstring(L, e->min_firmware);
    lua_pushstring(L, e->model);
    return 2;
}

int hf_lua_fota_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"start", l_start}, {"feed", l_feed}, {"snapshot", l_snapshot},
        {"restore", l_restore}, {"expect_imei", l_expect_imei}, {"phase", l_phase}, {"info", l_info}, {"close", l_close},
        {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {
        {"fota_new", l_fota_new}, {"version_compare", l_version_compare},
        {"version_normalize", l_version_normalize}, {"fota_state_name", l_state_name},
        {"fota_error_meaning", l_error_meaning}, {"supported_model", l_supported_model},
        {NULL, NULL}};
    int mod = lua_gettop(L);
    if (luaL_newmetatable(L, FOTA_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, funcs, 0);
    /* core.fota_options: the option names fota_new accepts (what the README's options
     * table must list; spec/docs_spec.lua compares them) */
    lua_newtable(L);
    for (int i = 0; fota_keys[i]; i++) {
        lua_pushstring(L, fota_keys[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "fota_options");
    lua_pop(L, 1);
    return 0;
}
