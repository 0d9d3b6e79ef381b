/*
 * lua_mqtt.c — `hwfota.mqtt`: a small Lua 5.4 binding of libmosquitto for an
 * external poll loop (built as its own module, build/hwfota/mqtt.so, only when
 * libmosquitto is present; see lua/hwfota/fleet/mqtt_bus.lua for its user).
 *
 * One client = one `struct mosquitto`, in non-threaded mode: the caller owns the
 * loop. It watches `client:socket()` for reading (and for writing while
 * `client:want_write()`), calls `loop_read` / `loop_write` when it is ready and
 * `loop_misc` about once a second (keepalive pings). Nothing here blocks except
 * the name lookup of `connect` (give an address to avoid it).
 *
 * libmosquitto reports connections, messages and acknowledgements through C
 * callbacks that run inside its own calls. A Lua error must never longjmp
 * through libmosquitto, so those C callbacks only append an event to a bounded
 * queue (a Lua table in the client's user value, filled under lua_pcall; an
 * event that does not fit is counted in `client:dropped()`). The queue is handed
 * to the Lua callbacks (`on_connect`, `on_disconnect`, `on_message`,
 * `on_subscribe`, `on_publish`) when libmosquitto has returned: at the end of
 * every `loop_*` call and by `client:dispatch()`. An error raised by a Lua
 * callback then propagates normally from that call.
 *
 * Lua API (failures: nil, message, code):
 *   mqtt.new{client_id=, clean_session=true} -> client      mqtt.version() -> 2, 0, 11
 *   client:will_set(topic, payload, qos, retain)      before connect
 *   client:username_pw_set(username, password)        (the caller reads the password from a file)
 *   client:tls_set{cafile=|capath=, certfile=, keyfile=, insecure=false}
 *   client:connect(host, port=1883, keepalive=60) -> true   (non-blocking; CONNACK: on_connect)
 *   client:reconnect(), client:disconnect() -> true
 *   client:socket() -> fd | nil,  client:want_write() -> boolean
 *   client:loop_read(), loop_write(), loop_misc() -> true   (then the queued events are handed out)
 *   client:publish(topic, payload, qos=0, retain=false) -> mid
 *   client:subscribe(pattern, qos=0) -> mid,  client:unsubscribe(pattern) -> mid
 *   client:on_connect(fn(rc, text))   rc 0: accepted; else the CONNACK refusal
 *   client:on_disconnect(fn(rc, text, code))   rc 0: on request
 *   client:on_message(fn(topic, payload, retained, qos, mid))
 *   client:on_subscribe(fn(mid, {granted qos...})),  client:on_publish(fn(mid))
 *   client:dispatch(), client:dropped() -> n,  client:close() (also __close, __gc)
 *
 * The library is initialised once per Lua state (a registry sentinel whose
 * __gc cleans it up): this file keeps no global mutable state. Failures return
 * `nil, message, code` (codes as errno names: ENOTCONN, ECONNREFUSED, EACCES,
 * EPROTO, ETLS ...); wrong argument types raise. Exports luaopen_hwfota_mqtt
 * only (csrc/mqtt.map).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <mosquitto.h>

#include "lua_util.h"

#define MQTT_CLIENT_MT   "hwfota.mqtt.Client"
#define MQTT_INIT_KEY    "hwfota.mqtt.init"
#define MQTT_MAX_EVENTS  1024    /* queued events between two dispatches */
#define MQTT_MSG_LEN     384     /* an error message */
#define MQTT_LOG_LEN     160     /* the last error libmosquitto logged (TLS details) */

/* User value slots of a client. */
enum { UV_QUEUE = 1, UV_HANDLERS = 2 };

typedef struct mqtt_client {
    struct mosquitto *m;
    lua_State *L;          /* set only while a libmosquitto call runs */
    lua_Integer head;      /* queue: events [head, tail) in the UV_QUEUE table */
    lua_Integer tail;
    lua_Integer dropped;   /* events that did not fit or could not be queued */
    int dispatching;       /* a dispatch is running (nested ones return at once) */
    char last_log[MQTT_LOG_LEN];  /* libmosquitto's last error log line, or "" */
} mqtt_client;

/* ---- errors ------------------------------------------------------------------ */

