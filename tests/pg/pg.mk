# tests/pg/pg.mk: the token-validating PostgreSQL used by the tests (see tests/pg/pgstack).
#
# Included by the top Makefile, which sets BUILD (and CC). Also usable alone, from the repo root:
#   make -f tests/pg/pg.mk BUILD=build build/tests/pam_pgtoken.so
#   make -f tests/pg/pg.mk BUILD=build pg-test        real PostgreSQL + psql (root: writes /etc/pam.d)
#   make -f tests/pg/pg.mk BUILD=build pg-test-asan   the module alone under ASan+UBSan+LSan
#
# The module is loaded into PostgreSQL's backends, so it gets its own flags rather than the
# project's CFLAGS: a sanitizer build of the project must not turn it into a library PostgreSQL
# cannot load. The sanitizer builds are separate files, driven by pam_driver instead of
# PostgreSQL (which hangs at start with libasan preloaded).
# Needs libpam0g-dev, libssl-dev, libcjson-dev; the tests also need postgresql-15 and Go.

PG_TEST_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
# Including this file must not change the includer's default goal (restored at the end).
PG_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)
BUILD ?= build
CC ?= cc

PAM_PGTOKEN_SO := $(BUILD)/tests/pam_pgtoken.so
PAM_PGTOKEN_ASAN_SO := $(BUILD)/tests/pam_pgtoken_asan.so
PAM_DRIVER := $(BUILD)/tests/pam_driver
PAM_DRIVER_ASAN := $(BUILD)/tests/pam_driver_asan

PAM_PGTOKEN_CFLAGS ?= -std=c17 -O2 -g -Wall -Wextra -Werror -fPIC -fvisibility=hidden
PAM_PGTOKEN_SANITIZE ?= -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
PAM_PGTOKEN_LDFLAGS ?= -shared -Wl,-z,defs -Wl,-z,now -Wl,-z,relro
PAM_PGTOKEN_LIBS := -lpam -lcrypto -lcjson

$(PAM_PGTOKEN_SO): $(PG_TEST_DIR)/pam_pgtoken.c $(PG_TEST_DIR)/pg.mk
	@mkdir -p $(@D)
	$(CC) $(PAM_PGTOKEN_CFLAGS) $(PAM_PGTOKEN_LDFLAGS) -o $@ $< $(PAM_PGTOKEN_LIBS)

$(PAM_PGTOKEN_ASAN_SO): $(PG_TEST_DIR)/pam_pgtoken.c $(PG_TEST_DIR)/pg.mk
	@mkdir -p $(@D)
	$(CC) $(PAM_PGTOKEN_CFLAGS) $(PAM_PGTOKEN_SANITIZE) $(PAM_PGTOKEN_LDFLAGS) -o $@ $< \
		$(PAM_PGTOKEN_LIBS)

$(PAM_DRIVER): $(PG_TEST_DIR)/pam_driver.c $(PG_TEST_DIR)/pg.mk
	@mkdir -p $(@D)
	$(CC) $(filter-out -fPIC -fvisibility=hidden,$(PAM_PGTOKEN_CFLAGS)) -o $@ $< -lpam

# The driver carries the sanitizer runtime, so the sanitized module loads without LD_PRELOAD.
$(PAM_DRIVER_ASAN): $(PG_TEST_DIR)/pam_driver.c $(PG_TEST_DIR)/pg.mk
	@mkdir -p $(@D)
	$(CC) $(filter-out -fPIC -fvisibility=hidden,$(PAM_PGTOKEN_CFLAGS)) $(PAM_PGTOKEN_SANITIZE) \
		-o $@ $< -lpam

# The scripts build the fakes themselves (go build is incremental).
.PHONY: pg-test pg-test-asan
pg-test: $(PAM_PGTOKEN_SO)
	BUILD=$(abspath $(BUILD)) PAM_PGTOKEN=$(abspath $(PAM_PGTOKEN_SO)) $(PG_TEST_DIR)/pg_test.sh

pg-test-asan: $(PAM_PGTOKEN_ASAN_SO) $(PAM_DRIVER_ASAN)
	BUILD=$(abspath $(BUILD)) PAM_PGTOKEN=$(abspath $(PAM_PGTOKEN_ASAN_SO)) \
		PAM_DRIVER=$(abspath $(PAM_DRIVER_ASAN)) $(PG_TEST_DIR)/pam_test.sh

.DEFAULT_GOAL := $(PG_MK_DEFAULT_GOAL)
