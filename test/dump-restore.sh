#!/bin/sh
# Backups that restore (make test): a shop with a sale, a split product, a
# restock and an adjustment, dumped with pg_dump in custom format (restored
# with pg_restore) and in plain format (restored with psql), each into a new
# database.  The restored shop must hold exactly the same rows, ledger and
# identity sequences (pg_dump --data-only of both), with integrity clean,
# and go on selling and recording opening stock.  Prints "check: ok|FAILED".
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

new_db checkout_backup checkout || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d checkout_backup -f test/fixtures/shop_data.sql >/dev/null || exit 1
data checkout_backup >"$tmp/data"

pg_dump -Fc -f "$tmp/shop.dump" checkout_backup || exit 1
new_db checkout_restored || exit 1
check "pg_dump -Fc | pg_restore: restores without an error" \
	pg_restore --exit-on-error -d checkout_restored "$tmp/shop.dump"
data checkout_restored >"$tmp/restored"
check "pg_restore: the same rows, ledger and sequences" diff -u "$tmp/data" "$tmp/restored"
check "pg_restore: integrity clean, checkout and opening stock work" shop_works checkout_restored

pg_dump -Fp -f "$tmp/shop.sql" checkout_backup || exit 1
new_db checkout_restored || exit 1
check "pg_dump -Fp | psql: restores without an error" \
	psql -X -q -v ON_ERROR_STOP=1 -d checkout_restored -f "$tmp/shop.sql" -o /dev/null
data checkout_restored >"$tmp/restored"
check "psql: the same rows, ledger and sequences" diff -u "$tmp/data" "$tmp/restored"
check "psql: integrity clean, checkout and opening stock work" shop_works checkout_restored

sql postgres "DROP DATABASE checkout_backup" "DROP DATABASE checkout_restored"
exit "$failed"
