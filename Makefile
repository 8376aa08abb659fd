# checkout: a PostgreSQL extension (PGXS) for race-free e-commerce checkout.
#
#   make test   install what is missing, build, install, and run every test
#               (pg_regress, isolation, pgTAP) in a throwaway cluster
#   make demo   the flash-sale demo (see README.md)
#
# The usual PGXS targets (all, install, installcheck, clean) work against an
# installed server as for any extension.

EXTENSION = checkout
MODULE_big = checkout
OBJS = checkout.o stats.o
DATA = checkout--1.0.sql
PGFILEDESC = "checkout - race-free e-commerce checkout"

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
TAP_SQL = $(sort $(wildcard test/*.sql))

PG_CPPFLAGS = -Wall -Werror
EXTRA_CLEAN = results regression.diffs regression.out output_iso tools/flashsale

# PGXS comes with postgresql-server-dev-15, which "make test" installs: until
# then only the targets below that install it are usable.
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

.PHONY: deps test test-run demo bench

# The flash-sale load tool (libpq)
FLASHSALE = tools/flashsale
all: $(FLASHSALE)
$(FLASHSALE): tools/flashsale.c
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter -Werror \
		-I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq -lpthread

# Install the Debian packages the build and the tests need (when missing)
deps:
	@sh test/install-deps.sh

# Everything, from a fresh machine, ending in one "N passed, N failed" line
test: deps
	@$(MAKE) -s --no-print-directory all
	@sh test/as-root.sh $(MAKE) -s --no-print-directory install >/dev/null
	@sh test/run-all.sh

# The flash sale, from a fresh machine: BUYERS buyers race for STOCK items
# of each of PRODUCTS products, LINES lines per cart
BUYERS ?= 33
STOCK ?= 20
LINES ?= 1
PRODUCTS ?= $(LINES)
DEMO_CONNECTIONS = $(shell n=$(BUYERS); [ $$n -gt 500 ] && n=500; echo $$((n + 20)))
demo: deps
	@$(MAKE) -s --no-print-directory all
	@sh test/as-root.sh $(MAKE) -s --no-print-directory install >/dev/null
	@BUYERS=$(BUYERS) STOCK=$(STOCK) LINES=$(LINES) PRODUCTS=$(PRODUCTS) \
		pg_virtualenv -o max_connections=$(DEMO_CONNECTIONS) -- sh test/demo.sh

# shop_checkout() against the flows it replaces, durable commit (bench/)
bench: deps
	@$(MAKE) -s --no-print-directory all
	@sh test/as-root.sh $(MAKE) -s --no-print-directory install >/dev/null
	@sh bench/run.sh

# The suites that need no preload, against the server of the PG* variables
test-run:
	@sh test/suites.sh
