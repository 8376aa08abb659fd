# checkout: a PostgreSQL extension (PGXS) for race-free e-commerce checkout.
#
#   make setup  install the Debian packages the build and the tests need
#   make test   setup, build, install, and run every suite in throwaway
#               clusters; ends with "N passed, N failed" (PG=17 or PG=18:
#               the core suites against that major, test/major.sh)
#   make demo   setup, build, install, and run the flash-sale demo
#               (POOLER=1 through pgbouncer, FAILOVER=1 with a failover)
#   make test-failover  failover mid-sale with pg_auto_failover
#   make test-shards    the shop sharded by customer with PL/Proxy
#   make bench  setup, build, install, and benchmark (bench/README.md)
#   make deb    the Debian package, built as Debian builds PostgreSQL
#               extensions (debian/, pg_buildext), into dist/
#   make indent format the C as PostgreSQL's pgindent does
#
# The usual PGXS targets (all, install, installcheck, clean) work against an
# installed server as for any extension; install and uninstall also install
# and remove the sharded shop's extensions (sharding/, with a Makefile of its
# own).  Warnings are errors only when asked for: make COPT=-Werror (as CI
# does).  tools/ has its own Makefile.

EXTENSION = checkout
MODULE_big = checkout
OBJS = bundles.o checkout.o checks.o events.o features.o guard.o locations.o lockstep.o placeorder.o preorders.o refusal.o rowchecks.o slots.o statements.o stats.o stock.o voucher.o
DATA = $(notdir $(wildcard $(srcdir)/checkout--*.sql))
PGFILEDESC = "checkout - race-free e-commerce checkout"

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))

EXTRA_CLEAN = results regression.diffs regression.out output_iso \
	test/preload/results test/preload/regression.diffs test/preload/regression.out

# The PostgreSQL major of make test and make deb (15: this machine's)
PG ?= 15

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifeq ($(PGXS),)
# No pg_config yet (a fresh machine): where postgresql-server-dev-15 puts it
PGXS := /usr/lib/postgresql/15/lib/pgxs/src/makefiles/pgxs.mk
endif
include $(PGXS)

# Every C file includes it (PGXS does not track header dependencies)
$(OBJS): bundles.h call.h checkout.h compat.h events.h locations.h preorders.h slots.h statements.h voucher.h

# The sharded shop's extensions are installed with checkout (one package)
install: install-sharding
uninstall: uninstall-sharding
install-sharding uninstall-sharding:
	$(MAKE) -C $(srcdir)/sharding $(@:-sharding=) srcdir=$(abspath $(srcdir)/sharding) PG_CONFIG=$(PG_CONFIG)

# make install and make uninstall say which files of checkout in the
# server's extension directory they leave: scripts of no version of this
# tree (an older make install's, a renamed version's), which the server
# would still offer and the package check names
STRAY_FILES = $(filter-out $(addprefix $(datadir)/$(datamoduledir)/,$(DATA)),\
	$(wildcard $(datadir)/$(datamoduledir)/checkout--*.sql))
install: stray-files
uninstall: stray-files
stray-files:
	@for f in $(STRAY_FILES); do \
		echo "checkout: $$f is no script of this version and stays: remove it (rm $$f) unless another install needs it" >&2; \
	done

# On a fresh machine PGXS is not there until the setup step installs it:
# make setup, test, demo and bench run that step (and make reads this file
# again); any other target says what is missing
$(PGXS):
	@case " $(MAKECMDGOALS) " in \
	*" setup "*|*" test "*|*" demo "*|*" bench "*|*" storefront "*|*" load "*) sh test/setup.sh ;; \
	*) echo "$@ is missing: install postgresql-server-dev-15, or run make setup" >&2; exit 1 ;; \
	esac

.PHONY: roots indent install-sharding uninstall-sharding stray-files setup installed packaged deb test test-run test-failover test-shards demo bench bench-profile storefront load clean-tools

setup:
	@sh test/setup.sh

