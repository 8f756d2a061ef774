# libFuzzer builds of every parser of untrusted bytes, one target each:
#   codec       wire messages (common/codec.c)
#   libsvm      libsvm lines (data/libsvm.c)
#   idx         IDX headers and data, plain and gzip (data/idx.c, data/zread.c)
#   fileheader  framed files: checkpoints, manifest, worker state, shards
#               (common/file.c, common/fileheader.c, common/ckpt.c,
#               server/snapshot.c)
#   predict     a saved model.bin (worker/predict.c)
#   cfg         the flag parser and the run header (cli/cfg.c)
#   budget      --max-memory counts, /proc and cgroup files (cli/budget.c,
#               cli/meminfo.c)
# From the repo root (or `make fuzz` / `make fuzz-ci`):
#   make -f tests/fuzz/fuzz.mk BUILD=build-fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="idx cfg"]
# builds the library with clang -fsanitize=fuzzer-no-link,address,undefined
# through the main Makefile (into $(BUILD)), links each target, and runs
# each for FUZZ_SECONDS seeded from tests/fuzz/corpus/<target>; new inputs
# go to $(BUILD)/corpus/<target>, crashes to $(BUILD)/<target>-crash-*.
# Any crash, leak, timeout or allocation past -malloc_limit_mb (a header
# buying memory its file does not hold) fails the run.

BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS ?=
FUZZ_TARGETS ?= codec libsvm idx fileheader predict cfg budget

SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
PKGS := openblas libprotobuf-c zlib jansson
LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(shell pkg-config --libs ompi-c 2>/dev/null) \
	-lm -lpthread
CFLAGS_FUZZ := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g $(SAN) -I. \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
LIB := $(BUILD)/libadamps.a
BINS := $(FUZZ_TARGETS:%=$(BUILD)/fuzz_%)
RUN_FLAGS := -max_len=8192 -malloc_limit_mb=256 -rss_limit_mb=1024 -timeout=10 \
	-print_final_stats=1

.PHONY: fuzz-run fuzz-build $(LIB)
fuzz-run: $(BINS)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(BUILD)/corpus/$$t; \
		echo "  FUZZ   $$t for $(FUZZ_SECONDS)s"; \
		$(BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) $(RUN_FLAGS) \
			-artifact_prefix=$(BUILD)/$$t- $(FUZZ_FLAGS) \
			$(BUILD)/corpus/$$t tests/fuzz/corpus/$$t >$(BUILD)/fuzz_$$t.log 2>&1 || \
			{ tail -40 $(BUILD)/fuzz_$$t.log; echo "fuzz: $$t failed (log $(BUILD)/fuzz_$$t.log)"; exit 1; }; \
		grep -E "^stat::number_of_executed_units|^Done" $(BUILD)/fuzz_$$t.log | tr '\n' ' '; echo; \
	done

fuzz-build: $(BINS)

# The library, instrumented for coverage (the targets add libFuzzer's main).
$(LIB):
	@$(MAKE) --no-print-directory BUILD=$(BUILD) CC=$(FUZZ_CC) \
		CFLAGS="-fsanitize=fuzzer-no-link $(SAN)" $(LIB)

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(LIB)
	@echo "  FUZZLD $@"
	@$(FUZZ_CC) $(CFLAGS_FUZZ) -fsanitize=fuzzer -o $@ $< $(LIB) $(LIBS)
