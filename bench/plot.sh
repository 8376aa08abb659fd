#!/bin/sh
# bench/plot.sh RESULTS.md: draw a results file's figures with gnuplot, as
# PNG files beside it (make bench runs it on each new report):
#
#   RESULTS-throughput.png  tps (median of the rounds) per flow against the
#                           number of clients, for each family of workloads
#                           named NAME-CLIENTS that was run at several client
#                           counts (hot-1/32/128, pay-*, voucher-*, crowd-*)
#   RESULTS-sustained.png   the sustained sale's tps every 5 s, if it ran
#
# Reads the report's "Raw runs" block (workload flow round tps p99) and its
# sustained table.  Prints the files it wrote.
set -eu
results=$1
base=${results%.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v gnuplot >/dev/null || { echo "bench/plot.sh: gnuplot is missing (make setup)" >&2; exit 1; }

# the raw runs: medians per family, flow and clients
awk '/^Raw runs/ { raw = 1; next } raw && /^```/ { fences++; if (fences == 2) exit; next }
	 raw && fences == 1' "$results" |
	awk '{ split($1, w, "-"); n = w[length(w)]; fam = $1; sub("-" n "$", "", fam)
		   if (n !~ /^[0-9]+$/) next
		   k = fam " " $2 " " n; v[k] = v[k] " " $4 }
		 END { for (k in v) { m = split(v[k], a, " ")
				   for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
					   if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
				   print k, (m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2) } }' |
	sort -k1,1 -k2,2 -k3,3n >"$tmp/medians"

# the families run at two client counts or more, each a panel
families=$(awk '{ c[$1 " " $3] = 1 } END { for (k in c) { split(k, a, " "); n[a[1]]++ }
				  for (f in n) if (n[f] > 1) print f }' "$tmp/medians" | sort)
if [ -n "$families" ]; then
	count=$(echo "$families" | wc -w)
	{
		echo "set terminal pngcairo noenhanced size 800,$((360 * count)) font ',10'"
		echo "set output '$base-throughput.png'"
		echo "set multiplot layout $count,1"
		echo "set logscale x 2; set xlabel 'clients'; set ylabel 'tps (median)'; set key outside right"
		echo "set grid; set yrange [0:*]"
		for fam in $families; do
			flows=$(awk -v f="$fam" '$1 == f { print $2 }' "$tmp/medians" | sort -u)
			plot=""
			for flow in $flows; do
				awk -v f="$fam" -v fl="$flow" '$1 == f && $2 == fl { print $3, $4 }' "$tmp/medians" \
					>"$tmp/$fam.$flow"
				plot="$plot${plot:+, }'$tmp/$fam.$flow' using 1:2 with linespoints title '$flow'"
			done
			echo "set title '$fam-N: throughput against clients'"
			echo "plot $plot"
		done
		echo "unset multiplot"
	} >"$tmp/throughput.gp"
	gnuplot "$tmp/throughput.gp"
	echo "$base-throughput.png"
fi

# the sustained sale: "| to 5.0 s | 1756.7 | ... |"
sed -n 's/^| to \([0-9.]*\) s | \([0-9.]*\) |.*/\1 \2/p' "$results" >"$tmp/sustained"
if [ -s "$tmp/sustained" ]; then
	gnuplot <<GP
set terminal pngcairo noenhanced size 640,360 font ',10'
set output '$base-sustained.png'
set title 'A sustained sale: 128 buyers with keys, no VACUUM meanwhile'
set xlabel 'seconds'; set ylabel 'tps (every 5 s)'; set grid; set yrange [0:*]; set key off
plot '$tmp/sustained' using 1:2 with linespoints
GP
	echo "$base-sustained.png"
fi
