#!/bin/sh
# make test PG=N (N = 17 or 18): the Debian package and the core suites
# against PostgreSQL N, the same commands as make test on 15 (make deb
# PG=N: only the package, copied into dist/), inside a Debian root file system that
# has that major (Debian 13 for 17, Debian sid for 18), made by mmdebstrap
# under $CHECKOUT_ROOTS (default /var/cache/checkout-roots) when missing and
# kept, so that it does not change under a commit; make roots PG=N makes it
# again on demand.  The source is copied in; the package is built there
# (debian/control made for N), installed with dpkg -i and checked
# (test/package.sh), tools/flashsale built, then pg_regress,
# isolation, pgTAP, the races, the upgrade, the backup round trips and the
# crashes run in a throwaway cluster (test/suites.sh with CHECKOUT_CORE=1),
# the statistics in one with the preload, and an upgrade from 1.1 during a
# sale, with and without the preload (test/online-upgrade.sh).  The cluster add-ons (pooler,
# failover, shards, pg_cron, Drizzle) run on 15.  Ends with one line,
# "N passed, N failed".  Runs as root (chroot, mount).
set -u
cd "$(dirname "$0")/.."
major=$1
roots=${CHECKOUT_ROOTS:-/var/cache/checkout-roots}
root=$roots/pg$major

[ -x "$root/usr/lib/postgresql/$major/bin/pg_config" ] || sh test/root.sh "$major" || exit 1
# a root made before the order events' suites needed PgQ: add it
[ -f "$root/usr/share/postgresql/$major/extension/pgq.control" ] ||
	chroot "$root" sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-$major-pgq3 >/dev/null" ||
	{ echo "root: FAILED installing postgresql-$major-pgq3"; exit 1; }
# test (make test PG=N), deb (make deb PG=N: only the package) or bench
# (make bench PG=N: the benchmark's workloads of BENCH_WORKLOADS, default
# the hot product's, in a throwaway cluster as bench/run.sh starts one)
mode=${2:-test}
[ "$mode" = deb ] && deb_only=1 || deb_only=0

# The source, fresh: what git tracks and what it does not ignore; and 1.1
# as released, for the upgrade during business (test/online-upgrade.sh)
rm -rf "$root/src/checkout"
mkdir -p "$root/src/checkout"
{ git ls-files -z; git ls-files -z --others --exclude-standard; } |
	tar --null -T - -cf - | tar -xf - -C "$root/src/checkout" || exit 1
release=$(sed -n 's/^1\.1 //p' RELEASES)
git archive "$release" >"$root/src/checkout-1.1.tar" ||
	{ echo "online upgrade: FAILED release 1.1 ($release) is not in this clone's history"; exit 1; }

mounted=""
cleanup() {
	for m in $mounted; do umount "$root/$m" 2>/dev/null; done
}
trap cleanup EXIT INT TERM
mount -t proc proc "$root/proc" && mounted="proc" || exit 1
mount -t tmpfs shm "$root/dev/shm" && mounted="dev/shm $mounted" || exit 1

chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
	PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config CHECKOUT_CORE=1 MAJOR="$major" DEB_ONLY=$deb_only \
	MODE="$mode" BENCH_WORKLOADS="${BENCH_WORKLOADS:-hot-1 hot-32 hot-128}" \
	BENCH_RELEASE_WORKLOADS="${BENCH_RELEASE_WORKLOADS:-}" BENCH_CURRENT_ONLY=1 \
	BENCH_SECONDS="${BENCH_SECONDS:-8}" BENCH_ROUNDS="${BENCH_ROUNDS:-3}" \
	BENCH_RESULTS="bench/results/$(date -u +%Y-%m-%d)-pg$major.md" \
	sh -c '
	cd /src/checkout || exit 1
	# the Debian package of this major (debian/control made for it), built as
	# make deb builds it on 15, installed with dpkg -i; and tools/flashsale
	make -s PG_CONFIG=$PG_CONFIG COPT=-Werror all >/dev/null && make -s clean >/dev/null &&
		pg_buildext updatecontrol >/dev/null 2>&1 &&
		dpkg-buildpackage -us -uc -b >/tmp/deb.log 2>&1 &&
		mkdir -p dist && mv ../postgresql-$MAJOR-checkout_*.deb ../checkout-monitoring_*.deb dist/ &&
		{ dpkg -r postgresql-$MAJOR-checkout >/dev/null 2>&1
		  rm -f /usr/share/postgresql/$MAJOR/extension/checkout* /usr/lib/postgresql/$MAJOR/lib/checkout.so
		  dpkg -i dist/postgresql-$MAJOR-checkout_*.deb dist/checkout-monitoring_*.deb >/dev/null; } &&
		make -s -C tools PG_CONFIG=$PG_CONFIG >/dev/null ||
		{ tail -30 /tmp/deb.log; echo "build: FAILED"; exit 1; }
	[ "$DEB_ONLY" = 1 ] && exit 0
	if [ "$MODE" = bench ]; then
		pg_virtualenv -v "$MAJOR" -o fsync=on -o synchronous_commit=on -o wal_level=logical \
			-o max_connections=200 -o shared_buffers=256MB -- sh bench/run-in-cluster.sh
		exit
	fi
	. test/lib.sh
	log=$(mktemp -d)
	sh test/package.sh >"$log/package" 2>&1
	cat "$log/package"
	pg_virtualenv -v "$MAJOR" -o max_connections=300 -o wal_level=logical -- sh test/suites.sh >"$log/main" 2>&1
	rc_main=$?
	quiet_server_log "$log/main"
	for f in regression.diffs output_iso/regression.diffs; do
		[ -s "$f" ] && { echo "--- $f"; cat "$f"; }
	done
	pg_virtualenv -v "$MAJOR" -o shared_preload_libraries=checkout -o max_connections=100 \
		-- sh test/preload/run.sh >"$log/preload" 2>&1
	rc_preload=$?
	quiet_server_log "$log/preload"
	[ -s test/preload/regression.diffs ] && cat test/preload/regression.diffs
	sh test/online-upgrade.sh >"$log/online" 2>&1
	quiet_server_log "$log/online"
	set -- $(count_verdicts "$log/online")
	echo "online upgrade: $1 passed, $2 failed"
	set -- $(count_verdicts "$log/package" "$log/main" "$log/preload" "$log/online")
	passed=$1 failed=$2
	[ "$rc_main" -ne 0 ] || [ "$rc_preload" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
	echo "PostgreSQL $MAJOR: $passed passed, $failed failed"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]'
rc=$?
if [ "$mode" = bench ] && [ "$rc" -eq 0 ]; then
	results="bench/results/$(date -u +%Y-%m-%d)-pg$major.md"
	cp "$root/src/checkout/$results" "$results" && echo "bench: saved $results"
fi
if [ "$deb_only" = 1 ] && [ "$rc" -eq 0 ]; then
	mkdir -p dist && cp "$root"/src/checkout/dist/postgresql-"$major"-checkout_*.deb dist/ &&
		ls dist/postgresql-"$major"-checkout_*.deb
fi
exit "$rc"
