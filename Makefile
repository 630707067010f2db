# handoff: pre-forked hand-off server. `make` builds build/handoffd and
# build/handoff-bench; `make run` and `make test` install what is missing
# first (see .ci/deps.sh).

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
# The systemd unit goes where systemd looks for $(PREFIX) (/usr/local/lib/
# systemd/system is on its search path), its ExecStart naming $(PREFIX)/bin.
UNITDIR ?= $(PREFIX)/lib/systemd/system
BUILD   ?= build
ASAN_BUILD ?= build-asan

WARN    = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
CSTD    = -std=c11 -D_GNU_SOURCE
# libsystemd (sd_notify) through pkg-config, so its flags come from Debian.
SYSTEMD_CFLAGS := $(shell pkg-config --cflags libsystemd 2>/dev/null)
SYSTEMD_LIBS   := $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)
CPPFLAGS_ALL = -Icommon -Iserver -Ibench $(SYSTEMD_CFLAGS) $(CPPFLAGS)
OPT     ?= -O2 -g
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) $(CFLAGS)
SAN     = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LIBS    = -levent_core -levent_extra -lhttp_parser -linih $(SYSTEMD_LIBS)
# jansson parses /status JSON in tests only; the server does not link it.
TEST_LIBS = -lcriterion -ljansson

