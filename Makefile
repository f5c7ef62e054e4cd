# topup — build. `make` builds bin/topupd; `make check` runs every test;
# `make SAN=1` builds with AddressSanitizer + UndefinedBehaviorSanitizer into build-san/.
CC      ?= cc
PKGS    := libmicrohttpd jansson sqlite3 libsodium
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Isrc -Ibuild/gen $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lpthread -lm

ifeq ($(SAN),1)
B       := build-san
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
B       := build
endif

SRC      := $(sort $(wildcard src/*/*.c))
OBJ      := $(SRC:src/%.c=$(B)/obj/%.o)
MAIN_OBJ := $(B)/obj/main.o
LIB      := $(B)/libtopup.a
EMBED    := $(sort $(wildcard src/store/migrations/*.sql) $(wildcard web/i18n/*.json))
TESTS    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(sort $(wildcard tests/unit/test_*.c)))

.PHONY: all check unit e2e clean demo san
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

build/gen/embedded.c build/gen/embedded.h: build/embed $(EMBED)
	@mkdir -p build/gen
	build/embed build/gen/embedded $(EMBED)

$(B)/obj/embedded.o: build/gen/embedded.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/tests/%: tests/unit/%.c tests/unit/testutil.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS) -lcmocka

unit: $(TESTS)
	@set -e; for t in $(TESTS); do echo "== $$t"; $$t; done

e2e: $(B)/topupd
	TOPUPD=$(abspath $(B)/topupd) /usr/bin/python3 -m pytest -q tests/e2e

check: all unit e2e

san:
	$(MAKE) SAN=1 check

demo: all
	scripts/demo

clean:
	rm -rf build build-san bin
