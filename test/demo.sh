#!/bin/sh
# The flash-sale demo (make demo), run inside a throwaway cluster: install the
# extension into a fresh database and let BUYERS buyers race for STOCK items.
set -eu
cd "$(dirname "$0")/.."

: "${BUYERS:=33}" "${STOCK:=20}" "${LINES:=1}" "${PRODUCTS:=$LINES}"

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE checkout_demo'
psql -X -q -v ON_ERROR_STOP=1 -d checkout_demo -c 'CREATE EXTENSION checkout'

echo "Flash sale: $BUYERS buyers at once, $STOCK in stock of each of $PRODUCTS product(s), $LINES line(s) per cart"
echo
exec tools/flashsale -d checkout_demo --buyers "$BUYERS" --stock "$STOCK" \
	--lines "$LINES" --products "$PRODUCTS"
