# Ephemera - build, run and test.
#
#   make            build bin/ (release) 
#   make run        the whole stack on this machine, in the foreground
#   make test       unit + integration tests (real MariaDB, nginx, Docker)
#   make fuzz       each libFuzzer harness for a bounded time, under ASan
#   make check-style  clang-format must agree with every C file

CC      ?= cc
PKGS    := libconfig json-c libcurl openssl libmariadb yaml-0.1
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lfcgi -pthread
WARN    := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	   -Wmissing-prototypes -Wpointer-arith -Wformat=2 \
	   -Wno-format-nonliteral
DEFS    := -D_GNU_SOURCE -pthread
CFLAGS  ?= -O2 -g
ASAN    := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined

LIB_SRC  := $(wildcard lib/*.c)
FCGI_SRC := $(wildcard fcgi-app/*.c)
WORK_SRC := $(wildcard workers/*.c workers/*/*.c)
CLI_SRC  := $(wildcard cli/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst %.c,build/asan/%,$(TOOL_SRC))

# $(call objs,variant,sources)
objs = $(patsubst %.c,build/$(1)/%.o,$(2))

PROGS := ephemera-fcgi ephemera-workers ephemera

.PHONY: all asan run test test-unit test-integration bench fuzz \
	check-style format clean deps

all: $(addprefix bin/,$(PROGS))
asan: $(addprefix build/asan/bin/,$(PROGS)) $(TOOL_BINS)

build/release/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(WARN) $(DEFS) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC [asan] $<"
	@$(CC) $(WARN) $(DEFS) $(ASAN) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

# Program files other than main.c, for linking into unit tests.
FCGI_CORE := $(filter-out fcgi-app/main.c,$(FCGI_SRC))
WORK_CORE := $(filter-out workers/main.c,$(WORK_SRC))

define program
bin/$(1): $(call objs,release,$(2) $(LIB_SRC))
	@mkdir -p bin
	$$(CC) $$(CFLAGS) -o $$@ $$^ $$(PKG_LIBS)
build/asan/bin/$(1): $(call objs,asan,$(2) $(LIB_SRC))
	@mkdir -p build/asan/bin
	$$(CC) $$(ASAN) -o $$@ $$^ $$(PKG_LIBS)
endef
$(eval $(call program,ephemera-fcgi,$(FCGI_SRC)))
$(eval $(call program,ephemera-workers,$(WORK_SRC)))
$(eval $(call program,ephemera,$(CLI_SRC)))

# Each unit test links the library and the cores of both programs.
build/asan/tests/unit/%: build/asan/tests/unit/%.o \
		$(call objs,asan,$(LIB_SRC) $(FCGI_CORE) $(WORK_CORE))
	$(CC) $(ASAN) -o $@ $^ $(PKG_LIBS)

UNIT_BINS := $(patsubst %.c,build/asan/%,$(UNIT_SRC))

# Test tools (drivers the integration tests run) link the workers' core.
build/asan/tests/tools/%: build/asan/tests/tools/%.o \
		$(call objs,asan,$(LIB_SRC) $(WORK_CORE))
	$(CC) $(ASAN) -o $@ $^ $(PKG_LIBS)


deps:
	@scripts/deps.sh

run:
	@scripts/run.sh

test: test-unit test-integration

test-unit: $(UNIT_BINS)
	@tests/unit/run.sh $(UNIT_BINS)

test-integration: all asan
	@python3 tests/run.py

bench: all
	@bench/run.sh

fuzz:
	@tests/fuzz/run.sh

check-style:
	@scripts/check-style.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