COMMON_SRC = $(wildcard common/*.c)
SERVER_SRC = $(filter-out server/main.c,$(wildcard server/*.c))
BENCH_SRC  = $(wildcard bench/*.c)
# bench modules without main, for handoff-bench and the unit tests; bench
# links only the common/ modules it uses, never server objects.
BENCH_LIB_SRC = $(filter-out bench/main.c,$(BENCH_SRC))
BENCH_COMMON_SRC = common/addr.c common/fdutil.c common/log.c common/net.c
TEST_SRC   = $(wildcard tests/*.c)

objs = $(patsubst %.c,$(1)/obj/%.o,$(2))

all: $(BUILD)/handoffd $(BUILD)/handoff-bench

# ---- normal build ---------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/handoffd: $(call objs,$(BUILD),server/main.c $(SERVER_SRC) $(COMMON_SRC))
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LIBS) $(LDFLAGS)

$(BUILD)/handoff-bench: $(call objs,$(BUILD),bench/main.c $(BENCH_LIB_SRC) $(BENCH_COMMON_SRC))
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LIBS) $(LDFLAGS)

$(BUILD)/unit-tests: $(call objs,$(BUILD),$(TEST_SRC) $(SERVER_SRC) $(COMMON_SRC) $(BENCH_LIB_SRC))
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LIBS) $(TEST_LIBS) $(LDFLAGS)

# ---- sanitizer build ------------------------------------------------------
$(ASAN_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(SAN) -MMD -MP -c $< -o $@

$(ASAN_BUILD)/handoffd: $(call objs,$(ASAN_BUILD),server/main.c $(SERVER_SRC) $(COMMON_SRC))
	$(CC) $(CFLAGS_ALL) $(SAN) $^ -o $@ $(LIBS) $(LDFLAGS)

$(ASAN_BUILD)/handoff-bench: $(call objs,$(ASAN_BUILD),bench/main.c $(BENCH_LIB_SRC) $(BENCH_COMMON_SRC))
	$(CC) $(CFLAGS_ALL) $(SAN) $^ -o $@ $(LIBS) $(LDFLAGS)

$(ASAN_BUILD)/unit-tests: $(call objs,$(ASAN_BUILD),$(TEST_SRC) $(SERVER_SRC) $(COMMON_SRC) $(BENCH_LIB_SRC))
	$(CC) $(CFLAGS_ALL) $(SAN) $^ -o $@ $(LIBS) $(TEST_LIBS) $(LDFLAGS)

# tests/test_bench.c runs the handoff-bench built beside $$HANDOFFD (or
# $$HANDOFF_BENCH), so every test binary brings its bench along.
$(BUILD)/unit-tests: | $(BUILD)/handoff-bench
$(ASAN_BUILD)/unit-tests: | $(ASAN_BUILD)/handoff-bench

-include $(shell find $(BUILD) $(ASAN_BUILD) -name '*.d' 2>/dev/null)

# ---- set-up, run, test ----------------------------------------------------
deps:
	@.ci/deps.sh build

deps-test:
	@.ci/deps.sh test

run: deps
	@$(MAKE) --no-print-directory $(BUILD)/handoffd
	exec $(BUILD)/handoffd $(ARGS)

TEST_JOBS ?= 2
# Criterion runs each test in its own process; integration tests start the
# real binary named by HANDOFFD.
test: deps-test
	@$(MAKE) --no-print-directory $(BUILD)/handoffd $(BUILD)/unit-tests \
	    $(ASAN_BUILD)/handoffd $(ASAN_BUILD)/unit-tests
	HANDOFFD=$(BUILD)/handoffd $(BUILD)/unit-tests --jobs $(TEST_JOBS) --timeout 120
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	    HANDOFFD=$(ASAN_BUILD)/handoffd $(ASAN_BUILD)/unit-tests --jobs $(TEST_JOBS) --timeout 120
	@$(MAKE) --no-print-directory fuzz-smoke

# ---- HTTP fuzzing and benchmark -------------------------------------------
# libFuzzer target over the same request handling the server runs
# (http_session.c on evbuffers, no socket). `make fuzz` runs it for
# FUZZ_RUNS executions (at most FUZZ_TIME seconds: about 11 minutes here);
# `make test` runs it for FUZZ_SMOKE_TIME seconds. New inputs go to
# $(FUZZ_BUILD)/corpus; tests/fuzz/http holds the seeds.
FUZZ_CC   ?= clang-14
FUZZ_BUILD ?= build-fuzz
FUZZ_RUNS ?= 10000000
FUZZ_TIME ?= 3600
FUZZ_SMOKE_TIME ?= 30
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_HTTP_SRC = tests/fuzz/http_fuzz.c server/http_session.c server/http_date.c \
                server/http_static.c common/log.c

$(FUZZ_BUILD)/http-fuzz: $(FUZZ_HTTP_SRC) $(wildcard server/http_*.h common/log.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS_ALL) $(CSTD) $(WARN) $(FUZZ_FLAGS) $(FUZZ_HTTP_SRC) -o $@ \
	    -levent_core -lhttp_parser

fuzz-run = mkdir -p $(FUZZ_BUILD)/corpus && \
	if $(FUZZ_BUILD)/http-fuzz -max_total_time=$(1) -runs=$(2) -print_final_stats=1 \
	    -dict=tests/fuzz/http.dict -max_len=4096 -timeout=10 \
	    -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus tests/fuzz/http \
	    >$(FUZZ_BUILD)/$(3) 2>&1; then \
	    grep -E '^(Done|INFO: Seed)|^\#[0-9]+ +DONE' $(FUZZ_BUILD)/$(3); \
	else tail -n 60 $(FUZZ_BUILD)/$(3); echo "http-fuzz failed; see $(FUZZ_BUILD)/$(3)"; exit 1; fi

fuzz: deps-test $(FUZZ_BUILD)/http-fuzz $(FUZZ_BUILD)/ctl-fuzz
	$(call fuzz-run,$(FUZZ_TIME),$(FUZZ_RUNS),fuzz.log)
	$(call ctl-fuzz-run,$(FUZZ_CTL_RUNS),ctl-fuzz.log)

fuzz-smoke: $(FUZZ_BUILD)/http-fuzz $(FUZZ_BUILD)/ctl-fuzz
	$(call fuzz-run,$(FUZZ_SMOKE_TIME),-1,fuzz-smoke.log)
	$(call ctl-fuzz-run,$(FUZZ_CTL_SMOKE_RUNS),ctl-fuzz-smoke.log)

# Not a test: handoffd against nginx under wrk (see bench/http.sh).
bench-http: $(BUILD)/handoffd
	@.ci/deps.sh bench
	HANDOFFD=$(BUILD)/handoffd bench/http.sh

# Not a test: 100,000 idle connections held, their memory, set-up time and
# wrk latency meanwhile, against nginx (see bench/c100k.sh).
bench-c100k: $(BUILD)/handoffd $(BUILD)/handoff-bench
	@.ci/deps.sh bench
	HANDOFFD=$(BUILD)/handoffd bench/c100k.sh

# The integration suite with every server process under valgrind: memory
# errors, definite leaks and fds left open at exit all fail the run.
VALGRIND = valgrind --quiet --track-fds=yes --leak-check=full --errors-for-leak-kinds=definite \
	--error-exitcode=99 --child-silent-after-fork=no
valgrind: deps-test
	@.ci/deps.sh valgrind
	@$(MAKE) --no-print-directory $(BUILD)/handoffd $(BUILD)/unit-tests
	HANDOFFD=$(BUILD)/handoffd HANDOFFD_WRAPPER="$(VALGRIND)" \
	    $(BUILD)/unit-tests --jobs 1 --timeout 300 --filter '$(VALGRIND_FILTER)'
VALGRIND_FILTER ?= @(core/*|reliability_http/malformed*)

# Reliability soak: the scenarios of tests/test_reliability*.c in their full
# form, one at a time, and the report bench/results/<date>/reliability.md
# (bench/soak.sh); wrk (bench deps) measures p99 under slowloris. Bounded: it
# stops on its own within SOAK_TIMEOUT seconds.
soak: deps-test
	@.ci/deps.sh bench
	@$(MAKE) --no-print-directory $(BUILD)/handoffd $(BUILD)/handoff-bench $(BUILD)/unit-tests
	BUILD=$(BUILD) bench/soak.sh

# ---- control-channel fuzzing ----------------------------------------------
# libFuzzer over what a process reads from its control channel
# (tests/fuzz/fuzz_ctl.c): ctl_check on arbitrary bytes, and ctl_recv ->
# fdpass_recv on arbitrary datagrams carrying any number of fds, checking
# that no received fd stays open. Seeds in tests/fuzz/ctl; what it finds
# goes to $(FUZZ_BUILD)/ctl-corpus. `make fuzz-ctl` (and `make fuzz`) run
# FUZZ_CTL_RUNS executions, `make test` FUZZ_CTL_SMOKE_RUNS.
FUZZ_CTL_RUNS ?= 10000000
FUZZ_CTL_SMOKE_RUNS ?= 300000
FUZZ_CTL_SRC = tests/fuzz/fuzz_ctl.c common/ctl.c common/fdpass.c

$(FUZZ_BUILD)/ctl-fuzz: $(FUZZ_CTL_SRC) common/ctl.h common/fdpass.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS_ALL) $(CSTD) $(WARN) $(FUZZ_FLAGS) $(FUZZ_CTL_SRC) -o $@

ctl-fuzz-run = mkdir -p $(FUZZ_BUILD)/ctl-corpus && \
	if $(FUZZ_BUILD)/ctl-fuzz -runs=$(1) -max_len=1024 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/ctl- $(FUZZ_BUILD)/ctl-corpus tests/fuzz/ctl \
	    >$(FUZZ_BUILD)/$(2) 2>&1; then \
	    grep -E '^Done|^stat::(number_of_executed_units|average_exec_per_sec)' $(FUZZ_BUILD)/$(2); \
	else tail -n 40 $(FUZZ_BUILD)/$(2); echo "ctl-fuzz failed; see $(FUZZ_BUILD)/$(2)"; exit 1; fi

fuzz-ctl:
	@.ci/deps.sh fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BUILD)/ctl-fuzz
	$(call ctl-fuzz-run,$(FUZZ_CTL_RUNS),ctl-fuzz.log)

# ---- benchmarks (not tests) ------------------------------------------------
# bench/compare.py runs every server design under the same load and writes
# bench/results/DATE/ (results.csv, report.md, PNG plots); QUICK=1 makes the
# runs short (under 2 minutes) and writes bench/results/DATE-quick/.
bench:
	@.ci/deps.sh bench
	@$(MAKE) --no-print-directory $(BUILD)/handoffd $(BUILD)/handoff-bench
	python3 bench/compare.py --handoffd $(BUILD)/handoffd $(if $(QUICK),--quick)

bench-quick:
	@$(MAKE) --no-print-directory bench QUICK=1

.PHONY: bench bench-quick

install: $(BUILD)/handoffd
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BUILD)/handoffd $(DESTDIR)$(PREFIX)/bin/handoffd
	sed 's#/usr/local/bin/handoffd#$(PREFIX)/bin/handoffd#' deploy/handoffd.service \
	    > $(DESTDIR)$(UNITDIR)/handoffd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/handoffd.service

# Build the container image when a Docker engine answers; without one, say
# so and succeed, so `make docker` is safe on machines that only have the CLI.
DOCKER ?= docker
IMAGE  ?= handoffd:latest
.PHONY: docker
docker:
	@if ! command -v $(DOCKER) >/dev/null 2>&1; then \
	    echo "make docker: no '$(DOCKER)' command; image $(IMAGE) not built"; \
	elif ! timeout 20 $(DOCKER) info >/dev/null 2>&1; then \
	    echo "make docker: no Docker engine available ('$(DOCKER) info' failed); image $(IMAGE) not built"; \
	else \
	    echo "$(DOCKER) build -f docker/Dockerfile -t $(IMAGE) ."; \
	    $(DOCKER) build -f docker/Dockerfile -t $(IMAGE) .; \
	fi

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

.PHONY: all deps deps-test run test valgrind soak install clean fuzz fuzz-smoke fuzz-ctl bench-http bench-c100k
