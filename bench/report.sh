#!/bin/sh
# bench/report.sh RAW SECONDS ROUNDS [SUSTAINED]: the Markdown report of a
# make bench run from its raw lines ("workload flow round tps p99_ms"):
# medians per flow and workload, and the ratios of shop_checkout() to every
# other flow; then the sustained sale's progress lines (pgbench -P), if any.
set -eu
raw=$1 seconds=$2 rounds=$3 sustained=${4:-}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
server=$(psql -X -At -c 'SHOW server_version')

cat <<HEAD
# make bench — $(date -u +%Y-%m-%d)

Machine: $(nproc) cores ($cpu), $mem. PostgreSQL $server, throwaway cluster with
fsync=on, synchronous_commit=on (the cpu-* workloads set synchronous_commit=off for their sessions only),
shared_buffers=256MB. pgbench -M prepared, $seconds s per run, median of $rounds interleaved runs after a
warm-up run of each flow. Every flow adds to the cart in its own transaction, then checks out; in the
sold-out rush (soldout-32) every cart already holds the sold-out product and the flows only check out.
On the hot-* workloads shop_checkout sells the hot product split into ${BENCH_SLOTS:-64} stock slots
(shop_split_stock); every other flow sells it from its products row.

tps counts add-to-cart + checkout pairs per second (soldout-32: checkout attempts); p99 is the 99th
percentile latency of that pair (ms; soldout-32: of one attempt in ten).

HEAD

