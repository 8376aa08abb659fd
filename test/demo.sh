#!/bin/sh
# The flash-sale demo (make demo), run inside a throwaway cluster: install the
# extension into a fresh database and let BUYERS buyers race for STOCK items.
# With POOLER=1 the buyers come through pgbouncer in transaction pooling mode
# (POOL server connections, CLIENTS client connections), started and stopped
# here, as a real sale's thousands of buyers do.
set -eu
cd "$(dirname "$0")/.."
. test/lib.sh

: "${BUYERS:=33}" "${STOCK:=20}" "${LINES:=1}" "${PRODUCTS:=$LINES}" "${SLOTS:=0}"
: "${POOLER:=0}" "${POOL:=8}"

new_db checkout_demo checkout

split=
[ "$SLOTS" -gt 0 ] && split=", its stock split into $SLOTS slots"
if [ "$POOLER" = 1 ]; then
	: "${CLIENTS:=$([ "$BUYERS" -gt 1000 ] && echo 1000 || echo "$BUYERS")}"
	start_pgbouncer checkout_demo "$POOL"
	trap stop_pgbouncer EXIT
	echo "Flash sale through pgbouncer (transaction pooling, $POOL server connections, $CLIENTS clients):"
	echo "$BUYERS buyers with idempotency keys, $STOCK in stock of each of $PRODUCTS product(s)$split, $LINES line(s) per cart"
	echo
	tools/flashsale -h 127.0.0.1 -p "$PGBOUNCER_PORT" -d checkout_demo -M extended --keys \
		--client "$CLIENTS" --buyers "$BUYERS" --stock "$STOCK" \
		--lines "$LINES" --products "$PRODUCTS" --slots "$SLOTS"
else
	echo "Flash sale: $BUYERS buyers at once, $STOCK in stock of each of $PRODUCTS product(s)$split, $LINES line(s) per cart"
	echo
	exec tools/flashsale -d checkout_demo --buyers "$BUYERS" --stock "$STOCK" \
		--lines "$LINES" --products "$PRODUCTS" --slots "$SLOTS"
fi
