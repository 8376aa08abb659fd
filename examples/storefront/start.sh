#!/bin/sh
# make storefront: the storefront on 127.0.0.1:$PORT (default 3000).
# Without DATABASE_URL: a throwaway cluster (pg_virtualenv) holding the
# demo shop (shop.sql, STOCK units of the Flash Sale Smartphone, default
# 20), removed when the server stops (Ctrl-C).  With DATABASE_URL: that
# shop, as it is (a role given shop_grant_app(); NOTIFIER_DATABASE_URL the
# owner's connection for the stock notices, or pg_cron >= 1.5 runs them).
set -eu
cd "$(dirname "$0")"
if [ "${1:-}" = --inside ]; then
	createdb storefront
	psql -X -q -d storefront -v stock="${STOCK:-20}" -f shop.sql >/dev/null
	DATABASE_URL="postgresql://storefront:storefront@localhost:$PGPORT/storefront"
	NOTIFIER_DATABASE_URL="postgresql://$PGUSER:$PGPASSWORD@localhost:$PGPORT/storefront"
	export DATABASE_URL NOTIFIER_DATABASE_URL
	echo "storefront: the demo shop is database storefront on port $PGPORT (psql -h localhost -p $PGPORT -U $PGUSER storefront, password $PGPASSWORD); Ctrl-C stops it"
	exec node dist/src/main.js
fi
# the packages of the committed lockfile, when they are not there yet
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] ||
	npm ci --no-audit --no-fund --loglevel=error
npx tsc -p .
if [ -n "${DATABASE_URL:-}" ]; then
	exec node dist/src/main.js
fi
exec pg_virtualenv -o track_commit_timestamp=on -- sh "$PWD/start.sh" --inside
