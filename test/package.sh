#!/bin/sh
# The Debian package (make test installs it with dpkg -i before the suites
# run): installed at the version of debian/changelog, owning the files the
# server loads, none of them changed since.  Prints "check:" lines.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh

package=postgresql-$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')-checkout
version=$(dpkg-parsechangelog -S Version)
installed=$(dpkg-query -W -f='${Status} ${Version}' "$package" 2>/dev/null)
check "$package $version is installed (dpkg: $installed)" [ "$installed" = "install ok installed $version" ]

sharedir=$(pg_config --sharedir)/extension
pkglibdir=$(pg_config --pkglibdir)
owned=0
# checkout, and checkout_shard and checkout_proxy (a sharded shop)
loaded="$sharedir/checkout.control $pkglibdir/checkout.so $sharedir/checkout--*.sql
$sharedir/checkout_shard.control $sharedir/checkout_shard--*.sql
$sharedir/checkout_proxy.control $sharedir/checkout_proxy--*.sql"
stray=""
for f in $loaded; do
	[ -e "$f" ] || continue
	if dpkg -S "$f" 2>/dev/null | grep -q "^$package:"; then
		owned=$((owned + 1))
	else
		stray="$stray $f"
	fi
done
files=$(ls $loaded | wc -l)
# a file no package owns: most often left by a make install of an older
# version (its upgrade scripts, a version since renamed); name each one
for f in $stray; do
	owner=$(dpkg -S "$f" 2>/dev/null | cut -d: -f1)
	echo "check: $f is not $package's (${owner:+owned by $owner}${owner:-owned by no package: left by an earlier make install?}); remove it: sudo rm $f, or sudo make uninstall in the source tree that installed it"
done
check "the package owns the extension's files the server loads ($owned of $files${stray:+; not its own:$stray})" [ "$owned" = "$files" ]
check "none of them changed since the package installed them (dpkg --verify)" \
	sh -c "[ -z \"\$(dpkg --verify $package)\" ]"
# the monitoring files, once for every major (an Architecture: all package)
monitoring=$(dpkg-query -W -f='${Status}' checkout-monitoring 2>/dev/null)
check "checkout-monitoring installs the queries and the rules in /usr/share/checkout ($monitoring)" \
	sh -c "[ '$monitoring' = 'install ok installed' ] && [ -f /usr/share/checkout/queries.yaml ] &&
		   [ -f /usr/share/checkout/checkout.rules.yml ] && dpkg -S /usr/share/checkout/queries.yaml | grep -q '^checkout-monitoring:'"
exit "$failed"
