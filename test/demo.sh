#!/bin/sh
# The flash-sale demo (make demo), run inside a throwaway cluster: install the
# extension into a fresh database and let BUYERS buyers race for STOCK items.
set -eu
cd "$(dirname "$0")/.."

: "${BUYERS:=33}" "${STOCK:=20}" "${LINES:=1}" "${PRODUCTS:=$LINES}" "${SLOTS:=0}"

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE checkout_demo'
psql -X -q -v ON_ERROR_STOP=1 -d checkout_demo -c 'CREATE EXTENSION checkout'

split=
[ "$SLOTS" -gt 0 ] && split=", its stock split into $SLOTS slots"
echo "Flash sale: $BUYERS buyers at once, $STOCK in stock of each of $PRODUCTS product(s)$split, $LINES line(s) per cart"
echo
exec tools/flashsale -d checkout_demo --buyers "$BUYERS" --stock "$STOCK" \
	--lines "$LINES" --products "$PRODUCTS" --slots "$SLOTS"
