#!/bin/sh
# make bench, inside the throwaway cluster of bench/run.sh: every release of
# RELEASES (built beside the current code by bench/build-releases.sh, as
# extensions checkout_rXY) and the current code, side by side on the same
# workloads, so that a change that slows a common path shows in every run.
# Each version has a database of its own with the data of bench/setup.sql.
#
#   soldout-32  32 clients, every cart holds the sold-out product: the
#               rejection path (fail fast), through bench.try_shop_checkout
#   cpu-1line   1 client, synchronous_commit off: the CPU cost of a
#               one-line checkout of one of 1,000 products
#   cpu-50line  the same with a 50-line cart
#   hot-1       1 client, one hot product (its row, no slots)
#   hot-32      32 clients, the same
#   hot-128     the same with 128 clients (customers of the crowd, 10201 on)
#   voucher-32  32 clients, a keyed checkout of the hot product with the
#               code of one voucher every buyer types (BENCH10, 10% off, a
#               usage limit no run reaches)
#   usedup-32   32 clients, rejections: a cart of the hot product with the
#               code of a voucher used up (USEDUP, SH010), through a handler;
#               beside soldout-32 it gives what an SH010 costs against SH001,
#               measured the same way: one-line carts filled before the run
#               (customers 165..196), one statement per transaction
#
#   located-32  32 clients, the hot product's rows as hot-32's, but stocked
#               in a second location too, preferred before the default
#               (product 4: its preferred location is not the default), in
#               a database of its own per version (bench_X_Y_located): a
#               shop whose location_stock has a row reads it on every
#               checkout, which the other workloads must not pay
#   located-128 the same with 128 clients
#
#   bundle-3    1 client, synchronous_commit off: a bundle of 3 parts, one
#               of 333 (parts 3 + 3k, 4 + 3k, 5 + 3k), in a database of its
#               own with bundles (bench_bundles, the current code only)
#   lines-3     the same, a 3-line cart of one such bundle's 3 parts
#   bundle-hot-32  32 clients, one of 32 bundles that all hold the hot
#               product (and one catalog product each): the hot part
#               shared by many bundles, in 16 stock slots as a sale's hot
#               product is (README, "Running a sale")
#   part-hot-32 the same hot product alone, in the same database
#   lines-hot-32  a 2-line cart of one hot bundle's parts, the same way
#   slots-32    32 clients, the hot product in 16 stock slots (README,
#               "Running a sale"), in a database of its own for the current
#               code (bench_located_slots)
#   slots-128   the same with 128 clients
#   located-slots-32  product 4 stocked in a second location preferred to
#               the default, its stock there in 16 slots
#               (shop_split_location_stock, 1.3), in the same database: the
#               located hot product against the default's (slots-32)
#   located-slots-128 the same with 128 clients
# The bundle workloads run interleaved with each other, round by round
# (each round starting with the next), as the versions do; so do the
# slots-* and located-slots-* workloads.
#
# A release without vouchers and locations (before 1.2) does not run
# voucher-32, usedup-32 and located-*; one without bundles (before 1.3)
# bundle-*, lines-* and part-hot-32: the table says n/a.
#
# Rounds are interleaved (each version once per round, each round starting
# with the next version, so that none always runs last); each figure
# is the median of BENCH_ROUNDS (default 3) runs of BENCH_SECONDS (default
# 8) seconds after a warm-up run.  No VACUUM between rounds: a sale runs for
# minutes without one.  Prints the table and appends it to $BENCH_RESULTS.
set -eu
cd "$(dirname "$0")/.."
seconds=${BENCH_SECONDS:-8}
rounds=${BENCH_ROUNDS:-3}
warmup=${BENCH_WARMUP_SECONDS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

workloads=${BENCH_RELEASE_WORKLOADS:-soldout-32 cpu-1line cpu-50line hot-32 bundle-3 lines-3 bundle-hot-32 part-hot-32 lines-hot-32 slots-32 located-slots-32 slots-128 located-slots-128}

# the versions: "1.0:checkout_r10 1.1:checkout_r11 current:checkout"
# (BENCH_CURRENT_ONLY=1: the current code alone, where no release is built:
# make bench PG=17 or 18 in that major's root)
versions=$(grep -v '^#' RELEASES | while read -r v c; do printf '%s:checkout_r%s ' "$v" "$(echo "$v" | tr -d .)"; done)
[ "${BENCH_CURRENT_ONLY:-0}" = 1 ] && versions=
versions="${versions}current:checkout"

for vx in $versions; do
	db=bench_$(echo "${vx%%:*}" | tr . _)
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION ${vx#*:}" -f bench/setup.sql >/dev/null
	# every client's cart holds the sold-out product (customers 1..32)
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
		-c "INSERT INTO cart_items SELECT g, 2, 1 FROM generate_series(101, 132) AS g" \
		-c 'VACUUM ANALYZE'
	# vouchers (1.2 on), as bench/run-in-cluster.sh sets them up
	if [ "$(psql -X -At -d "$db" -c "SELECT to_regproc('shop_create_voucher') IS NOT NULL")" = t ]; then
		psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
			-c "SELECT shop_add_voucher_code(shop_create_voucher('bench', percent_off => 10,
																  usage_limit => 2000000000), 'BENCH10')" \
			-c "SELECT shop_add_voucher_code(shop_create_voucher('used up', percent_off => 10,
																  usage_limit => 1), 'USEDUP')" \
			-c "INSERT INTO cart_items VALUES (10201, 3, 1)" \
			-c "INSERT INTO cart_items SELECT g, 1, 1 FROM generate_series(165, 196) AS g" \
			-c "SELECT shop_checkout(10201, NULL, 'USEDUP')" \
			-c "CREATE FUNCTION bench.try_voucher_checkout(customer_id bigint, code text)
				RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
				AS \$\$ BEGIN
					RETURN public.shop_checkout(customer_id, NULL, code);
				EXCEPTION WHEN SQLSTATE 'SH010' THEN RETURN NULL;
				END \$\$" \
			-c 'VACUUM ANALYZE' >/dev/null
		echo "$db" >>"$tmp/vouchers"
		case " $workloads " in
		*" located"*)
			psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS ${db}_located" \
				-c "CREATE DATABASE ${db}_located"
			psql -X -q -v ON_ERROR_STOP=1 -d "${db}_located" -c "CREATE EXTENSION ${vx#*:}" \
				-f bench/setup.sql \
				-c "SELECT shop_restock(4, 1000000000, 'bench: the located hot product',
										shop_create_location('bench second', -1))" \
				-c 'VACUUM ANALYZE' >/dev/null
			;;
		esac
	fi
