# topup — build. `make` builds bin/topupd; `make check` runs every test;
# `make SAN=1` builds with AddressSanitizer + UndefinedBehaviorSanitizer into build-san/;
# `make TSAN=1` with ThreadSanitizer into build-tsan/ (`make TSAN=1 tsan-check`).
CC      ?= cc
PKGS    := gnutls jansson sqlite3 libsodium
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Isrc -Ibuild/gen $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lpthread -lm

ifeq ($(SAN),1)
B       := build-san
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else ifeq ($(TSAN),1)
B       := build-tsan
CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
else
B       := build
endif

# The sanitizers keep their shadow memory at fixed addresses, which a kernel
# that randomises more of the address space (vm.mmap_rnd_bits = 32) may have
# given to something else: ThreadSanitizer then stops at once ("unexpected
# memory mapping"), AddressSanitizer crashes now and then. Where the
# personality call is allowed (a container's seccomp profile may refuse it),
# sanitized tests and fuzzers run without address randomisation (SAN_RUN).
NO_ASLR := $(shell setarch $$(uname -m) -R true 2>/dev/null && echo setarch $$(uname -m) -R)
SAN_RUN := $(if $(filter 1,$(SAN) $(TSAN)),$(NO_ASLR))

SRC      := $(sort $(wildcard src/*/*.c))
OBJ      := $(SRC:src/%.c=$(B)/obj/%.o)
MAIN_OBJ := $(B)/obj/main.o
LIB      := $(B)/libtopup.a
EMBED    := $(sort $(wildcard src/store/migrations/*.sql) $(wildcard web/i18n/*.json))
TESTS    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(sort $(wildcard tests/unit/test_*.c)))

.PHONY: all check unit e2e clean demo san tsan-check valgrind crashloop FORCE
all: $(B)/topupd bin/topupd

bin/topupd: $(B)/topupd
	@mkdir -p bin && cp $< $@

$(B)/topupd: $(MAIN_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LIB): $(OBJ) $(B)/obj/embedded.o
	@rm -f $@ && ar rcs $@ $^

$(B)/obj/%.o: src/%.c build/gen/embedded.h $(wildcard src/*/*.h src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/obj/main.o: src/main.c $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Migrations and the i18n message catalogues are compiled into the binary.
build/embed: tools/embed.c
	@mkdir -p build
	$(CC) -O2 -Wall -Werror -o $@ $<

# The list of files is a prerequisite as well, kept in a file rewritten only
# when the list changes: a file removed or renamed leaves every timestamp as
# it was, and the table would otherwise keep it.
build/gen/embedded.c build/gen/embedded.h: build/embed $(EMBED) build/gen/embed.list
	@mkdir -p build/gen
	build/embed build/gen/embedded $(EMBED)

build/gen/embed.list: FORCE
	@mkdir -p build/gen
	@echo '$(EMBED)' | cmp -s - $@ || echo '$(EMBED)' >$@
FORCE:

$(B)/obj/embedded.o: build/gen/embedded.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/tests/%: tests/unit/%.c tests/unit/testutil.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS) -lcmocka

unit: $(TESTS)
	@set -e; for t in $(TESTS); do echo "== $$t"; $(SAN_RUN) $$t; done

# The power-cut model (tests/powercut/powercut.c) that tests/e2e/test_powercut.py
# preloads: built without sanitizers (under SAN=1 the test preloads the ASan
# runtime first, as ASan requires).
POWERCUT := build/tests/powercut.so
$(POWERCUT): tests/powercut/powercut.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -fPIC -shared -o $@ $< -lpthread -ldl

e2e: $(B)/topupd $(POWERCUT)
	TOPUPD=$(abspath $(B)/topupd) POWERCUT=$(abspath $(POWERCUT)) $(SAN_RUN) /usr/bin/python3 -m pytest -q tests/e2e

check: all unit e2e

# The unit tests under valgrind memcheck (no definite or indirect leak, no error).
valgrind: $(TESTS)
	@set -e; for t in $(TESTS); do echo "== valgrind $$t"; \
	  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect $$t; done

# The long crash loop of SECURITY.md T4 (CI runs a short one inside `make e2e`).
crashloop: $(B)/topupd
	CRASHLOOP_KILLS=$${CRASHLOOP_KILLS:-60} TOPUPD=$(abspath $(B)/topupd) \
	  /usr/bin/python3 -m pytest -q -s tests/e2e/test_crashloop.py

san:
	$(MAKE) SAN=1 check

# ThreadSanitizer (with TSAN=1): the unit tests, and the end-to-end tests where
# threads meet (the engine's writer, syncer and checkpointer, the HTTP workers,
# the slow thread, sliced imports), each report failing its test. The tests
# that time the server under overload are left out: under TSan's slowdown
# they measure TSan.
TSAN_E2E := test_races.py test_idempotency.py test_topups.py test_provisioning.py test_crash.py \
            test_bundles.py test_lifecycle.py test_receipts.py test_metrics.py test_faults.py \
            test_fault_sweep.py test_http.py test_backup.py
# Where ThreadSanitizer cannot start at all (its shadow refused, and address
# randomisation cannot be turned off: NO_ASLR), the step says so and is
# skipped: that is the machine's limit, not a finding.
TSAN_NO_SHADOW := unexpected memory mapping

tsan-check: $(B)/topupd $(TESTS)
	@if out=$$($(NO_ASLR) $(B)/tests/test_err 2>&1); then :; \
	 elif printf '%s' "$$out" | grep -q "$(TSAN_NO_SHADOW)"; then \
	   echo "tsan-check: SKIPPED: ThreadSanitizer cannot start here ($(TSAN_NO_SHADOW);" \
	        "vm.mmap_rnd_bits=$$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null), and address randomisation" \
	        "cannot be turned off); 28 or lower lets it run"; exit 0; fi; \
	 set -e; for t in $(TESTS); do echo "== tsan $$t"; TSAN_OPTIONS=halt_on_error=1:exitcode=66 $(NO_ASLR) $$t; done; \
	 echo "TSAN_OPTIONS=halt_on_error=0 pytest $(TSAN_E2E)"; \
	 TSAN_OPTIONS=halt_on_error=0 TOPUPD=$(abspath $(B)/topupd) $(NO_ASLR) /usr/bin/python3 -m pytest -q \
	   $(addprefix tests/e2e/,$(TSAN_E2E))

demo: all
	scripts/demo

clean:
	rm -rf build build-san build-tsan bin

# ---- fuzzing (libFuzzer; see tests/fuzz/README.md) ---------------------------
# `make fuzz-smoke`: build, replay tests/fuzz/regressions, fuzz each target 30 s
# (FUZZ_SMOKE_SECONDS; CI's whole suite stays near 11 minutes with it).
# `make fuzz FUZZ_SECONDS=3600`: the long run. Everything goes to build-fuzz/.
# The whole project (src/*/*.c but main.c) is built with clang, ASan, UBSan and
# libFuzzer's coverage; each tests/fuzz/fuzz_<name>.c links into build-fuzz/fuzz_<name>.
FUZZ_CC      ?= clang-14
FUZZ_B       := build-fuzz
FUZZ_SECONDS ?= 3600
FUZZ_SMOKE_SECONDS ?= 30
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c17 -D_GNU_SOURCE -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
                -Wall -Wextra -Wno-unused-parameter -Isrc -Ibuild/gen $(shell pkg-config --cflags $(PKGS))
FUZZ_LDFLAGS := $(FUZZ_SAN) -fsanitize=fuzzer
FUZZ_LDLIBS  := $(shell pkg-config --libs $(PKGS)) -lpthread -lm
FUZZ_OBJ     := $(SRC:src/%.c=$(FUZZ_B)/obj/%.o) $(FUZZ_B)/obj/embedded.o
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_B)/%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-clean
fuzz-build: $(FUZZ_TARGETS)

$(FUZZ_B)/obj/%.o: src/%.c build/gen/embedded.h $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_B)/obj/embedded.o: build/gen/embedded.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_B)/libtopup.a: $(FUZZ_OBJ)
	@rm -f $@ && ar rcs $@ $^

$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_B)/libtopup.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror -Itests/fuzz -o $@ $< $(FUZZ_B)/libtopup.a $(FUZZ_LDFLAGS) $(FUZZ_LDLIBS)

# tests/fuzz/run installs clang-14 and libclang-rt-14-dev if missing, then builds.
fuzz-smoke:
	$(NO_ASLR) tests/fuzz/run $(FUZZ_SMOKE_SECONDS)

fuzz:
	$(NO_ASLR) tests/fuzz/run $(FUZZ_SECONDS)

fuzz-clean:
	rm -rf $(FUZZ_B)

# Benchmarks, not part of `make check` (bench/README.md): `make bench` runs them all
# (~10-25 min) and writes bench/results/latest.json; `make bench-smoke` runs each piece
# for ~2 s at tiny scale, without PostgreSQL.
.PHONY: bench bench-smoke
bench:
	bench/run
bench-smoke:
	bench/run --smoke
