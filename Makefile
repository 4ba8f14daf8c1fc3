# casfs build.  `make` builds build/casfs; `make check` installs missing
# Debian packages, builds and runs every test (plain, then ASan+UBSan);
# `make demo` runs the main job on the embedded default store.
#
#   make SAN=1          build into build-asan/ with ASan+UBSan
#   make TSAN=1         build into build-tsan/ with ThreadSanitizer
#   make fuzz           build libFuzzer targets into build-fuzz/

SAN ?=
TSAN ?=
ifeq ($(SAN),1)
BUILD ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(TSAN),1)
BUILD ?= build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS :=
endif

CC ?= cc
BLAKE3_DIR := $(lastword $(sort $(wildcard /usr/share/cargo/registry/blake3-*/c)))
HAVE_FUSE := $(shell pkg-config --exists fuse3 && echo 1)

WARN := -Wall -Wextra -Werror=missing-prototypes -Werror=shadow -Werror=format=2 \
	-Werror=vla -Werror=implicit-function-declaration -Werror=strict-prototypes
CPPFLAGS += -D_GNU_SOURCE -Isrc -I$(BLAKE3_DIR)
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu17 $(WARN) -pthread $(SANFLAGS)
LDFLAGS += -pthread $(SANFLAGS)
LDLIBS := -llmdb -lcrypto -llzma -lzstd -lbz2 -lcurl -lmicrohttpd -lsqlite3 -lnghttp2

ifeq ($(HAVE_FUSE),1)
CPPFLAGS += -DCASFS_HAVE_FUSE=1 $(shell pkg-config --cflags fuse3)
LDLIBS += $(shell pkg-config --libs fuse3)
endif

# Layers, top first (link order).  See STYLE rule 1.
MODULES := cli serve server $(if $(HAVE_FUSE),virtiofs fuse) fs store nixcache castore rpc nar storepath proto digest basic
LIBS := $(foreach m,$(MODULES),$(BUILD)/lib/libcasfs-$(m).a) $(BUILD)/lib/libblake3.a

all: $(BUILD)/casfs

define module_rules
$(1)_SRCS := $$(filter-out src/$(1)/main.c,$$(wildcard src/$(1)/*.c))
$(1)_OBJS := $$(patsubst src/%.c,$(BUILD)/obj/%.o,$$($(1)_SRCS))
$(BUILD)/lib/libcasfs-$(1).a: $$($(1)_OBJS)
	@mkdir -p $$(@D)
	@rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# The official BLAKE3 C sources, with their x86-64 SIMD assembly.
BLAKE3_SRCS := blake3.c blake3_dispatch.c blake3_portable.c
BLAKE3_ASM := blake3_sse2_x86-64_unix.S blake3_sse41_x86-64_unix.S \
	blake3_avx2_x86-64_unix.S blake3_avx512_x86-64_unix.S
BLAKE3_OBJS := $(patsubst %.c,$(BUILD)/blake3/%.o,$(BLAKE3_SRCS)) \
	$(patsubst %.S,$(BUILD)/blake3/%.o,$(BLAKE3_ASM))
$(BUILD)/blake3/%.o: $(BLAKE3_DIR)/%.c
	@mkdir -p $(@D)
	@echo "  CC      $(notdir $<)"
	@$(CC) -O3 -fPIC $(SANFLAGS) -c -o $@ $<
$(BUILD)/blake3/%.o: $(BLAKE3_DIR)/%.S
	@mkdir -p $(@D)
	@echo "  AS      $(notdir $<)"
	@$(CC) -c -o $@ $<
$(BUILD)/lib/libblake3.a: $(BLAKE3_OBJS)
	@mkdir -p $(@D)
	@rm -f $@ && ar rcs $@ $^

$(BUILD)/casfs: $(BUILD)/obj/cli/main.o $(LIBS)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests: one binary per tests/unit/test-*.c.
UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(LIBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# Fuzz targets replayed over their corpora as ordinary tests.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz-replay/%,$(FUZZ_SRCS))
$(BUILD)/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay-main.c $(LIBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay-main.c $(LIBS) $(LDLIBS)

tests: $(BUILD)/casfs $(UNIT_BINS) $(FUZZ_REPLAY)

# libFuzzer builds (clang): make fuzz; then build-fuzz/fuzz-nar tests/fuzz/corpus/nar
fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang \
		SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
		$(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRCS))
build-fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(LIBS)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

deps:
	@sh scripts/deps.sh

check: deps
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory SAN=1 tests
	@$(MAKE) --no-print-directory TSAN=1 all build-tsan/tests/test-ingest \
		build-tsan/tests/test-fs-prefetch build-tsan/tests/test-chunk-pipe
	@sh tests/run.sh build build-asan

demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo.sh

$(BUILD)/bench-hashbound: bench/hashbound.c $(LIBS)
	@echo "  LD      $@"
	@$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench-hashbound
	@bash bench/import.sh

$(BUILD)/bench-b3threads: bench/b3threads.c $(LIBS)
	@echo "  LD      $@"
	@$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# BLAKE3 on 1..cores threads over 1 GiB in memory, then the hash bounds.
bench-b3: deps
	@$(MAKE) --no-print-directory $(BUILD)/bench-b3threads $(BUILD)/bench-hashbound
	@$(BUILD)/bench-b3threads
	@HASHBOUND=$(CURDIR)/$(BUILD)/bench-hashbound bash bench/hashbound.sh

# The hash bounds (bench/hashbound.c) over a 1 GiB file (BENCH_BIG_MB) on
# 1 and 2 threads: import (BLAKE3 + SHA-256) and verify (BLAKE3 alone).
bench-hashbound: deps
	@$(MAKE) --no-print-directory $(BUILD)/bench-hashbound
	@HASHBOUND=$(CURDIR)/$(BUILD)/bench-hashbound bash bench/hashbound.sh

bench-mount: deps
	@$(MAKE) --no-print-directory BUILD=build all
	@CASFS=$(CURDIR)/build/casfs bash bench/mount.sh

# serve-cache vs python3 -m http.server over Nix's file:// cache of the
# same closure: narinfo requests/s and NAR MB/s (bench/serve-cache.sh).
bench-serve: deps
	@$(MAKE) --no-print-directory all
	@CASFS=$(CURDIR)/$(BUILD)/casfs bash bench/serve-cache.sh

# The README's two commands on a brand-new minimal Debian 12 root (root only).
fresh-check:
	@sh scripts/fresh-check.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz

# casfs copy and a read-through mount against nix copy (bench/copy.sh).
bench-copy: deps
	@$(MAKE) --no-print-directory all
	@CASFS=$(CURDIR)/build/casfs bash bench/copy.sh

# A mount, a blob Read and copies over a casfs daemon against local ones
# and a grpcio client (bench/remote.sh).
bench-remote: deps
	@$(MAKE) --no-print-directory all
	@CASFS=$(CURDIR)/build/casfs bash bench/remote.sh

# A QEMU guest reading casfs virtiofs against Debian's virtiofsd (bench/virtiofs.sh).
bench-virtiofs: deps
	@$(MAKE) --no-print-directory all
	@CASFS=$(CURDIR)/build/casfs bash bench/virtiofs.sh

.PHONY: all tests fuzz deps check demo bench bench-b3 bench-hashbound bench-mount bench-copy bench-serve bench-remote bench-virtiofs fresh-check clean
.SECONDARY:
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
