# adamps: one Makefile. `make` builds ./adamps; `make test` runs the layer
# check, the unit and MPI tests; `make test SAN=1` the same under
# AddressSanitizer + UBSan; `make test-faults` the slow fault cases (about a
# minute); `make test-slurm` the Slurm script on a one-node cluster; `make
# run` trains the default job; `make bench` prints the benchmarks; `make
# fuzz` (`make fuzz-ci`) fuzzes every parser.
#
# Objects are grouped by layer (docs/design.md, "Layers"): COMMON_O (both
# roles), DATA_O (readers), SERVER_O, WORKER_O, CLI_O. Every .c of a layer
# directory is picked up, and every tests/unit/test_*.c becomes its own
# cmocka binary: adding a module or a test needs no edit here. Include paths
# are granted per file: only common/codec.c and common/fileheader.c see the
# generated protobuf header and only common/comm*.c see <mpi.h>, so a stray
# include elsewhere fails to compile.

.DEFAULT_GOAL := all
VERSION := 0.3.0
CC ?= cc
PREFIX ?= /usr/local
PKGS := openblas libprotobuf-c zlib jansson
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null)
MPI_LIBS := $(shell pkg-config --libs ompi-c 2>/dev/null)

# Test hooks (ADAMPS_TEST_INJECT: crash, pause, freeze, bad messages,
# failed writes) are compiled only with -DPS_TESTING: into the build-test/
# flavour (TESTING=1) that the MPI tests run, and into the sanitizer build,
# which is a test build anyway. ./adamps has none.
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TESTFLAGS := -DPS_TESTING
else ifeq ($(DEBUG),1)
BUILD ?= build-debug
else ifeq ($(TESTING),1)
BUILD ?= build-test
TESTFLAGS := -DPS_TESTING
else
BUILD ?= build
endif

ifeq ($(DEBUG),1)
OPTFLAGS := -O0 -g3 -DPS_DEBUG
else
OPTFLAGS := -O2 -g
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ifeq ($(WERROR),1)
WARN += -Werror
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

# -fno-math-errno lets sqrtf vectorise in the optimizer loops; nothing here
# reads errno after a math call.
CFLAGS_ALL := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DPS_VERSION='"$(VERSION)"' \
	$(OPTFLAGS) -fno-math-errno $(WARN) $(SANFLAGS) $(TESTFLAGS) -I. $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
LDLIBS_ALL := $(PKG_LIBS) $(MPI_LIBS) -lm -lpthread $(LDLIBS)
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)

GEN_C := $(BUILD)/gen/adamps.pb-c.c
GEN_H := $(BUILD)/gen/adamps.pb-c.h
COMMON_O := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard common/*.c))) $(BUILD)/gen/adamps.pb-c.o
DATA_O := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard data/*.c)))
SERVER_O := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard server/*.c)))
WORKER_O := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard worker/*.c)))
CLI_O := $(patsubst %.c,$(BUILD)/%.o,$(filter-out cli/main.c,$(sort $(wildcard cli/*.c))))
MAIN_O := $(BUILD)/cli/main.o
LIB_OBJS := $(COMMON_O) $(DATA_O) $(SERVER_O) $(WORKER_O) $(CLI_O)

# Per-file include grants (see the top of this file).
PROTO_USERS := $(BUILD)/common/codec.o $(BUILD)/common/fileheader.o
MPI_USERS := $(filter $(BUILD)/common/comm%.o,$(COMMON_O))
$(PROTO_USERS): EXTRA_CFLAGS += -I$(BUILD)/gen
$(MPI_USERS): EXTRA_CFLAGS += $(MPI_CFLAGS)
$(PROTO_USERS): | $(GEN_H)
# The optimizer kernels are built for several ISAs (server/optim.c) and must
# give the same bits on each: no a*b+c fused into an FMA where AVX2 has one.
$(BUILD)/server/optim.o: EXTRA_CFLAGS += -ffp-contract=off
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
LIB := $(BUILD)/libadamps.a

ifeq ($(BUILD),build)
BIN := adamps
else
BIN := $(BUILD)/adamps
endif
# The binary the MPI tests run: one with the test hooks.
ifeq ($(SAN),1)
TEST_BIN := $(BIN)
else
TEST_BIN := build-test/adamps
endif

# Quiet by default; `make V=1` shows the commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all run test test-faults test-slurm test-bin uninstall unit mpitest bench fuzz fuzz-ci \
	clean install deps check-deps check-layers check-format format experiments sweep
all: $(BIN)

$(GEN_C) $(GEN_H): proto/adamps.proto
	@mkdir -p $(BUILD)/gen
	@echo "  PROTOC $<"
	$(Q)protoc-c --proto_path=proto --c_out=$(BUILD)/gen proto/adamps.proto

$(BUILD)/gen/adamps.pb-c.o: $(GEN_C)
	@echo "  CC     $<"
	$(Q)$(CC) $(filter-out $(WARN),$(CFLAGS_ALL)) -I$(BUILD)/gen -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC     $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(EXTRA_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	@echo "  AR     $@"
	$(Q)ar rcs $@ $^

$(BIN): $(MAIN_O) $(LIB)
	@echo "  LD     $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(MAIN_O) $(LIB) $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "  TEST   $@"
	$(Q)$(CC) $(CFLAGS_ALL) -DUNIT_TESTING $(LDFLAGS_ALL) -o $@ $< $(LIB) $(CMOCKA_LIBS) $(LDLIBS_ALL)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "  BENCH  $@"
	$(Q)$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

# Installs missing packages first, so a fresh machine needs only this.
check-deps:
	@deploy/install-deps.sh --check >/dev/null 2>&1 || deploy/install-deps.sh

deps:
	deploy/install-deps.sh

unit: $(UNIT_BINS)
	@tests/run_unit.sh $(UNIT_BINS)

# The hooked binary, built in its own flavour directory.
test-bin:
ifeq ($(SAN),1)
	@$(MAKE) --no-print-directory $(BIN)
else
	@$(MAKE) --no-print-directory TESTING=1 build-test/adamps
endif

mpitest: test-bin
	@BIN=./$(TEST_BIN) SAN=$(SAN) tests/mpi/run.sh

check-layers:
	@tests/check_layers.sh

# The layout .clang-format pins (STYLE.md); `make format` rewrites the tree.
check-format:
	@tests/check_format.sh

format:
	@find common data server worker cli tests bench -name '*.[ch]' -not -path '*/build*' | xargs clang-format -i

