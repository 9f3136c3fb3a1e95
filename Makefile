# leadflow build. `make` builds everything into build/; `make SANITIZE=1` builds an
# ASan+UBSan variant into build/san/; `make WERROR=1` turns warnings into errors (CI).
# `make run` and `make test` are the two commands of the README; `make bench` measures.

SANITIZE ?= 0
WERROR   ?= 0
PKGS     := libzmq libpq jansson hiredis libmicrohttpd libcurl icu-uc icu-i18n libzip expat zlib
# libphonenumber (C++, no pkg-config file) is used from C through common/phonenumber.cc;
# its Debian version is compiled in so that the docs and --help can say which one judges.
PN_VERSION := $(shell dpkg-query -W -f='$${Version}' libphonenumber-dev 2>/dev/null)

ifeq ($(SANITIZE),1)
BUILD    ?= build/san
OPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
BUILD    ?= build
OPT      := -O2 -g -D_FORTIFY_SOURCE=2
endif

CC       ?= cc
CXX      ?= g++
WARN     := -Wall -Wextra -Wwrite-strings -Wshadow -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN     += -Werror
endif
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -Wstrict-prototypes \
            -fstack-protector-strong -pthread \
            -Icommon/include $(shell pkg-config --cflags $(PKGS))
CXXFLAGS += -std=c++17 $(OPT) $(WARN) -fstack-protector-strong -pthread -Icommon/include \
            -DLF_PHONENUMBER_VERSION='"$(PN_VERSION)"'
# Everything links with the C++ driver (libphonenumber needs libstdc++); --as-needed
# keeps the C++, ICU and zip libraries out of the services that do not use them (their
# idle memory is measured against 16 MiB). libphonenumber is linked statically with
# protobuf-lite: its shared library pulls in the full libprotobuf, whose start-up costs
# 1.7 MiB of resident memory (intake idle 15.3 MiB that way, 13.6 MiB this way).
LDFLAGS  += -Wl,--as-needed
LDLIBS   := -Wl,-Bstatic -lphonenumber -lprotobuf-lite -Wl,-Bdynamic -labsl_hash \
            -labsl_raw_hash_set -labsl_strings -labsl_throw_delegate $(shell pkg-config --libs $(PKGS)) -lunistring -lcsv -lcrypto \
            -lm -pthread
ifeq ($(SANITIZE),1)
LDFLAGS  += -fsanitize=address,undefined
endif

SERVICES := intake router scheduler analytics
LIB_SRC  := $(wildcard common/*.c) $(wildcard common/*.cc)
LIB_OBJ  := $(patsubst %.cc,$(BUILD)/obj/%.o,$(LIB_SRC:%.c=$(BUILD)/obj/%.o))
LIB      := $(BUILD)/libleadflow.a

# Each service is a main.c plus modules; the modules also go into an archive so that
# unit tests can link them without main().
define service_rules
$(1)_SRC  := $$(filter-out services/$(1)/main.c,$$(wildcard services/$(1)/*.c))
$(1)_OBJ  := $$($(1)_SRC:%.c=$(BUILD)/obj/%.o)
$(1)_LIB  := $(BUILD)/lib$(1).a
$$($(1)_LIB): $$($(1)_OBJ)
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^
$(BUILD)/bin/leadflow-$(1): $(BUILD)/obj/services/$(1)/main.o $$($(1)_LIB) $(LIB)
	@mkdir -p $$(@D)
	$$(CXX) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rules,$(s))))

SVC_BINS  := $(SERVICES:%=$(BUILD)/bin/leadflow-%)
SVC_LIBS  := $(SERVICES:%=$(BUILD)/lib%.a)
TOOL_SRC  := $(wildcard tools/*.c)
TOOL_BINS := $(TOOL_SRC:tools/%.c=$(BUILD)/bin/leadflow-%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BINS:= $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
INTEG_BINS:= $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/integration/%)
SUPPORT_SRC := $(wildcard tests/support/*.c)
SUPPORT_OBJ := $(SUPPORT_SRC:%.c=$(BUILD)/obj/%.o)
# LD_PRELOAD shims that tests load into a service (tests/preload/*.c; no sanitizers).
PRELOAD_SRC := $(wildcard tests/preload/*.c)
PRELOAD_SOS := $(PRELOAD_SRC:tests/preload/%.c=$(BUILD)/tests/preload/%.so)

.PHONY: all bins tests benches bench run test unit integration fmt fmt-check clean compose-check
all: bins tests

bins: $(SVC_BINS) $(TOOL_BINS)
tests: $(UNIT_BINS) $(INTEG_BINS) $(PRELOAD_SOS)
benches: $(BENCH_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/obj/%.o: %.cc
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/leadflow-%: $(BUILD)/obj/tools/%.o $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(SUPPORT_OBJ) $(SVC_LIBS) $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(SUPPORT_OBJ) $(SVC_LIBS) $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

$(BUILD)/tests/preload/%.so: tests/preload/%.c
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -O2 -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -o $@ $< -ldl

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(SVC_LIBS) $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

run:
	@bash scripts/run.sh

test:
	@bash scripts/test.sh

# Every benchmark (release build, the whole stack on private PostgreSQL and Redis),
# then the results table in docs/benchmarks.md. Never part of `make test`.
# BENCH_QUICK=1: one short run each (table in build/bench/results.md); BENCH_ONLY=...
bench:
	@bash bench/all.sh

compose-check:
	LEADFLOW_ADMIN_KEY=$${LEADFLOW_ADMIN_KEY:-compose-check} docker-compose -f docker-compose.yml config -q

fmt:
	clang-format -i $$(git ls-files '*.c' '*.cc' '*.h')

fmt-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.cc' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