done


# bundles (1.3 on): a database of their own, for the current code only
case " $workloads " in
*" bundle-"* | *" lines-3 "* | *" part-hot-32 "* | *" lines-hot-32 "*)
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS bench_bundles" \
		-c "CREATE DATABASE bench_bundles"
	psql -X -q -v ON_ERROR_STOP=1 -d bench_bundles -c "CREATE EXTENSION checkout" -f bench/setup.sql \
		-c "SELECT shop_create_bundle('bench kit ' || k, 3000,
				jsonb_build_array(jsonb_build_object('product_id', 3 + 3 * k, 'quantity', 1),
								  jsonb_build_object('product_id', 4 + 3 * k, 'quantity', 1),
								  jsonb_build_object('product_id', 5 + 3 * k, 'quantity', 1)))
			  FROM generate_series(0, 332) AS k ORDER BY k" \
		-c "SELECT shop_create_bundle('bench hot kit ' || k, 51000,
				jsonb_build_array(jsonb_build_object('product_id', 1, 'quantity', 1),
								  jsonb_build_object('product_id', 500 + k, 'quantity', 1)))
			  FROM generate_series(0, 31) AS k ORDER BY k" \
		-c "SELECT shop_split_stock(1, 16)" \
		-c 'VACUUM ANALYZE' >/dev/null
	;;
esac

# the located hot product in slots (1.3 on): the current code only
case " $workloads " in
*" slots-"* | *" located-slots-"*)
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS bench_located_slots" \
		-c "CREATE DATABASE bench_located_slots"
	psql -X -q -v ON_ERROR_STOP=1 -d bench_located_slots -c "CREATE EXTENSION checkout" -f bench/setup.sql \
		-c "SELECT shop_split_stock(1, 16)" \
		-c "SELECT shop_restock(4, 1000000000, 'bench: the located hot product',
								shop_create_location('bench second', -1))" \
		-c "SELECT shop_split_location_stock(4, 2, 16)" \
		-c 'VACUUM ANALYZE' >/dev/null
	;;
esac