test: check-deps check-layers check-format
	@$(MAKE) --no-print-directory $(BIN) $(UNIT_BINS)
	@tests/run_unit.sh $(UNIT_BINS)
	@$(MAKE) --no-print-directory test-bin
	@BIN=./$(TEST_BIN) SAN=$(SAN) tests/mpi/run.sh
	@tests/test_plot.sh
	@tests/test_experiments.sh
	@BIN=./$(TEST_BIN) SAN=$(SAN) tests/test_sweep.sh

# The slow fault cases (kills under deploy/launch, frozen ranks, preemption,
# full disk): a few minutes; CI runs them too.
test-faults: check-deps
	@$(MAKE) --no-print-directory test-bin
	@BIN=./$(TEST_BIN) SAN=$(SAN) tests/mpi/faults.sh

# deploy/adamps.sbatch on a real one-node Slurm cluster started for the test.
test-slurm: check-deps
	@deploy/install-deps.sh --slurm --check >/dev/null 2>&1 || deploy/install-deps.sh --slurm
	@$(MAKE) --no-print-directory $(BIN)
	@BIN=$(CURDIR)/$(BIN) tests/slurm/run.sh

run: check-deps
	@$(MAKE) --no-print-directory $(BIN)
	@deploy/run-default.sh ./$(BIN) $(ARGS)

bench: check-deps
	@$(MAKE) --no-print-directory $(BIN) $(BENCH_BINS)
	@BIN=./$(BIN) BUILD=$(BUILD) bench/run.sh

# The scaling study (docs/scaling.md): `make sweep` runs the default matrix
# (workers x servers x consistency x transport, ~8 min on 2 cores) into
# runs/sweep.jsonl, resuming a sweep left unfinished; ARGS go to deploy/sweep.
sweep: check-deps
	@$(MAKE) --no-print-directory $(BIN)
	@nice deploy/sweep --bin ./$(BIN) --out runs/sweep.jsonl $(ARGS)

# The paper's experiments (docs/experiments.md): `make experiments` runs the
# reduced versions, `make experiments ARGS=--full` the paper-length ones.
experiments: check-deps
	@$(MAKE) --no-print-directory $(BIN)
	@deploy/experiments --bin ./$(BIN) $(ARGS)

# Every parser of untrusted bytes under libFuzzer (tests/fuzz/fuzz.mk):
# FUZZ_SECONDS (60) each; fuzz-ci gives each 20 s, for CI.
fuzz:
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk BUILD=build-fuzz

fuzz-ci:
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk BUILD=build-fuzz FUZZ_SECONDS=20

# The man page is made from --help by help2man, so the flag table stays the
# only place a flag is described.
$(BUILD)/adamps.1: $(BIN)
	@echo "  MAN    $@"
	$(Q)help2man --no-info --name="distributed Adam on a parameter server (MPI)" \
		--version-string=$(VERSION) --output=$@ ./$(BIN)

install: $(BIN) $(BUILD)/adamps.1
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/adamps/deploy \
		$(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/adamps
	install -m 755 deploy/launch $(DESTDIR)$(PREFIX)/bin/adamps-launch
	install -m 755 deploy/plot $(DESTDIR)$(PREFIX)/bin/adamps-plot
	install -m 755 deploy/launch deploy/plot deploy/install-deps.sh \
		$(DESTDIR)$(PREFIX)/share/adamps/deploy/
	install -m 644 deploy/adamps.sbatch $(DESTDIR)$(PREFIX)/share/adamps/deploy/
	install -m 644 $(BUILD)/adamps.1 $(DESTDIR)$(PREFIX)/share/man/man1/adamps.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/adamps $(DESTDIR)$(PREFIX)/bin/adamps-launch \
		$(DESTDIR)$(PREFIX)/bin/adamps-plot $(DESTDIR)$(PREFIX)/share/man/man1/adamps.1
	rm -rf $(DESTDIR)$(PREFIX)/share/adamps

clean:
	rm -rf build build-san build-debug build-fuzz build-* adamps

-include $(LIB_OBJS:.o=.d) $(MAIN_O:.o=.d) $(UNIT_BINS:=.d) $(BENCH_BINS:=.d)
