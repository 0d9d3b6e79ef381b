# hwfota — host-side FOTA driver for Huawei MU509/MU609 modules.
#
# Cross-compiling (OpenWrt SDK): every tool and path below can be overridden:
#   make CC=... CFLAGS=... LDFLAGS=... LUA_INCDIR=... PREFIX=/usr DESTDIR=...
#
#   make            build build/hwfota/core.so and build/hwfota-sim
#   make test       install missing Debian packages (as root), build, run every suite
#   make demo       the whole FOTA flow against the simulated module
#   make install    install the Lua module, the C core and the tools (hwfota, hwfota-sim)

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
               libserialport0 lua-busted valgrind \
               musl-tools lua-ldoc lua-markdown luarocks shellcheck \
               lua-dkjson lua-socket

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
	install -m 0755 lua/bin/hwfota $(DESTDIR)$(BINDIR)/hwfota

clean:
	rm -rf $(B)
.SECONDARY:

# ======================================================================================
# Packaging checks (issue 5): musl build, API reference, luarocks, OpenWrt files.
# spec/run-tests.sh runs every executable in spec/checks/ like a C test (it must print
# "#tally <name> passed=N failed=M"), so `make test` counts these without extra recipes.
#
#   make musl-check   compile every csrc/*.c with musl-gcc, warnings are errors
#   make docs         HTML API reference of lua/hwfota/*.lua into build/doc (LDoc)
#   make rock-check   luarocks make into a throw-away tree, offline, then require it
#   make openwrt-check  lint examples/openwrt (init script, UCI config, command)
# ======================================================================================
.PHONY: musl-check musl-headers docs rock-check openwrt-check

MUSL_CC       ?= musl-gcc
SERIAL_INCDIR ?= /usr/include
MUSL_SRC      := $(CORE_SRC) $(BIND_SRC)
MUSL_INC      := $(B)/musl/include
# The project's own flags (not the host's pkg-config output, which may name glibc
# include dirs) plus a private include dir holding only the Lua and libserialport
# headers: adding all of /usr/include would mix glibc headers into the musl build.
MUSL_CFLAGS    = -O2 $(filter-out $(SERIAL_CFLAGS),$(HF_CFLAGS)) -I$(MUSL_INC)
# Where the headers' own "quoted" includes may live (Debian's luaconf.h includes
# "lua5.4-deb-multiarch.h" from /usr/include/<multiarch>).
MUSL_HDR_PATH ?= $(LUA_INCDIR) $(SERIAL_INCDIR) \
                 /usr/include/$(shell $(CC) -print-multiarch 2>/dev/null)

musl-headers:
	@rm -rf $(MUSL_INC) && mkdir -p $(MUSL_INC)
	@for h in $(LUA_INCDIR)/*.h $(SERIAL_INCDIR)/libserialport.h; do \
	  [ -f "$$h" ] || { echo "musl-check: missing header $$h" >&2; exit 1; }; \
	  ln -s "$$(readlink -f "$$h")" $(MUSL_INC)/; \
	done
	@again=1; while [ $$again = 1 ]; do again=0; \
	  for q in $$(sed -n 's/^[ \t]*#[ \t]*include[ \t]*"\([^"]*\)".*/\1/p' $(MUSL_INC)/*.h | sort -u); do \
	    [ -e $(MUSL_INC)/$$q ] && continue; \
	    for d in $(MUSL_HDR_PATH); do \
	      if [ -f "$$d/$$q" ]; then ln -s "$$(readlink -f "$$d/$$q")" $(MUSL_INC)/$$q; again=1; break; fi; \
	    done; \
	  done; \
	done

# One compile per source so the tally counts files; any warning fails that file.
musl-check: musl-headers
	@command -v $(MUSL_CC) >/dev/null 2>&1 || { \
	  echo "musl-check: $(MUSL_CC) not found (Debian package musl-tools)"; \
	  echo "#tally musl passed=0 failed=1"; exit 1; }
	@mkdir -p $(B)/musl/obj; p=0; f=0; \
	for s in $(MUSL_SRC); do \
	  o=$(B)/musl/obj/$$(basename "$$s" .c).o; \
	  if $(MUSL_CC) $(MUSL_CFLAGS) -c -o "$$o" "$$s"; then p=$$((p + 1)); \
	  else echo "!! musl: $$s does not build warning-free"; f=$$((f + 1)); fi; \
	done; \
	echo "#tally musl passed=$$p failed=$$f"; [ "$$f" -eq 0 ] && [ "$$p" -gt 0 ]

# LDoc runs in the directory of its config file: give it absolute paths.
docs:
	@mkdir -p $(B)/doc
	ldoc -c spec/ldoc.ld --fatalwarnings --testing -d $(CURDIR)/$(B)/doc $(CURDIR)/lua/hwfota
	@echo "API reference: $(B)/doc/index.html"

rock-check:
	@sh spec/checks/rock

openwrt-check:
	@sh spec/checks/openwrt

# ======================================================================================
# Fault campaign (issue 6): spec/faults/campaign.lua draws a fault plan per run from a
# seeded PRNG, starts hwfota-sim with it, runs the FOTA flow in a child lua5.4 that it
# SIGKILLs and restarts on its journal, and checks the invariants (spec/faults/README.md).
#
#   make faults                      10000 runs from SEED=1, JOBS=2 at a time
#   make faults SEED=4242 RUNS=1     replay one run (its seed is its plan), verbose
#   make faults RUNS=2000 JOBS=3     a shorter campaign
# `make test` runs a stratified seeded subset through spec/checks/faults.
# ======================================================================================
.PHONY: faults faults-tools

SEED ?= 1
RUNS ?= 10000
JOBS ?= 2

faults-tools: $(B)/faults/tty-release

$(B)/faults/tty-release: spec/faults/tty_release.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HF_CFLAGS) $(LDFLAGS) -o $@ $<

faults: all faults-tools
	@if [ "$(RUNS)" = 1 ]; then \
	  HWFOTA_TOP=$(CURDIR) $(LUA) spec/faults/campaign.lua --one $(SEED) --verbose --keep; \
	else \
	  HWFOTA_TOP=$(CURDIR) $(LUA) spec/faults/campaign.lua --seed $(SEED) --runs $(RUNS) \
	    --jobs $(JOBS) --regressions spec/faults/regressions.txt; \
	fi