# run VERSION WORKLOAD ROUND SECONDS: one pgbench run; appends
# "workload version round tps" to $tmp/raw unless ROUND is warmup
run() {
	db=bench_$(echo "$1" | tr . _)
	opts=
	case $2 in
	soldout-32) clients=32 flow=c_try pmin=2 pmax=2 cart=0 base=100 ;;
	cpu-1line) clients=1 flow=c pmin=3 pmax=1002 cart=1 base=0 opts="-c synchronous_commit=off" ;;
	cpu-50line) clients=1 flow=c_50 pmin=3 pmax=1002 cart=1 base=0 opts="-c synchronous_commit=off" ;;
	hot-1) clients=1 flow=c pmin=1 pmax=1 cart=1 base=0 ;;
	hot-32) clients=32 flow=c pmin=1 pmax=1 cart=1 base=0 ;;
	hot-128) clients=128 flow=c pmin=1 pmax=1 cart=1 base=10200 ;;
	voucher-32) clients=32 flow=c_key_voucher pmin=1 pmax=1 cart=1 base=0 ;;
	located-32) clients=32 flow=c pmin=4 pmax=4 cart=1 base=0 ;;
	located-128) clients=128 flow=c pmin=4 pmax=4 cart=1 base=10200 ;;
	usedup-32) clients=32 flow=c_try_usedup pmin=1 pmax=1 cart=0 base=164 ;;
	bundle-3) clients=1 flow=c pmin=1003 pmax=1335 cart=1 base=0 opts="-c synchronous_commit=off" ;;
	lines-3) clients=1 flow=c_3 pmin=3 pmax=1002 cart=1 base=0 opts="-c synchronous_commit=off" ;;
	bundle-hot-32) clients=32 flow=c pmin=1336 pmax=1367 cart=1 base=0 ;;
	part-hot-32) clients=32 flow=c pmin=1 pmax=1 cart=1 base=0 ;;
	lines-hot-32) clients=32 flow=c_hot2 pmin=1 pmax=1 cart=1 base=0 ;;
	slots-32) clients=32 flow=c pmin=1 pmax=1 cart=1 base=0 ;;
	slots-128) clients=128 flow=c pmin=1 pmax=1 cart=1 base=10200 ;;
	located-slots-32) clients=32 flow=c pmin=4 pmax=4 cart=1 base=0 ;;
	located-slots-128) clients=128 flow=c pmin=4 pmax=4 cart=1 base=10200 ;;
	esac
	case $2 in
	voucher-* | usedup-*) grep -qx "$db" "$tmp/vouchers" 2>/dev/null || return 0 ;;
	slots-* | located-slots-*) [ "$1" = current ] || return 0; db=bench_located_slots ;;
	located-*) grep -qx "$db" "$tmp/vouchers" 2>/dev/null || return 0; db=${db}_located ;;
	bundle-* | lines-3 | part-hot-32 | lines-hot-32) [ "$1" = current ] || return 0; db=bench_bundles ;;
	esac
	# the sold-out rush's buyers are customers 101..132 (their carts filled)
	sed "s/^\\\\set cid :client_id + 1/\\\\set cid :client_id + 1 + $base/" "bench/flows/$flow.sql" >"$tmp/$flow-$base.sql"
	PGOPTIONS="$opts" pgbench -n -M prepared -c "$clients" -j 2 -T "$4" -d "$db" \
		-D pid_min="$pmin" -D pid_max="$pmax" -D add_to_cart="$cart" -D clients="$clients" \
		-f "$tmp/$flow-$base.sql" >"$tmp/out" 2>&1 ||
		{ cat "$tmp/out" >&2; echo "bench: $2 failed on $1" >&2; exit 1; }
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$tmp/out" | head -n 1)
	[ "$3" = warmup ] && return 0
	echo "$2 $1 $3 $tps" >>"$tmp/raw"
	printf '  %-11s %-8s round %s: %8.0f tps\n' "$2" "$1" "$3" "$tps"
}

bundle_workloads=
slot_workloads=
for w in $workloads; do
	case $w in
	bundle-* | lines-3 | part-hot-32 | lines-hot-32)
		bundle_workloads="$bundle_workloads $w"
		continue
		;;
	slots-* | located-slots-*)
		slot_workloads="$slot_workloads $w"
		continue
		;;
	esac
	echo "releases, $w:"
	for vx in $versions; do run "${vx%%:*}" "$w" warmup "$warmup"; done
	r=1
	while [ "$r" -le "$rounds" ]; do
		# each round starts with the next version: none always runs last
		for vx in $(echo "$versions" | awk -v r="$r" '{ for (i = 0; i < NF; i++) print $((r - 1 + i) % NF + 1) }'); do
			run "${vx%%:*}" "$w" "$r" "$seconds"
		done
		r=$((r + 1))
	done
done

