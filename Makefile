# handoff: pre-forked hand-off server. `make` builds build/handoffd and
# build/handoff-bench; `make run` and `make test` install what is missing
# first (see .ci/deps.sh).

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
ASAN_BUILD ?= build-asan

WARN    = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
CSTD    = -std=c11 -D_GNU_SOURCE
CPPFLAGS_ALL = -Icommon -Iserver $(CPPFLAGS)
OPT     ?= -O2 -g
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) $(CFLAGS)
SAN     = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LIBS    = -levent_core -levent_extra -lhttp_parser

COMMON_SRC = $(wildcard common/*.c)
SERVER_SRC = $(filter-out server/main.c,$(wildcard server/*.c))
BENCH_SRC  = $(wildcard bench/*.c)
TEST_SRC   = $(wildcard tests/*.c)

objs = $(patsubst %.c,$(1)/obj/%.o,$(2))

all: $(BUILD)/handoffd

# ---- normal build ---------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/handoffd: $(call objs,$(BUILD),server/main.c $(SERVER_SRC) $(COMMON_SRC))
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LIBS) $(LDFLAGS)

$(BUILD)/unit-tests: $(call objs,$(BUILD),$(TEST_SRC) $(SERVER_SRC) $(COMMON_SRC))
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LIBS) -lcriterion $(LDFLAGS)

# ---- sanitizer build ------------------------------------------------------
$(ASAN_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(SAN) -MMD -MP -c $< -o $@

$(ASAN_BUILD)/handoffd: $(call objs,$(ASAN_BUILD),server/main.c $(SERVER_SRC) $(COMMON_SRC))
	$(CC) $(CFLAGS_ALL) $(SAN) $^ -o $@ $(LIBS) $(LDFLAGS)

$(ASAN_BUILD)/unit-tests: $(call objs,$(ASAN_BUILD),$(TEST_SRC) $(SERVER_SRC) $(COMMON_SRC))
	$(CC) $(CFLAGS_ALL) $(SAN) $^ -o $@ $(LIBS) -lcriterion $(LDFLAGS)

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
	    LSAN_OPTIONS=suppressions=tests/lsan.supp \
	    HANDOFFD=$(ASAN_BUILD)/handoffd $(ASAN_BUILD)/unit-tests --jobs $(TEST_JOBS) --timeout 120
	@$(MAKE) --no-print-directory fuzz-smoke

# ---- HTTP fuzzing and benchmark -------------------------------------------
# libFuzzer target over the same request handling the server runs
# (http_session.c on evbuffers, no socket). `make fuzz` runs it for
# FUZZ_TIME seconds; `make test` runs it for FUZZ_SMOKE_TIME. New inputs
# go to $(FUZZ_BUILD)/corpus; tests/fuzz/http holds the seeds.
FUZZ_CC   ?= clang-14
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 600
FUZZ_SMOKE_TIME ?= 30
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_HTTP_SRC = tests/fuzz/http_fuzz.c server/http_session.c server/http_date.c \
                server/http_static.c common/log.c

$(FUZZ_BUILD)/http-fuzz: $(FUZZ_HTTP_SRC) $(wildcard server/http_*.h common/log.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS_ALL) $(CSTD) $(WARN) $(FUZZ_FLAGS) $(FUZZ_HTTP_SRC) -o $@ \
	    -levent_core -lhttp_parser

fuzz-run = mkdir -p $(FUZZ_BUILD)/corpus && \
	if $(FUZZ_BUILD)/http-fuzz -max_total_time=$(1) -print_final_stats=1 \
	    -dict=tests/fuzz/http.dict -max_len=4096 -timeout=10 \
	    -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus tests/fuzz/http \
	    >$(FUZZ_BUILD)/fuzz.log 2>&1; then \
	    grep -E '^(Done|INFO: Seed)|^\#[0-9]+ +DONE' $(FUZZ_BUILD)/fuzz.log; \
	else tail -n 60 $(FUZZ_BUILD)/fuzz.log; echo "http-fuzz failed; see $(FUZZ_BUILD)/fuzz.log"; exit 1; fi

fuzz: deps-test $(FUZZ_BUILD)/http-fuzz
	$(call fuzz-run,$(FUZZ_TIME))

fuzz-smoke: $(FUZZ_BUILD)/http-fuzz
	$(call fuzz-run,$(FUZZ_SMOKE_TIME))

# Not a test: handoffd against nginx under wrk (see bench/http.sh).
bench-http: $(BUILD)/handoffd
	@.ci/deps.sh bench
	HANDOFFD=$(BUILD)/handoffd bench/http.sh

install: $(BUILD)/handoffd
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/handoffd $(DESTDIR)$(PREFIX)/bin/handoffd

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

.PHONY: all deps deps-test run test install clean fuzz fuzz-smoke bench-http