# Format the C as PostgreSQL's pgindent does (tools/pgindent, pg_bsd_indent
# from make setup)
indent:
	@tools/pgindent $(wildcard $(srcdir)/*.c $(srcdir)/*.h $(srcdir)/tools/*.c)

# Build and install the extension, and build tools/flashsale
installed: setup
	@$(MAKE) -s --no-print-directory all
	@$(MAKE) -s --no-print-directory -C tools
	@sh test/as-root.sh $(MAKE) -s --no-print-directory install >/dev/null

# The Debian package (debian/): dpkg-buildpackage writes it beside the
# source tree; it is moved into dist/.  PG=17 or PG=18: built inside that
# major's root (test/major.sh), copied into dist/
DEB_VERSION = $(shell dpkg-parsechangelog -S Version 2>/dev/null)
ifneq ($(PG),15)
deb:
	@sh test/as-root.sh sh test/major.sh $(PG) deb
else
deb: setup
	dpkg-buildpackage -us -uc -b
	mkdir -p dist
	mv ../postgresql-*-checkout*_$(DEB_VERSION)_*.deb ../checkout-monitoring_$(DEB_VERSION)_all.deb \
		../checkout_$(DEB_VERSION)_*.buildinfo \
		../checkout_$(DEB_VERSION)_*.changes dist/
endif

# The package built and installed (dpkg -i), and tools/flashsale built
packaged: deb
	@$(MAKE) -s --no-print-directory -C tools
	@sh test/as-root.sh dpkg -i dist/postgresql-15-checkout_$(DEB_VERSION)_*.deb \
		dist/checkout-monitoring_$(DEB_VERSION)_all.deb >/dev/null

# Everything, against the installed package, ending in one
# "N passed, N failed" line.  PG=17 or PG=18: the core suites against that
# major, in a Debian root file system kept under /var/cache/checkout-roots
# (test/major.sh; made when missing, again with make roots PG=N)
ifeq ($(PG),15)
test: packaged
	@sh test/run-all.sh
else
test:
	@sh test/as-root.sh sh test/major.sh $(PG)
endif

roots:
	@sh test/as-root.sh sh test/root.sh $(PG)

# The suites that need no preload, against the server of the PG* variables
test-run:
	@sh test/suites.sh

# Failover mid-sale with pg_auto_failover: a monitor, a primary and two
# synchronous standbys as local clusters (test/failover.sh)
test-failover: installed
	@sh test/failover.sh

# The shop sharded by customer with PL/Proxy: a proxy and 4 shard clusters
# (sharding/test/shards.sh, docs/scale-out.md)
test-shards: installed
	@sh sharding/test/shards.sh

# The flash sale: BUYERS buyers race for STOCK items of each of PRODUCTS
# products, LINES lines per cart, each product's stock split into SLOTS
# stock slots (0: none); POOLER=1 sends them through pgbouncer (transaction
# pooling, POOL server connections); SHARDS=N runs it on a shop sharded
# over N shard clusters behind a PL/Proxy proxy, the buyers SPREAD (one,
# even, skewed) over the shards
BUYERS ?= 33
STOCK ?= 20
LINES ?= 1
PRODUCTS ?= $(LINES)
SLOTS ?= 0
POOLER ?= 0
POOL ?= 8
DEMO_CONNECTIONS = $(shell n=$(BUYERS); [ $$n -gt 500 ] && n=500; [ "$(POOLER)" = 1 ] && n=$(POOL); echo $$((n + 20)))
FAILOVER ?= 0
SHARDS ?= 0
SPREAD ?= skewed
demo: installed
ifeq ($(FAILOVER),1)
	@sh test/failover.sh
else ifneq ($(SHARDS),0)
	@SHARDS=$(SHARDS) BUYERS=$(BUYERS) STOCK=$(STOCK) SPREAD=$(SPREAD) sh sharding/test/demo.sh
else
	@BUYERS=$(BUYERS) STOCK=$(STOCK) LINES=$(LINES) PRODUCTS=$(PRODUCTS) SLOTS=$(SLOTS) \
		POOLER=$(POOLER) POOL=$(POOL) \
		pg_virtualenv -o max_connections=$(DEMO_CONNECTIONS) -- sh test/demo.sh
endif

# The storefront (examples/storefront): the page and its API on
# 127.0.0.1:$(PORT) over a throwaway cluster with the demo shop, until
# Ctrl-C; DATABASE_URL=... serves an existing shop instead
PORT ?= 3000
storefront: installed
	@PORT=$(PORT) STOCK=$(STOCK) sh examples/storefront/start.sh

# The storefront under HTTP load (autocannon): 2,000 buyers on 500 in
# stock, direct and through pgbouncer, beside shop_checkout() called
# directly; writes bench/results/DATE-load.md and its chart
load: installed
	@pg_virtualenv -o max_connections=300 -- sh bench/load.sh

# shop_checkout() against the flows it replaces, durable commit (bench/).
# PG=17 or PG=18: the hot product's workloads (or BENCH_WORKLOADS) against
# that major, in its root (test/major.sh), saved as bench/results/DATE-pgN.md
ifeq ($(PG),15)
bench: installed
	@sh bench/run.sh

# Where a one-line checkout's time goes, per release and the current code
# (pg_stat_statements, track = all; PROFILE_PERF=1 adds perf's stacks)
bench-profile: installed
	@sh bench/build-releases.sh
	@pg_virtualenv -o fsync=on -o shared_preload_libraries=pg_stat_statements \
		-o pg_stat_statements.track=all -- sh bench/profile.sh
else
bench:
	@sh test/as-root.sh env BENCH_WORKLOADS="$(BENCH_WORKLOADS)" BENCH_SECONDS="$(BENCH_SECONDS)" \
		BENCH_ROUNDS="$(BENCH_ROUNDS)" BENCH_RELEASE_WORKLOADS="$(BENCH_RELEASE_WORKLOADS)" \
		sh test/major.sh $(PG) bench
endif

clean: clean-tools
clean-tools:
	$(MAKE) -C tools clean
	$(MAKE) -C sharding clean
