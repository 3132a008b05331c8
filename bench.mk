# bench.mk: `make bench` (not part of `make test`): the real, optimised binary against the local
# stack with N managed and M unmanaged Secrets, beside the floor (the same work by a bare client)
# and the baseline (a bash loop of curl, psql and kubectl), and N Secrets failing for one cause
# beside the same N healthy. Included by the top Makefile.
# Prints a table and writes bench/results/latest.json (BENCH_OUT); besides build/ it changes
# nothing else in the tree. `make bench-readme` puts the table of the last results into README.md and
# bench/README.md (between their bench:latest markers).
#
#   make bench                                   N = 100, 1000, 10000; M = 100000
#   make bench BENCH_N="100 1000" BENCH_M=20000  smaller
#   make bench BENCH_FAIL_S=120                  the failing-Secrets case 2 min a half, not 10
#   make bench-readme                            the READMEs' table from bench/results/latest.json
# Other settings (BENCH_*): see bench/README.md. Needs root (the PostgreSQL stack writes
# /etc/pam.d), PostgreSQL 15, Go, curl, jq, psql; `make deps` installs them.

BENCH_GOENV := GOPATH=$(CURDIR)/.cache/go GOCACHE=$(CURDIR)/.cache/go/build GOFLAGS=-modcacherw \
               GOTOOLCHAIN=local PATH="$(PATH):/usr/local/go/bin"
BENCH_BIN := build/bench/pgtr-bench
BENCH_PGLOGIN := build/bench/pglogin

.PHONY: bench bench-build bench-tool bench-readme
# BENCH_* settings pass through the environment (or as make variables: exported below).
export BENCH_N BENCH_M BENCH_NAMESPACES BENCH_ROLES BENCH_SA BENCH_WORKERS BENCH_IDLE_S \
       BENCH_PERIOD_S BENCH_ROUNDS BENCH_SAMPLE BENCH_BASELINE_N BENCH_FLAT BENCH_PHASES \
       BENCH_TIMEOUT_SCALE BENCH_WRAP BENCH_CTRL_ENV BENCH_REPEAT BENCH_METRICS BENCH_OUT \
       BENCH_README BENCH_FAIL_S BENCH_FAIL_N BENCH_FAIL_CAUSE PGTR_BIN

bench: bench-build
	@PGTR_BIN=$${PGTR_BIN:-$(CURDIR)/build/bin/pgtoken-rotator} FAKES=$(CURDIR)/build/tests/fakes \
	    BENCH_PGLOGIN=$(CURDIR)/$(BENCH_PGLOGIN) $(BENCH_BIN)

# The table of the last results into the READMEs (the only target that writes them).
bench-readme: bench-tool
	@BENCH_README="$(CURDIR)/bench/README.md $(CURDIR)/README.md" \
	    $(BENCH_BIN) report $${BENCH_OUT:-$(CURDIR)/bench/results/latest.json}

# The controller is always the optimised build (not build/san): that is what users run.
bench-build: bench-tool
	@$(MAKE) --no-print-directory SAN= all fakes build/tests/pam_pgtoken.so
	@echo '  CC    $(BENCH_PGLOGIN)'
	@$(CC) -std=c17 -O2 -Wall -Wextra -Werror -o $(BENCH_PGLOGIN) bench/pglogin/pglogin.c \
	    $(shell pkg-config --cflags --libs libpq)

bench-tool:
	@mkdir -p build/bench
	@echo '  GO    $(BENCH_BIN)'
	@cd bench && $(BENCH_GOENV) go build -o ../$(BENCH_BIN) .
