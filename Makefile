# pgtoken-rotator: a plain Makefile.
#   make            build bin/pgtoken-rotator
#   make test       install what the tests need, build (also with ASan+UBSan), run every test
#   make demo       start the local stack and watch a Secret being rotated and used
#   make lint       clang-tidy, cppcheck, actionlint, promtool check rules (the alert rules)
#   make deps       install build and test packages with apt (idempotent)
#   make install    install the binary under $(PREFIX)
#   make clean
# SAN=1 builds into build/san with AddressSanitizer and UndefinedBehaviorSanitizer.

CC ?= cc
PKG_CONFIG ?= pkg-config
PREFIX ?= /usr/local
PKGS := libcjson yaml-0.1 openssl libpq
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

ifeq ($(SAN),1)
BUILD ?= build/san
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SANLD := -fsanitize=address,undefined
else
BUILD ?= build
OPT := -O2 -g -D_FORTIFY_SOURCE=2
SANLD :=
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
        -Wmissing-prototypes -Wvla -Wpointer-arith -Wundef -Wnull-dereference -Wdouble-promotion \
        -Wimplicit-fallthrough -Wno-format-truncation
CPPFLAGS += -Ilib -D_GNU_SOURCE -DPGTR_VERSION='"$(VERSION)"' -DPGTR_GIT_REV='"$(GIT_REV)"' \
            $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
CFLAGS += -std=c17 $(OPT) $(WARN) -fPIE -fstack-protector-strong -fstack-clash-protection \
          -pthread -MMD -MP
LDFLAGS += -pie -Wl,-z,relro,-z,now -Wl,--as-needed -pthread $(SANLD)
LDLIBS += $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lm

LIB_SRC := $(sort $(wildcard lib/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CMD_SRC := $(wildcard cmd/pgtoken-rotator/*.c)
CMD_OBJ := $(CMD_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
UNIT_HARNESS := $(BUILD)/obj/tests/unit/t.o

BIN := $(BUILD)/bin/pgtoken-rotator

.SECONDARY:
.PHONY: all test unit unit-build demo lint deps install clean fakes faults reliability-table
all: $(BIN)
ifeq ($(BUILD),build)
	@mkdir -p bin && ln -sfn ../$(BIN) bin/pgtoken-rotator
endif

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@echo '  CC    $<'
	@$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The objects that embed the version and commit are rebuilt when either changes.
VERSION_STAMP := $(BUILD)/version.stamp
$(shell mkdir -p $(BUILD) && echo '$(VERSION) $(GIT_REV)' | cmp -s - $(VERSION_STAMP) || \
    echo '$(VERSION) $(GIT_REV)' > $(VERSION_STAMP))
VERSION_OBJ := $(BUILD)/obj/lib/net/http.o $(BUILD)/obj/lib/app/metrics.o \
               $(BUILD)/obj/cmd/pgtoken-rotator/main.o
$(VERSION_OBJ): $(VERSION_STAMP)

$(BUILD)/libpgtr.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BIN): $(CMD_OBJ) $(BUILD)/libpgtr.a
	@mkdir -p $(@D)
	@echo '  LD    $@'
	@$(CC) $(LDFLAGS) -o $@ $(CMD_OBJ) $(BUILD)/libpgtr.a $(LDLIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c $(UNIT_HARNESS) $(BUILD)/libpgtr.a
	@mkdir -p $(@D)
	@echo '  TEST  $@'
	@$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) $(LDFLAGS) $(UNIT_LDFLAGS) -o $@ $< $(UNIT_HARNESS) \
	    $(BUILD)/libpgtr.a $(LDLIBS)

# test_sbuf sees every free() of the library (--wrap) to check secrets are wiped first.
$(BUILD)/tests/unit/base/test_sbuf: UNIT_LDFLAGS := -Wl,--wrap=free
# test_json counts the library's xmalloc calls (--wrap) to check cJSON allocates with it.
$(BUILD)/tests/unit/base/test_json: UNIT_LDFLAGS := -Wl,--wrap=xmalloc

unit: $(UNIT_BIN)
	@tests/unit/run.sh $(UNIT_BIN)

# The unit tests built and not run (packaging/cross.sh runs them under qemu).
unit-build: $(UNIT_BIN)

-include tests/pg/pg.mk
include packaging.mk
include fuzz.mk
include bench.mk

# The Go fakes (tests/fakes): standard library only, caches in .cache/.
GOENV := GOPATH=$(CURDIR)/.cache/go GOCACHE=$(CURDIR)/.cache/go/build GOFLAGS=-modcacherw \
         GOTOOLCHAIN=local
fakes:
	@mkdir -p build/tests
	cd tests && $(GOENV) go build -o ../build/tests/fakes ./fakes/cmd/fakes

# Fault injection for the end-to-end tests (tests/faults): a preload that fails one
# pthread_create. Not for sanitizer builds (ASan intercepts pthread_create).
faults: build/tests/threadfail.so
build/tests/threadfail.so: tests/faults/threadfail.c
	@mkdir -p $(@D)
	@echo '  CC    $@'
	@$(CC) -std=c17 -O2 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

# The README's reliability table from the last ./run test (build/test-logs).
reliability-table:
	cd tests && $(GOENV) go run ./reliability -write

deps:
	@tests/deps.sh

test:
	@tests/run

demo:
	@tests/demo.sh

lint:
	@tests/lint.sh

install: all
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/pgtoken-rotator

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d)