# the bundle workloads, then the slot ones, each group interleaved round
# by round (the current code only)
for group in "bundles:$bundle_workloads" "slots:$slot_workloads"; do
	group_workloads=${group#*:}
	[ -n "$group_workloads" ] || continue
	echo "$group"
	for w in $group_workloads; do run current "$w" warmup "$warmup"; done
	r=1
	while [ "$r" -le "$rounds" ]; do
		for w in $(echo "$group_workloads" | awk -v r="$r" '{ for (i = 0; i < NF; i++) print $((r - 1 + i) % NF + 1) }'); do
			run current "$w" "$r" "$seconds"
		done
		r=$((r + 1))
	done
done

# The sold-out product must never have been sold
for vx in $versions; do
	db=bench_$(echo "${vx%%:*}" | tr . _)
	sold=$(psql -X -At -d "$db" -c 'SELECT count(*) FROM order_items WHERE product_id = 2')
	[ "$sold" -eq 0 ] || { echo "bench: the sold-out product was sold $sold times on ${vx%%:*}" >&2; exit 1; }
done

# The table: median tps per version, and the current code's ratio to each
names=$(for vx in $versions; do printf '%s ' "${vx%%:*}"; done)
{
	echo
	echo "## Releases side by side (bench/releases.sh)"
	echo
	echo "Median of $rounds runs of $seconds s each, versions interleaved, in one cluster (fsync on; cpu-* with"
	echo "synchronous_commit off), $(nproc) cores, PostgreSQL $(pg_config --version | awk '{print $2}')."
	echo
	awk -v names="$names" '
		{ v[$1 " " $2] = v[$1 " " $2] " " $4; w[$1] = 1; if (!($1 in order)) order[$1] = ++n; wl[order[$1]] = $1 }
		function median(s,    a, k, i, j, t) {
			k = split(s, a, " ")
			for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
			return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
		}
		END {
			nv = split(names, vs, " ")
			printf "| workload |"; for (i = 1; i <= nv; i++) printf " %s |", vs[i]
			for (i = 1; i < nv; i++) printf " current ÷ %s |", vs[i]
			printf "\n|---|"; for (i = 1; i < 2 * nv; i++) printf "---|"; printf "\n"
			for (o = 1; o <= n; o++) {
				x = wl[o]; printf "| %s |", x
				for (i = 1; i <= nv; i++) {
					m[i] = (x " " vs[i]) in v ? median(v[x " " vs[i]]) : 0
					if (m[i] > 0) printf " %.0f |", m[i]; else printf " n/a |"
				}
				for (i = 1; i < nv; i++) if (m[i] > 0 && m[nv] > 0) printf " %.2f |", m[nv] / m[i]; else printf " n/a |"
				printf "\n"
				for (i = 1; i <= nv; i++) med[x, i] = m[i]
			}
			# what an SH010 rejection costs against an SH001 one: rejections/s
			# of the sold-out rush over those of the used-up voucher
			if (("soldout-32" in w) && ("usedup-32" in w)) {
				printf "\nCost of an SH010 rejection against an SH001 one (soldout-32 ÷ usedup-32 rejections/s; at most 1.1 is the goal):"
				for (i = 1; i <= nv; i++)
					if (med["usedup-32", i] > 0) printf " %s %.2f;", vs[i], med["soldout-32", i] / med["usedup-32", i]
				printf "\n"
			}
			# a bundle of 3 parts against a 3-line cart of its parts; the hot
			# part shared by bundles against the hot product on its own
			if (("bundle-3" in w) && ("lines-3" in w) && med["lines-3", nv] > 0)
				printf "\nA bundle of 3 parts against a 3-line cart of its parts (bundle-3 ÷ lines-3, checkouts/s; at least 1.0 is the goal): %.2f\n", med["bundle-3", nv] / med["lines-3", nv]
			if (("bundle-hot-32" in w) && ("part-hot-32" in w) && med["part-hot-32", nv] > 0)
				printf "\nThe hot part (16 slots) shared by 32 bundles against the hot product alone (bundle-hot-32 ÷ part-hot-32, checkouts/s; at least 0.9 is the goal): %.2f\n", med["bundle-hot-32", nv] / med["part-hot-32", nv]
			if (("bundle-hot-32" in w) && ("lines-hot-32" in w) && med["lines-hot-32", nv] > 0)
				printf "\nThe same bundles against a 2-line cart of their parts (bundle-hot-32 ÷ lines-hot-32): %.2f\n", med["bundle-hot-32", nv] / med["lines-hot-32", nv]
			# the located hot product against the default-only one (hot-N)
			for (k = 32; k <= 128; k *= 4)
				if ((("located-" k) in w) && (("hot-" k) in w)) {
					printf "\nThe located hot product against the default-only one (located-%d ÷ hot-%d; at least 0.9 is the goal):", k, k
					for (i = 1; i <= nv; i++)
						if (med["located-" k, i] > 0 && med["hot-" k, i] > 0)
							printf " %s %.2f;", vs[i], med["located-" k, i] / med["hot-" k, i]
					printf "\n"
				}
			# the located hot product in slots against the default-only one in slots
			for (k = 32; k <= 128; k *= 4)
				if ((("located-slots-" k) in w) && (("slots-" k) in w) && med["slots-" k, nv] > 0)
					printf "\nThe located hot product in slots against the default-only one in slots (located-slots-%d ÷ slots-%d; at least 0.9 is the goal): %.2f\n", k, k, med["located-slots-" k, nv] / med["slots-" k, nv]
		}' "$tmp/raw"
} >"$tmp/report"
cat "$tmp/report"
[ -n "${BENCH_RESULTS:-}" ] && cat "$tmp/report" >>"$BENCH_RESULTS"
exit 0