static const char *errno_code(int e)
{
    switch (e) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT:    return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH:  return "ENETUNREACH";
    case ECONNRESET:   return "ECONNRESET";
    case EPIPE:        return "EPIPE";
    case ENOENT:       return "ENOENT";
    case EACCES:       return "EACCES";
    case EINVAL:       return "EINVAL";
    default:           return "EIO";
    }
}

/* An errno-like code for a libmosquitto error (rc), errno read right after. */
static const char *mosq_code(int rc, int err)
{
    switch (rc) {
    case MOSQ_ERR_NOMEM:          return "ENOMEM";
    case MOSQ_ERR_PROTOCOL:       return "EPROTO";
    case MOSQ_ERR_INVAL:          return "EINVAL";
    case MOSQ_ERR_NO_CONN:        return "ENOTCONN";
    case MOSQ_ERR_CONN_REFUSED:   return "ECONNREFUSED";
    case MOSQ_ERR_NOT_FOUND:      return "ENOENT";
    case MOSQ_ERR_CONN_LOST:      return "ECONNRESET";
    case MOSQ_ERR_TLS:            return "ETLS";
    case MOSQ_ERR_PAYLOAD_SIZE:   return "EMSGSIZE";
    case MOSQ_ERR_NOT_SUPPORTED:  return "ENOTSUP";
    case MOSQ_ERR_AUTH:           return "EACCES";
    case MOSQ_ERR_ACL_DENIED:     return "EACCES";
    case MOSQ_ERR_ERRNO:          return errno_code(err);
    case MOSQ_ERR_EAI:            return "EHOSTUNREACH";
    case MOSQ_ERR_KEEPALIVE:      return "ETIMEDOUT";
    case MOSQ_ERR_MALFORMED_UTF8: return "EINVAL";
    case MOSQ_ERR_OVERSIZE_PACKET: return "EMSGSIZE";
    case MOSQ_ERR_TLS_HANDSHAKE:  return "ETLS";
    default:                      return "EIO";
    }
}

/* The text of a libmosquitto error; MOSQ_ERR_ERRNO says the errno's text. */
static const char *mosq_text(int rc, int err)
{
    if (rc == MOSQ_ERR_ERRNO)
        return strerror(err);
    return mosquitto_strerror(rc);
}

/* nil, "mqtt: <what> failed: <why>", code; a TLS failure adds what libmosquitto
 * logged about it (OpenSSL's reason: "certificate verify failed", ...). */
static int mqtt_fail_c(lua_State *L, const char *last_log, const char *what, int rc, int err)
{
    char msg[MQTT_MSG_LEN];
    int tls = rc == MOSQ_ERR_TLS || rc == MOSQ_ERR_TLS_HANDSHAKE;
    snprintf(msg, sizeof msg, "mqtt: %s failed: %s%s%s%s", what, mosq_text(rc, err),
             tls && last_log[0] ? " (" : "", tls ? last_log : "", tls && last_log[0] ? ")" : "");
    return hf_lua_fail(L, msg, mosq_code(rc, err));
}

static int mqtt_fail(lua_State *L, const char *what, int rc, int err)
{
    return mqtt_fail_c(L, "", what, rc, err);
}

/* ---- the event queue (filled from inside libmosquitto) ------------------------- */

typedef enum { EV_CONNECT, EV_DISCONNECT, EV_MESSAGE, EV_SUBSCRIBE, EV_PUBLISH } ev_kind;

typedef struct ev_args {
    ev_kind kind;
    int rc;                                 /* connect, disconnect */
    int mid;                                /* subscribe, publish */
    int qos_count;                          /* subscribe */
    const int *granted;                     /* subscribe */
    const struct mosquitto_message *msg;    /* message */
} ev_args;

/* Why a connection ended (on_disconnect's rc). libmosquitto 2.0.11's own
 * mosquitto_strerror says "Unknown error." for some of these (keepalive). */
static void push_disconnect_text(lua_State *L, int rc)
{
    switch (rc) {
    case MOSQ_ERR_SUCCESS:
        lua_pushliteral(L, "disconnected on request");
        return;
    case MOSQ_ERR_KEEPALIVE:
        lua_pushliteral(L, "the broker did not answer within the keepalive (ping timeout)");
        return;
    case MOSQ_ERR_CONN_LOST:
        lua_pushliteral(L, "the connection was lost");
        return;
    default:
        break;
    }
    const char *t = mosquitto_strerror(rc);
    if (t == NULL || strcmp(t, "Unknown error.") == 0)
        lua_pushfstring(L, "the connection ended (libmosquitto code %d)", rc);
    else
        lua_pushstring(L, t);
}

