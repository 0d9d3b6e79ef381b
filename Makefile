# hwfota — host-side FOTA driver for Huawei MU509/MU609 modules.
#
# Cross-compiling (OpenWrt SDK): every tool and path below can be overridden:
#   make CC=... CFLAGS=... LDFLAGS=... LUA_INCDIR=... PREFIX=/usr DESTDIR=...
#
#   make            build build/hwfota/core.so and build/hwfota-sim
#   make test       install missing Debian packages (as root: make deps), then make check
#   make check      build and run every suite; installs nothing, needs no root (SDKs,
#                   non-root users): a missing tool fails it, naming its package
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
# LFS_FLAGS: on 32-bit glibc targets (armhf, mips) stat() and readdir() otherwise fail
# with EOVERFLOW on 64-bit inode numbers and directory offsets (ext4, btrfs, XFS);
# csrc/transport.h asserts it (musl's off_t is always 64-bit). Not for the LD_PRELOAD
# test libraries (spec/support): they define open and open64 themselves.
LFS_FLAGS = -D_FILE_OFFSET_BITS=64
HF_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE $(LFS_FLAGS) -Wall -Wextra -Werror \
            -fPIC -Icsrc $(SERIAL_CFLAGS)
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g

B = build

# Core sources: transport, AT engine, FOTA state machine (no Lua). Binding: csrc/lua_*.c.
CORE_SRC  := $(sort $(filter-out csrc/lua_%.c,$(wildcard csrc/*.c)))
# csrc/lua_mqtt.c is not part of core.so: it is the optional module hwfota.mqtt.
BIND_SRC  := $(sort $(filter-out csrc/lua_mqtt.c,$(wildcard csrc/lua_*.c)))
SIM_SRC   := $(sort $(wildcard csrc/sim/*.c))
TEST_SRC  := $(sort $(wildcard csrc/tests/test_*.c))
SUPPORT_SRC := $(sort $(wildcard spec/support/*.c))

CORE_OBJ  := $(CORE_SRC:csrc/%.c=$(B)/obj/%.o)
BIND_OBJ  := $(BIND_SRC:csrc/%.c=$(B)/obj/%.o)
CORE_SAN  := $(CORE_SRC:csrc/%.c=$(B)/san/%.o)
TESTS     := $(TEST_SRC:csrc/tests/%.c=$(B)/tests/%)
TESTS_SAN := $(TEST_SRC:csrc/tests/%.c=$(B)/tests-san/%)
SUPPORT   := $(SUPPORT_SRC:spec/support/%.c=$(B)/support/%)

.PHONY: all test check check-tools demo install clean deps lib sim tests mqtt
all: lib $(if $(SIM_SRC),sim) mqtt

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
# Exports luaopen_hwfota_core only (csrc/core.map): no clash with other modules'
# symbols, direct internal calls, a smaller .so (spec/checks/size).
$(B)/hwfota/core.so: $(CORE_OBJ) $(BIND_OBJ) csrc/core.map
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -Wl,--version-script=csrc/core.map -o $@ $(filter %.o,$^) \
	    $(SERIAL_LIBS)

# hwfota.mqtt (issue 16): the libmosquitto binding, its own module, built only when
# libmosquitto's header is found (pkg-config libmosquitto, else $(MQTT_INCDIR)).
# Everything else builds without it. Override MQTT_CFLAGS/MQTT_LIBS for an SDK.
MQTT_INCDIR ?= $(or $(shell pkg-config --variable=includedir libmosquitto 2>/dev/null),/usr/include)
MQTT_FOUND  ?= $(shell pkg-config --exists libmosquitto 2>/dev/null && echo yes || \
                 { [ -f $(MQTT_INCDIR)/mosquitto.h ] && echo yes; })
MQTT_CFLAGS ?= $(shell pkg-config --cflags libmosquitto 2>/dev/null)
MQTT_LIBS   ?= $(shell pkg-config --libs libmosquitto 2>/dev/null || echo -lmosquitto)

ifeq ($(MQTT_FOUND),yes)
mqtt: $(B)/hwfota/mqtt.so
else
mqtt:
	@echo "hwfota.mqtt: not built: libmosquitto-dev is missing"
endif

$(B)/mqtt/%.o: csrc/%.c $(wildcard csrc/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HF_CFLAGS) $(MQTT_CFLAGS) -I$(LUA_INCDIR) -c -o $@ $<

$(B)/hwfota/mqtt.so: $(B)/mqtt/lua_mqtt.o $(B)/obj/lua_util.o csrc/mqtt.map
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -Wl,--version-script=csrc/mqtt.map -o $@ $(filter %.o,$^) \
	    $(MQTT_LIBS)

# The simulator shares no code with the library (independence is the point).
$(B)/hwfota-sim: $(SIM_SRC) $(wildcard csrc/sim/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HF_CFLAGS) -Icsrc/sim $(LDFLAGS) -o $@ $(SIM_SRC) -lutil -lm

$(B)/tests/%: csrc/tests/%.c $(CORE_OBJ) $(wildcard csrc/tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HF_CFLAGS) $(LDFLAGS) -o $@ $< $(CORE_OBJ) $(SERIAL_LIBS) -lutil -lm

$(B)/tests-san/%: csrc/tests/%.c $(CORE_SAN) $(wildcard csrc/tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(HF_CFLAGS) $(SAN_FLAGS) -o $@ $< $(CORE_SAN) $(SERIAL_LIBS) -lutil -lm

# Test support programs and preload libraries (spec/support/*.c). A file whose
# name ends in _preload.c becomes a shared object.
$(B)/support/%: spec/support/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(filter-out $(LFS_FLAGS),$(HF_CFLAGS)) $(LDFLAGS) $(if $(findstring _preload,$*),-shared) \
	  -o $@ $< -lutil -ldl -lm

# Debian packages the build and the suites need (installed by `make deps` when root;
# `make check` only checks for them: spec/check-tools.sh names what is missing).
DEB_PACKAGES = build-essential pkg-config lua5.4 liblua5.4-dev libserialport-dev \
               libserialport0 lua-busted valgrind clang libclang-rt-14-dev \
               musl-tools lua-ldoc lua-markdown luarocks shellcheck \
               lua-dkjson lua-socket strace \
               mosquitto mosquitto-clients libmosquitto-dev openssl

deps:
	@sh spec/install-deps.sh $(DEB_PACKAGES)

test: deps
	$(MAKE) check

check-tools:
	@sh spec/check-tools.sh '$(CC)' '$(LUA)' '$(LUA_INCDIR)'

check: check-tools
	$(MAKE) all tests
	@sh spec/run-tests.sh

demo: deps
	$(MAKE) all
	@sh examples/demo.sh

install: all
	install -d $(DESTDIR)$(LUA_LIBDIR)/hwfota $(DESTDIR)$(LUA_SHAREDIR)/hwfota/trigger $(DESTDIR)$(BINDIR)
	install -m 0755 $(B)/hwfota/core.so $(DESTDIR)$(LUA_LIBDIR)/hwfota/core.so
	install -m 0644 lua/hwfota/*.lua $(DESTDIR)$(LUA_SHAREDIR)/hwfota/
	install -m 0644 lua/hwfota/trigger/*.lua $(DESTDIR)$(LUA_SHAREDIR)/hwfota/trigger/
	install -d $(DESTDIR)$(LUA_SHAREDIR)/hwfota/fleet
	install -m 0644 lua/hwfota/fleet/*.lua $(DESTDIR)$(LUA_SHAREDIR)/hwfota/fleet/
	install -m 0755 $(B)/hwfota-sim $(DESTDIR)$(BINDIR)/hwfota-sim
	install -m 0755 lua/bin/hwfota $(DESTDIR)$(BINDIR)/hwfota
	if [ -f $(B)/hwfota/mqtt.so ]; then \
	  install -m 0755 $(B)/hwfota/mqtt.so $(DESTDIR)$(LUA_LIBDIR)/hwfota/mqtt.so; fi

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
# hwfota.mqtt too when libmosquitto is there: OpenWrt builds it against musl.
MUSL_SRC      := $(CORE_SRC) $(BIND_SRC) $(if $(filter yes,$(MQTT_FOUND)),csrc/lua_mqtt.c)
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
	@for h in $(LUA_INCDIR)/*.h $(SERIAL_INCDIR)/libserialport.h \
	    $(if $(filter yes,$(MQTT_FOUND)),$(MQTT_INCDIR)/mosquitto.h); do \
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
# Fuzzing, sanitizers and memory (issue 6). spec/checks/{fuzz-replay,valgrind,san-busted}
# call the *-check targets below, so `make test` counts each through its "#tally" line.
#
#   make fuzz [SECONDS=60] [FUZZ_OPTS=...]  build the libFuzzer harnesses spec/fuzz/fuzz_*.c
#                     (clang -fsanitize=fuzzer,address,undefined) and run each for SECONDS;
#                     new inputs go to build/fuzz/corpus/<harness>, findings to
#                     build/fuzz/<harness>-crash-* (fix, then add them to spec/fuzz/corpus/)
#   make fuzz-replay  every file of spec/fuzz/corpus/<harness>/ through its harness, built
#                     with gcc ASan+UBSan and spec/fuzz/replay_main.c (no clang needed)
#   make valgrind-check  valgrind memcheck on each C test binary (build/tests/*)
#   make san-busted   the whole busted suite against an ASan+UBSan build of the Lua module
#                     (build/san-lua/hwfota/core.so) with the ASan runtime preloaded
# ======================================================================================
.PHONY: fuzz fuzz-build fuzz-replay valgrind-check san-lua san-busted

FUZZ_CC     ?= clang
FUZZ_FLAGS   = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
               -fno-omit-frame-pointer
FUZZ_SRC    := $(sort $(wildcard spec/fuzz/fuzz_*.c))
FUZZ_NAMES  := $(FUZZ_SRC:spec/fuzz/%.c=%)
FUZZ_BIN    := $(FUZZ_NAMES:%=$(B)/fuzz/%)
REPLAY_BIN  := $(FUZZ_NAMES:%=$(B)/fuzz-replay/%)
FUZZ_SECONDS = $(or $(SECONDS),60)
FUZZ_OPTS   ?= -max_len=2048

fuzz-build: $(FUZZ_BIN)

$(B)/fuzz/%: spec/fuzz/%.c $(CORE_SRC) $(wildcard csrc/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(HF_CFLAGS) -o $@ $< $(CORE_SRC) $(SERIAL_LIBS) -lutil -lm

fuzz: $(FUZZ_BIN)
	@st=0; for h in $(FUZZ_NAMES); do \
	  mkdir -p $(B)/fuzz/corpus/$$h; \
	  echo "== $$h: $(FUZZ_SECONDS) s"; \
	  $(B)/fuzz/$$h -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(B)/fuzz/$$h- $(FUZZ_OPTS) \
	    $(B)/fuzz/corpus/$$h spec/fuzz/corpus/$$h >$(B)/fuzz/$$h.log 2>&1 || st=1; \
	  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::peak_rss|invariant failed|^SUMMARY' \
	    $(B)/fuzz/$$h.log | sed 's/^/   /'; \
	  ls $(B)/fuzz/$$h-crash-* $(B)/fuzz/$$h-leak-* $(B)/fuzz/$$h-timeout-* 2>/dev/null | sed 's/^/   FINDING /'; \
	done; \
	[ $$st -eq 0 ] && echo "fuzz: no findings" || { echo "fuzz: FINDINGS (see above and $(B)/fuzz/*.log)"; exit 1; }

$(B)/fuzz-replay/%: spec/fuzz/%.c spec/fuzz/replay_main.c $(CORE_SAN)
	@mkdir -p $(dir $@)
	$(CC) $(HF_CFLAGS) $(SAN_FLAGS) -DHARNESS_NAME='"$*"' -o $@ $< spec/fuzz/replay_main.c \
	  $(CORE_SAN) $(SERIAL_LIBS) -lutil -lm

# One tally for all harnesses, one check per harness (not per file: a corpus file is an
# input, not a test): passed = harnesses whose whole corpus replayed clean; a crash, a
# sanitizer report or an invariant failure fails that harness (its last input is named).
fuzz-replay: $(REPLAY_BIN)
	@p=0; f=0; for h in $(FUZZ_NAMES); do \
	  log=$(B)/fuzz-replay/$$h.log; \
	  if $(B)/fuzz-replay/$$h spec/fuzz/corpus/$$h >$$log 2>&1; then \
	    n=$$(sed -n 's/^#tally .* passed=\([0-9]*\).*/\1/p' $$log); \
	    if [ "$${n:-0}" -gt 0 ]; then p=$$((p + 1)); \
	      echo "#note fuzz-replay $$h: $$n corpus files clean"; \
	    else echo "!! fuzz-replay $$h: no corpus file replayed (spec/fuzz/corpus/$$h empty?)"; \
	      f=$$((f + 1)); fi; \
	  else \
	    tail -n 30 $$log; echo "!! fuzz-replay $$h failed: $$(grep '^replay: ' $$log | tail -n 1)"; \
	    f=$$((f + 1)); \
	  fi; \
	done; \
	echo "#tally fuzz-replay passed=$$p failed=$$f"; [ $$f -eq 0 ]

# valgrind memcheck on each plain C test binary: any error or definite leak fails it.
# Children (test_sim's simulator and peers) run unwatched: --trace-children=no.
VALGRIND      ?= valgrind
VALGRIND_OPTS ?= -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
                 --trace-children=no
valgrind-check: $(TESTS)
	@command -v $(VALGRIND) >/dev/null 2>&1 || { echo "valgrind-check: $(VALGRIND) not found"; \
	  echo "#tally valgrind passed=0 failed=1"; exit 1; }
	@mkdir -p $(B)/valgrind; p=0; f=0; for t in $(TESTS); do \
	  log=$(B)/valgrind/$$(basename $$t).log; \
	  if $(VALGRIND) $(VALGRIND_OPTS) $$t >$$log 2>&1; then p=$$((p + 1)); \
	  else tail -n 40 $$log; echo "!! valgrind: $$t (exit $$?, log $$log)"; f=$$((f + 1)); fi; \
	done; \
	echo "#note valgrind: $$p of $$((p + f)) C test binaries clean (no errors, no definite leaks)"; \
	echo "#tally valgrind passed=$$p failed=$$f"; [ $$f -eq 0 ]

# The Lua module built with ASan+UBSan (gcc), and the whole busted suite run against it
# with the ASan runtime preloaded into lua5.4. Sanitizer reports from lua5.4 and from any
# child process go to $(B)/san-lua/report.*: one such file fails the check. Leak detection
# is off: the interpreter and busted keep their memory until exit (not our leaks; the C
# core's leaks are valgrind-check's and the ASan C tests' job).
# SAN_SPECS: what busted runs in san-busted (default the whole suite, as in run-tests.sh).
# SAN_OUT: where its busted log and the sanitizer reports go (spec/run-tests.sh runs one
# spec file per san-busted at a time, several at once, each with its own SAN_OUT).
SAN_SPECS    ?= spec
SAN_OUT      ?= $(B)/san-lua
SAN_LUA_BIND := $(BIND_SRC:csrc/%.c=$(B)/san-lua/obj/%.o)
ASAN_RT       = $(shell $(CC) -print-file-name=libasan.so)

$(B)/san-lua/obj/%.o: csrc/%.c $(wildcard csrc/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(HF_CFLAGS) $(SAN_FLAGS) $(if $(filter %lua_mqtt.o,$@),$(MQTT_CFLAGS)) -I$(LUA_INCDIR) -c -o $@ $<

$(B)/san-lua/hwfota/core.so: $(CORE_SAN) $(SAN_LUA_BIND)
	@mkdir -p $(dir $@)
	$(CC) -shared $(SAN_FLAGS) -o $@ $^ $(SERIAL_LIBS)

# hwfota.mqtt too, when it is built: mqtt_spec runs against the sanitized binding.
$(B)/san-lua/hwfota/mqtt.so: $(B)/san-lua/obj/lua_mqtt.o $(B)/san-lua/obj/lua_util.o csrc/mqtt.map
	@mkdir -p $(dir $@)
	$(CC) -shared $(SAN_FLAGS) -Wl,--version-script=csrc/mqtt.map -o $@ $(filter %.o,$^) $(MQTT_LIBS)

san-lua: $(B)/san-lua/hwfota/core.so $(if $(filter yes,$(MQTT_FOUND)),$(B)/san-lua/hwfota/mqtt.so)

san-busted: san-lua $(SUPPORT) all
	@top=$(CURDIR); d=$(B)/san-lua; o=$(SAN_OUT); case $$o in /*) ;; *) o=$$top/$$o;; esac; mkdir -p $$o; rm -f $$o/report.* $$o/busted.log; \
	rt=$(ASAN_RT); [ -f "$$rt" ] || { echo "san-busted: no ASan runtime ($$rt)"; \
	  echo "#tally san-busted passed=0 failed=1"; exit 1; }; \
	export LD_PRELOAD="$$rt" \
	  ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$$o/report" \
	  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$$o/report" \
	  LUA_PATH="$$top/lua/?.lua;$$top/lua/?/init.lua;$$top/spec/?.lua;;" \
	  LUA_CPATH="$$top/$$d/?.so;;" HWFOTA_TOP="$$top"; \
	where=$$($(LUA) -e 'print(package.searchpath("hwfota.core", package.cpath))'); \
	case "$$where" in "$$top/$$d/hwfota/core.so") ;; *) \
	  echo "!! san-busted: lua5.4 finds hwfota.core at $$where, not the sanitized build"; \
	  echo "#tally san-busted passed=0 failed=1"; exit 1;; esac; \
	busted --lua=$(LUA) -o TAP $(SAN_SPECS) >$$o/busted.log 2>&1; rc=$$?; \
	ok=$$(grep -c '^ok ' $$o/busted.log); nok=$$(grep -c '^not ok ' $$o/busted.log); \
	reports=$$(ls $$o/report.* 2>/dev/null | wc -l); \
	if [ $$reports -ne 0 ]; then head -n 60 $$o/report.*; \
	  echo "!! san-busted: $$reports sanitizer report(s) in $$o/report.*"; nok=$$((nok + reports)); fi; \
	if [ $$rc -ne 0 ] && [ $$nok -eq 0 ]; then tail -n 40 $$o/busted.log; \
	  echo "!! san-busted: busted exited $$rc"; nok=1; fi; \
	[ $$nok -eq 0 ] || grep -A8 '^not ok ' $$o/busted.log | head -n 80; \
	echo "#note san-busted: busted $(SAN_SPECS) against $$d/hwfota/core.so (ASan+UBSan), $$reports sanitizer reports"; \
	echo "#tally san-busted passed=$$ok failed=$$nok"; [ $$nok -eq 0 ]

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

faults-tools: $(B)/faults/tty-release $(B)/support/journalfail_preload

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

# ======================================================================================
# Router CPUs (issue 15): cross builds for big-endian MIPS (ath79 routers) and ARMv7
# hard-float, C unit tests under qemu-user. spec/checks/cross calls `make check-cross`,
# so `make test`/`make check` count it (kind "cross"); without the tools and without
# root it is skipped with a note.
#
#   make check-cross  for each of CROSS_TARGETS: compile every csrc/*.c warning-free,
#                     link a stripped router-build hwfota/core.so (size printed), link
#                     the C unit tests statically and run them under qemu-user, and
#                     replay the fuzz corpus (spec/fuzz/corpus) through each harness
#                     (work in spec/cross-check.sh, output in build/cross/<triplet>)
# Not run under qemu (named in the output): test_transport (libserialport is not
# available for the targets, and its fake device is an LD_PRELOAD library, which a
# static binary cannot load) and test_sim (it tests the host's simulator, build/hwfota-sim).
# ======================================================================================
.PHONY: check-cross

CROSS_TARGETS  ?= mips-linux-gnu arm-linux-gnueabihf
CROSS_PACKAGES  = gcc-mips-linux-gnu libc6-dev-mips-cross gcc-arm-linux-gnueabihf \
                  libc6-dev-armhf-cross qemu-user
DEB_PACKAGES   += $(CROSS_PACKAGES)
CROSS_SKIP      = test_transport:needs libserialport and an LD_PRELOAD fake device;test_io_pump:pumps real ports through transport.c, which needs libserialport;test_sim:tests the host simulator build/hwfota-sim, no library code
CROSS_TESTS    := $(filter-out csrc/tests/test_transport.c csrc/tests/test_io_pump.c csrc/tests/test_sim.c,$(TEST_SRC))
# The project's flags without the host's pkg-config output, plus the private include
# dir of make musl-headers (only the Lua and libserialport headers: arch-independent).
CROSS_CFLAGS    = $(filter-out $(SERIAL_CFLAGS),$(HF_CFLAGS)) -I$(MUSL_INC)
# core.so links as on the host: only luaopen_hwfota_core exported
CROSS_SO_FLAGS  = -Wl,--version-script=csrc/core.map

check-cross: musl-headers
	@CROSS_TARGETS='$(CROSS_TARGETS)' CROSS_SRC='$(CORE_SRC) $(BIND_SRC)' \
	  CROSS_TESTS='$(CROSS_TESTS)' CROSS_SKIP='$(CROSS_SKIP)' CROSS_FUZZ='$(FUZZ_SRC)' \
	  CROSS_CFLAGS='$(CROSS_CFLAGS)' CROSS_SO_FLAGS='$(CROSS_SO_FLAGS)' \
	  CROSS_PACKAGES='$(CROSS_PACKAGES)' B='$(B)' \
	  sh spec/cross-check.sh

# ======================================================================================
# make bench — performance rows (issue 15), NOT part of `make test`: prints a table and
# writes build/bench.json. Row B1 (parsing): spec/bench/bench_parse.c drives the AT engine
# with commands in flight; spec/bench/lua_classifier.lua is the pure-Lua peer on the same
# transcript. Instructions/byte need valgrind (callgrind); MB/s is wall clock. Row B4
# (footprint): spec/bench/footprint.sh (router-build size per object, RSS of the seed flow).
# Row B5 (scale): spec/bench/scale.lua, N = 1, 10, 100, 1000 modules through hwfota.run in
# one process (wall, CPU, CPU and RSS per module, fds, failures). Row B6 (overhead):
# spec/bench/overhead.lua, the seed flow's wall time vs the simulated module's own
# timeline, for hwfota and two peers (spec/bench/peer_pyserial.py, Debian python3-serial;
# spec/bench/peer_chat.sh, pppd's chat, Debian ppp): installed here when root, else the
# missing peer is skipped with a note. Rows B2 (idle), B3 (reaction) and syscalls per
# wake: spec/bench/wake.lua (alone: make bench-wake; BENCH_IDLE_SECONDS=5 shortens B2's
# 60 s windows); their pyserial rows say n/a without python3-serial, syscalls need strace.
# ======================================================================================
.PHONY: bench bench-wake bench-deps fleet-sim
BENCH_PACKAGES := python3-serial ppp strace
BENCH_OBJ := $(B)/obj/at_engine.o $(B)/obj/at_final.o $(B)/obj/at_tokenizer.o $(B)/obj/hf_error.o

$(B)/bench/bench_parse: spec/bench/bench_parse.c $(BENCH_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HF_CFLAGS) $(LDFLAGS) -o $@ $< $(BENCH_OBJ)

$(B)/bench/react_floor: spec/bench/react_floor.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(HF_CFLAGS) $(LDFLAGS) -o $@ $<

# make fleet-sim: the rollout controller on 10,000 simulated routers, several seeds
# (pure Lua, virtual time; not part of make test: spec/fleet_sim_spec.lua runs 1,000)
fleet-sim: lib
	LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" LUA_CPATH="$(CURDIR)/$(B)/?.so;;" \
	  lua5.4 spec/fleet/sim.lua $(FLEET_SIM_ARGS)

# the peers' packages: installed as root, else the missing peer is skipped with a note
bench-deps:
	@if [ "$$(id -u)" = 0 ]; then sh spec/install-deps.sh $(BENCH_PACKAGES) || \
	  echo "bench: could not install $(BENCH_PACKAGES): those peers are skipped"; fi

BENCH_ENV = LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;" \
	LUA_CPATH="$(CURDIR)/$(B)/?.so;;" HWFOTA_TOP="$(CURDIR)"

bench-wake: bench-deps $(B)/bench/react_floor $(B)/support/react_driver all
	$(BENCH_ENV) $(LUA) spec/bench/wake.lua $(B)

bench: bench-deps $(B)/bench/bench_parse $(B)/bench/react_floor $(B)/support/react_driver all
	LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;" \
	LUA_CPATH="$(CURDIR)/$(B)/?.so;;" HWFOTA_TOP="$(CURDIR)" \
	$(LUA) spec/bench/run.lua $(B)
