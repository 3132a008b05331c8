# tests/pg/pg.mk: the token-validating PostgreSQL used by the tests (see tests/pg/pgstack).
#
# Included by the top Makefile, which sets BUILD (and CC). Also usable alone:
#   make -f tests/pg/pg.mk BUILD=build build/tests/pam_pgtoken.so
#   make -f tests/pg/pg.mk BUILD=build pg-test        (root: it writes /etc/pam.d)
#   make -f tests/pg/pg.mk BUILD=build pg-test-asan   (module under ASan+UBSan, server with libasan)
#
# The module is loaded into PostgreSQL's backends, so it gets its own flags rather than the
# project's CFLAGS: a sanitizer build of the project must not turn it into a library PostgreSQL
# can only load with libasan preloaded. pg-test-asan does that on purpose, with its own .so.
# Needs libpam0g-dev, libssl-dev, libcjson-dev (and postgresql-15, Go for the fakes to run tests).

PG_TEST_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
BUILD ?= build
CC ?= cc

PAM_PGTOKEN_SO := $(BUILD)/tests/pam_pgtoken.so
PAM_PGTOKEN_ASAN_SO := $(BUILD)/tests/pam_pgtoken_asan.so
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

# pg_test.sh builds the fakes itself (go build is incremental) and uses the module built here.
.PHONY: pg-test pg-test-asan
pg-test: $(PAM_PGTOKEN_SO)
	PAM_PGTOKEN=$(abspath $(PAM_PGTOKEN_SO)) $(PG_TEST_DIR)/pg_test.sh

pg-test-asan: $(PAM_PGTOKEN_ASAN_SO)
	PG_TEST_ASAN=1 CC=$(CC) PAM_PGTOKEN=$(abspath $(PAM_PGTOKEN_ASAN_SO)) $(PG_TEST_DIR)/pg_test.sh