awk -v OFS='|' '
function median(key,    n, i, j, t, a) {
	n = split(vals[key], a, " ")
	for (i = 1; i <= n; i++)
		for (j = i + 1; j <= n; j++)
			if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	key = $1 SUBSEP $2
	vals[key] = vals[key] " " $4
	lats[key] = lats[key] " " $5
	if (!($1 in seen_w)) { seen_w[$1] = 1; workloads[++nw] = $1 }
	has[key] = 1
}
END {
	nf = split("shop_checkout client-side plpgsql bare_update", flows, " ")
	print "| workload | shop_checkout | client-side (seed) | PL/pgSQL | bare UPDATE |"
	print "|---|---|---|---|---|"
	for (w = 1; w <= nw; w++) {
		line = "| " workloads[w] " "
		for (f = 1; f <= nf; f++) {
			key = workloads[w] SUBSEP flows[f]
			if (key in has) {
				tps[key] = median(key)
				split(lats[key], dummy, " ")
				vals[key "lat"] = lats[key]
				p99[key] = median(key "lat")
				line = line sprintf("| %.0f tps, p99 %.1f ms ", tps[key], p99[key])
			} else
				line = line "| n/a "
		}
		print line "|"
	}
	print ""
	print "Ratios of shop_checkout to each flow (tps; above 1 means shop_checkout is faster):"
	print ""
	print "| workload | vs client-side | vs PL/pgSQL | vs bare UPDATE |"
	print "|---|---|---|---|"
	for (w = 1; w <= nw; w++) {
		c = workloads[w] SUBSEP "shop_checkout"
		line = "| " workloads[w] " "
		for (f = 2; f <= nf; f++) {
			key = workloads[w] SUBSEP flows[f]
			if ((key in tps) && tps[key] > 0)
				line = line sprintf("| %.2f× ", tps[c] / tps[key])
			else
				line = line "| n/a "
		}
		print line "|"
	}
	np = 0
	for (w = 1; w <= nw; w++) {
		a = workloads[w] SUBSEP "keyed_limited"; c = workloads[w] SUBSEP "shop_checkout"
		if (!(a in has) || !(c in has))
			continue
		if (!np++) {
			print ""
			print "The payment flow: shop_checkout(customer_id, idempotency_key) of a product under a purchase limit"
			print "(keyed_limited) against plain shop_checkout(customer_id), the same crowd of 100,000 buyers:"
			print ""
			print "| workload | plain | key + limit | key + limit / plain |"
			print "|---|---|---|---|"
		}
		vals[a "lat"] = lats[a]
		printf "| %s | %.0f tps, p99 %.1f ms | %.0f tps, p99 %.1f ms | %.2f |\n", workloads[w], \
			tps[c], p99[c], median(a), median(a "lat"), median(a) / tps[c]
	}
	nc = 0; best = 0
	for (w = 1; w <= nw; w++) {
		a = workloads[w] SUBSEP "pooled"
		if (!(a in has))
			continue
		if (!nc++) {
			print ""
			print "The crowd through a pooler: the hot product bought by N buyers, each a connection, directly and"
			print "through pgbouncer (transaction pooling, 8 server connections); n/a: past max_connections:"
			print ""
			print "| workload | directly | through pgbouncer | pooled / best direct at 32 |"
			print "|---|---|---|---|"
			c = "crowd-32" SUBSEP "shop_checkout"
			if (c in has) best = median(c)
		}
		c = workloads[w] SUBSEP "shop_checkout"
		vals[a "lat"] = lats[a]
		direct = (c in has) ? sprintf("%.0f tps, p99 %.1f ms", tps[c], p99[c]) : "n/a"
		printf "| %s | %s | %.0f tps, p99 %.1f ms | %s |\n", workloads[w], direct, \
			median(a), median(a "lat"), (best > 0 ? sprintf("%.0f%%", 100 * median(a) / best) : "n/a")
	}
	nl = 0
	for (w = 1; w <= nw; w++)
		for (key in has) {
			split(key, kf, SUBSEP)
			if (kf[1] != workloads[w] || kf[2] !~ /^shop_checkout-/)
				continue
			if (!nl++) {
				print ""
				print "Levers: shop_checkout as shipped against shop_checkout with one lever turned off (BENCH_LEVERS=1):"
				print ""
				print "| workload | as shipped | lever off | as shipped / lever off |"
				print "|---|---|---|---|"
			}
			c = workloads[w] SUBSEP "shop_checkout"
			vals[key "lat"] = lats[key]
			printf "| %s | %.0f tps, p99 %.1f ms | %s: %.0f tps, p99 %.1f ms | %.2f× |\n", \
				workloads[w], tps[c], p99[c], kf[2], median(key), median(key "lat"), \
				tps[c] / median(key)
		}
	nv = 0
	for (w = 1; w <= nw; w++) {
		split("keyed voucher soldout usedup", vf, " ")
		for (f = 1; f <= 4; f++) {
			key = workloads[w] SUBSEP vf[f]
			if (!(key in has))
				continue
			tps[key] = median(key)
			vals[key "lat"] = lats[key]
			p99[key] = median(key "lat")
		}
		if ((workloads[w] SUBSEP "voucher") in tps) { a = "keyed"; b = "voucher" }
		else if ((workloads[w] SUBSEP "usedup") in tps) { a = "soldout"; b = "usedup" }
		else continue
		if (!nv++) {
			print ""
			print "Vouchers: the keyed checkout of the hot product (in slots) with and without one voucher code every"
			print "buyer types (voucher-N); rejections of a used-up voucher (SH010) against sold-out ones (SH001):"
			print ""
			print "| workload | without | with | with / without |"
			print "|---|---|---|---|"
		}
		ka = workloads[w] SUBSEP a; kb = workloads[w] SUBSEP b
		printf "| %s | %s: %.0f tps, p99 %.1f ms | %s: %.0f tps, p99 %.1f ms | %.2f× |\n", workloads[w], \
			a, tps[ka], p99[ka], b, tps[kb], p99[kb], (tps[ka] > 0 ? tps[kb] / tps[ka] : 0)
	}
	nloc = 0
	for (w = 1; w <= nw; w++) {
		c = workloads[w] SUBSEP "shop_checkout"
		a = workloads[w] SUBSEP "located_after"; b = workloads[w] SUBSEP "located_before"
		if (!(a in has) || !(b in has) || !(c in has))
			continue
		if (!nloc++) {
			print ""
			print "Locations: the hot product (in slots) in the default location only, and also in a second location"
			print "preferred after the default (its checkouts take one slot as before) or before it (each checkout"
			print "locks the product whole: row, slots, locations); the shop has the second location in all three:"
			print ""
			print "| workload | default only | second, after | after / only | second, before | before / only |"
			print "|---|---|---|---|---|---|"
		}
		vals[a "lat"] = lats[a]; vals[b "lat"] = lats[b]
		printf "| %s | %.0f tps, p99 %.1f ms | %.0f tps, p99 %.1f ms | %.2f× | %.0f tps, p99 %.1f ms | %.2f× |\n", \
			workloads[w], tps[c], p99[c], median(a), median(a "lat"), median(a) / tps[c], \
			median(b), median(b "lat"), median(b) / tps[c]
	}
	nev = 0
	for (w = 1; w <= nw; w++) {
		c = workloads[w] SUBSEP "events_off"
		a = workloads[w] SUBSEP "events_pgq"; b = workloads[w] SUBSEP "events_logical"
		if (!(a in has) || !(b in has) || !(c in has))
			continue
		if (!nev++) {
			print ""
			print "Order events (1.3): the same checkouts with checkout.events off, to PgQ and as logical decoding"
			print "messages (no consumer reading meanwhile); cost = tps off / tps with the sink (≤ 1.05× is the goal):"
			print ""
			print "| workload | off | pgq | cost | logical | cost |"
			print "|---|---|---|---|---|---|"
		}
		tps[c] = median(c); tps[a] = median(a); tps[b] = median(b)
		vals[c "lat"] = lats[c]; p99[c] = median(c "lat")
		vals[a "lat"] = lats[a]; p99[a] = median(a "lat")
		vals[b "lat"] = lats[b]; p99[b] = median(b "lat")
		printf "| %s | %.0f tps, p99 %.1f ms | %.0f tps, p99 %.1f ms | %.3f× | %.0f tps, p99 %.1f ms | %.3f× |\n", \
			workloads[w], tps[c], p99[c], tps[a], p99[a], tps[c] / tps[a], tps[b], p99[b], tps[c] / tps[b]
	}
	print ""
	print "Under a crowd (tps at 128 clients / tps at 1 client on the hot product):"
	print ""
	for (f = 1; f <= nf; f++) {
		a = "hot-128" SUBSEP flows[f]; b = "hot-1" SUBSEP flows[f]
		if ((a in tps) && (b in tps) && tps[b] > 0)
			printf "- %s: %.1f%%\n", flows[f], 100 * tps[a] / tps[b]
	}
	print ""
	print "Cost of a 50-line cart (tps of 1-line / tps of 50-line carts, one client, synchronous_commit=off):"
	print ""
	for (f = 1; f <= nf; f++) {
		a = "cpu-1line" SUBSEP flows[f]; b = "cpu-50line" SUBSEP flows[f]
		if ((a in tps) && (b in tps) && tps[b] > 0)
			printf "- %s: %.2f×\n", flows[f], tps[a] / tps[b]
	}
	print ""
	print "Targets in this run:"
	print ""
	print "| target | measured | met |"
	print "|---|---|---|"
	target("sold-out rush, 32 clients: rejections/s ≥ 5× the seed flow", \
		ratio("soldout-32", "shop_checkout", "soldout-32", "client-side"), 5, "×")
	target("sold-out rush, 32 clients: p99 of a rejection < 5 ms", \
		lat("soldout-32", "shop_checkout"), -5, " ms")
	target("hot product: tps at 128 clients ≥ 50% of tps at 1 client", \
		percent(ratio("hot-128", "shop_checkout", "hot-1", "shop_checkout")), 50, "%")
	target("hot product, 128 clients: ≥ 10× the seed flow", \
		ratio("hot-128", "shop_checkout", "hot-128", "client-side"), 10, "×")
	target("hot product, 32 clients: ≥ 3× the seed flow", \
		ratio("hot-32", "shop_checkout", "hot-32", "client-side"), 3, "×")
	target("CPU path (1 client, synchronous_commit=off): ≥ 1.3× PL/pgSQL", \
		ratio("cpu-1line", "shop_checkout", "cpu-1line", "plpgsql"), 1.3, "×")
	target("a 50-line cart costs ≤ 3× a 1-line cart", \
		ratio("cpu-1line", "shop_checkout", "cpu-50line", "shop_checkout"), -3, "×")
	target("voucher-128: keyed checkout with one voucher code ≥ 0.8× without", \
		ratio("voucher-128", "voucher", "voucher-128", "keyed"), 0.8, "×")
	target("voucher-32: the same at 32 clients (reported)", \
		ratio("voucher-32", "voucher", "voucher-32", "keyed"), 0, "×")
	target("voucher-1: the same at 1 client (reported)", \
		ratio("voucher-1", "voucher", "voucher-1", "keyed"), 0, "×")
	target("usedup-32: an SH010 rejection costs no more than an SH001 (rejections/s ≥ 1×)", \
		ratio("usedup-32", "usedup", "usedup-32", "soldout"), 1, "×")
	split("events-cpu events-1 events-32 events-128", ew, " ")
	for (e = 1; e <= 4; e++) {
		target(ew[e] ": events to PgQ at ≥ 0.95× the tps of events off (cost ≤ 1.05×)", \
			ratio(ew[e], "events_pgq", ew[e], "events_off"), 0.95, "×")
		target(ew[e] ": events as logical messages at ≥ 0.95× the tps of events off", \
			ratio(ew[e], "events_logical", ew[e], "events_off"), 0.95, "×")
	}
}
# tps of flow f1 in workload w1 / tps of flow f2 in workload w2 (-1: not run)
function ratio(w1, f1, w2, f2,    a, b) {
	a = w1 SUBSEP f1; b = w2 SUBSEP f2
	return ((a in tps) && (b in tps) && tps[b] > 0) ? tps[a] / tps[b] : -1
}
# A ratio as a percentage (-1: not run)
function percent(r) {
	return r == -1 ? -1 : 100 * r
}
# p99 of flow f in workload w (-1: not run)
function lat(w, f,    a) {
	a = w SUBSEP f
	return (a in p99) ? p99[a] : -1
}
# One row of the targets table: at least goal, or, when goal < 0, below -goal
function target(what, got, goal, unit) {
	if (got == -1)
		printf "| %s | not run | n/a |\n", what
	else
		printf "| %s | %.2f%s | %s |\n", what, got, unit, \
			(goal >= 0 ? got >= goal : got < -goal) ? "yes" : "no"
}' "$raw"

if [ -n "$sustained" ] && [ -s "$sustained" ]; then
	echo
	echo "A sustained sale: 128 buyers with keys on the hot product (in slots, under a purchase limit), no"
	echo "VACUUM meanwhile; pgbench's progress every 5 s (the first interval includes the backends' start-up):"
	echo
	echo '| interval | tps | latency ms (average ± stddev) |'
	echo '|---|---|---|'
	sed -n 's/^progress: \([0-9.]*\) s, \([0-9.]*\) tps, lat \([0-9.]*\) ms stddev \([0-9.]*\).*/| to \1 s | \2 | \3 ± \4 |/p' "$sustained"
	awk '/^progress/ {n++; t[n] = $4} END {if (n >= 3) printf "\nFirst full interval after start-up (5-10 s): %.0f tps; last: %.0f tps; last / first: %.2f.\n", t[2], t[n], t[n] / t[2]}' "$sustained"
	sed -n 's/^\([0-9]*\) keys at the end/Idempotency keys in the table at the end: \1./p' "$sustained"
fi

echo
echo "Raw runs (workload flow round tps p99_ms):"
echo
echo '```'
cat "$raw"
echo '```'
