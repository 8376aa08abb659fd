#!/bin/sh
# make bench: build every release of RELEASES from its commit (git archive)
# and install it beside the current code as an extension of its own,
# checkout_rXY (checkout_r11 for 1.1: its C as checkout_r11.so, its SQL
# scripts as released), so that bench/releases.sh measures each release and
# the current code in one cluster, in one run.  A database holds one of
# them: each library defines the checkout.* settings.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pkglibdir=$(pg_config --pkglibdir)
sharedir=$(pg_config --sharedir)/extension

grep -v '^#' RELEASES | while read -r version commit; do
	name=checkout_r$(echo "$version" | tr -d .)
	git cat-file -e "$commit^{commit}" 2>/dev/null ||
		{ echo "bench: release $version ($commit) is not in this clone's history" >&2; exit 1; }
	mkdir "$tmp/$name"
	git archive "$commit" | tar -x -C "$tmp/$name"
	# its own Makefile, its library under the release's name
	make -s -C "$tmp/$name" MODULE_big="$name" "$name.so" >/dev/null
	for f in "$tmp/$name"/checkout--*.sql; do
		cp "$f" "$tmp/$name/$name--${f##*/checkout--}"
	done
	cat >"$tmp/$name/$name.control" <<CONTROL
# checkout $version (commit $commit), built by bench/build-releases.sh
comment = 'checkout $version, for make bench'
default_version = '$version'
module_pathname = '\$libdir/$name'
relocatable = false
CONTROL
	sh test/as-root.sh install -m 755 "$tmp/$name/$name.so" "$pkglibdir/"
	sh test/as-root.sh install -m 644 "$tmp/$name/$name.control" "$tmp/$name/$name"--*.sql "$sharedir/"
	echo "bench: built checkout $version ($commit) as extension $name"
done
