# libFuzzer build of the codec decoders, without MPI or the rest of the
# library. From the repo root:
#   make -f tests/fuzz/fuzz.mk BUILD=build-fuzz [FUZZ_SECONDS=60]
# builds $(BUILD)/fuzz_codec with clang -fsanitize=fuzzer,address,undefined
# and runs it for FUZZ_SECONDS, seeded from tests/fuzz/corpus; new inputs go
# to $(BUILD)/corpus, crashes to $(BUILD)/crash-*.

BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS ?=

SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS_FUZZ := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g $(SAN) \
	-I. -I$(BUILD)/gen $(shell pkg-config --cflags libprotobuf-c jansson 2>/dev/null)
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
LIBS := $(shell pkg-config --libs libprotobuf-c jansson 2>/dev/null || echo -lprotobuf-c -ljansson)

SRCS := tests/fuzz/fuzz_codec.c common/codec.c common/mem.c common/log.c common/json.c common/err.c
GEN_C := $(BUILD)/gen/adamps.pb-c.c
GEN_H := $(BUILD)/gen/adamps.pb-c.h
OBJS := $(SRCS:%.c=$(BUILD)/fuzz-obj/%.o) $(BUILD)/fuzz-obj/gen/adamps.pb-c.o
BIN := $(BUILD)/fuzz_codec

.PHONY: fuzz-run fuzz-build
fuzz-run: $(BIN)
	@mkdir -p $(BUILD)/corpus
	$(BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
		-artifact_prefix=$(BUILD)/ $(FUZZ_FLAGS) $(BUILD)/corpus tests/fuzz/corpus

fuzz-build: $(BIN)

$(GEN_C) $(GEN_H): proto/adamps.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen proto/adamps.proto

$(BUILD)/fuzz-obj/gen/adamps.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS_FUZZ) -c $< -o $@

$(BUILD)/fuzz-obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS_FUZZ) $(WARN) -c $< -o $@

$(BIN): $(OBJS)
	$(FUZZ_CC) $(SAN) -o $@ $(OBJS) $(LIBS)