/* Under lua_pcall: arg 1 the client, arg 2 the ev_args. Appends one event table
 * {kind, ...} to the queue. Only memory errors can raise here. */
static int push_event(lua_State *L)
{
    mqtt_client *c = luaL_checkudata(L, 1, MQTT_CLIENT_MT);
    const ev_args *a = lua_touserdata(L, 2);
    lua_getiuservalue(L, 1, UV_QUEUE);
    lua_createtable(L, 6, 0);
    switch (a->kind) {
    case EV_CONNECT:
        lua_pushliteral(L, "connect");
        lua_rawseti(L, -2, 1);
        lua_pushinteger(L, a->rc);
        lua_rawseti(L, -2, 2);
        lua_pushstring(L, mosquitto_connack_string(a->rc));
        lua_rawseti(L, -2, 3);
        break;
    case EV_DISCONNECT:
        lua_pushliteral(L, "disconnect");
        lua_rawseti(L, -2, 1);
        lua_pushinteger(L, a->rc);
        lua_rawseti(L, -2, 2);
        push_disconnect_text(L, a->rc);
        lua_rawseti(L, -2, 3);
        lua_pushstring(L, a->rc == 0 ? "OK" : mosq_code(a->rc, 0));
        lua_rawseti(L, -2, 4);
        break;
    case EV_MESSAGE:
        lua_pushliteral(L, "message");
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, a->msg->topic ? a->msg->topic : "");
        lua_rawseti(L, -2, 2);
        lua_pushlstring(L, a->msg->payload ? (const char *)a->msg->payload : "",
                        a->msg->payload ? (size_t)a->msg->payloadlen : 0);
        lua_rawseti(L, -2, 3);
        lua_pushboolean(L, a->msg->retain);
        lua_rawseti(L, -2, 4);
        lua_pushinteger(L, a->msg->qos);
        lua_rawseti(L, -2, 5);
        lua_pushinteger(L, a->msg->mid);
        lua_rawseti(L, -2, 6);
        break;
    case EV_SUBSCRIBE:
        lua_pushliteral(L, "subscribe");
        lua_rawseti(L, -2, 1);
        lua_pushinteger(L, a->mid);
        lua_rawseti(L, -2, 2);
        lua_createtable(L, a->qos_count > 0 ? a->qos_count : 0, 0);
        for (int i = 0; i < a->qos_count; i++) {
            lua_pushinteger(L, a->granted[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_rawseti(L, -2, 3);
        break;
    case EV_PUBLISH:
        lua_pushliteral(L, "publish");
        lua_rawseti(L, -2, 1);
        lua_pushinteger(L, a->mid);
        lua_rawseti(L, -2, 2);
        break;
    }
    lua_rawseti(L, -2, c->tail);
    c->tail++;
    return 0;
}

/* Called from libmosquitto's callbacks. The client is at stack index 1 of the
 * binding method that called into libmosquitto (every such method is a method
 * of the client), so it can be handed to push_event without a registry ref. */
static void queue_event(mqtt_client *c, const ev_args *a)
{
    lua_State *L = c->L;
    if (L == NULL || c->tail - c->head >= MQTT_MAX_EVENTS || !lua_checkstack(L, 3)) {
        c->dropped++;
        return;
    }
    lua_pushcfunction(L, push_event);
    lua_pushvalue(L, 1);
    lua_pushlightuserdata(L, (void *)a);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        c->dropped++;
    }
}

/* libmosquitto's log: keep its last error line (no Lua here: a plain copy). */
static void cb_log(struct mosquitto *m, void *obj, int level, const char *str)
{
    (void)m;
    mqtt_client *c = obj;
    if ((level & MOSQ_LOG_ERR) && str != NULL)
        snprintf(c->last_log, sizeof c->last_log, "%s", str);
}

static void cb_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    ev_args a = {.kind = EV_CONNECT, .rc = rc};
    queue_event(obj, &a);
}

static void cb_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    ev_args a = {.kind = EV_DISCONNECT, .rc = rc};
    queue_event(obj, &a);
}

static void cb_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    ev_args a = {.kind = EV_MESSAGE, .msg = msg};
    queue_event(obj, &a);
}

