# collm build. `make` builds build/collm; `make test` runs the suite;
# `make sanitize` runs the suite under AddressSanitizer + UBSan (build-asan/).
BUILD    ?= build
CC       ?= gcc
CXX      ?= g++
OPT      ?= -O2 -march=x86-64-v3 -mtune=native
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -pthread $(OPT) -g
CXXFLAGS += -std=c++17 -Wall -Wextra -Werror -Iinclude -pthread $(OPT) -g
LDLIBS   += -lfaiss -lopenblas -llapack -lmicrohttpd -lcjson -lgomp -lstdc++ -lm -pthread

LIB_C    := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
LIB_CXX  := $(sort $(wildcard src/*/*.cpp))
CLI_C    := $(sort $(wildcard src/cli/*.c))
TEST_C   := $(sort $(wildcard tests/test_*.c))

LIB_OBJ  := $(LIB_C:%.c=$(BUILD)/%.o) $(LIB_CXX:%.cpp=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_C:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_C:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test check demo setup sanitize clean tests bench
all: $(BUILD)/collm tests

$(BUILD)/libcollm.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(BUILD)/collm: $(CLI_OBJ) $(BUILD)/libcollm.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libcollm.a $(LDFLAGS) $(LDLIBS)

tests: $(TESTS)

$(BUILD)/tests/%: tests/%.c tests/test.h $(BUILD)/libcollm.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libcollm.a $(LDFLAGS) $(LDLIBS)

# Benchmarks: each bench/*.c is its own program linked against the library.
BENCH_C  := $(sort $(wildcard bench/*.c))
BENCHES  := $(BENCH_C:bench/%.c=$(BUILD)/bench/%)
bench: $(BENCHES)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libcollm.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libcollm.a $(LDFLAGS) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.cpp
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -MMD -MP -c -o $@ $<

setup:
	./scripts/setup.sh

# The README's test command: install dependencies, build, run the suite.
check: setup
	$(MAKE) test

demo: setup
	$(MAKE) all
	./scripts/demo.sh

test: all
	BUILD=$(BUILD) ./tests/run.sh

# allocator_may_return_null: an absurd size read from a bad file must reach
# the code's own "out of memory" error path (as it does without ASan) instead
# of ASan aborting the process; tests expect that error.
sanitize:
	ASAN_OPTIONS="allocator_may_return_null=1:$$ASAN_OPTIONS" \
	$(MAKE) BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	        LDFLAGS="-fsanitize=address,undefined" test

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
