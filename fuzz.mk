# fuzz.mk: libFuzzer targets for the parsers we own (tests/fuzz/fuzz_<name>.c, seeds in
# tests/fuzz/corpus/<name>/). Included by the top Makefile; also usable alone from the repo
# root (make -f fuzz.mk fuzz-smoke).
#   make fuzz              build every target, run each for FUZZ_SECONDS (60) with its corpus
#   make fuzz-smoke        each for FUZZ_SMOKE_SECONDS (3), from the seeds alone (test command)
#   make fuzz-build        build only
#   make fuzz-NAME         one target for FUZZ_SECONDS (e.g. make fuzz-spec FUZZ_SECONDS=600)
# Targets run FUZZ_JOBS (2) at a time and print one TAP line each; a crash, leak, timeout or
# out-of-memory makes the run fail. Everything goes to build/fuzz/ (objects, binaries, new
# corpus units, crash artifacts, logs), never to the repo. The project's lib/ sources are
# built again with clang, ASan, UBSan and libFuzzer's coverage; nothing here touches build/ or
# build/san/. Uses the top Makefile's LIB_SRC, CPPFLAGS and LDLIBS when it has set them.

FUZZ_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

# clang (Debian's clang-14 and libclang-rt-14-dev carry libFuzzer).
ifeq ($(origin FUZZ_CC),undefined)
FUZZ_CC := $(firstword $(shell command -v clang clang-14 2>/dev/null) clang)
endif
FUZZ_OUT := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_JOBS ?= 2
FUZZ_PKGS := libcjson yaml-0.1 openssl libpq

FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ_OUT)/bin/fuzz_%)
FUZZ_LIB_SRC := $(or $(LIB_SRC),$(sort $(wildcard lib/*/*.c)))
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_OUT)/obj/%.o)

# Alone, there is no top Makefile to say how lib/ is compiled: the same defaults.
FUZZ_CPPFLAGS = $(if $(filter -Ilib,$(CPPFLAGS)),$(CPPFLAGS),-Ilib -D_GNU_SOURCE \
                '-DPGTR_VERSION="fuzz"' '-DPGTR_GIT_REV="fuzz"' \
                $(shell pkg-config --cflags $(FUZZ_PKGS) 2>/dev/null))
FUZZ_LDLIBS = $(or $(LDLIBS),$(shell pkg-config --libs $(FUZZ_PKGS) 2>/dev/null) -lm)
# The project's warnings, as clang spells them. lib/ is warned about but not failed (the gcc
# build holds it to -Werror; a clang-only warning must not stop the fuzzers); the targets are.
FUZZ_WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wno-format-nonliteral -Wstrict-prototypes \
             -Wmissing-prototypes -Wvla -Wpointer-arith -Wundef -Wnull-dereference \
             -Wdouble-promotion -Wimplicit-fallthrough
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -std=c17 -O1 -g -fno-omit-frame-pointer -pthread $(FUZZ_WARN) -MMD -MP

.PHONY: fuzz fuzz-smoke fuzz-build $(FUZZ_NAMES:%=fuzz-%)
.SECONDARY: $(FUZZ_NAMES:%=$(FUZZ_OUT)/obj/tests/fuzz/fuzz_%.o)

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

fuzz-smoke: $(FUZZ_BINS)
	@FUZZ_JOBS=$(FUZZ_JOBS) FUZZ_FRESH=1 tests/fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_BINS)

$(FUZZ_NAMES:%=fuzz-%): fuzz-%: $(FUZZ_OUT)/bin/fuzz_%
	@FUZZ_JOBS=1 tests/fuzz/run.sh $(FUZZ_SECONDS) $<

$(FUZZ_OUT)/obj/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	@echo '  FZCC  $<'
	@$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c -o $@ $<

$(FUZZ_OUT)/libpgtr.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_OUT)/obj/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(@D)
	@echo '  FZCC  $<'
	@$(FUZZ_CC) $(FUZZ_CPPFLAGS) -Itests/fuzz $(FUZZ_CFLAGS) -Werror -fsanitize=fuzzer-no-link \
	    $(FUZZ_SAN) -c -o $@ $<

$(FUZZ_OUT)/bin/fuzz_%: $(FUZZ_OUT)/obj/tests/fuzz/fuzz_%.o $(FUZZ_OUT)/libpgtr.a
	@mkdir -p $(@D)
	@echo '  FZLD  $@'
	@$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -pthread -o $@ $< $(FUZZ_OUT)/libpgtr.a \
	    $(FUZZ_LDLIBS)

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_NAMES:%=$(FUZZ_OUT)/obj/tests/fuzz/fuzz_%.d)

# Including this file must not change the includer's default goal.
.DEFAULT_GOAL := $(FUZZ_MK_DEFAULT_GOAL)
