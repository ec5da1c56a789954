# Ephemera - build, run and test.
#
#   make            build bin/ (release) 
#   make run        the whole stack on this machine, in the foreground
#   make test       unit + integration tests (real MariaDB, nginx, Docker)
#   make fuzz       each libFuzzer harness for a bounded time, under ASan
#   make check-style  clang-format must agree with every C file

CC      ?= cc
PKGS    := libconfig json-c libcurl openssl libmariadb yaml-0.1 libxml-2.0 zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl and libxml2 are loaded by the workers when first called
# (workers/lazylib.c), so nothing links them: see bench/footprint.
LINK_PKGS  := $(filter-out libcurl libxml-2.0,$(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(LINK_PKGS) 2>/dev/null) -lfcgi -pthread
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

.PHONY: all asan run test test-unit test-integration test-cloud test-cluster bench fuzz sigv4-suite \
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
# The ops command reaches Cloudflare through the workers' client.
$(eval $(call program,ephemera,$(CLI_SRC) $(WORK_CORE)))

# Each unit test links the library and the cores of both programs.
build/asan/tests/unit/%: build/asan/tests/unit/%.o \
		$(call objs,asan,$(LIB_SRC) $(FCGI_CORE) $(WORK_CORE))
	$(CC) $(ASAN) -o $@ $^ $(PKG_LIBS)

UNIT_BINS := $(patsubst %.c,build/asan/%,$(UNIT_SRC))

# Test tools (drivers the integration tests run) link the workers' core.
build/asan/tests/tools/%: build/asan/tests/tools/%.o \
		$(call objs,asan,$(LIB_SRC) $(WORK_CORE))
	$(CC) $(ASAN) -o $@ $^ $(PKG_LIBS)

# The same tools in the release build, for benches.
build/release/tests/tools/%: build/release/tests/tools/%.o \
		$(call objs,release,$(LIB_SRC) $(WORK_CORE))
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

# bench/footprint's floor: the workers' libraries, all of them linked as
# the workers link them, and a fork; nothing of ours.
build/release/bench/footprint/floor: build/release/bench/footprint/floor.o \
		Makefile
	$(CC) $(CFLAGS) -o $@ $< -Wl,--no-as-needed \
		$(filter-out -lfcgi,$(PKG_LIBS))

deps:
	@scripts/deps.sh

# PORT=9000 (on the command line or in the environment) serves there.
run:
	@PORT="$(PORT)" scripts/run.sh

test: test-unit sigv4-suite test-integration

# AWS's SigV4 test suite (or any directory in its layout: DIR=...).
DIR ?= tests/fixtures/aws/sigv4
sigv4-suite: build/asan/tests/tools/sigv4_suite
	@build/asan/tests/tools/sigv4_suite $(DIR)

test-unit: $(UNIT_BINS)
	@tests/unit/run.sh $(UNIT_BINS)

test-integration: all asan
	@python3 tests/run.py

# The ec2 path with instances that run (tests/harness/instances.py); the
# first run builds the hosts' Debian image (tests/cloud/host-image.sh).
test-cloud: all asan
	@python3 tests/run.py --suite cloud

test: test-cloud

# Worker hosts in network namespaces against one database host
# (tests/harness/cluster.py): drains, a host cut off, a SIGKILL soak.
test-cluster: all asan
	@python3 tests/run.py --suite cluster

test: test-cluster

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

# ==== Installation and deployment (issue 13: infra/, packer/, dist/) ========
# Kept in one block; see docs/deploy.md. `make install` honours PREFIX and
# DESTDIR (and the directories below); it never overwrites an existing
# ephemera.conf, creates no user (dist/sysusers.conf does, at boot or with
# systemd-sysusers) and starts nothing.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
LIBEXECDIR  ?= $(PREFIX)/libexec/ephemera
DATADIR     ?= $(PREFIX)/share/ephemera
SYSCONFDIR  ?= /etc
STATEDIR    ?= /var/lib/ephemera
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(SYSCONFDIR)/sysusers.d
NGINX       ?= /usr/sbin/nginx

UNITS := $(wildcard dist/systemd/*.service dist/systemd/*.target)

# $(call subst_paths,SRC,DEST,MODE): installs SRC with @DIR@ placeholders
# filled in.
subst_paths = install -D -m $(3) /dev/null $(2) && sed \
	-e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SBINDIR@|$(SBINDIR)|g' \
	-e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@STATEDIR@|$(STATEDIR)|g' \
	-e 's|@NGINX@|$(NGINX)|g' $(1) >$(2)

.PHONY: install docker-userns test-infra setup tf-init tf-plan tf-apply \
	tf-destroy ami-build deploy destroy test-e2e

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
		$(DESTDIR)$(LIBEXECDIR)/host $(DESTDIR)$(DATADIR)/migrations \
		$(DESTDIR)$(DATADIR)/web $(DESTDIR)$(DATADIR)/nginx \
		$(DESTDIR)$(UNITDIR)
	install -m 755 bin/ephemera $(DESTDIR)$(BINDIR)/ephemera
	install -m 755 bin/ephemera-fcgi bin/ephemera-workers $(DESTDIR)$(SBINDIR)/
	install -m 755 host/* $(DESTDIR)$(LIBEXECDIR)/host/
	install -m 644 sql/migrations/*.sql $(DESTDIR)$(DATADIR)/migrations/
	cp -R web/. $(DESTDIR)$(DATADIR)/web/
	install -m 644 nginx/site.conf nginx/nginx.conf.tmpl $(DESTDIR)$(DATADIR)/nginx/
	install -m 644 config/mariadb.cnf $(DESTDIR)$(DATADIR)/mariadb.cnf
	install -m 644 README.md $(DESTDIR)$(DATADIR)/README.md
	$(call subst_paths,dist/ephemera-nginx-conf,$(DESTDIR)$(LIBEXECDIR)/ephemera-nginx-conf,755)
	$(foreach u,$(UNITS),$(call subst_paths,$(u),$(DESTDIR)$(UNITDIR)/$(notdir $(u)),644) &&) true
	install -D -m 644 dist/systemd/ephemera-workers.service.d/local-docker.conf \
		$(DESTDIR)$(DATADIR)/systemd/ephemera-workers.service.d/local-docker.conf
	install -D -m 644 dist/sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/ephemera.conf
	install -d -m 755 $(DESTDIR)$(SYSCONFDIR)/ephemera
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/ephemera/ephemera.conf ]; then \
		echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/ephemera/ephemera.conf"; \
	else \
		$(call subst_paths,dist/ephemera.conf.in,$(DESTDIR)$(SYSCONFDIR)/ephemera/ephemera.conf,644); \
	fi
	@[ -e $(DESTDIR)$(SYSCONFDIR)/ephemera/github.conf ] || \
		install -m 644 dist/github.conf $(DESTDIR)$(SYSCONFDIR)/ephemera/github.conf
	@# A preview host's engine should remap root (README "Defence in
	@# depth"): offered, never done behind the admin's back.
	@DOCKER_DAEMON_JSON=$(DESTDIR)/etc/docker/daemon.json \
		scripts/docker-userns.sh --check || true

# Docker's userns-remap on this host (see scripts/docker-userns.sh).
docker-userns:
	@scripts/docker-userns.sh

# cli/manifest.c's unit test links it with the library (the pattern rule
# above links the two programs' cores, not the CLI's).
build/asan/tests/unit/test_manifest: build/asan/tests/unit/test_manifest.o \
		$(call objs,asan,$(LIB_SRC) cli/manifest.c)
	$(CC) $(ASAN) -o $@ $^ $(PKG_LIBS)

# Checks of infra/ and packer/ that need neither providers nor packer.
test-infra:
	@python3 tests/infra/check.py

test: test-infra

# The cloud deployment, in the order docs/deploy.md follows. Settings come
# from infra/deploy.env and infra/*/terraform.tfvars (make setup makes
# them from their examples).
setup:
	@scripts/setup.sh

tf-init tf-plan tf-apply tf-destroy:
	@scripts/tf.sh $(patsubst tf-%,%,$@)

ami-build:
	@command -v packer >/dev/null || { echo "ami-build: packer is not installed (make setup)"; exit 1; }
	@. ./infra/deploy.env && packer init packer/environment.pkr.hcl && \
		AWS_PROFILE=$$AWS_PROFILE packer build -var "region=$$AWS_REGION" \
		-var "instance=$$INSTANCE" packer/environment.pkr.hcl

# The control plane onto its host (REF=branch|tag|commit, default
# SOURCE_REF): configuration and secrets through Parameter Store, the
# install through SSM.
deploy:
	@REF=$(REF) scripts/deploy.sh

destroy:
	@scripts/destroy.sh

# The full PR lifecycle against real GitHub, AWS and Cloudflare; without
# their credentials it says what it needs and is skipped (exit 0).
test-e2e:
	@python3 tests/e2e/lifecycle.py
