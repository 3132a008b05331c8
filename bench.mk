# bench.mk: `make bench` (not part of `make test`): the real, optimised binary against the local
# stack with N managed and M unmanaged Secrets, beside the floor (the same work by a bare client)
# and the baseline (a bash loop of curl, psql and kubectl). Included by the top Makefile.
# Prints a table; writes bench/results/latest.json and the table into bench/README.md.
#
#   make bench                                   N = 100, 1000, 10000; M = 100000
#   make bench BENCH_N="100 1000" BENCH_M=20000  smaller
# Other settings (BENCH_*): see bench/README.md. Needs root (the PostgreSQL stack writes
# /etc/pam.d), PostgreSQL 15, Go, curl, jq, psql; `make deps` installs them.

BENCH_GOENV := GOPATH=$(CURDIR)/.cache/go GOCACHE=$(CURDIR)/.cache/go/build GOFLAGS=-modcacherw \
               GOTOOLCHAIN=local PATH="$(PATH):/usr/local/go/bin"
BENCH_BIN := build/bench/pgtr-bench
BENCH_PGLOGIN := build/bench/pglogin

.PHONY: bench bench-build
# BENCH_* settings pass through the environment (or as make variables: exported below).
export BENCH_N BENCH_M BENCH_NAMESPACES BENCH_ROLES BENCH_SA BENCH_WORKERS BENCH_IDLE_S \
       BENCH_PERIOD_S BENCH_ROUNDS BENCH_SAMPLE BENCH_BASELINE_N BENCH_FLAT BENCH_PHASES \
       BENCH_TIMEOUT_SCALE BENCH_WRAP BENCH_CTRL_ENV BENCH_REPEAT BENCH_METRICS BENCH_OUT \
       BENCH_README PGTR_BIN

bench: bench-build
	@PGTR_BIN=$${PGTR_BIN:-$(CURDIR)/build/bin/pgtoken-rotator} FAKES=$(CURDIR)/build/tests/fakes \
	    BENCH_PGLOGIN=$(CURDIR)/$(BENCH_PGLOGIN) $(BENCH_BIN)

# The controller is always the optimised build (not build/san): that is what users run.
bench-build:
	@$(MAKE) --no-print-directory SAN= all fakes build/tests/pam_pgtoken.so
	@mkdir -p build/bench
	@echo '  GO    $(BENCH_BIN)'
	@cd bench && $(BENCH_GOENV) go build -o ../$(BENCH_BIN) .
	@echo '  CC    $(BENCH_PGLOGIN)'
	@$(CC) -std=c17 -O2 -Wall -Wextra -Werror -o $(BENCH_PGLOGIN) bench/pglogin/pglogin.c \
	    $(shell pkg-config --cflags --libs libpq)