static void cb_subscribe(struct mosquitto *m, void *obj, int mid, int qos_count,
                         const int *granted)
{
    (void)m;
    ev_args a = {.kind = EV_SUBSCRIBE, .mid = mid, .qos_count = qos_count,
                 .granted = granted};
    queue_event(obj, &a);
}

static void cb_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m;
    ev_args a = {.kind = EV_PUBLISH, .mid = mid};
    queue_event(obj, &a);
}

/* ---- client ------------------------------------------------------------------ */

static mqtt_client *check_client(lua_State *L)
{
    mqtt_client *c = luaL_checkudata(L, 1, MQTT_CLIENT_MT);
    if (c->m == NULL)
        luaL_error(L, "hwfota.mqtt: the client is closed");
    return c;
}

/* Hand the queued events to their Lua callbacks, oldest first. An event is taken
 * off the queue before its callback runs, so a callback that raises loses only
 * its own event; the others wait for the next dispatch. */
static void dispatch(lua_State *L, mqtt_client *c)
{
    if (c->dispatching)
        return;
    c->dispatching = 1;
    while (c->head < c->tail && c->m != NULL) {   /* a callback may close the client */
        lua_getiuservalue(L, 1, UV_QUEUE);
        lua_rawgeti(L, -1, c->head);
        lua_pushnil(L);
        lua_rawseti(L, -3, c->head);
        c->head++;
        lua_remove(L, -2);               /* the event */
        int ev = lua_gettop(L);
        lua_rawgeti(L, ev, 1);
        const char *kind = lua_tostring(L, -1);
        lua_getiuservalue(L, 1, UV_HANDLERS);
        lua_getfield(L, -1, kind);
        if (lua_isfunction(L, -1)) {
            int n = (int)luaL_len(L, ev);
            for (int i = 2; i <= n; i++)
                lua_rawgeti(L, ev, i);
            int ok = lua_pcall(L, n - 1, 0, 0);
            if (ok != LUA_OK) {
                c->dispatching = 0;
                lua_error(L);
            }
        } else {
            lua_pop(L, 1);
        }
        lua_settop(L, ev - 1);
    }
    if (c->head < c->tail) {   /* closed: what is left is not delivered */
        lua_createtable(L, 0, 0);
        lua_setiuservalue(L, 1, UV_QUEUE);
    }
    c->head = c->tail = 1;
    c->dispatching = 0;
}

/* Around every libmosquitto call that may run its callbacks. */
static void enter(lua_State *L, mqtt_client *c) { c->L = L; }
static void leave(mqtt_client *c) { c->L = NULL; }

static const char *opt_string(lua_State *L, int t, const char *k)
{
    if (!hf_lua_field(L, t, k, LUA_TSTRING, "option", "a string"))
        return NULL;
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);   /* still referenced by the options table */
    return s;
}

/*** mqtt.new{client_id=, clean_session=true} -> client | nil, msg, code */
static int mqtt_new(lua_State *L)
{
    const char *id = NULL;
    int clean = 1;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        id = opt_string(L, 1, "client_id");
        clean = hf_lua_bool_field(L, 1, "clean_session", 1, "option");
    }
    if (id == NULL && !clean)
        return hf_lua_fail(L, "mqtt: a persistent session (clean_session=false) needs a client_id",
                           "EINVAL");
    mqtt_client *c = lua_newuserdatauv(L, sizeof *c, 2);
    memset(c, 0, sizeof *c);
    c->head = c->tail = 1;
    lua_newtable(L);
    lua_setiuservalue(L, -2, UV_QUEUE);
    lua_newtable(L);
    lua_setiuservalue(L, -2, UV_HANDLERS);
    luaL_setmetatable(L, MQTT_CLIENT_MT);
    errno = 0;
    c->m = mosquitto_new(id, clean, c);
    if (c->m == NULL) {
        int e = errno;
        char msg[MQTT_MSG_LEN];
        snprintf(msg, sizeof msg, "mqtt: creating the client failed: %s",
                 e == EINVAL ? "invalid client id or options" : strerror(e ? e : ENOMEM));
        return hf_lua_fail(L, msg, e == EINVAL ? "EINVAL" : "ENOMEM");
    }
    mosquitto_connect_callback_set(c->m, cb_connect);
    mosquitto_disconnect_callback_set(c->m, cb_disconnect);
    mosquitto_message_callback_set(c->m, cb_message);
    mosquitto_subscribe_callback_set(c->m, cb_subscribe);
    mosquitto_publish_callback_set(c->m, cb_publish);
    mosquitto_log_callback_set(c->m, cb_log);
    return 1;
}

