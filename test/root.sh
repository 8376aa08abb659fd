#!/bin/sh
# test/root.sh N: make the Debian root file system of PostgreSQL N for make
# test PG=N under $CHECKOUT_ROOTS (default /var/cache/checkout-roots), with
# mmdebstrap (installed when missing): Debian 13 (trixie) for 17, Debian
# sid for 18, with the server, its headers, pgTAP, pg_prove, dblink (in the
# server's package) and the build tools.  Replaces an existing root.
set -eu
major=$1
roots=${CHECKOUT_ROOTS:-/var/cache/checkout-roots}
case $major in
17) suite=trixie ;;
18) suite=sid ;;
*) echo "make test PG=$major: supported are 15 (the host's), 17 and 18" >&2; exit 1 ;;
esac
command -v mmdebstrap >/dev/null 2>&1 || {
	sh "$(dirname "$0")/as-root.sh" apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}
mkdir -p "$roots"
rm -rf "$roots/pg$major.new"
echo "checkout: making the root of PostgreSQL $major (Debian $suite) in $roots/pg$major"
# sid's Release file may be past its Valid-Until: its packages are what we want
mmdebstrap --variant=apt --aptopt='Acquire::Check-Valid-Until "false"' \
	--include="postgresql-$major,postgresql-server-dev-$major,postgresql-$major-pgtap,postgresql-$major-pgq3,libtap-parser-sourcehandler-pgtap-perl,postgresql-common,build-essential,make,libpq-dev,procps,debhelper,dpkg-dev,postgresql-server-dev-all" \
	"$suite" "$roots/pg$major.new" http://deb.debian.org/debian >/dev/null
rm -rf "$roots/pg$major"
mv "$roots/pg$major.new" "$roots/pg$major"
