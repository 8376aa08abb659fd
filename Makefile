# checkout: a PostgreSQL extension (PGXS) for race-free e-commerce checkout.
#
#   make test   install what is missing, build, install, and run every test
#               (pg_regress, isolation, pgTAP, flash-sale races, statistics)
#               in throwaway clusters; ends with "N passed, N failed"
#   make demo   the flash-sale demo (see README.md)
#   make bench  shop_checkout() against the flows it replaces (bench/)
#
# The usual PGXS targets (all, install, installcheck, clean) work against an
# installed server as for any extension.

EXTENSION = checkout
MODULE_big = checkout
OBJS = checkout.o slots.o statements.o stats.o
DATA = $(wildcard checkout--*.sql)
PGFILEDESC = "checkout - race-free e-commerce checkout"

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))

PG_CPPFLAGS = -Wall -Werror
EXTRA_CLEAN = results regression.diffs regression.out output_iso tools/flashsale

# PGXS comes with postgresql-server-dev-15, which "make test" installs: until
# then only the targets below that install it are usable.
PG_CONFIG ?= pg_config
PGXS := $(wildcard $(shell $(PG_CONFIG) --pgxs 2>/dev/null))
ifneq ($(PGXS),)
include $(PGXS)
endif

.PHONY: deps installed test test-run demo bench

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

# Build and install, after installing what is missing
installed: deps
	@$(MAKE) -s --no-print-directory all
	@sh test/as-root.sh $(MAKE) -s --no-print-directory install >/dev/null

# Everything, from a fresh machine, ending in one "N passed, N failed" line
test: installed
	@sh test/run-all.sh

# The flash sale, from a fresh machine: BUYERS buyers race for STOCK items
# of each of PRODUCTS products, LINES lines per cart, each product's stock
# split into SLOTS stock slots (0: none)
BUYERS ?= 33
STOCK ?= 20
LINES ?= 1
PRODUCTS ?= $(LINES)
SLOTS ?= 0
DEMO_CONNECTIONS = $(shell n=$(BUYERS); [ $$n -gt 500 ] && n=500; echo $$((n + 20)))
demo: installed
	@BUYERS=$(BUYERS) STOCK=$(STOCK) LINES=$(LINES) PRODUCTS=$(PRODUCTS) SLOTS=$(SLOTS) \
		pg_virtualenv -o max_connections=$(DEMO_CONNECTIONS) -- sh test/demo.sh

# shop_checkout() against the flows it replaces, durable commit (bench/)
bench: installed
	@sh bench/run.sh

# The suites that need no preload, against the server of the PG* variables
test-run:
	@sh test/suites.sh