static int client_close(lua_State *L)
{
    mqtt_client *c = luaL_checkudata(L, 1, MQTT_CLIENT_MT);
    if (c->m != NULL) {
        c->L = NULL;   /* no callback during destroy */
        mosquitto_destroy(c->m);
        c->m = NULL;
    }
    return 0;
}

static int qos_arg(lua_State *L, int i)
{
    lua_Integer q = luaL_optinteger(L, i, 0);
    luaL_argcheck(L, q == 0 || q == 1 || q == 2, i, "qos must be 0, 1 or 2");
    return (int)q;
}

static const char *payload_arg(lua_State *L, int i, int *len)
{
    size_t n = 0;
    const char *p = luaL_optlstring(L, i, "", &n);
    luaL_argcheck(L, n <= (size_t)INT_MAX, i, "payload too long");
    *len = (int)n;
    return p;
}

/*** client:will_set(topic, payload, qos, retain) -> true | nil, msg, code */
static int client_will_set(lua_State *L)
{
    mqtt_client *c = check_client(L);
    const char *topic = luaL_checkstring(L, 2);
    int len;
    const char *payload = payload_arg(L, 3, &len);
    int qos = qos_arg(L, 4);
    int retain = lua_toboolean(L, 5);
    int rc = mosquitto_will_set(c->m, topic, len, payload, qos, retain);
    if (rc != MOSQ_ERR_SUCCESS)
        return mqtt_fail(L, "setting the last will", rc, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/*** client:username_pw_set(username, password|nil) -> true | nil, msg, code */
static int client_username_pw_set(lua_State *L)
{
    mqtt_client *c = check_client(L);
    const char *user = luaL_optstring(L, 2, NULL);
    const char *pw = luaL_optstring(L, 3, NULL);
    int rc = mosquitto_username_pw_set(c->m, user, pw);
    if (rc != MOSQ_ERR_SUCCESS)
        return mqtt_fail(L, "setting the username", rc, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/*** client:tls_set{cafile=, capath=, certfile=, keyfile=, insecure=false} */
static int client_tls_set(lua_State *L)
{
    mqtt_client *c = check_client(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *cafile = opt_string(L, 2, "cafile");
    const char *capath = opt_string(L, 2, "capath");
    const char *certfile = opt_string(L, 2, "certfile");
    const char *keyfile = opt_string(L, 2, "keyfile");
    int insecure = hf_lua_bool_field(L, 2, "insecure", 0, "option");
    if (cafile == NULL && capath == NULL)
        return luaL_error(L, "tls_set: option 'cafile' or 'capath' is required");
    if ((certfile == NULL) != (keyfile == NULL))
        return luaL_error(L, "tls_set: options 'certfile' and 'keyfile' go together");
    errno = 0;
    int rc = mosquitto_tls_set(c->m, cafile, capath, certfile, keyfile, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        char msg[MQTT_MSG_LEN];
        snprintf(msg, sizeof msg, "mqtt: TLS setup failed: %s (cafile %s, certfile %s, keyfile %s)",
                 mosq_text(rc, errno), cafile ? cafile : "-", certfile ? certfile : "-",
                 keyfile ? keyfile : "-");
        return hf_lua_fail(L, msg, mosq_code(rc, errno));
    }
    rc = mosquitto_tls_insecure_set(c->m, insecure);
    if (rc != MOSQ_ERR_SUCCESS)
        return mqtt_fail(L, "TLS setup", rc, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/*** client:connect(host, port, keepalive) -> true | nil, msg, code (non-blocking
 * connect; the CONNACK comes as an on_connect event) */
static int client_connect(lua_State *L)
{
    mqtt_client *c = check_client(L);
    const char *host = luaL_checkstring(L, 2);
    lua_Integer port = luaL_optinteger(L, 3, 1883);
    lua_Integer keepalive = luaL_optinteger(L, 4, 60);
    luaL_argcheck(L, port > 0 && port < 65536, 3, "port must be 1..65535");
    luaL_argcheck(L, keepalive >= 5 && keepalive <= 65535, 4, "keepalive must be 5..65535 s");
    enter(L, c);
    errno = 0;
    c->last_log[0] = '\0';
    int rc = mosquitto_connect_async(c->m, host, (int)port, (int)keepalive);
    int err = errno;
    leave(c);
    if (rc != MOSQ_ERR_SUCCESS) {
        char what[MQTT_MSG_LEN / 2];
        snprintf(what, sizeof what, "connecting to %s:%d", host, (int)port);
        return mqtt_fail_c(L, c->last_log, what, rc, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/*** client:reconnect() -> true | nil, msg, code (same host, port, keepalive) */
static int client_reconnect(lua_State *L)
{
    mqtt_client *c = check_client(L);
    enter(L, c);
    errno = 0;
    c->last_log[0] = '\0';
    int rc = mosquitto_reconnect_async(c->m);
    int err = errno;
    leave(c);
    if (rc != MOSQ_ERR_SUCCESS)
        return mqtt_fail_c(L, c->last_log, "reconnecting", rc, err);
    lua_pushboolean(L, 1);
    return 1;
}

/*** client:disconnect() -> true | nil, msg, code */
static int client_disconnect(lua_State *L)
{
    mqtt_client *c = check_client(L);
    enter(L, c);
    int rc = mosquitto_disconnect(c->m);
    int err = errno;
    leave(c);
    if (rc != MOSQ_ERR_SUCCESS)
        return mqtt_fail(L, "disconnecting", rc, err);
    lua_pushboolean(L, 1);
    return 1;
}

/*** client:socket() -> fd | nil (not connected) */
static int client_socket(lua_State *L)
{
    mqtt_client *c = check_client(L);
    int fd = mosquitto_socket(c->m);
    if (fd < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, fd);
    return 1;
}

/*** client:want_write() -> boolean */
static int client_want_write(lua_State *L)
{
    mqtt_client *c = check_client(L);
    lua_pushboolean(L, mosquitto_want_write(c->m));
    return 1;
}

typedef int (*loop_fn)(struct mosquitto *, int);

static int loop_call(lua_State *L, loop_fn fn, const char *what)
{
    mqtt_client *c = check_client(L);
    enter(L, c);
    errno = 0;
    c->last_log[0] = '\0';
    int rc = fn(c->m, 1);
    int err = errno;
    leave(c);
    dispatch(L, c);
    if (rc != MOSQ_ERR_SUCCESS)
        return mqtt_fail_c(L, c->last_log, what, rc, err);
    lua_pushboolean(L, 1);
    return 1;
}

static int misc_fn(struct mosquitto *m, int unused)
{
    (void)unused;
    return mosquitto_loop_misc(m);
}

/*** client:loop_read() / loop_write() / loop_misc() -> true | nil, msg, code;
 * then the queued events go to their callbacks */
static int client_loop_read(lua_State *L) { return loop_call(L, mosquitto_loop_read, "read"); }
static int client_loop_write(lua_State *L) { return loop_call(L, mosquitto_loop_write, "write"); }
static int client_loop_misc(lua_State *L) { return loop_call(L, misc_fn, "keepalive"); }

/*** client:dispatch(): hand the queued events to their callbacks */
static int client_dispatch(lua_State *L)
{
    mqtt_client *c = check_client(L);
    dispatch(L, c);
    return 0;
}

/* The end of a call that queues a packet: its message id, or why it failed. */
static int mid_result(lua_State *L, const char *what, int rc, int err, int mid)
{
    if (rc != MOSQ_ERR_SUCCESS)
        return mqtt_fail(L, what, rc, err);
    lua_pushinteger(L, mid);
    return 1;
}

/*** client:publish(topic, payload, qos, retain) -> mid | nil, msg, code */
static int client_publish(lua_State *L)
{
    mqtt_client *c = check_client(L);
    const char *topic = luaL_checkstring(L, 2);
    int len;
    const char *payload = payload_arg(L, 3, &len);
    int qos = qos_arg(L, 4);
    int retain = lua_toboolean(L, 5);
    int mid = 0;
    enter(L, c);
    errno = 0;
    int rc = mosquitto_publish(c->m, &mid, topic, len, payload, qos, retain);
    int err = errno;
    leave(c);
    return mid_result(L, "publish", rc, err, mid);
}

/*** client:subscribe(pattern, qos) -> mid | nil, msg, code */
static int client_subscribe(lua_State *L)
{
    mqtt_client *c = check_client(L);
    const char *pattern = luaL_checkstring(L, 2);
    int qos = qos_arg(L, 3);
    int mid = 0;
    enter(L, c);
    errno = 0;
    int rc = mosquitto_subscribe(c->m, &mid, pattern, qos);
    int err = errno;
    leave(c);
    return mid_result(L, "subscribe", rc, err, mid);
}

/*** client:unsubscribe(pattern) -> mid | nil, msg, code */
static int client_unsubscribe(lua_State *L)
{
    mqtt_client *c = check_client(L);
    const char *pattern = luaL_checkstring(L, 2);
    int mid = 0;
    enter(L, c);
    errno = 0;
    int rc = mosquitto_unsubscribe(c->m, &mid, pattern);
    int err = errno;
    leave(c);
    return mid_result(L, "unsubscribe", rc, err, mid);
}

/*** client:dropped() -> number of events lost (queue full or out of memory) */
static int client_dropped(lua_State *L)
{
    mqtt_client *c = luaL_checkudata(L, 1, MQTT_CLIENT_MT);
    lua_pushinteger(L, c->dropped);
    return 1;
}

/* client:on_connect(fn) etc.: fn or nil. */
static int set_handler(lua_State *L, const char *kind)
{
    check_client(L);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_getiuservalue(L, 1, UV_HANDLERS);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, kind);
    return 0;
}

static int client_on_connect(lua_State *L) { return set_handler(L, "connect"); }
static int client_on_disconnect(lua_State *L) { return set_handler(L, "disconnect"); }
static int client_on_message(lua_State *L) { return set_handler(L, "message"); }
static int client_on_subscribe(lua_State *L) { return set_handler(L, "subscribe"); }
static int client_on_publish(lua_State *L) { return set_handler(L, "publish"); }

static int client_tostring(lua_State *L)
{
    mqtt_client *c = luaL_checkudata(L, 1, MQTT_CLIENT_MT);
    lua_pushfstring(L, "hwfota.mqtt.Client (%s)", c->m ? "open" : "closed");
    return 1;
}

/* ---- module ------------------------------------------------------------------ */

static int lib_cleanup(lua_State *L)
{
    (void)L;
    mosquitto_lib_cleanup();
    return 0;
}

/*** mqtt.version() -> major, minor, revision of the libmosquitto in use */
static int mqtt_version(lua_State *L)
{
    int major, minor, rev;
    mosquitto_lib_version(&major, &minor, &rev);
    lua_pushinteger(L, major);
    lua_pushinteger(L, minor);
    lua_pushinteger(L, rev);
    return 3;
}

int luaopen_hwfota_mqtt(lua_State *L);

int luaopen_hwfota_mqtt(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"will_set", client_will_set},
        {"username_pw_set", client_username_pw_set},
        {"tls_set", client_tls_set},
        {"connect", client_connect},
        {"reconnect", client_reconnect},
        {"disconnect", client_disconnect},
        {"socket", client_socket},
        {"want_write", client_want_write},
        {"loop_read", client_loop_read},
        {"loop_write", client_loop_write},
        {"loop_misc", client_loop_misc},
        {"dispatch", client_dispatch},
        {"publish", client_publish},
        {"subscribe", client_subscribe},
        {"unsubscribe", client_unsubscribe},
        {"dropped", client_dropped},
        {"on_connect", client_on_connect},
        {"on_disconnect", client_on_disconnect},
        {"on_message", client_on_message},
        {"on_subscribe", client_on_subscribe},
        {"on_publish", client_on_publish},
        {"close", client_close},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"new", mqtt_new},
        {"version", mqtt_version},
        {NULL, NULL},
    };
    /* Once per Lua state: a sentinel whose __gc undoes the init at close. */
    if (lua_getfield(L, LUA_REGISTRYINDEX, MQTT_INIT_KEY) == LUA_TNIL) {
        lua_pop(L, 1);
        int rc = mosquitto_lib_init();
        if (rc != MOSQ_ERR_SUCCESS)
            return luaL_error(L, "hwfota.mqtt: libmosquitto init failed: %s",
                              mosquitto_strerror(rc));
        lua_newuserdatauv(L, 1, 0);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, lib_cleanup);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_setfield(L, LUA_REGISTRYINDEX, MQTT_INIT_KEY);
    } else {
        lua_pop(L, 1);
    }
    if (luaL_newmetatable(L, MQTT_CLIENT_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, client_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, client_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, client_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
