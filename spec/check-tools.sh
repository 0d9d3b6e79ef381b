#!/bin/sh
# Check, without installing anything and without root, that the tools and headers
# `make check` needs are present; name the Debian package of each one missing and
# exit 1 (`make test` installs them first, as root: spec/install-deps.sh).
# Usage: check-tools.sh CC LUA LUA_INCDIR
# Each need: "command NAME PACKAGE", "file PATH PACKAGE" (a header, a library file) or
# "luamod MODULE PACKAGE" (a module LUA can require).
cc=${1:-cc}
lua=${2:-lua5.4}
incdir=${3:-/usr/include/lua5.4}
missing=""
need() {
    case $1 in
    command) command -v "$2" >/dev/null 2>&1 ;;
    file)    [ -f "$2" ] ;;
    luamod)  "$lua" -e "require '$2'" >/dev/null 2>&1 ;;
    esac || { echo "hwfota: missing $1 $2 (Debian package $3)" >&2; missing="$missing $3"; }
}
need command "$cc" build-essential
need command make build-essential
need command pkg-config pkg-config
need command "$lua" lua5.4
need file "$incdir/lua.h" liblua5.4-dev
# libserialport.h wherever pkg-config says (an SDK's sysroot), else /usr/include
spdir=$(pkg-config --variable=includedir libserialport 2>/dev/null)
need file "${spdir:-/usr/include}/libserialport.h" libserialport-dev
need command busted lua-busted
need command valgrind valgrind
need command musl-gcc musl-tools
need command ldoc lua-ldoc
# ldoc (Lua 5.1) formats with markdown.lua, which Debian's lua-ldoc does not bundle
need file "${LDOC_MARKDOWN:-/usr/share/lua/5.1/markdown.lua}" lua-markdown
need command luarocks luarocks
need command shellcheck shellcheck
need luamod dkjson lua-dkjson
need luamod socket lua-socket
need command strace strace
# issue 16: hwfota.mqtt (optional for the build, required by the suites) and a broker
need file "${MQTT_INCDIR:-/usr/include}/mosquitto.h" libmosquitto-dev
need file /usr/sbin/mosquitto mosquitto
need command mosquitto_pub mosquitto-clients
need command openssl openssl
[ -z "$missing" ] && exit 0
echo "hwfota: make check needs:$missing" >&2
echo "hwfota: install them (as root: make test, or apt-get install$missing)" >&2
exit 1
