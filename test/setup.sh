#!/bin/sh
# The setup step of make test, make demo and make bench (and make setup):
# install the Debian packages that building and testing checkout need,
# only those that are missing.  Runs apt-get as root, or through sudo.
set -eu

packages="postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap postgresql-15-cron
libtap-parser-sourcehandler-pgtap-perl postgresql-common make gcc libpq-dev
dpkg-dev debhelper postgresql-server-dev-all build-essential pgbouncer
postgresql-15-auto-failover pg-auto-failover-cli postgresql-15-plproxy pg-bsd-indent
postgresql-15-pgq3 pgqd
prometheus prometheus-postgres-exporter curl jq gnuplot-nox chromium fonts-dejavu-core"

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
# Node.js and npm for the Drizzle and storefront examples (a machine may
# have its own); chromium: the storefront's browser tests (playwright-core
# drives Debian's, no browser download)
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

echo "checkout: installing$missing"
dir=$(dirname "$0")
export DEBIAN_FRONTEND=noninteractive
sh "$dir/as-root.sh" apt-get update -qq
# Debian's prometheus packages start their daemons (on 9090 and 9187) where
# an init system runs them: no service starts while these install (a
# policy-rc.d that says no, removed after, unless the machine had one);
# the monitoring test starts its own, on ports of its own
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	sh "$dir/as-root.sh" sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy"
	trap 'sh "$dir/as-root.sh" rm -f "$policy"' EXIT
fi
sh "$dir/as-root.sh" apt-get install -y -qq --no-install-recommends $missing
