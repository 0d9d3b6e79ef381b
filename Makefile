# hwfota — host-side FOTA driver for Huawei MU509/MU609 modules.
#
# Cross-compiling (OpenWrt SDK): every tool and path below can be overridden:
#   make CC=... CFLAGS=... LDFLAGS=... LUA_INCDIR=... PREFIX=/usr DESTDIR=...
#
#   make            build build/hwfota/core.so and build/hwfota-sim
#   make test       install missing Debian packages (as root), build, run every suite
#   make demo       the whole FOTA flow against the simulated module
#   make install    install the Lua module, the C core and the tools

LUA_VERSION  ?= 5.4
LUA          ?= lua$(LUA_VERSION)
LUA_INCDIR   ?= /usr/include/lua$(LUA_VERSION)
PREFIX       ?= /usr/local
DESTDIR      ?=
LUA_LIBDIR   ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUA_SHAREDIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
BINDIR       ?= $(PREFIX)/bin

CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=
SERIAL_CFLAGS ?= $(shell pkg-config --cflags libserialport 2>/dev/null)
SERIAL_LIBS   ?= $(shell pkg-config --libs libserialport 2>/dev/null || echo -lserialport)

# Flags the project needs whatever the caller passes in CFLAGS.
HF_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC \
            -Icsrc $(SERIAL_CFLAGS)
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g

B = build

# Core sources: transport, AT engine, FOTA state machine (no Lua). Binding: csrc/lua_*.c.
CORE_SRC  := $(sort $(filter-out csrc/lua_%.c,$(wildcard csrc/*.c)))
BIND_SRC  := $(sort $(wildcard csrc/lua_*.c))
SIM_SRC   := $(sort $(wildcard csrc/sim/*.c))
TEST_SRC  := $(sort $(wildcard csrc/tests/test_*.c))
SUPPORT_SRC := $(sort $(wildcard spec/support/*.c))

CORE_OBJ  := $(CORE_SRC:csrc/%.c=$(B)/obj/%.o)
BIND_OBJ  := $(BIND_SRC:csrc/%.c=$(B)/obj/%.o)
CORE_SAN  := $(CORE_SRC:csrc/%.c=$(B)/san/%.o)
TESTS     := $(TEST_SRC:csrc/tests/%.c=$(B)/tests/%)
TESTS_SAN := $(TEST_SRC:csrc/tests/%.c=$(B)/tests-san/%)
SUPPORT   := $(SUPPORT_SRC:spec/support/%.c=$(B)/support/%)

.PHONY: all test check demo install clean deps lib sim tests
all: lib $(if $(SIM_SRC),sim)

lib: $(B)/hwfota/core.so
sim: $(B)/hwfota-sim
tests: $(TESTS) $(TESTS_SAN) $(SUPPORT)

$(B)/obj/%.o: csrc/%.c $(wildcard csrc/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HF_CFLAGS) -I$(LUA_INCDIR) -c -o $@ $<

$(B)/san/%.o: csrc/%.c $(wildcard csrc/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(HF_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

# The Lua C module. Not linked against liblua: the interpreter provides its symbols.
$(B)/hwfota/core.so: $(CORE_OBJ) $(BIND_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(SERIAL_LIBS)

# The simulator shares no code with the library (independence is the point).
$(B)/hwfota-sim: $(SIM_SRC) $(wildcard csrc/sim/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HF_CFLAGS) -Icsrc/sim $(LDFLAGS) -o $@ $(SIM_SRC) -lutil -lm

$(B)/tests/%: csrc/tests/%.c $(CORE_OBJ) csrc/tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HF_CFLAGS) $(LDFLAGS) -o $@ $< $(CORE_OBJ) $(SERIAL_LIBS) -lutil -lm

$(B)/tests-san/%: csrc/tests/%.c $(CORE_SAN) csrc/tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(HF_CFLAGS) $(SAN_FLAGS) -o $@ $< $(CORE_SAN) $(SERIAL_LIBS) -lutil -lm

# Test support programs and preload libraries (spec/support/*.c). A file whose
# name ends in _preload.c becomes a shared object.
$(B)/support/%: spec/support/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HF_CFLAGS) $(LDFLAGS) $(if $(findstring _preload,$*),-shared) \
	  -o $@ $< -lutil -ldl -lm

# Debian packages the build and the suites need (installed by `make deps` when root).
DEB_PACKAGES = build-essential pkg-config lua5.4 liblua5.4-dev libserialport-dev \
               libserialport0 lua-busted valgrind

deps:
	@sh spec/install-deps.sh $(DEB_PACKAGES)

test: deps
	$(MAKE) all tests
	@sh spec/run-tests.sh

check: test

demo: deps
	$(MAKE) all
	@sh examples/demo.sh

install: all
	install -d $(DESTDIR)$(LUA_LIBDIR)/hwfota $(DESTDIR)$(LUA_SHAREDIR)/hwfota $(DESTDIR)$(BINDIR)
	install -m 0755 $(B)/hwfota/core.so $(DESTDIR)$(LUA_LIBDIR)/hwfota/core.so
	install -m 0644 lua/hwfota/*.lua $(DESTDIR)$(LUA_SHAREDIR)/hwfota/
	install -m 0755 $(B)/hwfota-sim $(DESTDIR)$(BINDIR)/hwfota-sim

clean:
	rm -rf $(B)
.SECONDARY:
